//! The simulator's pending events: a binary min-heap on `(time, order)`.
//!
//! `order` is unique per event (class bits over a sequence number), so the
//! pop order is a total order and does not depend on how the heap arranges
//! equal times. Unlike `std`'s `BinaryHeap`, `push` keeps the new event in
//! registers while it looks for the event's place, and writes it once: the
//! standard heap writes the event at the end and reads it straight back,
//! which stalls the processor on every push (a load of a just-written
//! 24-byte value), and a retrying client pushes one event per attempt.

/// An event's position in time: earlier time first, then lower `order`.
pub(crate) trait Keyed: Copy {
    fn key(&self) -> (u64, u64);
}

/// A min-heap of events.
pub(crate) struct EventQueue<E> {
    heap: Vec<E>,
}

impl<E: Keyed> EventQueue<E> {
    pub(crate) fn new() -> Self {
        EventQueue { heap: Vec::new() }
    }

    /// The earliest event.
    #[inline]
    pub(crate) fn peek(&self) -> Option<&E> {
        self.heap.first()
    }

    /// Adds an event.
    #[inline]
    pub(crate) fn push(&mut self, e: E) {
        let key = e.key();
        let mut pos = self.heap.len();
        // Grows the vector; the slot is overwritten below unless it is the
        // event's place.
        self.heap.push(e);
        while pos > 0 {
            let parent = (pos - 1) / 2;
            let p = self.heap[parent];
            if p.key() <= key {
                break;
            }
            self.heap[pos] = p;
            pos = parent;
        }
        self.heap[pos] = e;
    }

    /// Removes and returns the earliest event.
    #[inline]
    pub(crate) fn pop(&mut self) -> Option<E> {
        let last = self.heap.pop()?;
        let Some(&top) = self.heap.first() else {
            return Some(last);
        };
        // Sift `last` down from the root.
        let key = last.key();
        let n = self.heap.len();
        let mut pos = 0;
        loop {
            let mut child = 2 * pos + 1;
            if child >= n {
                break;
            }
            if child + 1 < n && self.heap[child + 1].key() < self.heap[child].key() {
                child += 1;
            }
            let c = self.heap[child];
            if key <= c.key() {
                break;
            }
            self.heap[pos] = c;
            pos = child;
        }
        self.heap[pos] = last;
        Some(top)
    }
}

#[cfg(test)]
mod tests {
    use super::{EventQueue, Keyed};

    impl Keyed for (u64, u64) {
        fn key(&self) -> (u64, u64) {
            *self
        }
    }

    #[test]
    fn pops_in_key_order_like_a_sorted_list() {
        let mut q = EventQueue::new();
        let mut model: Vec<(u64, u64)> = Vec::new();
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let mut seq = 0;
        for step in 0..50_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if x % 3 != 0 || model.is_empty() {
                // Few distinct times: ties are broken by the sequence number.
                let e = (x % 50 + step / 100, seq);
                seq += 1;
                q.push(e);
                model.push(e);
            } else {
                model.sort_unstable_by(|a, b| b.cmp(a));
                assert_eq!(q.peek().copied(), model.last().copied());
                assert_eq!(q.pop(), model.pop());
            }
        }
        model.sort_unstable_by(|a, b| b.cmp(a));
        while let Some(e) = model.pop() {
            assert_eq!(q.pop(), Some(e));
        }
        assert_eq!(q.pop(), None);
    }
}

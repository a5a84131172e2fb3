//! Compact storage of identity strings (API keys, users, workspaces,
//! endpoints).
//!
//! Both state stores look identities up on every request: the production
//! limiter's tables and the simulator's interner. Most identities are short,
//! so [`Ident`] keeps up to [`INLINE`] bytes inside itself (24 bytes in
//! all, like a `String` header) and only longer ones on the heap: comparing
//! a short identity then reads no memory but the entry itself.

/// Identities of at most this many bytes are stored inline.
pub(crate) const INLINE: usize = 22;

/// An owned identity string. Opaque: only [`Ident::new`] makes one, so its
/// bytes are always the UTF-8 of the `&str` it was made from.
#[derive(Clone, Debug)]
pub struct Ident(Repr);

#[derive(Clone, Debug)]
enum Repr {
    /// `bytes[..len]` is the string (valid UTF-8: copied from a `&str`).
    Inline { len: u8, bytes: [u8; INLINE] },
    /// A longer string.
    Heap(Box<str>),
}

impl Ident {
    /// Stores `s`.
    pub(crate) fn new(s: &str) -> Ident {
        if s.len() <= INLINE {
            let mut bytes = [0; INLINE];
            bytes[..s.len()].copy_from_slice(s.as_bytes());
            Ident(Repr::Inline { len: s.len() as u8, bytes })
        } else {
            Ident(Repr::Heap(s.into()))
        }
    }

    /// Whether this is the identity `s`.
    #[inline]
    pub(crate) fn is(&self, s: &str) -> bool {
        match &self.0 {
            Repr::Inline { len, bytes } => *len as usize == s.len() && same_bytes(&bytes[..s.len()], s.as_bytes()),
            Repr::Heap(h) => same_bytes(h.as_bytes(), s.as_bytes()),
        }
    }

    /// The string.
    #[inline]
    pub(crate) fn as_str(&self) -> &str {
        match &self.0 {
            Repr::Inline { len, bytes } => {
                let b = &bytes[..*len as usize];
                // SAFETY: `bytes[..len]` was copied whole from a `&str` in
                // `Ident::new` and never modified, so it is valid UTF-8.
                unsafe { std::str::from_utf8_unchecked(b) }
            }
            Repr::Heap(h) => h,
        }
    }
}

/// Byte equality for short strings, inline: names are a few bytes long, and
/// a call into the C library's `memcmp` costs more than the comparison.
#[inline]
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut ca = a.chunks_exact(8);
    let mut cb = b.chunks_exact(8);
    for (x, y) in (&mut ca).zip(&mut cb) {
        if u64::from_ne_bytes(x.try_into().expect("8 bytes")) != u64::from_ne_bytes(y.try_into().expect("8 bytes")) {
            return false;
        }
    }
    ca.remainder().iter().zip(cb.remainder()).all(|(x, y)| x == y)
}

#[cfg(test)]
mod tests {
    use super::{Ident, Repr, INLINE};

    #[test]
    fn identities_compare_exactly_inline_and_on_the_heap() {
        let long = "k".repeat(INLINE + 1);
        let cases = ["", "a", "ab", "ab\0", "\0", "é", "日本語キー", &"k".repeat(INLINE), &long];
        for a in cases {
            let stored = Ident::new(a);
            assert_eq!(matches!(stored.0, Repr::Inline { .. }), a.len() <= INLINE, "{a:?}");
            assert_eq!(stored.as_str(), a);
            for b in cases {
                assert_eq!(stored.is(b), a == b, "{a:?} stored, {b:?} asked");
            }
        }
        // Same inline bytes (zero padding), different lengths.
        assert!(!Ident::new("ab").is("ab\0\0"));
        assert!(!Ident::new(&long).is(&long[..INLINE]));
        assert_eq!(std::mem::size_of::<Ident>(), 24);
    }
}

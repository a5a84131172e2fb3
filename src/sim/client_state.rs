//! What the simulator keeps per client (API key): its random stream, the
//! one-minute windows behind retry budgets and adaptive throttling, its own
//! pacing state and queue, its retry quota and CUBIC limiter.

use std::collections::VecDeque;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::client::cubic::Cubic;
use crate::client::quota::QuotaState;
use crate::engines::EngineState;
use crate::time::{Nanos, MINUTE};

/// The state of client `key`, created on first use.
pub(super) fn client_of(clients: &mut Vec<ClientState>, key: u32) -> &mut ClientState {
    let i = key as usize;
    if i >= clients.len() {
        clients.resize_with(i + 1, ClientState::default);
    }
    &mut clients[i]
}

/// Client `key`'s random stream: ChaCha8 seeded with `seed`, stream `key`.
/// The top bit of the ChaCha stream number marks the simulator's client
/// streams. A synthetic trace uses the same seed with stream numbers below
/// 2^63 (see [`crate::trace::synth`]), so a client's jitter never replays the
/// draws that made its arrivals.
const CLIENT_STREAM: u64 = 1 << 63;

pub(super) fn rng_of(clients: &mut Vec<ClientState>, seed: u64, key: u32) -> &mut ChaCha8Rng {
    client_of(clients, key).rng.get_or_insert_with(|| {
        let mut r = ChaCha8Rng::seed_from_u64(seed);
        r.set_stream(CLIENT_STREAM | key as u64);
        Box::new(r)
    })
}

/// Per-client (per-key) behaviour state.
#[derive(Default)]
pub(super) struct ClientState {
    /// Boxed: most keys never draw a random number (no jitter, no adaptive
    /// throttling), and a ChaCha state is about 300 bytes.
    pub(super) rng: Option<Box<ChaCha8Rng>>,
    /// Two one-minute windows for retry budgets and adaptive throttling:
    /// `[previous, current]` counts of requests, retries, attempts, accepts.
    pub(super) window: u64,
    pub(super) requests: [u64; 2],
    pub(super) retries: [u64; 2],
    pub(super) attempts: [u64; 2],
    pub(super) accepts: [u64; 2],
    /// The client's own limiter state, when it paces itself.
    pub(super) pace: Option<Box<EngineState>>,
    /// Whether a send waits for that limiter's next admission (an event
    /// is scheduled for it); sends after it wait in `queue`.
    pub(super) pace_waiting: bool,
    /// Requests in flight under `pace=semaphore`.
    pub(super) in_flight: u64,
    /// Requests the client holds back, in arrival order: waiting for a
    /// semaphore slot or a CUBIC token, or behind the send that waits for
    /// the limiter.
    pub(super) queue: VecDeque<u32>,
    /// Its AWS retry quota, when it keeps one (created full on first use).
    pub(super) quota: Option<QuotaState>,
    /// Its adaptive CUBIC limiter (`pace=cubic`), created at its first send.
    pub(super) cubic: Option<Box<Cubic>>,
    pub(super) denied: u64,
    pub(super) sent: u64,
}

impl ClientState {
    pub(super) fn roll(&mut self, now: Nanos) {
        let w = now / MINUTE;
        if w > self.window {
            let keep = w == self.window + 1;
            for a in [&mut self.requests, &mut self.retries, &mut self.attempts, &mut self.accepts] {
                a[0] = if keep { a[1] } else { 0 };
                a[1] = 0;
            }
            self.window = w;
        }
    }
}

//! AWS's retry quota (botocore `retries/quota.py` and `RetryQuotaChecker`
//! in `retries/standard.py`): a token bucket per client, distinct from the
//! SRE retry budget.
//!
//! The bucket starts full (`capacity`, 500). Every retry acquires a cost
//! first (`retry_cost`, or `throttling_cost` after a throttling response);
//! when the bucket holds less than that, the request is not retried. A
//! request that succeeds without a retry puts back `no_retry_refund` (1); a
//! request that succeeds after retries puts back the cost of its last
//! acquisition; a request that fails puts back nothing. The bucket never
//! holds more than its capacity. botocore 1.44.8 charges 14 per retry and
//! 5 after throttling; botocore up to 1.35 charged 5 (10 after a timeout,
//! which the simulator has not).

/// The quota's figures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryQuota {
    /// Tokens in a full bucket (500).
    pub capacity: u32,
    /// Cost of a retry after a response that is not throttling.
    pub retry_cost: u32,
    /// Cost of a retry after a throttling response.
    pub throttling_cost: u32,
    /// Put back by a success without retries.
    pub no_retry_refund: u32,
}

impl RetryQuota {
    /// botocore 1.44.8: 500 tokens, 14 per retry, 5 after throttling, 1 back.
    pub const BOTOCORE: RetryQuota =
        RetryQuota { capacity: 500, retry_cost: 14, throttling_cost: 5, no_retry_refund: 1 };

    /// A full bucket.
    pub fn new_state(&self) -> QuotaState {
        QuotaState { available: self.capacity }
    }

    /// The cost of a retry after a response (throttling or not).
    pub fn cost(&self, throttling: bool) -> u32 {
        if throttling {
            self.throttling_cost
        } else {
            self.retry_cost
        }
    }
}

/// A client's bucket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuotaState {
    /// Tokens left.
    pub available: u32,
}

impl QuotaState {
    /// Takes `cost` for a retry; `false` (and nothing taken) when the bucket
    /// holds less.
    pub fn acquire(&mut self, cost: u32) -> bool {
        if cost > self.available {
            return false;
        }
        self.available -= cost;
        true
    }

    /// A request succeeded: puts back `last_cost` (the cost of its last
    /// retry), or the no-retry refund when it was never retried
    /// (`last_cost == 0`), up to the capacity.
    pub fn succeeded(&mut self, quota: &RetryQuota, last_cost: u32) {
        let refund = if last_cost == 0 { quota.no_retry_refund } else { last_cost };
        self.available = self.available.saturating_add(refund).min(quota.capacity);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drains_by_cost_refunds_and_never_overfills() {
        let q = RetryQuota::BOTOCORE;
        let mut s = q.new_state();
        // 35 retries after 5xx (14 each) leave 10; the next throttling retry
        // (5) fits twice, a 5xx retry no more.
        for _ in 0..35 {
            assert!(s.acquire(q.cost(false)));
        }
        assert_eq!(s.available, 10);
        assert!(!s.acquire(q.cost(false)));
        assert_eq!(s.available, 10, "a refused acquisition takes nothing");
        assert!(s.acquire(q.cost(true)) && s.acquire(q.cost(true)));
        assert!(!s.acquire(q.cost(true)));
        // A success after retries refunds its last cost; without retries, 1.
        s.succeeded(&q, 5);
        assert_eq!(s.available, 5);
        s.succeeded(&q, 0);
        assert_eq!(s.available, 6);
        // Never above the capacity.
        let mut full = q.new_state();
        full.succeeded(&q, 14);
        assert_eq!(full.available, 500);
    }
}

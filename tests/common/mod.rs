//! Helpers shared by the property-test files (each test file is its own
//! crate and includes this module with `mod common;`).

use proptest::prelude::ProptestConfig;

/// Soak runs use this many cases unless `RATESIM_SOAK` is a larger number.
pub const SOAK_CASES: u32 = 20_000;

/// `cases` normally; many more when `RATESIM_SOAK` is set (to anything, or
/// to a number of cases). Failures are not persisted to files: a failing
/// case is printed, shrunk, and belongs in a named regression test.
pub fn config(cases: u32) -> ProptestConfig {
    let cases = match std::env::var("RATESIM_SOAK") {
        Ok(v) => v.trim().parse::<u32>().ok().filter(|&n| n > 1).unwrap_or(SOAK_CASES).max(cases),
        Err(_) => cases,
    };
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

/// Real peer processes (servers, browsers, SDK scripts) for tests that
/// include `common` and use them.
pub mod peer;

/// Random arrival sequences for the engine property tests.
pub mod arrivals;

/// A minimal Redis client (RESP2) for tests that drive a real redis-server.
pub mod resp;

/// `ratesim serve` started and stopped by tests, and a raw HTTP client.
pub mod serve;

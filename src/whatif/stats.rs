//! Replication statistics: the mean of a metric over a scenario's seeds and
//! its 95% confidence interval (Student t).
//!
//! Each seed of a scenario is an independent replication (its own random
//! streams for arrivals and client jitter), so the per-seed values of a
//! metric are i.i.d. draws and the interval `mean ± t(0.975, n−1)·s/√n`
//! covers the metric's expected value with probability 0.95 when the
//! per-seed values are close to normal (as averages over many requests
//! are). `t` is the exact Student-t quantile (`statrs`), not a normal
//! approximation, so 5 seeds give a correctly wider interval than 500.
//! Means and variances are accumulated in one pass (Welford), so memory
//! does not grow with the number of seeds.

use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, StudentsT};

/// The `1 − α/2` quantile of Student's t with `df` degrees of freedom, for
/// a two-sided 95% interval (`df ≥ 1`).
pub fn t_quantile_975(df: u64) -> f64 {
    StudentsT::new(0.0, 1.0, df as f64).map_or(f64::NAN, |t| t.inverse_cdf(0.975))
}

/// A metric over replications: mean, 95% half-width, and the count.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    /// Mean over the seeds that define the metric.
    pub mean: f64,
    /// Half-width of the 95% confidence interval of the mean (`None` below
    /// two values).
    pub ci95: Option<f64>,
    /// Seeds that define the metric (a percentile of time to success is
    /// undefined for a seed where nothing succeeded).
    pub n: u64,
}

/// A running mean and variance (Welford).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Accumulator {
    n: u64,
    mean: f64,
    m2: f64,
}

impl Accumulator {
    /// Adds one replication's value.
    pub fn add(&mut self, x: f64) {
        self.n += 1;
        let d = x - self.mean;
        self.mean += d / self.n as f64;
        self.m2 += d * (x - self.mean);
    }

    /// The estimate so far (`None` without values).
    pub fn estimate(&self) -> Option<Estimate> {
        if self.n == 0 {
            return None;
        }
        let ci95 = (self.n >= 2).then(|| {
            let var = self.m2 / (self.n - 1) as f64;
            t_quantile_975(self.n - 1) * (var / self.n as f64).sqrt()
        });
        Some(Estimate { mean: self.mean, ci95, n: self.n })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t_quantiles_match_the_tables() {
        // Two-sided 95% critical values from any t table.
        for (df, t) in [(1, 12.7062), (2, 4.3027), (4, 2.7764), (9, 2.2622), (29, 2.0452), (120, 1.9799)] {
            assert!((t_quantile_975(df) - t).abs() < 1e-4, "df {df}: {}", t_quantile_975(df));
        }
    }

    #[test]
    fn welford_matches_the_two_pass_formula() {
        let xs = [0.69, 0.71, 0.70, 0.68, 0.72, 0.70];
        let mut a = Accumulator::default();
        xs.iter().for_each(|&x| a.add(x));
        let e = a.estimate().unwrap();
        let mean = xs.iter().sum::<f64>() / 6.0;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / 5.0;
        assert!((e.mean - mean).abs() < 1e-15);
        assert!((e.ci95.unwrap() - 2.5706 * (var / 6.0).sqrt()).abs() < 1e-5);
        let mut one = Accumulator::default();
        one.add(3.0);
        assert_eq!(one.estimate(), Some(Estimate { mean: 3.0, ci95: None, n: 1 }));
    }
}

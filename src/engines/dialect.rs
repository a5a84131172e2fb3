//! Dialects: the limiters that providers actually deploy, as named presets
//! of the engines.
//!
//! A provider's limiter is rarely the textbook algorithm. Each [`Dialect`]
//! is one widely deployed implementation, read from its source (project,
//! version and file in [`Dialect::source`]) and checked decision by decision
//! against the real thing in `tests/dialect_peers.rs`:
//!
//! | dialect | algorithm(s) | what differs from the textbook |
//! |---|---|---|
//! | `python-limits` | `fixed-window`, `sliding-log`, `sliding-counter` | window opened by the key's first request, denied requests count ([`WindowAlign::FirstHit`], `count_denied`); `[now - P, now]` rolling window ([`SlidingLog::with_closed_boundary`](super::SlidingLog::with_closed_boundary)); floored sliding estimate ([`SlidingCounter::with_floor_estimate`](super::SlidingCounter::with_floor_estimate)) |
//! | `redis-incr-expire` | `fixed-window` | first-hit window that expires as a Redis key ([`WindowAlign::FirstHitRedis`]), denied requests count |
//! | `envoy-local` | `token-bucket-steps` | tokens refilled in steps ([`TokenBucketSteps`]); Envoy's fill interval is whole milliseconds, at least 50 ms |
//! | `nginx` | `nginx-limit-req` | milli-requests at millisecond resolution, `burst` as a queue that *delays* ([`NginxLimitReq`]) |
//!
//! [`Dialect::apply`] turns a textbook engine into the dialect's (the
//! policy parser uses it for `dialect = "..."`, and it can re-read a whole
//! policy as another implementation would enforce it).

use std::fmt;

use super::{Engine, FixedWindow, NginxLimitReq, TokenBucketSteps, WindowAlign};
use crate::time::{Rate, MILLISECOND};

/// A named limiter implementation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dialect {
    /// The Python `limits` package (memory storage): Flask-Limiter, SlowAPI
    /// and many Python services.
    PythonLimits,
    /// The `INCR` + `EXPIRE` Lua script on Redis (the pattern of the Redis
    /// `INCR` documentation; also `limits`' Redis storage for fixed windows).
    RedisIncrExpire,
    /// Envoy's local rate limit filter with its timer-refilled token bucket.
    EnvoyLocal,
    /// nginx `limit_req`.
    Nginx,
}

/// Where a dialect's semantics were read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Source {
    /// The project, e.g. `Python limits`.
    pub project: &'static str,
    /// The version read and tested against.
    pub version: &'static str,
    /// The files (and functions) the semantics come from.
    pub files: &'static str,
}

impl Dialect {
    /// Every dialect, in the order of the README table.
    pub const ALL: [Dialect; 4] =
        [Dialect::PythonLimits, Dialect::RedisIncrExpire, Dialect::EnvoyLocal, Dialect::Nginx];

    /// The name written in policies (`dialect = "python-limits"`).
    pub fn name(self) -> &'static str {
        match self {
            Dialect::PythonLimits => "python-limits",
            Dialect::RedisIncrExpire => "redis-incr-expire",
            Dialect::EnvoyLocal => "envoy-local",
            Dialect::Nginx => "nginx",
        }
    }

    /// The dialect called `name`.
    pub fn parse(name: &str) -> Option<Dialect> {
        Dialect::ALL.into_iter().find(|d| d.name() == name)
    }

    /// The names of all dialects, for error messages: `python-limits,
    /// redis-incr-expire, envoy-local, nginx`.
    pub fn names() -> String {
        Dialect::ALL.map(Dialect::name).join(", ")
    }

    /// The policy algorithms the implementation has.
    pub fn algorithms(self) -> &'static [&'static str] {
        match self {
            Dialect::PythonLimits => &["fixed-window", "sliding-log", "sliding-counter"],
            Dialect::RedisIncrExpire => &["fixed-window"],
            Dialect::EnvoyLocal => &["token-bucket-steps"],
            Dialect::Nginx => &["nginx-limit-req"],
        }
    }

    /// The algorithm a limit with this dialect and no `algorithm` uses, if
    /// the implementation has only one.
    pub fn default_algorithm(self) -> Option<&'static str> {
        match self.algorithms() {
            [only] => Some(only),
            _ => None,
        }
    }

    /// Where the semantics were read.
    pub fn source(self) -> Source {
        match self {
            Dialect::PythonLimits => Source {
                project: "Python limits",
                version: "5.8.0",
                files: "limits/strategies.py; limits/storage/memory.py (incr, acquire_entry, acquire_sliding_window_entry)",
            },
            Dialect::RedisIncrExpire => Source {
                project: "Redis",
                version: "7.0.15",
                files: "the INCRBY + EXPIRE script of the INCR documentation's rate limiter pattern (as in limits' resources/redis/lua_scripts/incr_expire.lua); src/db.c keyIsExpired, src/expire.c",
            },
            Dialect::EnvoyLocal => Source {
                project: "Envoy",
                version: "1.30 (timer-based bucket; the default until 1.31)",
                files: "source/extensions/filters/common/local_ratelimit/local_ratelimit_impl.cc (onFillTimerHelper, requestAllowedHelper)",
            },
            Dialect::Nginx => Source {
                project: "nginx",
                version: "1.22.1",
                files: "src/http/modules/ngx_http_limit_req_module.c (ngx_http_limit_req_lookup, ngx_http_limit_req_account)",
            },
        }
    }

    /// The engine as this implementation enforces it:
    ///
    /// - `python-limits`: a fixed window opens at the key's first counted
    ///   request and counts denied requests; a sliding log's window is
    ///   closed; a sliding counter floors its estimate;
    /// - `redis-incr-expire`: a fixed window opens at the first request,
    ///   expires as a Redis key (the period must be whole milliseconds) and
    ///   counts denied requests;
    /// - `envoy-local`: a token bucket with steps stays one (its interval
    ///   must be whole milliseconds, at least 50 ms, as Envoy requires); a
    ///   leaky bucket becomes the steps bucket of the same size and rate
    ///   with the finest refill Envoy accepts (`n` tokens every `n·T`, the
    ///   smallest `n` with `n·T` a whole number of milliseconds of at least
    ///   50 ms);
    /// - `nginx`: nginx `limit_req` stays itself; a leaky bucket admitting
    ///   `burst` at once becomes `limit_req burst=<burst - 1> nodelay` at the
    ///   same rate (per second or per minute only; nginx truncates `r/m` to
    ///   milli-requests per second).
    ///
    /// Concurrency caps and budgets are not rate limiters and pass
    /// unchanged. Any other algorithm is an error that says which ones the
    /// implementation has. Applying a dialect twice changes nothing.
    pub fn apply(self, engine: &Engine) -> Result<Engine, String> {
        let unsupported = |what: &str| {
            Err(format!(
                "{} ({} {}) has no {what} limiter; its algorithms: {}",
                self.name(),
                self.source().project,
                self.source().version,
                self.algorithms().join(", ")
            ))
        };
        match (self, engine) {
            (_, Engine::Concurrency(_) | Engine::Budget(_)) => Ok(engine.clone()),
            (Dialect::PythonLimits, Engine::FixedWindow(w)) => Ok(Engine::FixedWindow(python_window(w))),
            (Dialect::PythonLimits, Engine::SlidingLog(w)) => {
                Ok(Engine::SlidingLog(w.clone().with_closed_boundary(true)))
            }
            (Dialect::PythonLimits, Engine::SlidingCounter(w)) => {
                Ok(Engine::SlidingCounter(w.clone().with_floor_estimate(true)))
            }
            (Dialect::RedisIncrExpire, Engine::FixedWindow(w)) => w
                .clone()
                .with_align(WindowAlign::FirstHitRedis)
                .map(|w| Engine::FixedWindow(w.with_count_denied(true)))
                .ok_or_else(|| {
                    format!(
                        "{}: a Redis key's time to live is whole milliseconds; the window of {} ns is not",
                        self.name(),
                        w.period()
                    )
                }),
            (Dialect::EnvoyLocal, Engine::TokenBucketSteps(b)) => {
                envoy_interval_ok(b.rate()).map(|()| engine.clone()).map_err(|e| format!("{}: {e}", self.name()))
            }
            (Dialect::EnvoyLocal, Engine::Gcra(g)) => envoy_steps(g.rate())
                .map(|rate| Engine::TokenBucketSteps(TokenBucketSteps::new(rate, g.burst()).expect("burst positive")))
                .ok_or_else(|| {
                    format!(
                        "{}: no Envoy fill interval (whole milliseconds, at least 50 ms) refills {} exactly",
                        self.name(),
                        g.rate()
                    )
                }),
            (Dialect::Nginx, Engine::NginxLimitReq(_)) => Ok(engine.clone()),
            (Dialect::Nginx, Engine::Gcra(g)) => NginxLimitReq::new(g.rate(), g.burst() - 1, None)
                .map(Engine::NginxLimitReq)
                .ok_or_else(|| format!("{}: nginx rates are per second or per minute, not {}", self.name(), g.rate())),
            (_, Engine::Gcra(_)) => unsupported("leaky bucket (gcra)"),
            (_, Engine::FixedWindow(_)) => unsupported("fixed-window"),
            (_, Engine::SlidingLog(_)) => unsupported("sliding-log"),
            (_, Engine::SlidingCounter(_)) => unsupported("sliding-counter"),
            (_, Engine::TokenBucketSteps(_)) => unsupported("token-bucket-steps"),
            (_, Engine::NginxLimitReq(_)) => unsupported("nginx-limit-req"),
        }
    }

    /// The dialect whose engine `engine` is, if its options are exactly one
    /// dialect's (so `policy explain` can name it). The options of
    /// `python-limits` and `redis-incr-expire` differ only in the window's
    /// expiry, so a fixed window names one of them.
    pub fn of(engine: &Engine) -> Option<Dialect> {
        match engine {
            Engine::FixedWindow(w) if w.counts_denied() => match w.align() {
                WindowAlign::FirstHit => Some(Dialect::PythonLimits),
                WindowAlign::FirstHitRedis => Some(Dialect::RedisIncrExpire),
                WindowAlign::Epoch => None,
            },
            Engine::SlidingLog(w) if w.closed_boundary() => Some(Dialect::PythonLimits),
            Engine::SlidingCounter(w) if w.floors_estimate() => Some(Dialect::PythonLimits),
            Engine::TokenBucketSteps(_) => Some(Dialect::EnvoyLocal),
            Engine::NginxLimitReq(_) => Some(Dialect::Nginx),
            _ => None,
        }
    }
}

impl fmt::Display for Dialect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// `limits`' fixed window: `incr` then compare, the key expiring `P` after
/// its first hit.
fn python_window(w: &FixedWindow) -> FixedWindow {
    w.clone().with_align(WindowAlign::FirstHit).expect("any period").with_count_denied(true)
}

/// Envoy requires a fill interval of whole milliseconds, at least 50 ms.
pub(crate) fn envoy_interval_ok(rate: Rate) -> Result<(), String> {
    let p = rate.period();
    if p % MILLISECOND != 0 || p < 50 * MILLISECOND {
        return Err(format!(
            "Envoy's fill interval is whole milliseconds, at least 50ms; found {}",
            crate::time::format_duration(p)
        ));
    }
    Ok(())
}

/// The finest steps Envoy accepts for `rate`: `n` tokens every `n·T`.
fn envoy_steps(rate: Rate) -> Option<Rate> {
    let (count, period) = (rate.count() as u128, rate.period() as u128);
    // n·period/count must be a whole number of milliseconds: n·period is a
    // multiple of count·1 ms. n = count always works if the period is whole
    // milliseconds, so the search is bounded by count.
    (1..=rate.count().min(1_000_000))
        .map(|n| n as u128)
        .find(|&n| {
            let span = n * period;
            span % (count * MILLISECOND as u128) == 0 && span / count >= 50 * MILLISECOND as u128
        })
        .and_then(|n| Rate::new(n as u64, (n * period / count) as u64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engines::{Concurrency, Gcra, SlidingLog};
    use crate::time::{MINUTE, SECOND};

    #[test]
    fn names_round_trip_and_sources_are_given() {
        for d in Dialect::ALL {
            assert_eq!(Dialect::parse(d.name()), Some(d));
            assert!(!d.source().version.is_empty());
            assert!(!d.algorithms().is_empty());
        }
        assert_eq!(Dialect::parse("python"), None);
        assert_eq!(Dialect::names(), "python-limits, redis-incr-expire, envoy-local, nginx");
    }

    #[test]
    fn apply_sets_the_options_once() {
        let w = Engine::FixedWindow(FixedWindow::new(3, 10 * SECOND).unwrap());
        let py = Dialect::PythonLimits.apply(&w).unwrap();
        assert_eq!(Dialect::of(&py), Some(Dialect::PythonLimits));
        assert_eq!(Dialect::PythonLimits.apply(&py).unwrap(), py);
        let redis = Dialect::RedisIncrExpire.apply(&w).unwrap();
        assert_eq!(Dialect::of(&redis), Some(Dialect::RedisIncrExpire));
        assert!(Dialect::RedisIncrExpire
            .apply(&Engine::FixedWindow(FixedWindow::new(3, SECOND + 1).unwrap()))
            .unwrap_err()
            .contains("whole milliseconds"));
        let c = Engine::Concurrency(Concurrency::new(2, None).unwrap());
        assert_eq!(Dialect::Nginx.apply(&c).unwrap(), c);
        let err = Dialect::RedisIncrExpire.apply(&Engine::SlidingLog(SlidingLog::new(1, SECOND).unwrap())).unwrap_err();
        assert_eq!(err, "redis-incr-expire (Redis 7.0.15) has no sliding-log limiter; its algorithms: fixed-window");
    }

    #[test]
    fn leaky_buckets_convert_to_gateways() {
        // RunInfra's 500/min with burst 50.
        let g = Engine::Gcra(Gcra::new(Rate::new(500, MINUTE).unwrap(), 50).unwrap());
        match Dialect::Nginx.apply(&g).unwrap() {
            Engine::NginxLimitReq(n) => {
                assert_eq!((n.burst(), n.delay(), n.rate_milli()), (49, None, 8333));
            }
            other => panic!("{other:?}"),
        }
        // T = 120 ms: one token every 120 ms.
        match Dialect::EnvoyLocal.apply(&g).unwrap() {
            Engine::TokenBucketSteps(b) => {
                assert_eq!((b.max(), b.rate()), (50, Rate::new(1, 120 * MILLISECOND).unwrap()))
            }
            other => panic!("{other:?}"),
        }
        // 7/s: T is not whole milliseconds; 7 tokens every second is.
        let g = Engine::Gcra(Gcra::new(Rate::new(7, SECOND).unwrap(), 5).unwrap());
        match Dialect::EnvoyLocal.apply(&g).unwrap() {
            Engine::TokenBucketSteps(b) => assert_eq!(b.rate(), Rate::new(7, SECOND).unwrap()),
            other => panic!("{other:?}"),
        }
        // 100/s: T = 10 ms is below Envoy's 50 ms: 5 tokens every 50 ms.
        let g = Engine::Gcra(Gcra::new(Rate::new(100, SECOND).unwrap(), 5).unwrap());
        match Dialect::EnvoyLocal.apply(&g).unwrap() {
            Engine::TokenBucketSteps(b) => assert_eq!(b.rate(), Rate::new(5, 50 * MILLISECOND).unwrap()),
            other => panic!("{other:?}"),
        }
        let odd = Engine::Gcra(Gcra::new(Rate::new(3, 7).unwrap(), 5).unwrap());
        assert!(Dialect::EnvoyLocal.apply(&odd).is_err());
        assert!(Dialect::Nginx.apply(&odd).unwrap_err().contains("per second or per minute"));
    }
}

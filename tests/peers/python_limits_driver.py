"""Drives the real Python `limits` package on a virtual clock.

Called by tests/dialect_peers.rs (the `python-limits` dialect). Reads one JSON
document on stdin:

    {"clock": "exact" | "float",
     "cases": [{"strategy": "fixed-window" | "moving-window" | "sliding-window-counter",
                "limit": 3, "period_s": 10,
                "requests": [{"t": "1767225600.0005", "key": "k1", "cost": 2}, ...]}]}

and writes {"version": "...", "results": [[{"allowed": true, "remaining": 1}, ...], ...]}
on stdout: for every request, what `hit` answered and the `remaining` that
`get_window_stats` reports right after it.

The clock: `limits` reads `time.time()`; it is replaced by a function that
returns the request's instant. With "exact" the instant is a
`fractions.Fraction` of the decimal string, so `limits`' own arithmetic runs
on exact rationals (its algorithm, without float rounding); with "float" it
is the nearest float, as on a real wall clock.

`MemoryStorage` also starts a timer thread every 10 ms (real time) that
deletes expired entries. It reads the same clock from another thread, so it
is cancelled and not rescheduled: what it deletes is already ignored by
`hit` and `get_window_stats` (expired counters read as absent), except a
moving-window entry exactly one period old, which `hit` still counts and the
thread would delete if it happened to run at that very instant.
"""

import json
import sys
import time
from fractions import Fraction

import limits
from limits.storage import MemoryStorage
from limits.strategies import (
    FixedWindowRateLimiter,
    MovingWindowRateLimiter,
    SlidingWindowCounterRateLimiter,
)

STRATEGIES = {
    "fixed-window": FixedWindowRateLimiter,
    "moving-window": MovingWindowRateLimiter,
    "sliding-window-counter": SlidingWindowCounterRateLimiter,
}

now = [Fraction(0)]
time.time = lambda: now[0]


def storage():
    s = MemoryStorage()
    s.timer.cancel()
    s.timer.join()
    # Name-mangled private method: no expiry thread is ever started again.
    s._MemoryStorage__schedule_expiry = lambda: None
    return s


def run_case(case, exact):
    limiter = STRATEGIES[case["strategy"]](storage())
    item = limits.RateLimitItemPerSecond(case["limit"], case["period_s"])
    out = []
    for r in case["requests"]:
        t = Fraction(r["t"])
        now[0] = t if exact else float(t)
        allowed = limiter.hit(item, r["key"], cost=r["cost"])
        stats = limiter.get_window_stats(item, r["key"])
        out.append({"allowed": bool(allowed), "remaining": int(stats.remaining)})
    return out


def main():
    doc = json.load(sys.stdin)
    exact = doc["clock"] == "exact"
    results = [run_case(case, exact) for case in doc["cases"]]
    json.dump({"version": limits.__version__, "results": results}, sys.stdout)


if __name__ == "__main__":
    main()

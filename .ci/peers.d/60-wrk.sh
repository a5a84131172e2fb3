# wrk (Debian): the bounded loopback load test of `ratesim serve` (tests/serve_load.rs).
source "$(dirname "$0")/../peer-lib.sh"
apt_install wrk
wrk -v 2>&1 | head -1

# libclang (Debian): bindgen reads redismodule.h while building the Redis
# module crate (crates/ratesim-redis, through the `redis-module` crate).
source "$(dirname "$0")/../peer-lib.sh"
apt_install libclang-dev

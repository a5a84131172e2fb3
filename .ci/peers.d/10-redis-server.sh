# redis-server (Debian): the Redis module's tests and the INCR+EXPIRE dialect.
source "$(dirname "$0")/../peer-lib.sh"
apt_install redis-server redis-tools
redis-server --version

# nginx (Debian): the nginx `limit_req` dialect and `ratesim probe` tests.
source "$(dirname "$0")/../peer-lib.sh"
apt_install nginx
nginx -v 2>&1

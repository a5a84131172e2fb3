# Headless Chromium (Debian): renders the HTML report in the report tests.
source "$(dirname "$0")/../peer-lib.sh"
apt_install chromium
chromium --version

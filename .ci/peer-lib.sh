# Sourced by .ci/peers.d/*.sh: idempotent installers.

# apt_install PKG...: installs the Debian packages not yet installed
# (apt-get update once per run, only if something is missing).
apt_install() {
    local missing=()
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    export DEBIAN_FRONTEND=noninteractive
    if [ ! -e /tmp/.ratesim-apt-updated ]; then
        apt-get update -qq
        touch /tmp/.ratesim-apt-updated
    fi
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# pip_install NAME==VERSION...: installs pinned PyPI packages not yet at
# that version into the current python3.
pip_install() {
    local missing=()
    for spec in "$@"; do
        local name=${spec%%==*} version=${spec#*==}
        [ "$(python3 -c "import importlib.metadata as m; print(m.version('$name'))" 2>/dev/null)" = "$version" ] || missing+=("$spec")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    python3 -m pip install -q --disable-pip-version-check "${missing[@]}"
}

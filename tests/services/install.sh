# Sourced by tests/run.sh and the bench scripts: installs what is missing from Debian packages.
# say TEXT: a section line; apt_install PACKAGE...: installs packages (as root, or through sudo);
# need COMMAND PACKAGE: makes sure COMMAND exists; unpack_syslog_ng: syslog-ng-core unpacked into
# $SYSLOG_NG_ROOT (its Debian package conflicts with rsyslog's), with the libraries it needs.

say() { printf '\n== %s\n' "$*"; }

apt_install() {
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  if [ -z "${APT_UPDATED:-}" ]; then
    $sudo apt-get update -qq
    APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

need() {
  command -v "$1" >/dev/null 2>&1 && return 0
  say "installing $2 (for $1)"
  apt_install "$2"
  command -v "$1" >/dev/null 2>&1 || { echo "error: $1 still missing after installing $2" >&2; exit 1; }
}

SYSLOG_NG_ROOT="${SYSLOG_NG_ROOT:-$HOME/.cache/securewatch/syslog-ng}"
unpack_syslog_ng() {
  [ ! -x "$SYSLOG_NG_ROOT/usr/sbin/syslog-ng" ] || return 0
  say "unpacking syslog-ng-core into $SYSLOG_NG_ROOT (it conflicts with rsyslog)"
  apt_install libivykis0 libnet1 libjson-c5 libpcre3 libwrap0
  local deb
  deb="$(mktemp -d)"
  (cd "$deb" && apt-get download -qq syslog-ng-core 2>/dev/null)
  mkdir -p "$SYSLOG_NG_ROOT" && dpkg -x "$deb"/syslog-ng-core_*.deb "$SYSLOG_NG_ROOT"
  rm -rf "$deb"
}

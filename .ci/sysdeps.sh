#!/usr/bin/env bash
# System packages for tests (PostgreSQL server), PDF reports (Pango, poppler) and the venv.
# The one place this list lives: .ci/run and `make sysdeps` both call this script.
#
# Installs what is missing with apt-get when root (or with passwordless sudo). Otherwise it
# warns and goes on (postgres tests then skip locally), unless --require is given or CI is
# set, in which case a missing package is an error.
set -euo pipefail

PACKAGES=(
  make                  # fresh Debian has gcc but no make
  python3-venv          # `python3 -m venv` needs ensurepip
  postgresql-15         # real server for tests/integration (started by tests/conftest.py)
  libpango-1.0-0        # WeasyPrint
  libpangoft2-1.0-0     # WeasyPrint
  libharfbuzz-subset0   # WeasyPrint font subsetting (without it WeasyPrint warns on import)
  poppler-utils         # pdftotext/pdfinfo: tests read the rendered reports back
  fonts-dejavu-core     # deterministic fonts for the PDFs
  nginx-light           # real nginx for tests/integration/test_nginx_real.py (access log)
  squid                 # real Squid for tests/integration/test_squid_real_server.py (access logs)
  haproxy               # real HAProxy for tests/integration/test_haproxy_real.py (httplog/tcplog)
  openssl               # tests make the CA and certificates of the TLS syslog and SMTP receivers
)

require=false
case "${CI:-}" in "" | 0 | false | FALSE | False | no) ;; *) require=true ;; esac
[[ "${1:-}" == "--require" ]] && require=true

missing_or_fail() {
  if $require; then
    echo "sysdeps: ERROR: $1" >&2
    exit 1
  fi
  echo "sysdeps: warning: $1" >&2
  exit 0
}

if ! command -v dpkg >/dev/null 2>&1; then
  missing_or_fail "not a Debian system; install equivalents of: ${PACKAGES[*]}"
fi

missing=()
for pkg in "${PACKAGES[@]}"; do
  dpkg -s "$pkg" 2>/dev/null | grep -q '^Status: install ok installed' || missing+=("$pkg")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

sudo=()
if [[ $(id -u) -ne 0 ]]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo=(sudo -n)
  else
    missing_or_fail "missing system packages: ${missing[*]} (run 'sudo make sysdeps')"
  fi
fi

echo "sysdeps: installing ${missing[*]}"
if [[ " ${missing[*]} " == *" postgresql-15 "* && ! -e /etc/postgresql-common/createcluster.conf ]]
then
  # The tests start their own throwaway server: skip creating (and starting) a 'main'
  # cluster at install time. UCF_FORCE_CONFFOLD below keeps this file over the template.
  "${sudo[@]}" mkdir -p /etc/postgresql-common
  echo "create_main_cluster = false" | "${sudo[@]}" tee /etc/postgresql-common/createcluster.conf >/dev/null
fi

log=$(mktemp)
# Daemons installed for the tests (nginx, squid, haproxy, postgresql) must not be started as
# system services: the tests start their own on loopback. policy-rc.d tells invoke-rc.d "no".
policy=/usr/sbin/policy-rc.d
own_policy=false
if [[ ! -e $policy ]]; then
  printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
  "${sudo[@]}" chmod +x "$policy"
  own_policy=true
fi
trap 'rm -f "$log"; if $own_policy; then "${sudo[@]}" rm -f "$policy"; fi' EXIT
apt=("${sudo[@]}" env DEBIAN_FRONTEND=noninteractive UCF_FORCE_CONFFOLD=1 apt-get -q -y
     -o Dpkg::Use-Pty=0 -o Dpkg::Options::=--force-confold)
if ! { "${apt[@]}" update && "${apt[@]}" install --no-install-recommends "${missing[@]}"; } \
  >"$log" 2>&1; then
  cat "$log" >&2
  echo "sysdeps: ERROR: apt-get failed (output above)" >&2
  exit 1
fi
echo "sysdeps: installed ${missing[*]}"

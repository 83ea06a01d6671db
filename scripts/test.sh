#!/usr/bin/env bash
# Runs every check and test of orgsync: formatting, lints, and the whole test suite.
# It starts what the tests need first (PostgreSQL on 127.0.0.1:5432, database `test`).
# Usage: scripts/test.sh            (from anywhere inside the repository)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

log() { printf '\n==> %s\n' "$*"; }

ensure_postgres() {
  export ORGSYNC_TEST_POSTGRES_URL="${ORGSYNC_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}"
  if ! command -v pg_isready >/dev/null 2>&1; then
    log "installing PostgreSQL (Debian package)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  fi
  if pg_isready -q -h 127.0.0.1 -p 5432; then return 0; fi
  log "starting PostgreSQL"
  local version
  version="$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1)"
  if [ -n "$version" ]; then
    pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  fi
  for _ in $(seq 1 30); do
    pg_isready -q -h 127.0.0.1 -p 5432 && break
    sleep 1
  done
  if ! pg_isready -q -h 127.0.0.1 -p 5432; then
    echo "PostgreSQL is not reachable on 127.0.0.1:5432; start it and run again" >&2
    exit 1
  fi
  # The tests expect trust auth and a database `test`.
  psql -h 127.0.0.1 -U postgres -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname='test'" | grep -q 1 \
    || psql -h 127.0.0.1 -U postgres -d postgres -c "CREATE DATABASE test" >/dev/null
}

# The console's browser test drives Debian's Chromium through chromedriver.
ensure_chromium() {
  # A CJK font, so the screenshots show Chinese names instead of boxes (nice to have).
  if ! fc-list 2>/dev/null | grep -qi 'wenquanyi\|noto sans cjk'; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends fonts-wqy-zenhei >/dev/null 2>&1 \
      || echo "note: fonts-wqy-zenhei could not be installed; screenshots will show CJK text as boxes" >&2
  fi
  if [ -x /usr/bin/chromedriver ] && [ -x /usr/bin/chromium ]; then return 0; fi
  log "installing chromium and chromium-driver (Debian packages, for the console browser test)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null \
    || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null; }
}

# The webhook tests check signatures with libraries we did not write: PyPI and npm
# `standardwebhooks`, installed under target/verifiers (the registries are reachable here);
# the LDAP tests page with PyPI `ldap3`, installed there too; the emulator's long connection
# is driven by the official Feishu SDK's client (PyPI `lark-oapi`).
ensure_verifiers() {
  local dir=target/verifiers
  if [ ! -d "$dir/py/standardwebhooks" ]; then
    log "installing PyPI standardwebhooks 1.1.0 into $dir/py"
    python3 -m pip install --quiet --disable-pip-version-check --ignore-installed \
      --target "$dir/py" standardwebhooks==1.1.0 2>&1 | grep -v 'Running pip as the' || true
  fi
  if [ ! -d "$dir/py/ldap3" ]; then
    log "installing PyPI ldap3 2.9.1 into $dir/py (an LDAP client for the LDAP tests)"
    python3 -m pip install --quiet --disable-pip-version-check --ignore-installed \
      --target "$dir/py" ldap3==2.9.1 2>&1 | grep -v 'Running pip as the' || true
  fi
  if [ ! -d "$dir/py/lark_oapi" ]; then
    log "installing PyPI lark-oapi 1.7.5 into $dir/py (the official Feishu SDK, whose long-connection client the emulator must serve)"
    python3 -m pip install --quiet --disable-pip-version-check --ignore-installed \
      --target "$dir/py" lark-oapi==1.7.5 2>&1 | grep -v 'Running pip as the' || true
  fi
  if [ ! -d "$dir/node/node_modules/standardwebhooks" ]; then
    log "installing npm standardwebhooks 1.1.1 into $dir/node"
    npm install --silent --no-audit --no-fund --prefix "$dir/node" standardwebhooks@1.1.1 >/dev/null
  fi
}

# The LDAP tests drive the view with clients we did not write: Debian's ldap-utils
# (ldapsearch, ldapwhoami, ldapcompare).
ensure_ldap_utils() {
  # ldap-utils: ldapsearch and friends; squid: its basic_ldap_auth helper, run on stdin.
  if command -v ldapsearch >/dev/null 2>&1 && [ -x /usr/lib/squid/basic_ldap_auth ]; then return 0; fi
  log "installing ldap-utils and squid (Debian packages, for the LDAP tests)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ldap-utils squid >/dev/null \
    || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ldap-utils squid >/dev/null; }
}

ensure_postgres
ensure_chromium
ensure_verifiers
ensure_ldap_utils

log "cargo fmt --check"
cargo fmt --all -- --check

log "cargo clippy --all-targets -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

log "tests"
if command -v cargo-nextest >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast
  # nextest does not run doc tests.
  cargo test --workspace --locked --doc
else
  cargo test --workspace --locked --no-fail-fast
fi

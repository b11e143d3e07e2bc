#!/usr/bin/env bash
# The one test command (see README): installs what the tests need, then checks formatting and
# lints and runs every test of the workspace. Safe to run repeatedly.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\n== %s\n' "$*" >&2; }

# Python with aiosmtpd: an independent SMTP server implementation for the mailer's end-to-end tests.
if [ ! -x .venv/bin/python ]; then
  say "creating .venv for the external SMTP server"
  python3 -m venv .venv
fi
if ! .venv/bin/python -c 'import aiosmtpd' 2>/dev/null; then
  say "installing aiosmtpd"
  .venv/bin/pip install --quiet --disable-pip-version-check 'aiosmtpd==1.4.6'
fi
export RETAIN_TEST_PYTHON="$PWD/.venv/bin/python"
# With aiosmtpd installed above, a missing one is a failure, not a skipped test.
export RETAIN_REQUIRE_AIOSMTPD=1

# Debian's Chromium for the dashboard's browser test.
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing chromium"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "warning: chromium is not installed and cannot be installed here; the browser test will fail" >&2
  fi
fi

# PostgreSQL, the store's second backend. On a machine where it is installed the PostgreSQL tests
# must run: the server is started when stopped, and RETAIN_REQUIRE_POSTGRES=1 turns a test that
# cannot reach it into a failure instead of a skip.
pg_installed() { [ -d /etc/postgresql ] || command -v pg_ctlcluster >/dev/null 2>&1; }
pg_up() { command -v pg_isready >/dev/null 2>&1 && pg_isready -q -h 127.0.0.1 -p 5432; }
if [ -z "${RETAIN_TEST_POSTGRES:-}" ]; then
  if pg_installed; then
    if ! pg_up && command -v pg_ctlcluster >/dev/null 2>&1; then
      say "starting PostgreSQL"
      for v in $(ls /etc/postgresql 2>/dev/null); do
        pg_ctlcluster --skip-systemctl-redirect "$v" main start || true
      done
      for _ in $(seq 1 30); do pg_up && break; sleep 1; done
    fi
    export RETAIN_REQUIRE_POSTGRES=1
    if pg_up; then
      export RETAIN_TEST_POSTGRES="postgres://postgres@127.0.0.1:5432"
    else
      echo "error: PostgreSQL is installed but does not answer on 127.0.0.1:5432; its tests will fail" >&2
    fi
  else
    echo "warning: PostgreSQL is not installed; PostgreSQL tests will be skipped (see the summary)" >&2
  fi
else
  export RETAIN_REQUIRE_POSTGRES="${RETAIN_REQUIRE_POSTGRES:-1}"
fi

# Test databases are dropped by the tests themselves; a killed run can leave some behind. Drop
# those whose test process (the pid in the name, retain_test_<pid>_…) is gone.
drop_stale_test_databases() {
  [ -n "${RETAIN_TEST_POSTGRES:-}" ] && command -v psql >/dev/null 2>&1 || return 0
  psql "$RETAIN_TEST_POSTGRES/postgres" -Atqc \
    "SELECT datname FROM pg_database WHERE datname LIKE 'retain\_test\_%'" 2>/dev/null |
    while read -r db; do
      pid="$(printf '%s' "$db" | cut -d_ -f3)"
      if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
        psql "$RETAIN_TEST_POSTGRES/postgres" -qc "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null 2>&1 || true
      fi
    done
}
drop_stale_test_databases

say "cargo fmt --check"
cargo fmt --all -- --check

say "cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings

say "cargo test"
# Tests that skip part of their work write `SKIP: <test>: <why>` to stderr (past the harness's
# capture); the summary below lists them.
LOG="$(mktemp)"
trap 'rm -f "$LOG"' EXIT
status=0
cargo test --workspace --no-fail-fast 2>&1 | tee "$LOG" || status=$?
drop_stale_test_databases

say "browser test (headless Chromium against retain serve)"
bash tests/browser/run.sh || status=$?

say "summary"
if grep -q '^SKIP: ' "$LOG"; then
  echo "skipped ($(grep -c '^SKIP: ' "$LOG")):" >&2
  grep '^SKIP: ' "$LOG" | sort | uniq >&2
else
  echo "nothing skipped" >&2
fi
if [ "$status" -ne 0 ]; then
  echo "FAILED (exit $status)" >&2
else
  echo "all passed" >&2
fi
exit "$status"

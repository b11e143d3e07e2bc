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

# PostgreSQL, the store's second backend: the machine's server when it answers.
if [ -z "${RETAIN_TEST_POSTGRES:-}" ]; then
  if command -v pg_isready >/dev/null 2>&1 && pg_isready -q -h 127.0.0.1 -p 5432; then
    export RETAIN_TEST_POSTGRES="postgres://postgres@127.0.0.1:5432"
  else
    echo "warning: no PostgreSQL on 127.0.0.1:5432; PostgreSQL store tests will be skipped" >&2
  fi
fi

say "cargo fmt --check"
cargo fmt --all -- --check

say "cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings

say "cargo test"
cargo test --workspace --no-fail-fast

say "browser test (headless Chromium against retain serve)"
bash tests/browser/run.sh

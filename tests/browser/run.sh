#!/usr/bin/env bash
# Browser test of the dashboard: a workspace with the demo shop, a sent campaign and a draft plan;
# `retain serve` with a password; headless Chromium driven over the DevTools protocol
# (dashboard_test.py). Screenshots go to ${BROWSER_SHOTS:-target/browser-shots}.
# Needs Debian's chromium and python3. Usage: tests/browser/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT="$(pwd)"
SHOTS="${BROWSER_SHOTS:-$ROOT/target/browser-shots}"
command -v chromium >/dev/null || command -v chromium-browser >/dev/null || [ -n "${CHROMIUM:-}" ] \
  || { echo "chromium is not installed (apt-get install chromium)" >&2; exit 1; }

cargo build -q --bin retain
cargo build -q -p retain-web --example browser_fixture
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
RETAIN="$TARGET/debug/retain"
FIXTURE="$TARGET/debug/examples/browser_fixture"

WORK="$(mktemp -d)"
SERVER_PID=""
cleanup() { if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; fi; rm -rf "$WORK"; }
trap cleanup EXIT
unset RETAIN_WEB_TOKEN RETAIN_DATABASE_URL RETAIN_WORKSPACE
export RETAIN_SECRET="browser-test-secret-0123456789abcdef"

WS="$WORK/ws"
"$RETAIN" -q init "$WS" >/dev/null
"$RETAIN" -q demo-data --customers 800 --seed 3 --out "$WORK/data"
"$RETAIN" -q -w "$WS" import customers "$WORK/data/customers.csv" >/dev/null
"$RETAIN" -q -w "$WS" import orders "$WORK/data/orders.csv" >/dev/null
"$RETAIN" -q -w "$WS" predict --as-of 2024-09-01 >/dev/null
"$RETAIN" -q -w "$WS" segment --as-of 2024-06-01 >/dev/null
"$RETAIN" -q -w "$WS" segment >/dev/null
read -r PLAN_SENT CAMPAIGN PLAN_DRAFT VIEW_PATH < <("$FIXTURE" "$WS/retain.db")

PASSWORD="correct horse battery staple"
HASH="$(printf '%s\n' "$PASSWORD" | "$RETAIN" serve --hash-password 2>/dev/null)"
sed -i "s|^password_hash = \"\"|password_hash = \"$HASH\"|" "$WS/retain.toml"

"$RETAIN" -w "$WS" serve --addr 127.0.0.1:0 2>"$WORK/serve.log" &
SERVER_PID=$!
ADDR=""
for _ in $(seq 100); do
  ADDR="$(grep -o 'http://127.0.0.1:[0-9]*' "$WORK/serve.log" | head -1 || true)"
  [ -n "$ADDR" ] && break
  sleep 0.1
done
[ -n "$ADDR" ] || { cat "$WORK/serve.log" >&2; exit 1; }

echo "dashboard at $ADDR: approved plan $PLAN_SENT (campaign $CAMPAIGN sent), draft plan $PLAN_DRAFT"
EXPECT_PREDICTIONS=1 EXPECT_SEGMENTS=1 python3 "$ROOT/tests/browser/dashboard_test.py" "$ADDR" "$PASSWORD" "$SHOTS" "$PLAN_DRAFT" "$CAMPAIGN" "$VIEW_PATH"
status=$?
kill -TERM "$SERVER_PID"; wait "$SERVER_PID" || true; SERVER_PID=""
echo "screenshots in $SHOTS"
exit $status

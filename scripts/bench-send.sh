#!/usr/bin/env bash
# Send benchmark: 10,000 personalised ~4 KB messages through the whole engine (render, CSS
# inlining, MIME, SMTP, the exactly-once ledger in SQLite) to Postfix's smtp-sink on loopback,
# and the Python smtplib baseline (`benches/baselines/smtp_python.py`) to the same sink, in one run.
# The Python side runs in .venv-bench/, which benches/baselines/venv.sh creates.
#
# usage: scripts/bench-send.sh [N] [CONCURRENCY]   (defaults 10000, 8)
# env:   SMTP_SINK (path to smtp-sink)
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-10000}"
CONC="${2:-8}"
OUT=bench-data
PORT=2526
mkdir -p "$OUT"
. benches/baselines/venv.sh   # sets BASELINES and PY
# smtp-sink without installing (or starting) a mail system: unpack Debian's postfix package.
SINK="${SMTP_SINK:-$(command -v smtp-sink || true)}"
LIBS=""
if [ -z "$SINK" ]; then
  if [ ! -x "$OUT/postfix/usr/sbin/smtp-sink" ]; then
    (cd "$OUT" && rm -f postfix_*.deb && apt-get download postfix >/dev/null 2>&1 \
      || { apt-get update >/dev/null && apt-get download postfix >/dev/null; })
    dpkg-deb -x "$OUT"/postfix_*.deb "$OUT/postfix"
  fi
  SINK="$OUT/postfix/usr/sbin/smtp-sink"
  LIBS="$OUT/postfix/usr/lib/postfix"
fi
USER_OPT=()
[ "$(id -u)" = 0 ] && USER_OPT=(-u nobody)
LD_LIBRARY_PATH="$LIBS" "$SINK" "${USER_OPT[@]}" -c 127.0.0.1:$PORT 1000 >"$OUT/smtp-sink.log" 2>&1 &
SINK_PID=$!
trap 'kill $SINK_PID 2>/dev/null || true' EXIT
sleep 0.5
kill -0 $SINK_PID || { cat "$OUT/smtp-sink.log"; exit 1; }

cargo build -q --release -p retain-mailer --example send_bench
for i in 1 2 3; do
  target/release/examples/send_bench --url "smtp://127.0.0.1:$PORT" --n "$N" --concurrency "$CONC" \
    --templates crates/mailer/benches/data/templates --template weekly
done
"$PY" "$BASELINES/smtp_python.py" --port $PORT --n "$N" --procs 1
"$PY" "$BASELINES/smtp_python.py" --port $PORT --n "$N" --procs 4

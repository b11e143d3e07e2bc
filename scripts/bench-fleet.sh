#!/usr/bin/env bash
# Several-senders benchmark: N personalised messages of one campaign sent by 1, 2 and 4 worker
# processes sharing one PostgreSQL database (each process the whole engine: claims, render, CSS
# inlining, MIME, `sending` before and `sent` after every SMTP transaction), and by 1 process on
# SQLite, to Postfix's smtp-sink on loopback (unpacked from Debian's postfix package, as in
# bench-send.sh). Unlimited rate. Throughput = messages sent / wall time from the first worker's
# start to the last one's end. The ledger is filled once per run before the clock starts.
#
# usage: scripts/bench-fleet.sh [N] [CONCURRENCY]   (defaults 20000, 8 per worker)
# env:   RETAIN_BENCH_POSTGRES (default postgres://postgres@127.0.0.1:5432), SMTP_SINK
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-20000}"
CONC="${2:-8}"
PG="${RETAIN_BENCH_POSTGRES:-postgres://postgres@127.0.0.1:5432}"
OUT=bench-data
PORT=2527
mkdir -p "$OUT"
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
LD_LIBRARY_PATH="$LIBS" "$SINK" "${USER_OPT[@]}" -c 127.0.0.1:$PORT 1000 >"$OUT/smtp-sink-fleet.log" 2>&1 &
SINK_PID=$!
trap 'kill $SINK_PID 2>/dev/null || true' EXIT
sleep 0.5
kill -0 $SINK_PID || { cat "$OUT/smtp-sink-fleet.log"; exit 1; }

cargo build -q --release -p retain-mailer --example send_bench
BIN=target/release/examples/send_bench
TPL=(--templates crates/mailer/benches/data/templates --template weekly)
URL="smtp://127.0.0.1:$PORT"

psql_admin() { psql "$PG/postgres" -qAtc "$1" >/dev/null; }

for W in 1 2 4; do
  DB=retain_bench_fleet
  psql_admin "DROP DATABASE IF EXISTS $DB WITH (FORCE)"
  psql_admin "CREATE DATABASE $DB"
  "$BIN" --url "$URL" --n "$N" --db-url "$PG/$DB" --phase queue "${TPL[@]}" >/dev/null
  start=$(date +%s.%N)
  pids=()
  for i in $(seq "$W"); do
    "$BIN" --url "$URL" --n "$N" --concurrency "$CONC" --db-url "$PG/$DB" --phase send "${TPL[@]}" \
      >"$OUT/fleet-$W-$i.json" &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p"; done
  end=$(date +%s.%N)
  sent=$(cat "$OUT"/fleet-"$W"-*.json | python3 -c 'import json,sys; print(sum(json.loads(l)["sent"] for l in sys.stdin))')
  python3 -c "import sys; w,s,a,b=sys.argv[1:]; t=float(b)-float(a); print(f'postgresql workers={w} sent={s} seconds={t:.2f} messages_per_s={int(s)/t:.0f}')" "$W" "$sent" "$start" "$end"
  psql_admin "DROP DATABASE IF EXISTS $DB WITH (FORCE)"
done

rm -f "$OUT/fleet.db"*
"$BIN" --url "$URL" --n "$N" --concurrency "$CONC" --db "$OUT/fleet.db" "${TPL[@]}" \
  | python3 -c 'import json,sys; r=json.loads(sys.stdin.read()); print("sqlite workers=1 sent=%d seconds=%s messages_per_s=%.0f" % (r["sent"], r["seconds"], r["messages_per_s"]))'
rm -f "$OUT/fleet.db"*

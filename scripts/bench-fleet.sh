#!/usr/bin/env bash
# Several-senders benchmark: N personalised messages of one campaign sent by 1, 2 and 4 worker
# processes sharing one PostgreSQL database (each process the whole send engine of `retain send`:
# claims, render with the CSS inlined at template load, MIME, `sending` right before and `sent`
# after every SMTP transaction), and by 1 process on SQLite, to Postfix's smtp-sink on loopback
# (unpacked from Debian's postfix package, as in bench-send.sh). Unlimited rate. Throughput =
# messages sent / wall time from the first worker's start to the last one's end; the ledger is
# filled once per run before the clock starts. In the same run, the sink's own capacity is
# measured with Postfix's smtp-source (same package): N messages of the same size over the same
# number of connections as one worker.
#
# Prints one line per run with wall time, the CPU time of the sender processes (user + system,
# from bash's `time`), and the load average before and after.
#
# usage: scripts/bench-fleet.sh [N] [CONCURRENCY]   (defaults 100000, 8 per worker)
# env:   RETAIN_BENCH_POSTGRES (default postgres://postgres@127.0.0.1:5432), SMTP_SINK
#        (an smtp-sink to use instead of the unpacked one; smtp-source is then looked up next
#        to it), BENCH_SKIP_BUILD=1 (use the binary already built)
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-100000}"
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
SOURCE="$(dirname "$SINK")/smtp-source"
USER_OPT=()
[ "$(id -u)" = 0 ] && USER_OPT=(-u nobody)
LD_LIBRARY_PATH="$LIBS" "$SINK" "${USER_OPT[@]}" -c 127.0.0.1:$PORT 1000 >"$OUT/smtp-sink-fleet.log" 2>&1 &
SINK_PID=$!
trap 'kill $SINK_PID 2>/dev/null || true' EXIT
sleep 0.5
kill -0 $SINK_PID || { cat "$OUT/smtp-sink-fleet.log"; exit 1; }

if [ "${BENCH_SKIP_BUILD:-0}" != 1 ]; then
  cargo build -q --release -p retain-mailer --example send_bench
fi
BIN=target/release/examples/send_bench
TPL=(--templates crates/mailer/benches/data/templates --template weekly)
URL="smtp://127.0.0.1:$PORT"
TIMEFORMAT='%R %U %S'
load() { cut -d' ' -f1-3 /proc/loadavg; }
report() { # name workers sent load_before load_after "real user sys"
  python3 - "$@" <<'PY'
import sys
name, w, sent, lb, la, times = sys.argv[1:]
real, user, sys_ = map(float, times.split())
print(f"{name} workers={w} sent={sent} wall_s={real:.2f} messages_per_s={int(sent)/real:.0f} "
      f"cpu_user_s={user:.2f} cpu_sys_s={sys_:.2f} load_before={lb} load_after={la}")
PY
}

# The sink's own capacity: smtp-source, N messages of the message size over CONC connections.
SIZE=$("$BIN" --url "$URL" --n 1 --concurrency 1 "${TPL[@]}" 2>/dev/null \
  | python3 -c 'import json,sys; print(json.loads(sys.stdin.read())["message_bytes"])')
lb=$(load)
t=$( { time LD_LIBRARY_PATH="$LIBS" "$SOURCE" -d -s "$CONC" -m "$N" -l "$SIZE" \
  -f bench@shop.example.com -t user@example.com 127.0.0.1:$PORT >/dev/null 2>>"$OUT/fleet.err"; } 2>&1 )
report "smtp-source(sink-capacity,bytes=$SIZE)" "$CONC-connections" "$N" "$lb" "$(load)" "$t"

psql_admin() { psql "$PG/postgres" -qAtc "$1" >/dev/null; }

for W in 1 2 4; do
  DB=retain_bench_fleet
  psql_admin "DROP DATABASE IF EXISTS $DB WITH (FORCE)"
  psql_admin "CREATE DATABASE $DB"
  "$BIN" --url "$URL" --n "$N" --db-url "$PG/$DB" --phase queue "${TPL[@]}" >/dev/null
  lb=$(load)
  t=$( { time (
    pids=()
    for i in $(seq "$W"); do
      "$BIN" --url "$URL" --n "$N" --concurrency "$CONC" --db-url "$PG/$DB" --phase send "${TPL[@]}" \
        >"$OUT/fleet-$W-$i.json" 2>>"$OUT/fleet.err" &
      pids+=($!)
    done
    for p in "${pids[@]}"; do wait "$p"; done
  ); } 2>&1 )
  la=$(load)
  sent=$(cat "$OUT"/fleet-"$W"-*.json | python3 -c 'import json,sys; print(sum(json.loads(l)["sent"] for l in sys.stdin))')
  report postgresql "$W" "$sent" "$lb" "$la" "$t"
  psql_admin "DROP DATABASE IF EXISTS $DB WITH (FORCE)"
done

rm -f "$OUT/fleet.db"*
"$BIN" --url "$URL" --n "$N" --db "$OUT/fleet.db" --phase queue "${TPL[@]}" >/dev/null
lb=$(load)
t=$( { time "$BIN" --url "$URL" --n "$N" --concurrency "$CONC" --db "$OUT/fleet.db" --phase send \
  "${TPL[@]}" >"$OUT/fleet-sqlite.json" 2>>"$OUT/fleet.err"; } 2>&1 )
la=$(load)
sent=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["sent"])' "$OUT/fleet-sqlite.json")
report sqlite 1 "$sent" "$lb" "$la" "$t"
rm -f "$OUT/fleet.db"*

#!/usr/bin/env bash
# Several-senders benchmark through the real CLI: one approved campaign of N personalised
# messages (the `weekly` template of crates/mailer/benches/data/templates, N opted-in customers
# imported with `retain import customers`) sent by 1, 2 and 4 `retain send` processes at once
# sharing one PostgreSQL database, and by 1 `retain send` on SQLite, to Postfix's smtp-sink on
# loopback (unpacked from Debian's postfix package, as in bench-send.sh), unlimited rate. Each
# process is the whole thing: loading the audience, queueing (idempotent), claims, render with
# the CSS inlined at template load, MIME, `sending` right before and `sent` after every SMTP
# transaction. The campaign is queued once (`retain send --limit 0`) before the clock starts.
# Throughput = messages sent / wall time from the first process's start to the last one's end.
# In the same run, the sink's own capacity is measured with Postfix's smtp-source (same
# package): N messages of about the same size over as many connections as one sender uses.
#
# Prints one line per run: wall time, the CPU time of the sender processes (user + system, from
# bash's `time`), the load average before and after.
#
# usage: scripts/bench-fleet.sh [N] [CONCURRENCY]   (defaults 100000, 8 per sender)
# env:   RETAIN_BENCH_POSTGRES (default postgres://postgres@127.0.0.1:5432), SMTP_SINK
#        (an smtp-sink to use instead of the unpacked one; smtp-source is looked up next to
#        it), BENCH_SKIP_BUILD=1 (use target/release/retain as it is), MESSAGE_BYTES (size of
#        smtp-source's messages, default 4100: a `weekly` message is 4,0xx bytes),
#        SENDERS (PostgreSQL runs, default "1 2 4"; empty for none), SQLITE=0 (skip SQLite),
#        RETAIN_BIN (a retain binary to measure instead of building one)
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-100000}"
CONC="${2:-8}"
PG="${RETAIN_BENCH_POSTGRES:-postgres://postgres@127.0.0.1:5432}"
SIZE="${MESSAGE_BYTES:-4100}"
OUT=bench-data
PORT=2527
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
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

if [ -n "${RETAIN_BIN:-}" ]; then
  BIN="$(cd "$(dirname "$RETAIN_BIN")" && pwd)/$(basename "$RETAIN_BIN")"
else
  if [ "${BENCH_SKIP_BUILD:-0}" != 1 ]; then
    cargo build -q --release --bin retain
  fi
  BIN="$(pwd)/${CARGO_TARGET_DIR:-target}/release/retain"
fi
export RETAIN_SMTP_URL="smtp://127.0.0.1:$PORT"
unset RETAIN_DATABASE_URL RETAIN_SECRET
TIMEFORMAT='%R %U %S'
load() { cut -d' ' -f1-3 /proc/loadavg; }
report() { # name workers sent load_before load_after "real user sys"
  python3 - "$@" <<'PY'
import sys
name, w, sent, lb, la, times = sys.argv[1:]
real, user, sys_ = map(float, times.split())
print(f"{name} senders={w} sent={sent} wall_s={real:.2f} messages_per_s={int(sent)/real:.0f} "
      f"cpu_user_s={user:.2f} cpu_sys_s={sys_:.2f} load_before={lb} load_after={la}", flush=True)
PY
}
psql_admin() { psql "$PG/postgres" -qAtc "$1" >/dev/null; }

CSV="$OUT/fleet-customers-$N.csv"
if [ ! -s "$CSV" ]; then
  python3 - "$N" "$CSV" <<'PY'
import sys
n, path = int(sys.argv[1]), sys.argv[2]
with open(path, "w") as f:
    f.write("customer_id,email,first_name,subscribed\n")
    for i in range(n):
        f.write(f"c{i:07d},user{i}@example.com,User{i},yes\n")
PY
fi

CAMPAIGN=p1-win_back-1
# A workspace on database URL $1 (empty: SQLite) with the customers and one approved campaign
# to all of them, queued.
setup() {
  local url="$1" ws="$OUT/fleet-ws"
  rm -rf "$ws"
  "$BIN" init "$ws" >/dev/null
  cp crates/mailer/benches/data/templates/weekly.* "$ws/templates/"
  if [ -n "$url" ]; then
    python3 - "$ws/retain.toml" "$url" <<'PY'
import sys
path, url = sys.argv[1:]
text = open(path).read()
head, tail = text.split("[database]", 1)
open(path, "w").write(head + "[database]" + tail.replace('url = ""', f'url = "{url}"', 1))
PY
  fi
  "$BIN" -q --workspace "$ws" import customers "$CSV" >/dev/null
  local sql="INSERT INTO plans (id, seq, state, budget, used, expected_value, holdout_fraction, seed,
      as_of, goals_file, document, created_at, updated_at)
      VALUES ('p1', 1, 'approved', 0, 0, 0, 0, 1, NULL, NULL, '{}', 0, 0);
    INSERT INTO plan_campaigns (campaign_id, plan_id, position, goal, template, segments,
      expected_value, cost, recipients, holdout, details)
      VALUES ('$CAMPAIGN', 'p1', 0, 'win_back', 'weekly', '[]', 0, 0, $N, 0, '{}');
    INSERT INTO plan_members (campaign_id, ckey, holdout) SELECT '$CAMPAIGN', key, 0 FROM customers;"
  if [ -n "$url" ]; then
    psql "$url" -qAt -v ON_ERROR_STOP=1 -c "$sql" >/dev/null
  else
    sqlite3 "$ws/retain.db" "$sql"
  fi
  "$BIN" -q --workspace "$ws" send "$CAMPAIGN" --rate 0 --limit 0 >/dev/null
  # What `queue_sends` now does itself after queueing a large campaign (binaries built before
  # that change left it to autovacuum, and PostgreSQL sorted every queued row at each claim).
  if [ -n "$url" ]; then psql "$url" -qAtc "ANALYZE sends" >/dev/null; fi
}

# The sink's own capacity.
lb=$(load)
t=$( { time LD_LIBRARY_PATH="$LIBS" "$SOURCE" -d -s "$CONC" -m "$N" -l "$SIZE" \
  -f bench@example.com -t user@example.com 127.0.0.1:$PORT >/dev/null 2>>"$OUT/fleet.err"; } 2>&1 )
report "smtp-source(sink-capacity,bytes=$SIZE,connections=$CONC)" 1 "$N" "$lb" "$(load)" "$t"

DB=retain_bench_fleet
for W in ${SENDERS-1 2 4}; do
  psql_admin "DROP DATABASE IF EXISTS $DB WITH (FORCE)"
  psql_admin "CREATE DATABASE $DB"
  setup "$PG/$DB"
  lb=$(load)
  t=$( { time (
    pids=()
    for i in $(seq "$W"); do
      "$BIN" --workspace "$OUT/fleet-ws" send "$CAMPAIGN" --rate 0 --concurrency "$CONC" \
        --format json >"$OUT/fleet-$W-$i.json" 2>>"$OUT/fleet.err" &
      pids+=($!)
    done
    for p in "${pids[@]}"; do wait "$p"; done
  ); } 2>&1 )
  la=$(load)
  sent=$(python3 -c 'import json,sys; print(sum(json.load(open(f))["sent"] for f in sys.argv[1:]))' "$OUT"/fleet-"$W"-*.json)
  report postgresql "$W" "$sent" "$lb" "$la" "$t"
  psql_admin "DROP DATABASE IF EXISTS $DB WITH (FORCE)"
done

[ "${SQLITE:-1}" = 0 ] && exit 0
setup ""
lb=$(load)
t=$( { time "$BIN" --workspace "$OUT/fleet-ws" send "$CAMPAIGN" --rate 0 --concurrency "$CONC" \
  --format json >"$OUT/fleet-sqlite.json" 2>>"$OUT/fleet.err"; } 2>&1 )
la=$(load)
sent=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["sent"])' "$OUT/fleet-sqlite.json")
report sqlite 1 "$sent" "$lb" "$la" "$t"
rm -rf "$OUT/fleet-ws"

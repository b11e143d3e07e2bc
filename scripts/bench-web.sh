#!/usr/bin/env bash
# Load test of the tracking endpoints: wrk against the open pixel and click redirects of
# `retain serve` on loopback, then a count of the recorded events (none may be lost).
# Usage: [WRK_THREADS=1] scripts/bench-web.sh [duration_s] [connections]   (needs wrk: apt-get install wrk)
# One wrk thread by default: on 2 cores a second one takes CPU from the server it measures.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${1:-15}"
CONNS="${2:-64}"
PORT="${BENCH_WEB_PORT:-18931}"
BASE="http://127.0.0.1:$PORT"
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 1; }

ROOT="$(pwd)"
cargo build --release -q --bin retain
cargo build --release -q -p retain-web --example bench_fixture
RETAIN="$ROOT/target/release/retain"
FIXTURE="$ROOT/target/release/examples/bench_fixture"

WORK="$(mktemp -d)"
SERVER_PID=""
cleanup() { if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; fi; rm -rf "$WORK"; }
trap cleanup EXIT

export RETAIN_SECRET="bench-secret-0123456789abcdefghij"
export RETAIN_TRACKING_BASE_URL="$BASE"
"$RETAIN" -q init "$WORK/ws" >/dev/null
(cd "$WORK/ws" && "$FIXTURE" setup retain.db 20000 "$BASE" "$WORK")

cat > "$WORK/paths.lua" <<'LUA'
local paths = {}
local file = os.getenv("PATHS_FILE")
for line in io.lines(file) do paths[#paths + 1] = line end
local i = 0
request = function()
  i = i + 1
  return wrk.format("GET", paths[(i % #paths) + 1])
end
done = function(summary, latency, requests)
  io.write(string.format("RESULT requests=%d duration_us=%d non2xx3xx=%d connect_err=%d read_err=%d timeouts=%d p50_us=%d p99_us=%d max_us=%d\n",
    summary.requests, summary.duration, summary.errors.status, summary.errors.connect,
    summary.errors.read, summary.errors.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
LUA

"$RETAIN" -w "$WORK/ws" serve --addr "127.0.0.1:$PORT" 2>"$WORK/serve.log" &
SERVER_PID=$!
for _ in $(seq 50); do curl -sf "$BASE/healthz" >/dev/null 2>&1 && break; sleep 0.1; done

echo "machine: $(nproc) cores, load average before the run: $(cut -d" " -f1-3 /proc/loadavg)"
declare -A REQS
for kind in open click; do
  PATHS_FILE="$WORK/$kind.txt" wrk -t"${WRK_THREADS:-1}" -c"$CONNS" -d"${DURATION}s" --latency -s "$WORK/paths.lua" "$BASE" > "$WORK/wrk-$kind.txt"
  line=$(grep '^RESULT' "$WORK/wrk-$kind.txt")
  reqs=$(sed -E 's/.*requests=([0-9]+).*/\1/' <<<"$line")
  dur=$(sed -E 's/.*duration_us=([0-9]+).*/\1/' <<<"$line")
  p50=$(sed -E 's/.*p50_us=([0-9]+).*/\1/' <<<"$line")
  p99=$(sed -E 's/.*p99_us=([0-9]+).*/\1/' <<<"$line")
  bad=$(sed -E 's/.*non2xx3xx=([0-9]+).*/\1/' <<<"$line")
  REQS[$kind]=$reqs
  awk -v k="$kind" -v r="$reqs" -v d="$dur" -v p50="$p50" -v p99="$p99" -v bad="$bad" -v c="$CONNS" \
    'BEGIN { printf "%-5s %d connections: %d requests in %.1f s = %.0f req/s, p50 %.2f ms, p99 %.2f ms, non-2xx/3xx %d\n", k, c, r, d/1e6, r/(d/1e6), p50/1000, p99/1000, bad }'
done

kill -TERM "$SERVER_PID"; wait "$SERVER_PID" || true; SERVER_PID=""
counts=$(cd "$WORK/ws" && "$FIXTURE" count retain.db)
echo "events recorded: $counts"
echo "server: $(tail -1 "$WORK/serve.log")"
opens=$(python3 -c "import json,sys; print(json.loads(sys.argv[1]).get('open',0))" "$counts")
clicks=$(python3 -c "import json,sys; print(json.loads(sys.argv[1]).get('click',0))" "$counts")
if [ "$opens" -ge "${REQS[open]}" ] && [ "$clicks" -ge "${REQS[click]}" ]; then
  echo "no event lost: opens $opens >= ${REQS[open]} answered, clicks $clicks >= ${REQS[click]} answered"
else
  echo "EVENTS LOST: opens $opens of ${REQS[open]}, clicks $clicks of ${REQS[click]}" >&2
  exit 1
fi

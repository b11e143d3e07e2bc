#!/usr/bin/env bash
# The whole job on a shop-sized workspace, one command after another as the README runs them:
# import (orders, then the customers with their addresses) → stats → predict → segment (k-means, k = 8; RFM) → plan → approve → send every campaign
# to the file outbox (every email rendered) → report, each with its wall time and peak memory.
# The seeded orders file is the same as scripts/bench-import.sh's (benches/baselines/rfm_pandas.py
# --generate). Prints a markdown table; with --write, also puts it in docs/BENCHMARKS.md between
# the pipeline markers.
#
# usage: scripts/bench-pipeline.sh [--write] [ROWS] [CUSTOMERS]
# env:   RETAIN_BIN (a retain binary to measure instead of building target/release/retain),
#        RETAIN_DATABASE_URL (e.g. postgres://…/db to measure the PostgreSQL backend)
set -euo pipefail
cd "$(dirname "$0")/.."
WRITE=0
if [ "${1:-}" = "--write" ]; then WRITE=1; shift; fi
ROWS=${1:-10000000}
CUSTOMERS=${2:-1000000}
DATA=bench-data
mkdir -p "$DATA"
CSV="$DATA/orders_${ROWS}.csv"

if [ -n "${RETAIN_BIN:-}" ]; then
  RETAIN=$RETAIN_BIN
else
  cargo build --release --quiet
  RETAIN=target/release/retain
fi
if [ ! -f "$CSV" ]; then
  . benches/baselines/venv.sh   # sets BASELINES and PY
  "$PY" "$BASELINES/rfm_pandas.py" --generate "$CSV" --rows "$ROWS" --customers "$CUSTOMERS" >/dev/null
fi

# The shop's customers file: an address and marketing consent for every customer of the orders
# file (ids 1..CUSTOMERS), so the plan forms campaigns and the send renders their emails.
CUST="$DATA/customers_${CUSTOMERS}.csv"
if [ ! -f "$CUST" ]; then
  python3 - "$CUST" "$CUSTOMERS" <<'PY'
import sys
path, n = sys.argv[1], int(sys.argv[2])
with open(path, "w") as f:
    f.write("customer_id,email,first_name,subscribed\n")
    for i in range(1, n + 1):
        f.write(f"{i},customer{i}@shop.example,Customer {i},yes\n")
PY
fi

WS="$DATA/pipeline-ws"
# The previous run's workspace (half a million outbox files) is deleted after this run, not
# before it: ext4 skips recently freed inodes when it creates files, and the outbox sends would
# pay for the deletion.
if [ -e "$WS" ]; then
  rm -rf "$WS.old"
  mv "$WS" "$WS.old"
fi
"$RETAIN" init "$WS" >/dev/null
BACKEND=SQLite
case "${RETAIN_DATABASE_URL:-}" in postgres*) BACKEND=PostgreSQL ;; esac

ROWS_MD=""
TOTAL=0
PEAK=0
step() { # step LABEL ARGS…: runs `retain ARGS` in the workspace, records time and peak RSS
  local label=$1; shift
  local start end secs mib
  start=$(date +%s.%N)
  /usr/bin/time -f '%M %U %S' -o "$DATA/.rss" "$RETAIN" --workspace "$WS" "$@" > "$DATA/.out" 2> "$DATA/.err" || {
    echo "failed: retain $*" >&2; cat "$DATA/.err" >&2; exit 1; }
  end=$(date +%s.%N)
  secs=$(echo "$end - $start" | bc)
  read -r kib user sys < <(tail -1 "$DATA/.rss")
  mib=$(( kib / 1024 ))
  cpu=$(echo "$user + $sys" | bc)
  TOTAL=$(echo "$TOTAL + $secs" | bc)
  [ "$mib" -gt "$PEAK" ] && PEAK=$mib
  printf '%-44s %8.1f s %8.1f s CPU %6d MiB\n' "$label" "$secs" "$cpu" "$mib" >&2
  ROWS_MD="$ROWS_MD| \`$label\` | $(printf '%.1f' "$secs") s | $(printf '%.1f' "$cpu") s | $mib MiB |"$'\n'
}

step "retain import orders" import orders "$CSV" -q
step "retain import customers" import customers "$CUST" -q
step "retain stats" stats --format json
step "retain predict" predict -q --format json
step "retain segment --method kmeans --k 8" segment --method kmeans --k 8 -q --format json
step "retain segment --method rfm" segment --method rfm -q --format json
step "retain plan --budget 5000" plan --budget 5000 -q --format json
PLAN=$("$RETAIN" --workspace "$WS" plan show --format json | python3 -c 'import json,sys; print(json.load(sys.stdin)["plan_id"])')
step "retain plan approve" plan approve "$PLAN" -q
CAMPAIGNS=$("$RETAIN" --workspace "$WS" plan show "$PLAN" --format json | python3 -c 'import json,sys; print(" ".join(c["campaign_id"] for c in json.load(sys.stdin)["campaigns"]))')
for c in $CAMPAIGNS; do
  step "retain send $c --transport file" send "$c" --transport file -q
done
EMAILS=0
if [ -n "$CAMPAIGNS" ]; then
  EMAILS=$(find "$WS/outbox" -name '*.eml' | wc -l)
  step "retain report --plan $PLAN" report --plan "$PLAN" --format json
else
  echo "the plan has no campaign: send and report skipped" >&2
fi

LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
rm -rf "$WS.old"
TABLE="Backend: $BACKEND; $ROWS orders, $CUSTOMERS customers (each with an address and consent); $EMAILS emails rendered to the outbox; load average at the end: $LOAD.

| step | wall time | CPU time (user + sys) | peak RSS |
|---|---|---|---|
${ROWS_MD}| **whole pipeline** | **$(printf '%.1f' "$TOTAL") s** | | **$PEAK MiB** |"
echo "$TABLE"
if [ "$WRITE" = 1 ]; then
  python3 - "$TABLE" <<'EOF'
import re, sys
path = "docs/BENCHMARKS.md"
doc = open(path).read()
block = "<!-- pipeline:start -->\n" + sys.argv[1] + "\n<!-- pipeline:end -->"
if "<!-- pipeline:start -->" in doc:
    doc = re.sub(r"<!-- pipeline:start -->.*?<!-- pipeline:end -->", lambda m: block, doc, flags=re.S)
else:
    doc += "\n" + block + "\n"
open(path, "w").write(doc)
EOF
fi

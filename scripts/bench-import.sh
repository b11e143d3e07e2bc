#!/usr/bin/env bash
# Import benchmark: the same seeded 10M-row orders CSV (customer_id,date,amount; 1M customers)
# through `retain rfm` (parse + per-customer RFM), pandas (`benches/baselines/rfm_pandas.py`,
# read_csv + groupby) and polars (`benches/baselines/rfm_polars.py`, read_csv + group_by on all
# cores) in one run, then persisted import (`retain import orders`) rows/s, with peak memory of
# each. Writes the figures to docs/BENCHMARKS.md between the import markers. The Python side runs
# in .venv-bench/, which benches/baselines/venv.sh creates.
#
# usage: scripts/bench-import.sh [ROWS] [CUSTOMERS]
# env:   RETAIN_BIN (a retain binary to measure instead of building target/release/retain)
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=${1:-10000000}
CUSTOMERS=${2:-1000000}
DATA=bench-data
mkdir -p "$DATA"
CSV="$DATA/orders_${ROWS}.csv"

. benches/baselines/venv.sh   # sets BASELINES and PY
if [ -n "${RETAIN_BIN:-}" ]; then
  RETAIN=$RETAIN_BIN
else
  cargo build --release --quiet
  RETAIN=target/release/retain
fi

[ -f "$CSV" ] || "$PY" "$BASELINES/rfm_pandas.py" --generate "$CSV" --rows "$ROWS" --customers "$CUSTOMERS" >/dev/null

peak() { # peak RSS in MiB of a command; its stdout goes to $DATA/.out
  /usr/bin/time -f '%M' -o "$DATA/.rss" "$@" > "$DATA/.out"
  echo $(( $(cat "$DATA/.rss") / 1024 ))
}
key() { # key KEY: that key of the JSON object on stdin
  "$PY" -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"
}

echo "pandas (median of 3 inside the script)…" >&2
PANDAS_MEM=$(peak "$PY" "$BASELINES/rfm_pandas.py" "$CSV")
PANDAS=$(cat "$DATA/.out")
PANDAS_S=$(echo "$PANDAS" | key total_s)
PANDAS_REV=$(echo "$PANDAS" | key revenue)

echo "polars, all threads (median of 3 inside the script)…" >&2
POLARS_MEM=$(peak "$PY" "$BASELINES/rfm_polars.py" "$CSV")
POLARS=$(cat "$DATA/.out")
POLARS_S=$(echo "$POLARS" | key total_s)
POLARS_REV=$(echo "$POLARS" | key revenue)
POLARS_THREADS=$(echo "$POLARS" | key threads)

echo "retain rfm (median of 3)…" >&2
times=()
for _ in 1 2 3; do
  RFM_MEM=$(peak "$RETAIN" rfm "$CSV" --format json)
  times+=("$(key seconds < "$DATA/.out")")
done
RFM_S=$(printf '%s\n' "${times[@]}" | sort -g | sed -n 2p)
RFM_REV=$(key revenue < "$DATA/.out")

echo "retain import orders (persisted)…" >&2
WS=$(mktemp -d)
"$RETAIN" init "$WS/ws" -q
start=$(date +%s.%N)
IMPORT_MEM=$(peak "$RETAIN" -w "$WS/ws" import orders "$CSV" --format json)
end=$(date +%s.%N)
IMPORT_S=$(echo "$end - $start" | bc -l)
rm -rf "$WS"

RATIO_PANDAS=$(echo "$RFM_S / $PANDAS_S" | bc -l)
RATIO_POLARS=$(echo "$RFM_S / $POLARS_S" | bc -l)
IMPORT_RATE=$(echo "$ROWS / $IMPORT_S" | bc -l)
TABLE=$(cat <<MD
<!-- import:begin -->
Measured $(date -u +%Y-%m-%d) on $(nproc) cores by \`scripts/bench-import.sh $ROWS $CUSTOMERS\`: the seeded
\`benches/baselines/rfm_pandas.py --generate\` file ($ROWS rows, $CUSTOMERS customers, $(du -m "$CSV" | cut -f1) MiB).

| run | time | peak memory | notes |
|---|---|---|---|
| pandas \`read_csv\` + \`groupby\` (median of 3) | $(printf '%.2f' "$PANDAS_S") s | $PANDAS_MEM MiB | revenue $PANDAS_REV |
| polars \`read_csv\` + \`group_by\`, $POLARS_THREADS threads (median of 3) | $(printf '%.2f' "$POLARS_S") s | $POLARS_MEM MiB | revenue $POLARS_REV |
| \`retain rfm\` parse + per-customer RFM (median of 3) | $(printf '%.2f' "$RFM_S") s | $RFM_MEM MiB | revenue $RFM_REV; **$(printf '%.2f' "$RATIO_PANDAS")× pandas' time** (target ≤ 0.2×), **$(printf '%.2f' "$RATIO_POLARS")× polars' time** |
| \`retain import orders\` into SQLite, one transaction | $(printf '%.1f' "$IMPORT_S") s | $IMPORT_MEM MiB | **$(printf '%.0f' "$IMPORT_RATE") rows/s** (target ≥ 1,000,000) |
<!-- import:end -->
MD
)
echo "$TABLE"
if [ -f docs/BENCHMARKS.md ] && grep -q '<!-- import:begin -->' docs/BENCHMARKS.md; then
  "$PY" - "$TABLE" <<'PY'
import re, sys
p = "docs/BENCHMARKS.md"
s = open(p).read()
s = re.sub(r"<!-- import:begin -->.*?<!-- import:end -->", lambda m: sys.argv[1], s, flags=re.S)
open(p, "w").write(s)
PY
fi

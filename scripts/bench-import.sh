#!/usr/bin/env bash
# Import benchmark: the same seeded 10M-row orders CSV (customer_id,date,amount; 1M customers)
# through `retain rfm` (parse + per-customer RFM) and pandas (`rfm_pandas.py`, read_csv + groupby)
# in one run, then persisted import (`retain import orders`) rows/s, with peak memory of each.
# Writes the figures to docs/BENCHMARKS.md between the import markers.
#
# usage: scripts/bench-import.sh [ROWS] [CUSTOMERS]
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=${1:-10000000}
CUSTOMERS=${2:-1000000}
BASELINES=${RETAIN_BASELINES:-../shared/baselines}
DATA=bench-data
mkdir -p "$DATA"
CSV="$DATA/orders_${ROWS}.csv"

if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import pandas' 2>/dev/null; then
  python3 -m venv .venv
  .venv/bin/pip install --quiet -r "$BASELINES/requirements.txt"
fi
cargo build --release --quiet
RETAIN=target/release/retain

[ -f "$CSV" ] || .venv/bin/python "$BASELINES/rfm_pandas.py" --generate "$CSV" --rows "$ROWS" --customers "$CUSTOMERS" >/dev/null

peak() { # peak RSS in MiB of a command; its stdout goes to $OUT
  /usr/bin/time -f '%M' -o "$DATA/.rss" "$@" > "$DATA/.out"
  echo $(( $(cat "$DATA/.rss") / 1024 ))
}

echo "pandas (median of 3 inside the script)…" >&2
PANDAS_MEM=$(peak .venv/bin/python "$BASELINES/rfm_pandas.py" "$CSV")
PANDAS=$(cat "$DATA/.out")
PANDAS_S=$(echo "$PANDAS" | .venv/bin/python -c 'import json,sys; print(json.load(sys.stdin)["total_s"])')

echo "retain rfm (median of 3)…" >&2
times=()
for _ in 1 2 3; do
  RFM_MEM=$(peak "$RETAIN" rfm "$CSV" --format json)
  times+=("$(.venv/bin/python -c 'import json,sys; print(json.load(open(sys.argv[1]))["seconds"])' "$DATA/.out")")
done
RFM_S=$(printf '%s\n' "${times[@]}" | sort -g | sed -n 2p)
RFM_REV=$(.venv/bin/python -c 'import json,sys; print(json.load(open(sys.argv[1]))["revenue"])' "$DATA/.out")
PANDAS_REV=$(echo "$PANDAS" | .venv/bin/python -c 'import json,sys; print(json.load(sys.stdin)["revenue"])')

echo "retain import orders (persisted)…" >&2
WS=$(mktemp -d)
"$RETAIN" init "$WS/ws" -q
start=$(date +%s.%N)
IMPORT_MEM=$(peak "$RETAIN" -w "$WS/ws" import orders "$CSV" --format json)
end=$(date +%s.%N)
IMPORT_S=$(echo "$end - $start" | bc -l)
rm -rf "$WS"

RATIO=$(echo "$RFM_S / $PANDAS_S" | bc -l)
IMPORT_RATE=$(echo "$ROWS / $IMPORT_S" | bc -l)
TABLE=$(cat <<MD
<!-- import:begin -->
Measured $(date -u +%Y-%m-%d) on $(nproc) cores by \`scripts/bench-import.sh $ROWS $CUSTOMERS\`: the seeded
\`rfm_pandas.py --generate\` file ($ROWS rows, $CUSTOMERS customers, $(du -m "$CSV" | cut -f1) MiB).

| run | time | peak memory | notes |
|---|---|---|---|
| pandas \`read_csv\` + \`groupby\` (median of 3) | $(printf '%.2f' "$PANDAS_S") s | $PANDAS_MEM MiB | revenue $PANDAS_REV |
| \`retain rfm\` parse + per-customer RFM (median of 3) | $(printf '%.2f' "$RFM_S") s | $RFM_MEM MiB | revenue $RFM_REV; **$(printf '%.2f' "$RATIO")× pandas' time** (target ≤ 0.2×) |
| \`retain import orders\` into SQLite, one transaction | $(printf '%.1f' "$IMPORT_S") s | $IMPORT_MEM MiB | **$(printf '%.0f' "$IMPORT_RATE") rows/s** (target ≥ 1,000,000) |
<!-- import:end -->
MD
)
echo "$TABLE"
if [ -f docs/BENCHMARKS.md ] && grep -q '<!-- import:begin -->' docs/BENCHMARKS.md; then
  .venv/bin/python - "$TABLE" <<'PY'
import re, sys
p = "docs/BENCHMARKS.md"
s = open(p).read()
s = re.sub(r"<!-- import:begin -->.*?<!-- import:end -->", lambda m: sys.argv[1], s, flags=re.S)
open(p, "w").write(s)
PY
fi

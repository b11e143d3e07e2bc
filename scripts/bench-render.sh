#!/usr/bin/env bash
# Render benchmark: jinja2 (the Python baseline, `benches/baselines/render_jinja2.py`) and tera
# render the same newsletter template with the same contexts, in one run, one core each (the same
# core, both at raised priority so other processes on a shared machine disturb them less). Prints
# both JSON lines and the ratio. The Python side runs in .venv-bench/, which
# benches/baselines/venv.sh creates.
#
# usage: scripts/bench-render.sh [N]     (default N=20000 recipients; honours CARGO_TARGET_DIR)
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-20000}"
OUT=bench-data
mkdir -p "$OUT"
. benches/baselines/venv.sh   # sets BASELINES and PY
cargo build -q --release -p retain-mailer --example render_bench
TARGET="${CARGO_TARGET_DIR:-target}"
py=$(nice -n -10 taskset -c 0 "$PY" "$BASELINES/render_jinja2.py" --n "$N" --write-contexts "$OUT/render_contexts.json")
rs=$(nice -n -10 taskset -c 0 "$TARGET"/release/examples/render_bench "$OUT/render_contexts.json" --inline)
echo "$py"
echo "$rs"
"$PY" - "$py" "$rs" <<'PY'
import json, sys
py, rs = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print(f"tera/jinja2 renders per second on one core: {rs['renders_per_s'] / py['renders_per_s']:.1f}x "
      f"({rs['renders_per_s']:,.0f} vs {py['renders_per_s']:,.0f}); with CSS inlining {rs['render_and_inline_per_s']:,.0f}/s")
PY

# The Python environment of the benchmark baselines: .venv-bench/ at the repository root, holding
# exactly the versions in benches/baselines/requirements.txt.
#
# Sourced by scripts/bench-*.sh after they cd to the repository root; sets BASELINES (this
# folder) and PY (the venv's python). Idempotent: the venv is created when missing and
# (re)installed only when requirements.txt changed since the last successful install.
# Run directly (`bash benches/baselines/venv.sh`) to prepare the venv on its own.
# env: RETAIN_BENCH_VENV (default .venv-bench), PYTHON (interpreter for a new venv; default python3)

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  cd "$(dirname "$0")/../.."
fi

BASELINES=benches/baselines
BENCH_VENV="${RETAIN_BENCH_VENV:-.venv-bench}"
PY="$BENCH_VENV/bin/python"

bench_venv_stamp="$BENCH_VENV/.requirements.sha256"
bench_venv_want="$(sha256sum "$BASELINES/requirements.txt" | cut -d' ' -f1)"
if ! "$PY" -c '' 2>/dev/null; then
  echo "creating $BENCH_VENV…" >&2
  "${PYTHON:-python3}" -m venv --clear "$BENCH_VENV"
  rm -f "$bench_venv_stamp"
fi
if [ "$(cat "$bench_venv_stamp" 2>/dev/null)" != "$bench_venv_want" ]; then
  echo "installing $BASELINES/requirements.txt into $BENCH_VENV…" >&2
  "$PY" -m pip install --quiet --disable-pip-version-check -r "$BASELINES/requirements.txt"
  echo "$bench_venv_want" > "$bench_venv_stamp"
fi
unset bench_venv_stamp bench_venv_want

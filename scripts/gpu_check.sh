#!/usr/bin/env bash
# The GPU check in one call (scripts/gpu_check.py says what it checks), on a machine set up as the README says
# (`make install`). Arguments go to the script: --budget-minutes 8, --out docs/benchmarks.md, --cpu, --stages ...
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x "$root/.venv/bin/python" ]]; then PYTHON="$root/.venv/bin/python"
  elif command -v python3 >/dev/null; then PYTHON=python3
  else PYTHON=python
  fi
fi
export GPU_CHECK_LAUNCHER="scripts/gpu_check.sh" GPU_CHECK_STARTED="$(date +%s.%N)"
exec "$PYTHON" "$root/scripts/gpu_check.py" "$@"

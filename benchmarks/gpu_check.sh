#!/usr/bin/env bash
# GPU check: on a machine with CUDA, install what is needed and run a short strategy matrix on a
# ~0.5B-parameter model built from config, bf16. Prints tokens/s, peak memory and MFU per strategy.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv-gpu}
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
  # A CUDA build of torch from the default index; the project's constraints pin the rest.
  grep -v '^torch==' constraints.txt > "$VENV/constraints-gpu.txt"
  "$VENV/bin/pip" install --quiet torch
  "$VENV/bin/pip" install --quiet -c "$VENV/constraints-gpu.txt" -e .
fi
"$VENV/bin/python" benchmarks/gpu_check.py "$@"

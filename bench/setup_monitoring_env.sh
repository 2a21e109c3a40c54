#!/usr/bin/env bash
# The W4 (drift) peer in its own environment inside the repository (git-ignored):
#
#   bench/.venv-evidently   Evidently (bench/venv-evidently.txt), with scipy and pandas
#                           (the plain scipy per-column tests run there too)
#
# Evidently pins many packages (pydantic, numpy, pandas ranges) that have no business in
# loopstack's environment, hence a venv of its own; it is never a loopstack dependency.
# bench/w4_drift.py runs loopstack in the interpreter that runs it and Evidently as a
# subprocess with this venv's python (bench/_w4_evidently.py). Idempotent: a second run
# only installs what is missing.
#
#   bash bench/setup_monitoring_env.sh            # then:
#   .venv/bin/python bench/w4_drift.py
#
# PYTHON picks the interpreter the venv is made from (default: python3, 3.11+).
set -euo pipefail

bench="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
python="${PYTHON:-python3}"
venv="$bench/.venv-evidently"

if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet -r "$bench/venv-evidently.txt"
"$venv/bin/python" -c \
    'import evidently, scipy, pandas, pyarrow; print(f"bench/.venv-evidently ready: evidently {evidently.__version__}, scipy {scipy.__version__}, pandas {pandas.__version__}, pyarrow {pyarrow.__version__}")'

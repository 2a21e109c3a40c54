#!/usr/bin/env bash
# Creates bench/.venv, the benchmarks' own environment, inside the repository (git-ignored):
# the peers (bench/requirements-feast.txt: Feast for W2/W3; bench/requirements.txt: MLflow
# for W1, pandera for the validation bench) and loopstack itself, editable, since W1 and the
# validation bench run their peer beside loopstack in one interpreter (with redis-py, for W3,
# and scikit-learn, for W5's model). The W5 serving peers that clash with these (BentoML,
# MLServer) get venvs of their own: bench/setup_serving_env.sh. The peers are never
# loopstack dependencies. Idempotent: a second run only installs what is missing.
#
#   bash bench/setup_env.sh                       # then, for example:
#   bench/.venv/bin/python bench/w3_online_read.py
#
# PYTHON picks the interpreter the venv is made from (default: python3, which must be 3.11+).
set -euo pipefail

bench="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$bench")"
venv="$bench/.venv"
python="${PYTHON:-python3}"

if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv"
fi
reqs=()
for file in "$bench"/requirements*.txt; do
    reqs+=(-r "$file")
done
"$venv/bin/python" -m pip install --quiet "${reqs[@]}" -e "$repo[redis,sklearn]"
"$venv/bin/python" - <<'EOF'
import feast, loopstack, mlflow, pandera, redis
print(f"bench/.venv ready: loopstack {loopstack.__file__}, feast {feast.__version__}, "
      f"mlflow {mlflow.__version__}, pandera {pandera.__version__}")
EOF

#!/usr/bin/env bash
# The W5 (serving) peers, each in its own environment inside the repository (git-ignored):
#
#   bench/.venv           mlflow (`mlflow models serve --env-manager local`), the bare
#                         Starlette endpoint and loopstack itself (made by bench/setup_env.sh)
#   bench/.venv-bentoml   BentoML (bench/venv-bentoml.txt)
#   bench/.venv-mlserver  MLServer + mlserver-sklearn (bench/venv-mlserver.txt)
#
# BentoML and MLServer pin many packages that clash with mlflow and Feast, hence the
# separate venvs. Each gets the scikit-learn version of bench/.venv, so the one model
# the benchmark trains and pickles there loads unchanged everywhere. And wrk, the load
# generator: installed with apt-get when missing and running as root. The peers are
# never loopstack dependencies. Idempotent: a second run only installs what is missing.
#
#   bash bench/setup_serving_env.sh                # then:
#   bench/.venv/bin/python bench/w5_serving.py
#
# PYTHON picks the interpreter the venvs are made from (default: python3, 3.11+).
set -euo pipefail

bench="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
python="${PYTHON:-python3}"

bash "$bench/setup_env.sh"
sklearn="$("$bench/.venv/bin/python" -c 'import sklearn; print(sklearn.__version__)')"

make_venv() {  # make_venv DIR REQUIREMENTS-FILE
    local venv="$1" reqs="$2"
    if [ ! -x "$venv/bin/python" ]; then
        "$python" -m venv "$venv"
    fi
    "$venv/bin/python" -m pip install --quiet --upgrade pip
    "$venv/bin/python" -m pip install --quiet -r "$reqs" "scikit-learn==$sklearn"
}

make_venv "$bench/.venv-bentoml" "$bench/venv-bentoml.txt"
make_venv "$bench/.venv-mlserver" "$bench/venv-mlserver.txt"

if ! command -v wrk >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        apt-get install -y wrk || { apt-get update && apt-get install -y wrk; }
    else
        echo "wrk is missing: install it (as root: apt-get install -y wrk; macOS: brew install wrk)" >&2
        exit 1
    fi
fi

"$bench/.venv-bentoml/bin/python" -c \
    'import bentoml, sklearn; print(f"bench/.venv-bentoml ready: bentoml {bentoml.__version__}, scikit-learn {sklearn.__version__}")'
"$bench/.venv-mlserver/bin/python" -c \
    'import mlserver, mlserver_sklearn, sklearn; print(f"bench/.venv-mlserver ready: mlserver {mlserver.__version__}, scikit-learn {sklearn.__version__}")'
echo "wrk: $(command -v wrk)"

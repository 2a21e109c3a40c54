"""Where the benchmarks find their peers: bench/.venv, made by bench/setup_env.sh."""

from __future__ import annotations

from pathlib import Path

#: the interpreter of the benchmarks' own environment (git-ignored, inside the repo)
BENCH_PYTHON = str(Path(__file__).resolve().parent / ".venv" / "bin" / "python")


def missing_env(python: str) -> str | None:
    """Why ``python`` cannot run a peer (naming the setup script), or None when it can."""
    if Path(python).exists():
        return None
    return f"no peer environment at {python}: create it with `bash bench/setup_env.sh`"

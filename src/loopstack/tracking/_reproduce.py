"""Reproduce a run: rebuild its code, params, data and packages, re-run it, compare metrics.

``plan_reproduction`` only reads (the store, the git repository, the dataset files)
and says what can be rebuilt and exactly what cannot. ``reproduce`` refuses when
something required is missing; otherwise it checks the commit out into a scratch
directory, builds a fresh venv with the recorded packages (or reuses this
interpreter), re-runs the entry point against the same store, tags the new run
``loopstack.reproduces=<run id>`` and compares its metrics with the original's.

>>> report = reproduce(run_id, fresh_env=False)
>>> report.status, [m.key for m in report.metrics if not m.matches]
('matched', [])
"""

from __future__ import annotations

import math
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from loopstack.config import settings
from loopstack.errors import Invalid
from loopstack.tracking._client import TrackingClient
from loopstack.tracking._entities import DatasetInput, Run, RunStatus, now_ms
from loopstack.tracking._inputs import _file_digest
from loopstack.tracking._reproduce_env import TAG_LIMIT, PackageSet, create_venv, package_set
from loopstack.tracking._reproduce_git import (
    checkout,
    commit_files,
    find_repository,
    local_url_path,
    locate_entry_point,
)

__all__ = [
    "REPRODUCES_ENV",
    "REPRODUCES_TAG",
    "DatasetCheck",
    "MetricComparison",
    "ReproductionPlan",
    "ReproductionReport",
    "compare_metrics",
    "plan_reproduction",
    "reproduce",
]

REPRODUCES_TAG = "loopstack.reproduces"
REPRODUCES_ENV = "LOOPSTACK_REPRODUCES"
_COMMIT_TAG = "mlflow.source.git.commit"
_DIRTY_TAG = "loopstack.git.dirty"
_URL_TAG = "mlflow.source.git.repoURL"
_SOURCE_TAG = "mlflow.source.name"
_COMMAND_TAG = "loopstack.command"
_NO_SCRIPT = {"", "<interactive>", "-c", "-"}
_TAIL_LINES = 30
_BLOCKING = {"missing", "changed", "unreadable"}


@dataclass(frozen=True)
class DatasetCheck:
    """One dataset input of the run, and whether the same bytes can be found again."""

    name: str
    digest: str
    source_type: str
    source: str
    status: str  # ok | missing | changed | unreadable | in-memory
    current_digest: str | None = None
    error: str | None = None

    @property
    def blocking(self) -> bool:
        return self.status in _BLOCKING

    def describe(self) -> str:
        """``dataset 'train' (sha256 1c4e…) at /data/train.csv: file missing``."""
        where = f" at {self.source}" if self.source_type == "local" else ""
        head = f"dataset {self.name!r} (sha256 {self.digest[:12]}…){where}"
        detail = {
            "ok": "present, content unchanged",
            "missing": "file missing",
            "changed": f"content changed: now sha256 {(self.current_digest or '')[:12]}…",
            "unreadable": f"cannot be read: {self.error}",
            "in-memory": f"an in-memory {self.source_type}, not stored anywhere: the entry point "
            "must rebuild it (its digest is compared after the re-run)",
        }[self.status]
        return f"{head}: {detail}"


@dataclass
class ReproductionPlan:
    """What a run recorded, and what of it can be rebuilt here."""

    run_id: str
    experiment_id: str
    run_name: str
    run_status: str
    commit: str | None
    dirty: bool
    repo: str | None  # a local repository holding the commit, or the recorded remote URL
    repo_is_local: bool
    script: str | None  # as recorded (sys.argv[0])
    entry_point: str | None  # the script's path inside the commit
    args: list[str]
    cwd: str  # inside the checkout; "." is its root
    command: str | None
    python: str | None
    params: dict[str, str]
    packages: PackageSet
    datasets: list[DatasetCheck]
    metrics: dict[str, float]
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ready(self) -> bool:
        """Whether everything required is here (warnings aside)."""
        return not self.problems

    @property
    def missing_inputs(self) -> list[DatasetCheck]:
        return [d for d in self.datasets if d.blocking]


@dataclass(frozen=True)
class MetricComparison:
    key: str
    original: float | None
    reproduced: float | None
    abs_diff: float | None
    rel_diff: float | None
    matches: bool


@dataclass
class ReproductionReport:
    """The outcome: refused / planned (dry run) / failed / matched / differs."""

    plan: ReproductionPlan
    status: str
    problems: list[str] = field(default_factory=list)
    new_run_id: str | None = None
    other_new_runs: list[str] = field(default_factory=list)
    metrics: list[MetricComparison] = field(default_factory=list)
    differences: list[str] = field(default_factory=list)
    not_installed: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    returncode: int | None = None
    output_tail: str = ""
    workdir: str | None = None
    python: str | None = None

    @property
    def ok(self) -> bool:
        """A dry run whose plan is ready, or a re-run whose metrics all matched."""
        return self.status == "matched" or (self.status == "planned" and self.plan.ready)


def _check_dataset(d: DatasetInput) -> DatasetCheck:
    base = (d.name, d.digest, d.source_type, d.source)
    if d.source_type != "local":
        return DatasetCheck(*base, status="in-memory")
    path = Path(d.source)
    if not path.exists():
        return DatasetCheck(*base, status="missing")
    try:
        now = _file_digest(path)
    except OSError as exc:
        return DatasetCheck(*base, status="unreadable", error=str(exc))
    return DatasetCheck(*base, status="ok" if now == d.digest else "changed", current_digest=now)


def _split_command(run: Run, problems: list[str]) -> tuple[str | None, list[str]]:
    command = run.tags.get(_COMMAND_TAG)
    script, args = run.tags.get(_SOURCE_TAG), []
    if command:
        if len(command) >= TAG_LIMIT:
            problems.append(
                f"the recorded command line (tag {_COMMAND_TAG}) was cut at "
                f"{TAG_LIMIT} characters, so its arguments are incomplete"
            )
        try:
            parts = shlex.split(command)
        except ValueError:
            parts = []
        if len(parts) >= 2:  # the interpreter, then sys.argv
            script, args = parts[1], parts[2:]
    if script is None or script in _NO_SCRIPT:
        problems.append(
            f"run {run.run_id} was not started from a script ({_SOURCE_TAG} is "
            f"{script!r}), so there is no entry point to re-run"
        )
        return None, args
    return script, args


def _start_dir(script: str, entry: str) -> str:
    """Where the run was started, inside the checkout: a relative script path tells."""
    if Path(script).is_absolute():
        return "."
    rel = PurePosixPath(Path(script).as_posix().removeprefix("./")).parts
    ent = PurePosixPath(entry).parts
    if rel and len(rel) <= len(ent) and ent[-len(rel) :] == rel:
        return PurePosixPath(*ent[: -len(rel)]).as_posix()
    return "."


def plan_reproduction(
    run_id: str, *, repo: str | Path | None = None, client: TrackingClient | None = None
) -> ReproductionPlan:
    """What the run recorded and whether each piece can be found; reads, never writes.

    ``repo`` names the repository holding the run's commit; by default the current
    directory's repository, the recorded script's and a local ``repoURL`` are tried.

    >>> plan = plan_reproduction(run_id)
    >>> plan.ready, [d.describe() for d in plan.missing_inputs]
    """
    client = client or TrackingClient()
    run = client.get_run(run_id)
    problems: list[str] = []
    warnings: list[str] = []
    if run.status != RunStatus.FINISHED:
        warnings.append(
            f"the run's status is {run.status}, not FINISHED: its metrics may be partial"
        )
    script, args = _split_command(run, problems)
    commit = run.tags.get(_COMMIT_TAG)
    dirty = run.tags.get(_DIRTY_TAG) == "true"
    url = run.tags.get(_URL_TAG)
    repo_ref: str | None = None
    local = False
    found: Path | None = None
    if commit is None:
        problems.append(
            f"run {run_id} recorded no git commit (tag {_COMMIT_TAG}): it was not "
            "started inside a git repository, so its code cannot be rebuilt"
        )
    else:
        if repo is not None:
            candidates = [Path(repo).expanduser()]
        else:
            candidates = [Path.cwd()]
            if script and Path(script).is_absolute():
                candidates.append(Path(script).parent)
            url_path = local_url_path(url)
            if url_path is not None:
                candidates.append(url_path)
        found, looked = find_repository(commit, candidates)
        if found is not None:
            repo_ref, local = str(found), True
        elif repo is not None:
            problems.append(
                f"commit {commit} is not in the git repository at {repo} "
                f"(looked in: {', '.join(looked)})"
            )
        elif url and local_url_path(url) is None:
            repo_ref = url
            warnings.append(
                f"commit {commit[:12]} is in no git repository here (looked in: "
                f"{', '.join(looked)}); it will be cloned from {url}, which needs network "
                "access: without it the clone fails, so clone the repository yourself and "
                "pass --repo PATH"
            )
        else:
            problems.append(
                f"commit {commit} is not in any git repository here (looked in: "
                f"{', '.join(looked) or 'nowhere'}); "
                + (
                    f"its recorded remote {url} does not have it either"
                    if url
                    else f"the run recorded no remote URL ({_URL_TAG}) to fetch it from"
                )
                + "; pass --repo PATH to a clone that has it"
            )
        if dirty:
            warnings.append(
                f"the run was started from a working tree with uncommitted changes "
                f"({_DIRTY_TAG}=true); they were not recorded and cannot be restored: the "
                f"reproduction uses commit {commit[:12]} as committed"
            )
    entry, cwd = None, "."
    if found is not None and script and commit:
        entry = locate_entry_point(script, found, commit_files(found, commit))
        if entry is None:
            problems.append(f"the entry point {script} is not a file in commit {commit[:12]}")
        else:
            cwd = _start_dir(script, entry)

    packages = package_set(run, client)
    if packages.truncated:
        last = packages.requirements[-1].split("==")[0] if packages.requirements else "-"
        warnings.append(
            f"the package list (tag loopstack.packages) was cut at {TAG_LIMIT} characters: "
            f"{len(packages.requirements)} packages are known (up to {last!r} alphabetically), "
            "the rest are not; record_requirements() stores the full list as the artifact "
            "environment/requirements.txt"
        )
    elif packages.source == "none":
        warnings.append("the run recorded no package set (tag loopstack.packages)")
    recorded_python = run.tags.get("loopstack.python")
    here = platform.python_version()
    if recorded_python and recorded_python.split(".")[:2] != here.split(".")[:2]:
        warnings.append(f"the run used Python {recorded_python}; this reproduction uses {here}")

    seen: set[tuple[str, str, str]] = set()
    datasets = []
    for d in run.inputs:
        if (d.name, d.digest, d.source) not in seen:
            seen.add((d.name, d.digest, d.source))
            datasets.append(_check_dataset(d))
    problems.extend(d.describe() for d in datasets if d.blocking)
    warnings.extend(d.describe() for d in datasets if d.status == "in-memory")
    return ReproductionPlan(
        run_id=run.run_id,
        experiment_id=run.experiment_id,
        run_name=run.run_name,
        run_status=run.status,
        commit=commit,
        dirty=dirty,
        repo=repo_ref,
        repo_is_local=local,
        script=script,
        entry_point=entry,
        args=args,
        cwd=cwd,
        command=run.tags.get(_COMMAND_TAG),
        python=recorded_python,
        params=dict(run.params),
        packages=packages,
        datasets=datasets,
        metrics=dict(run.metrics),
        problems=problems,
        warnings=warnings,
    )


def compare_metrics(
    original: dict[str, float],
    reproduced: dict[str, float],
    *,
    rtol: float = 1e-6,
    atol: float = 0.0,
) -> list[MetricComparison]:
    """Each metric key of either run; a value matches when ``|r - o| <= atol + rtol * |o|``."""
    out = []
    for key in sorted(set(original) | set(reproduced)):
        o, r = original.get(key), reproduced.get(key)
        if o is None or r is None:
            out.append(MetricComparison(key, o, r, None, None, False))
            continue
        diff = abs(r - o)
        rel = diff / abs(o) if o != 0 else (0.0 if diff == 0 else math.inf)
        out.append(MetricComparison(key, o, r, diff, rel, diff <= atol + rtol * abs(o)))
    return out


def _absolute_url(url: str) -> str:
    """Store URLs as the child (started elsewhere) must see them."""
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        path = url[len("sqlite:///") :]
        return (
            url if path.startswith(":memory:") or not path else f"sqlite:///{Path(path).resolve()}"
        )
    if "://" not in url:
        return str(Path(url).resolve())
    return url


def _child_env(run_id: str, venv: Path | None) -> dict[str, str]:
    cfg = settings()
    env = dict(os.environ)
    env.update(
        {
            "LOOPSTACK_HOME": str(cfg.home),
            "LOOPSTACK_DB_URL": _absolute_url(cfg.db_url),
            "LOOPSTACK_ARTIFACTS_URL": _absolute_url(cfg.artifacts_url),
            REPRODUCES_ENV: run_id,
        }
    )
    if cfg.tracking_uri:
        env["LOOPSTACK_TRACKING_URI"] = cfg.tracking_uri
    if cfg.token:
        env["LOOPSTACK_TOKEN"] = cfg.token
    if venv is not None:
        # Nothing from this interpreter may leak in: a fresh venv means only what it holds.
        for key in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "__PYVENV_LAUNCHER__"):
            env.pop(key, None)
        env["PYTHONNOUSERSITE"] = "1"
        env["VIRTUAL_ENV"] = str(venv)
        env["PATH"] = os.pathsep.join([str(venv / "bin"), env.get("PATH", "")])
    return env


def _new_runs(client: TrackingClient, script: str, since_ms: int, original: str) -> list[Run]:
    """Runs the child logged: its script path is unique to this reproduction's checkout."""
    quoted = script.replace("\\", "\\\\").replace("'", "\\'")
    ids = [e.experiment_id for e in client.search_experiments(view="all", max_results=50_000)]
    runs = (
        client.search_runs(
            ids,
            f"tags.`{_SOURCE_TAG}` = '{quoted}' and attributes.start_time >= {since_ms}",
            order_by=["attributes.start_time ASC"],
            max_results=1000,
            view="all",
        )
        if ids
        else []
    )
    return [r for r in runs if r.run_id != original and r.tags.get(_SOURCE_TAG) == script]


def _primary(original: Run, runs: list[Run]) -> Run:
    """The new run that stands for the original, when the script logged several."""
    named = [r for r in runs if r.run_name == original.run_name]
    if len(named) == 1:
        return named[0]
    same_params = [r for r in runs if r.params == original.params]
    if same_params:
        return same_params[0]
    top = [r for r in runs if (r.parent_run_id is None) == (original.parent_run_id is None)]
    return (top or runs)[0]


def _differences(original: Run, new: Run) -> list[str]:
    out = []
    for key in sorted(set(original.params) | set(new.params)):
        o, n = original.params.get(key), new.params.get(key)
        if o != n:
            out.append(
                f"param {key!r}: {o if o is not None else '(absent)'} -> "
                f"{n if n is not None else '(absent)'}"
            )
    new_inputs = {d.name: d.digest for d in new.inputs}
    for d in original.inputs:
        now = new_inputs.get(d.name)
        if now is None:
            out.append(f"dataset {d.name!r} was not logged by the reproduction")
        elif now != d.digest:
            out.append(f"dataset {d.name!r}: sha256 {d.digest[:12]}… -> {now[:12]}…")
    return out


def _tail(log: Path) -> str:
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(lines[-_TAIL_LINES:])


def reproduce(
    run_id: str,
    *,
    workdir: str | Path | None = None,
    fresh_env: bool = True,
    dry_run: bool = False,
    repo: str | Path | None = None,
    rtol: float = 1e-6,
    atol: float = 0.0,
    force: bool = False,
    keep: bool = False,
    timeout: float | None = None,
    client: TrackingClient | None = None,
    plan: ReproductionPlan | None = None,
    on_progress: Callable[[str], None] | None = None,
) -> ReproductionReport:
    """Re-run a run's entry point at its commit, with its packages, and compare metrics.

    Refuses (status ``refused``, nothing run) when something required is missing,
    unless ``force``. ``fresh_env=False`` reuses this interpreter instead of building
    a venv. ``workdir`` (kept) holds the checkout, the venv and ``reproduce.log``;
    without it a temporary directory is used and removed unless ``keep``. ``plan``,
    from ``plan_reproduction`` just before, saves hashing the datasets again.
    """
    if rtol < 0 or atol < 0:
        raise Invalid(f"expected rtol and atol >= 0; got rtol={rtol}, atol={atol}")
    client = client or TrackingClient()
    progress = on_progress or (lambda _msg: None)
    if plan is None or plan.run_id != run_id:
        plan = plan_reproduction(run_id, repo=repo, client=client)
    problems = list(plan.problems)
    if fresh_env and plan.packages.source == "none":
        problems.append(
            "the run recorded no package set, so a fresh environment cannot be "
            "built; reuse this interpreter instead (--reuse-env)"
        )
    report = ReproductionReport(plan, "planned", problems=list(problems))
    if problems and not force:
        report.status = "refused"
        return report
    if dry_run:
        return report
    if plan.repo is None or plan.commit is None or plan.script is None:
        report.status = "refused"  # forced, but there is nothing to run
        return report

    owned = workdir is None
    root = (
        Path(tempfile.mkdtemp(prefix="loopstack-reproduce-"))
        if workdir is None
        else Path(workdir).resolve()
    )
    src = root / "src"
    if not owned:
        if src.exists() and any(src.iterdir()):
            raise Invalid(
                f"expected the work directory to have no 'src' yet; {src} is not empty",
                field="workdir",
            )
        root.mkdir(parents=True, exist_ok=True)
    log = root / "reproduce.log"
    try:
        progress(f"checking out commit {plan.commit[:12]} from {plan.repo}")
        error = checkout(plan.repo, plan.commit, src)
        if error is not None:
            report.status, report.problems = "failed", [*problems, error]
            return report
        entry = plan.entry_point or locate_entry_point(
            plan.script, None, commit_files(src, plan.commit)
        )
        if entry is None:
            report.status = "failed"
            report.problems.append(
                f"the entry point {plan.script} is not a file in commit {plan.commit[:12]}"
            )
            return report
        venv = None
        if fresh_env:
            progress(
                f"creating a fresh virtual environment with "
                f"{len(plan.packages.requirements)} packages"
            )
            built = create_venv(root / "venv", plan.packages, log)
            python, venv = built.python, root / "venv"
            report.not_installed, report.notes = built.not_installed, built.notes
        else:
            python = Path(sys.executable)
            report.notes.append(f"reusing this interpreter ({sys.executable})")
        report.python = str(python)
        script_path = str(src / entry)
        cmd = [str(python), script_path, *plan.args]
        progress(
            f"running {shlex.join([Path(python).name, entry, *plan.args])} in {src / plan.cwd}"
        )
        started = now_ms()
        with log.open("a") as fh:
            fh.write(f"$ {shlex.join(cmd)}\n")
            fh.flush()
            try:
                proc = subprocess.run(
                    cmd,
                    cwd=src / plan.cwd,
                    env=_child_env(run_id, venv),
                    stdout=fh,
                    stderr=subprocess.STDOUT,
                    timeout=timeout,
                    check=False,
                )
                report.returncode = proc.returncode
            except subprocess.TimeoutExpired:
                report.problems.append(f"the entry point did not finish within {timeout} s")
        progress("comparing with the original run")
        new_runs = _new_runs(client, script_path, started, run_id)
        for r in new_runs:
            client.set_tag(r.run_id, REPRODUCES_TAG, run_id)
        if report.returncode not in (0, None):
            report.problems.append(f"the entry point exited with code {report.returncode}")
        if not new_runs:
            report.problems.append("the entry point logged no run to this store")
        else:
            original = client.get_run(run_id)
            new = _primary(original, [client.get_run(r.run_id) for r in new_runs])
            report.new_run_id = new.run_id
            report.other_new_runs = [r.run_id for r in new_runs if r.run_id != new.run_id]
            report.metrics = compare_metrics(original.metrics, new.metrics, rtol=rtol, atol=atol)
            report.differences = _differences(original, new)
        if len(report.problems) > len(problems) or report.returncode is None:
            report.status = "failed"
        else:
            report.status = "matched" if all(m.matches for m in report.metrics) else "differs"
        return report
    finally:
        report.output_tail = _tail(log)
        if owned and not keep:
            shutil.rmtree(root, ignore_errors=True)
        else:
            report.workdir = str(root)

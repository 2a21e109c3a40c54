"""`loopstack models ...`: registered models, versions, aliases, approvals and lineage.

Against a local metadata store the commands use the registry directly; with an http(s)
LOOPSTACK_TRACKING_URI they call the server's native registry routes instead (with
LOOPSTACK_TOKEN, in the project given by --project / LOOPSTACK_PROJECT).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer

from loopstack.cli._project import PROJECT
from loopstack.cli._tables import COLUMNS, CSV, JSON, WIDE

if TYPE_CHECKING:
    from rich.table import Table
    from rich.tree import Tree

    from loopstack.cli._tables import Column
    from loopstack.registry import (
        AliasMove,
        ApprovalRequest,
        LineageGraph,
        ModelVersion,
        RegistryStore,
    )

app = typer.Typer(
    no_args_is_help=True, help="Registered models: versions, aliases, approvals and lineage."
)

#: hex digits of a package digest shown in tables (the full one is in `models versions N V`)
DIGEST_PREFIX = 12


def _registry(project: str | None) -> RegistryStore:
    """The registry of ``project``, acting as the current user (LOOPSTACK_USER or $USER);
    through the server (its native routes, with LOOPSTACK_TOKEN) for an http(s) tracking URI."""
    from loopstack.registry import get_registry

    return get_registry(project=project)


def _table(title: str, *columns: str, right: tuple[str, ...] = ()) -> Table:
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for col in columns:
        table.add_column(col, overflow="fold", justify="right" if col in right else "left")
    return table


def _aliases(aliases: dict[str, int]) -> str:
    return ", ".join(f"{a}→{v}" for a, v in sorted(aliases.items())) or "-"


def _version_columns() -> list[Column]:
    from loopstack.cli._output import fmt_time
    from loopstack.cli._tables import Column, show_id

    return [
        Column("version", lambda v: v.version, show_id, priority=0, justify="right"),
        Column("flavor", lambda v: v.flavor, priority=3),
        Column("run_id", lambda v: v.run_id, priority=5),
        Column("created_by", lambda v: v.created_by, priority=6, abbreviate=True),
        Column("created", lambda v: v.created_at, fmt_time, priority=4),
        Column("approval", lambda v: v.approval_state, priority=2),
        Column(
            "aliases",
            lambda v: v.aliases,
            lambda a: ", ".join(a) or "-",
            priority=1,
            abbreviate=True,
        ),
        Column("digest", lambda v: v.digest, lambda d: d[:DIGEST_PREFIX], priority=7),
        Column("onnx_diff", lambda v: v.onnx_max_abs_diff, priority=8, justify="right"),
    ]


def _moves_table(title: str, moves: list[AliasMove]) -> Table:
    from loopstack.cli._output import fmt_time

    table = _table(title, "alias", "from", "to", "actor", "time", "reason", "approval id")
    for m in moves:
        table.add_row(
            m.alias,
            "-" if m.from_version is None else str(m.from_version),
            "-" if m.to_version is None else str(m.to_version),
            m.actor,
            fmt_time(m.ts),
            m.reason or "-",
            m.approval_id or "-",
        )
    return table


@app.command("list")
def list_models(
    name_like: str = typer.Option(
        None, "--name-like", help="SQL LIKE pattern on the name, e.g. 'churn%'."
    ),
    project: str = PROJECT,
    columns: str = COLUMNS,
    wide: bool = WIDE,
    as_json: bool = JSON,
    as_csv: bool = CSV,
) -> None:
    """Registered models: latest version, aliases, description, last update."""
    from loopstack.cli._output import fmt_time
    from loopstack.cli._tables import Column, render_list, show_id

    models = _registry(project).search_registered_models(name_like=name_like)
    cols = [
        Column("name", lambda m: m.name, priority=0),
        Column("latest", lambda m: m.latest_version, show_id, priority=1, justify="right"),
        Column("aliases", lambda m: m.aliases, _aliases, priority=2, abbreviate=True),
        Column(
            "description",
            lambda m: m.description,
            lambda d: d or "-",
            priority=4,
            abbreviate=True,
            max_width=60,
        ),
        Column("updated", lambda m: m.updated_at, fmt_time, priority=3),
    ]
    render_list(
        models,
        cols,
        title=f"registered models ({len(models)})",
        empty="No registered models match" if name_like else "No registered models",
        columns_option=columns,
        wide=wide,
        as_json=as_json,
        as_csv=as_csv,
    )


@app.command("show")
def show_model(
    name: str = typer.Argument(..., help="The registered model's name."), project: str = PROJECT
) -> None:
    """One model: its description, aliases, tags and every version."""
    from loopstack.cli._output import console, fmt_time
    from loopstack.cli._tables import render_list

    reg = _registry(project)
    model = reg.get_registered_model(name)
    versions = reg.search_model_versions(name=name)
    out = console()
    table = _table(f"model {model.name}", "field", "value")
    for key, value in (
        ("description", model.description or "-"),
        ("latest version", str(model.latest_version or "-")),
        ("created by", model.created_by),
        ("created", fmt_time(model.created_at)),
        ("updated", fmt_time(model.updated_at)),
    ):
        table.add_row(key, value)
    out.print(table)
    if model.aliases:
        aliases = _table("aliases", "alias", "version", right=("version",))
        for alias, version in sorted(model.aliases.items()):
            aliases.add_row(alias, str(version))
        out.print(aliases)
    if model.tags:
        tags = _table("tags", "key", "value")
        for key, value in sorted(model.tags.items()):
            tags.add_row(key, value)
        out.print(tags)
    render_list(
        versions,
        _version_columns(),
        title=f"versions of {name} ({len(versions)})",
        empty="No versions",
    )


def _signature_tables(version: ModelVersion) -> list[Table]:
    sig = version.signature or {}
    inputs, output = sig.get("inputs"), sig.get("output")
    tables = []
    if isinstance(inputs, dict) and inputs.get("columns"):
        cols = _table("signature: input columns", "#", "column", "dtype", right=("#",))
        for i, col in enumerate(inputs["columns"], 1):
            if isinstance(col, dict):
                cols.add_row(str(i), str(col.get("name")), str(col.get("dtype", "-")))
            else:
                cols.add_row(str(i), str(col), "-")
        tables.append(cols)
    tensors = [("input", inputs)] if isinstance(inputs, dict) and "shape" in inputs else []
    tensors += [("output", output)] if isinstance(output, dict) else []
    if tensors:
        arrays = _table("signature: arrays", "", "dtype", "shape")
        for label, spec in tensors:
            arrays.add_row(label, str(spec.get("dtype", "-")), str(tuple(spec.get("shape", ()))))
        tables.append(arrays)
    return tables


def _show_version(reg: RegistryStore, name: str, version: str) -> None:
    from loopstack.cli._output import console, fmt_time, fmt_value
    from loopstack.errors import LoopstackError

    v = reg.get_model_version(name, version)
    out = console()
    table = _table(f"model version {v.name}/{v.version}", "field", "value")
    for key, value in (
        ("uri", v.uri),
        ("flavor", v.flavor),
        ("status", v.status),
        ("approval", v.approval_state),
        ("aliases", ", ".join(v.aliases) or "-"),
        ("source", v.source),
        ("run id", v.run_id or "-"),
        ("code version", v.code_version or "-"),
        ("digest", v.digest),
        ("onnx max abs diff", fmt_value(v.onnx_max_abs_diff)),
        ("description", v.description or "-"),
        ("created by", v.created_by),
        ("created", fmt_time(v.created_at)),
        ("updated", fmt_time(v.updated_at)),
    ):
        table.add_row(key, value)
    out.print(table)
    if v.tags:
        tags = _table("tags", "key", "value")
        for key, value in sorted(v.tags.items()):
            tags.add_row(key, value)
        out.print(tags)
    sig_tables = _signature_tables(v)
    for sig_table in sig_tables:
        out.print(sig_table)
    if not sig_tables:
        out.print("signature: none recorded")
    if v.requirements:
        reqs = _table(f"requirements ({len(v.requirements)})", "requirement")
        for req in v.requirements:
            reqs.add_row(req)
        out.print(reqs)
    files = _table(f"files ({len(v.files)})", "path", "sha256")
    for path, sha in sorted(v.files.items()):
        files.add_row(path, sha)
    out.print(files)
    try:
        graph = reg.lineage(f"model_version:{v.name}/{v.version}")
    except LoopstackError as exc:  # the version is shown; its lineage is a summary only
        out.print(f"lineage: unavailable ({exc.message})", markup=False)
        return
    for label, nodes in (("upstream", graph.upstream), ("downstream", graph.downstream)):
        shown = ", ".join(graph.labels.get(n, n) for n in nodes) or "none"
        out.print(f"lineage {label} ({len(nodes)}): {shown}", markup=False, soft_wrap=True)


@app.command("versions")
def versions(
    name: str = typer.Argument(..., help="The registered model's name."),
    version: str = typer.Argument(None, help="One version, shown in full."),
    project: str = PROJECT,
    columns: str = COLUMNS,
    wide: bool = WIDE,
    as_json: bool = JSON,
    as_csv: bool = CSV,
) -> None:
    """A model's versions; with VERSION, that version in full (signature, files, lineage)."""
    from loopstack.cli._tables import render_list

    reg = _registry(project)
    if version is not None:
        _show_version(reg, name, version)
        return
    reg.get_registered_model(name)  # NotFound naming the model, not an empty table
    found = reg.search_model_versions(name=name)
    render_list(
        found,
        _version_columns(),
        title=f"versions of {name} ({len(found)})",
        empty=f"No versions of {name}",
        columns_option=columns,
        wide=wide,
        as_json=as_json,
        as_csv=as_csv,
    )


@app.command("alias")
def alias(
    name: str = typer.Argument(..., help="The registered model's name."),
    alias_name: str = typer.Argument(None, metavar="ALIAS", help="The alias, e.g. 'staging'."),
    version: str = typer.Argument(None, help="The version the alias should point at."),
    delete: bool = typer.Option(False, "--delete", help="Remove ALIAS."),
    history: bool = typer.Option(
        False, "--history", help="Show the moves of ALIAS (or of every alias)."
    ),
    force: bool = typer.Option(
        False,
        "--force",
        help="Move even if the new version's input signature breaks callers of the current one.",
    ),
    reason: str = typer.Option("", "--reason", help="Why, recorded in the alias history."),
    override: bool = typer.Option(
        False, "--override", help="Move a protected alias without approval (admins)."
    ),
    project: str = PROJECT,
) -> None:
    """Move an alias to a version, delete it (--delete) or show its history (--history)."""
    from loopstack.cli._output import console, fail

    if history and delete:
        fail("--history and --delete exclude each other")
    if (history or delete) and version is not None:
        fail(f"--{'history' if history else 'delete'} takes no VERSION; got {version!r}")
    reg = _registry(project)
    out = console()
    if history:
        moves = reg.alias_history(name, alias_name)
        what = f"{name}@{alias_name}" if alias_name else name
        if not moves:
            out.print(f"no alias moves for {what}", markup=False)
            return
        out.print(_moves_table(f"alias history of {what} ({len(moves)})", moves))
        return
    if alias_name is None:
        fail(
            "expected NAME ALIAS VERSION, NAME ALIAS --delete or NAME [ALIAS] --history; "
            "got no ALIAS"
        )
    assert alias_name is not None  # fail() exits; this tells mypy
    if delete:
        move = reg.delete_alias(name, alias_name, override=override)
        out.print(
            f"deleted {name}@{alias_name} (it pointed at version {move.from_version})", markup=False
        )
        return
    if version is None:
        fail(f"expected a VERSION for {name}@{alias_name} (or --delete / --history); got none")
    move = reg.set_alias(name, alias_name, version, force=force, reason=reason, override=override)
    was = "" if move.from_version is None else f" (was version {move.from_version})"
    out.print(f"{name}@{alias_name} now points at version {move.to_version}{was}", markup=False)


def _read_evidence(path: str | None) -> dict[str, Any]:
    import json
    from pathlib import Path

    from loopstack.cli._output import fail

    if path is None:
        return {}
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        fail(f"cannot read the evidence file {path}: {exc.strerror or exc}")
    try:
        evidence = json.loads(text)
    except ValueError as exc:
        fail(f"the evidence file {path} is not valid JSON: {exc}")
    if not isinstance(evidence, dict):
        fail(
            f"the evidence file {path} must hold a JSON object; got "
            f"{type(evidence).__name__} instead"
        )
    return evidence


def _say_request(req: ApprovalRequest, verb: str) -> None:
    from loopstack.cli._output import console

    out = console()
    out.print(
        f"{verb} approval request {req.request_id}: move {req.name}@{req.alias} to "
        f"version {req.version} — state {req.state}",
        markup=False,
        soft_wrap=True,
    )
    if req.state == "approved" and req.apply_at == "promotion":
        by = f" by {req.decided_by}" if req.decided_by else ""
        out.print(
            f"approved{by}: its rollout may go on; {req.name}@{req.alias} moves to version "
            f"{req.version} when the rollout promotes (never if it rolls back)",
            markup=False,
            soft_wrap=True,
        )
    elif req.state == "approved":
        by = f" by {req.decided_by}" if req.decided_by else ""
        out.print(
            f"approved{by}; {req.name}@{req.alias} now points at version {req.version}",
            markup=False,
        )
    elif req.state == "pending":
        out.print(
            f"someone other than the author approves it with `loopstack models approve "
            f"{req.request_id}`",
            markup=False,
            soft_wrap=True,
        )


@app.command("promote")
def promote(
    name: str = typer.Argument(..., help="The registered model's name."),
    version: str = typer.Argument(..., help="The version to promote."),
    alias_name: str = typer.Option("production", "--alias", help="The alias to move."),
    evidence_file: str = typer.Option(
        None,
        "--evidence-file",
        help="A JSON object of evidence for the approver (eval report, gates_passed, ...).",
    ),
    project: str = PROJECT,
) -> None:
    """Open an approval request to move an alias (default: production) to a version."""
    evidence = _read_evidence(evidence_file)
    req = _registry(project).request_promotion(name, version, alias=alias_name, evidence=evidence)
    _say_request(req, "opened")


@app.command("approve")
def approve(
    request_id: str = typer.Argument(..., help="The approval request's id."),
    comment: str = typer.Option("", "--comment", help="Recorded with the decision."),
    force: bool = typer.Option(
        False,
        "--force",
        help="Move the alias even if the signature breaks callers of the current version.",
    ),
    project: str = PROJECT,
) -> None:
    """Approve a pending request (not your own version's): the alias moves at once (a
    rollout's request: when its rollout promotes)."""
    req = _registry(project).decide(request_id, approve=True, comment=comment, force=force)
    _say_request(req, "decided")


@app.command("reject")
def reject(
    request_id: str = typer.Argument(..., help="The approval request's id."),
    comment: str = typer.Option("", "--comment", help="Recorded with the decision."),
    project: str = PROJECT,
) -> None:
    """Reject a pending request: the alias stays where it is."""
    req = _registry(project).decide(request_id, approve=False, comment=comment)
    _say_request(req, "decided")


@app.command("requests")
def requests(
    name: str = typer.Option(None, "--name", help="Only this model's requests."),
    state: str = typer.Option(
        None, "--state", help="pending, approved, applied, rejected or cancelled."
    ),
    project: str = PROJECT,
    columns: str = COLUMNS,
    wide: bool = WIDE,
    as_json: bool = JSON,
    as_csv: bool = CSV,
) -> None:
    """Approval requests, oldest first."""
    from loopstack.cli._output import fail, fmt_time
    from loopstack.cli._tables import Column, render_list, show_id

    states = ("pending", "approved", "applied", "rejected", "cancelled")
    if state is not None and state not in states:
        fail(f"--state must be one of {', '.join(states)}; got {state!r}")
    found = _registry(project).list_requests(name=name, state=state)
    cols = [
        Column("request_id", lambda r: r.request_id, priority=0),
        Column("model", lambda r: r.name, priority=1, abbreviate=True),
        Column("version", lambda r: r.version, show_id, priority=2, justify="right"),
        Column("alias", lambda r: r.alias, priority=3),
        Column("state", lambda r: r.state, priority=4),
        Column("requested_by", lambda r: r.requested_by, priority=5, abbreviate=True),
        Column("requested", lambda r: r.requested_at, fmt_time, priority=6),
        Column("decided_by", lambda r: r.decided_by, priority=7, abbreviate=True),
        Column("decided", lambda r: r.decided_at, fmt_time, priority=8),
        Column(
            "comment",
            lambda r: r.comment,
            lambda c: c or "-",
            priority=9,
            abbreviate=True,
            max_width=40,
        ),
        Column("evidence", lambda r: r.evidence, priority=10, in_table=False),
        # approval (a direct request) or promotion (a rollout's)
        Column("moves_at", lambda r: r.apply_at, priority=11, in_table=False),
    ]
    render_list(
        found,
        cols,
        title=f"approval requests ({len(found)})",
        empty="No approval requests match" if name or state else "No approval requests",
        columns_option=columns,
        wide=wide,
        as_json=as_json,
        as_csv=as_csv,
    )


def _grow(tree: Tree, graph: LineageGraph, node: str, upstream: bool, path: set[str]) -> None:
    """Add ``node``'s parents (upstream) or children (downstream) under ``tree``."""
    from rich.markup import escape

    for src, dst, relation in graph.edges:
        near, far = (dst, src) if upstream else (src, dst)
        if near != node or far in path:  # a cycle would never end
            continue
        label = graph.labels.get(far)
        shown = f"{label} ({relation})" if label else f"({relation})"
        text = f"{escape(far)} [dim]{escape(shown)}[/]"
        _grow(tree.add(text), graph, far, upstream, path | {far})


@app.command("lineage")
def lineage(
    name: str = typer.Argument(None, help="The registered model's name."),
    version: str = typer.Argument(None, help="The version."),
    node: str = typer.Option(
        None,
        "--node",
        help="Start from any node instead: run:<id>, "
        "dataset:<id>, model_version:<name>/<n>, "
        "deployment:<name>.",
    ),
    project: str = PROJECT,
) -> None:
    """What a model version (or any node) came from and what it fed, as a tree."""
    from rich.markup import escape
    from rich.tree import Tree

    from loopstack.cli._output import console, fail

    if node is None and (name is None or version is None):
        fail("expected NAME VERSION or --node TYPE:ID")
    if node is not None and name is not None:
        fail("give either NAME VERSION or --node, not both")
    graph = _registry(project).lineage(node or f"model_version:{name}/{version}")
    root_label = graph.labels.get(graph.root)
    tree = Tree(f"[bold]{escape(graph.root)}[/]" + (f" {escape(root_label)}" if root_label else ""))
    for upstream, nodes in ((True, graph.upstream), (False, graph.downstream)):
        branch = tree.add(f"{'upstream' if upstream else 'downstream'} ({len(nodes)})")
        if not nodes:
            branch.add("[dim]none recorded[/]")
        _grow(branch, graph, graph.root, upstream, {graph.root})
    console().print(tree)

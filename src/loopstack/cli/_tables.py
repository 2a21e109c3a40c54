"""Every list command's output: a table fitted to the terminal, or JSON, or CSV.

A command describes its columns once (:class:`Column`) and hands its rows to
:func:`render_list`. The table keeps the most important columns that fit the
console's width with whole headers, cuts with an ellipsis only the columns marked
``abbreviate`` (names, descriptions, params: never ids), and says in its caption how
many columns it left out and how to see them. ``--json`` and ``--csv`` print every
column (or the ``--columns`` chosen) with raw, unformatted values.

Applying it to a list command::

    @app.command("list")
    def list_things(columns: str = COLUMNS, wide: bool = WIDE,
                    as_json: bool = JSON, as_csv: bool = CSV) -> None:
        render_list(things, THING_COLUMNS, title="things", empty="No things",
                    columns=columns, wide=wide, as_json=as_json, as_csv=as_csv)
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import typer

__all__ = ["COLUMNS", "CSV", "JSON", "WIDE", "Column", "render_list", "show_id", "table_width"]

COLUMNS: Any = typer.Option(
    None, "--columns", help="Comma-separated columns to show, in this order."
)
WIDE: Any = typer.Option(False, "--wide", help="Show every column, however wide.")
JSON: Any = typer.Option(False, "--json", help="Print a JSON array (raw values).")
CSV: Any = typer.Option(False, "--csv", help="Print CSV with a header row.")

#: an abbreviable column is never cut narrower than this (or its header)
MIN_ABBREVIATED = 12


@dataclass(frozen=True)
class Column:
    """One column of a list: its name (the header, the JSON key, the --columns word),
    how to read its raw value from a row and how to show it.

    ``priority``: lower is kept first when the terminal is narrow; columns with equal
    priority keep their declared order. ``abbreviate``: the shown value may be cut with
    an ellipsis (ids and numbers never are). ``max_width`` caps an abbreviable column.
    ``in_table=False``: only in JSON and CSV (a whole definition, say), or when named
    in --columns. ``style``: the rich style of a cell from its raw value (``"red"`` for a
    failure, say), or None for none.
    """

    name: str
    get: Callable[[Any], Any]
    show: Callable[[Any], str] | None = None
    priority: int = 50
    justify: Literal["left", "right"] = "left"
    abbreviate: bool = False
    max_width: int | None = None
    in_table: bool = True
    style: Callable[[Any], str | None] | None = None

    def text(self, row: Any) -> str:
        """The shown text of this column in ``row`` (one line)."""
        from loopstack.cli._output import fmt_value

        raw = self.get(row)
        shown = self.show(raw) if self.show is not None else fmt_value(raw)
        return shown.replace("\n", " ")


def show_id(value: Any) -> str:
    """An id or a version number as it is (``1234``, not the count ``1,234``); ``-`` for none."""
    return "-" if value is None else str(value)


def table_width(widths: Sequence[int], *, compact: bool = False) -> int:
    """Characters a rich table with the default box and padding takes for these column
    widths: one border per column plus one, and a space either side of each cell.
    ``compact`` (no borders, two spaces between columns): a space after each cell and
    one between cells."""
    if compact:
        return max(0, sum(w + 2 for w in widths) - 1)
    return 1 + sum(w + 3 for w in widths)


def _table(title: str, *, compact: bool) -> Any:
    """The rich table every list prints in; ``compact`` for many narrow columns (a
    profile): a rule under the header and no borders, which cost 3 characters a column."""
    from rich import box
    from rich.table import Table

    if not compact:
        return Table(title=title, title_justify="left", caption_justify="left")
    return Table(
        title=title,
        title_justify="left",
        caption_justify="left",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        padding=(0, 1, 0, 0),
    )


def _chosen(columns: Sequence[Column], only: str | None) -> list[Column] | None:
    """The --columns chosen, in the order given; None when the option was not given."""
    from loopstack.cli._output import fail

    if only is None:
        return None
    by_name = {c.name: c for c in columns}
    names = [n.strip() for n in only.split(",") if n.strip()]
    unknown = [n for n in names if n not in by_name]
    if unknown or not names:
        fail(
            f"--columns expected names from: {', '.join(by_name)}; "
            f"got {', '.join(map(repr, unknown)) if unknown else 'none'}",
            code=2,
        )
    return [by_name[n] for n in dict.fromkeys(names)]


def _fit(
    columns: list[Column],
    texts: list[list[str]],
    width: int,
    *,
    wide: bool,
    keep_all: bool,
    compact: bool = False,
) -> tuple[list[int], dict[int, int]]:
    """Which columns (by index) fit in ``width`` and how wide each is. ``wide``: every
    column at its full width; ``keep_all``: every column, abbreviated to fit if it must."""
    from rich.cells import cell_len

    def measure(widths: list[int]) -> int:
        return table_width(widths, compact=compact)

    full = [
        max([cell_len(c.name)] + [cell_len(row[i]) for row in texts]) for i, c in enumerate(columns)
    ]
    if wide:
        return list(range(len(columns))), dict(enumerate(full))
    natural = [
        min(n, max(c.max_width, cell_len(c.name)))
        if c.abbreviate and c.max_width is not None
        else n
        for n, c in zip(full, columns, strict=True)
    ]
    least = [
        min(n, max(cell_len(c.name), MIN_ABBREVIATED)) if c.abbreviate else n
        for n, c in zip(natural, columns, strict=True)
    ]
    order = sorted(range(len(columns)), key=lambda i: columns[i].priority)
    kept: list[int] = []
    for i in order:  # a prefix by priority: a small column never displaces a wider one
        if not keep_all and kept and measure([least[j] for j in kept] + [least[i]]) > width:
            break
        kept.append(i)
    kept.sort()
    widths = {i: least[i] for i in kept}
    spare = width - measure(list(widths.values()))
    for i in sorted(kept, key=lambda j: columns[j].priority):  # widen cut columns back
        if spare <= 0:
            break
        grow = min(spare, natural[i] - widths[i])
        widths[i] += grow
        spare -= grow
    return kept, widths


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, default=str)
    return value


def render_list(
    rows: Sequence[Any],
    columns: Sequence[Column],
    *,
    title: str,
    empty: str,
    columns_option: str | None = None,
    wide: bool = False,
    as_json: bool = False,
    as_csv: bool = False,
    hint: str | None = None,
    compact: bool = False,
) -> None:
    """Print ``rows`` as a table fitted to the console, or as JSON / CSV.

    ``empty`` is the one sentence printed when there are no rows ("No runs match");
    ``hint`` an optional next step printed after it. ``columns_option`` is the raw
    ``--columns`` value: an unknown name exits 2 listing the valid ones. ``compact``:
    no borders (two spaces between columns), for many narrow columns.
    """
    from rich.console import Console
    from rich.text import Text

    from loopstack.cli._output import console, fail

    if as_json and as_csv:
        fail("--json and --csv exclude each other", code=2)
    chosen = _chosen(columns, columns_option)
    every = chosen if chosen is not None else list(columns)
    if as_json:
        records = [{c.name: c.get(r) for c in every} for r in rows]
        typer.echo(json.dumps(records, indent=2, default=str))
        return
    if as_csv:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow([c.name for c in every])
        for r in rows:
            writer.writerow([_csv_cell(c.get(r)) for c in every])
        typer.echo(buf.getvalue(), nl=False)
        return
    out = console()
    if not rows:
        out.print(empty + (f"; {hint}" if hint else ""), markup=False, highlight=False)
        return
    shown = chosen if chosen is not None else [c for c in columns if c.in_table]
    texts = [[c.text(r) for c in shown] for r in rows]
    kept, widths = _fit(
        shown, texts, out.width, wide=wide, keep_all=chosen is not None, compact=compact
    )
    table = _table(title, compact=compact)
    for i in kept:
        c = shown[i]
        table.add_column(
            c.name, justify=c.justify, no_wrap=True, min_width=widths[i], max_width=widths[i]
        )
    for record, row in zip(rows, texts, strict=True):
        cells = []
        for i in kept:
            style = shown[i].style
            cell = Text(row[i], style=(style(shown[i].get(record)) or "") if style else "")
            if shown[i].abbreviate:
                cell.truncate(widths[i], overflow="ellipsis")
            cells.append(cell)
        table.add_row(*cells)
    hidden = [c.name for i, c in enumerate(shown) if i not in kept]
    if hidden:
        table.caption = (
            f"{len(hidden)} more column{'s' if len(hidden) != 1 else ''} "
            "(--wide shows all, --columns picks)"
        )
    needed = table_width(list(widths.values()), compact=compact)
    if needed > out.width:  # --wide, --columns: the table overflows; never fold it
        out = Console(highlight=False, width=needed, file=out.file)
    out.print(table)

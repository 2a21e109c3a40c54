"""Realised performance per time window (and segment), from predictions joined with
their labels (``join_labels``): classifier and regressor metrics beside label coverage
and label delay."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from loopstack.errors import Invalid
from loopstack.monitoring._metrics import classification_metrics, regression_metrics

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["PerformanceReport", "performance"]

_PROBA = re.compile(r"proba_(\d+)")
CLASSIFIER_METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc", "log_loss")
REGRESSOR_METRICS = ("mae", "rmse", "mape")


def proba_columns(frame: pd.DataFrame) -> list[str]:
    """The ``proba_<i>`` columns, in class-index order."""
    found = {int(m.group(1)): c for c in frame.columns if (m := _PROBA.fullmatch(str(c)))}
    return [found[i] for i in sorted(found)]


def infer_task(frame: pd.DataFrame) -> str:
    """``classification`` when there are probabilities or the predictions are labels
    (not floats, or whole numbers with few values); else ``regression``."""
    import pandas as pd

    if proba_columns(frame):
        return "classification"
    pred = frame["prediction"].dropna()
    if pred.empty or not pd.api.types.is_numeric_dtype(pred) or pd.api.types.is_bool_dtype(pred):
        return "classification"
    values = pred.to_numpy(dtype=np.float64)
    if np.all(values == np.round(values)) and np.unique(values).size <= 20:
        return "classification"
    return "regression"


def infer_classes(frame: pd.DataFrame, classes: list[Any] | None) -> list[Any]:
    """``classes`` as given, else the sorted values of predictions and labels (as many
    as there are probability columns when those say more)."""
    if classes is not None:
        return list(classes)
    values = set(frame["prediction"].dropna().tolist())
    if "label" in frame.columns:
        values |= set(frame["label"].dropna().tolist())
    found = sorted(values, key=lambda v: (str(type(v)), v))
    k = len(proba_columns(frame))
    if k and len(found) < k and all(isinstance(v, int | np.integer) for v in found):
        return list(range(k))
    return found


def window_starts(ts: pd.Series, window: str | None) -> pd.Series:
    """The start of each row's window (``window`` a pandas frequency such as ``1h``;
    None: one window for every row, starting at the first)."""
    import pandas as pd

    if window is None:
        when = pd.to_datetime(ts, utc=True)
        return pd.Series(when.min(), index=ts.index)
    try:
        return pd.to_datetime(ts, utc=True).dt.floor(window)
    except (ValueError, TypeError) as exc:
        raise Invalid(
            f"the 'window' must be a duration such as '1h' or '15min'; got {window!r} ({exc})",
            field="window",
        ) from None


class WindowRows:
    """What a report made of one dict per window shares: a DataFrame and JSON rows."""

    rows: list[dict[str, Any]]

    def to_frame(self) -> pd.DataFrame:
        """The rows as a DataFrame."""
        import pandas as pd

        return pd.DataFrame(self.rows)

    def plain_rows(self) -> list[dict[str, Any]]:
        """The rows with timestamps as ISO text."""
        return [
            {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in r.items()}
            for r in self.rows
        ]


@dataclass
class PerformanceReport(WindowRows):
    """Realised performance per window (and segment): ``rows`` are plain dicts with
    ``window_start``, ``segment`` (when segmented), ``rows``, ``labelled``,
    ``label_coverage``, ``label_delay_median_s``, ``label_delay_p90_s`` and the metrics."""

    task: str
    window: str
    metrics: tuple[str, ...]
    rows: list[dict[str, Any]] = field(default_factory=list)
    segment_by: str | None = None
    classes: list[Any] | None = None
    positive: Any | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data (timestamps as ISO text)."""
        rows = self.plain_rows()
        return {
            "task": self.task,
            "window": self.window,
            "metrics": list(self.metrics),
            "segment_by": self.segment_by,
            "classes": None if self.classes is None else [_plain(c) for c in self.classes],
            "positive": _plain(self.positive),
            "notes": list(self.notes),
            "rows": rows,
        }

    def render(self, width: int = 80) -> str:
        """A text table (rich) of the windows and their metrics."""
        return render_table(
            f"performance ({self.task}, window {self.window})",
            self.rows,
            [
                "window_start",
                *(["segment"] if self.segment_by else []),
                "rows",
                "label_coverage",
                *self.metrics,
            ],
            width,
            self.notes,
        )


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def render_table(
    title: str, rows: list[dict[str, Any]], columns: list[str], width: int, notes: list[str]
) -> str:
    """``rows`` as a rich table, as text."""
    from io import StringIO

    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for c in columns:
        table.add_column(c, overflow="fold")
    for r in rows:
        cells = []
        for c in columns:
            v = r.get(c)
            if v is None:
                cells.append("-")
            elif isinstance(v, float):
                cells.append(f"{v:.3f}")
            elif hasattr(v, "strftime"):
                cells.append(v.strftime("%Y-%m-%d %H:%M"))
            else:
                cells.append(str(v))
        table.add_row(*cells)
    out = StringIO()
    console = Console(file=out, width=width, color_system=None)
    console.print(table)
    for n in notes:
        console.print(n)
    return out.getvalue()


def _group_metrics(
    g: pd.DataFrame, task: str, classes: list[Any], positive: Any, probas: list[str]
) -> dict[str, Any]:
    row: dict[str, Any] = {"rows": len(g)}
    labelled = g[g["label"].notna()]
    row["labelled"] = len(labelled)
    row["label_coverage"] = len(labelled) / len(g) if len(g) else None
    delay = (
        labelled["label_delay_s"].dropna().to_numpy(dtype=np.float64)
        if "label_delay_s" in g
        else np.array([])
    )
    row["label_delay_median_s"] = float(np.median(delay)) if delay.size else None
    row["label_delay_p90_s"] = float(np.quantile(delay, 0.9)) if delay.size else None
    if task == "classification":
        y = labelled["label"].to_numpy(dtype=object)
        pred = labelled["prediction"].to_numpy(dtype=object)
        proba = labelled[probas].to_numpy(dtype=np.float64) if probas else None
        row.update(classification_metrics(y, pred, proba, classes, positive))
    else:
        y = labelled["label"].to_numpy(dtype=np.float64)
        pred = labelled["prediction"].to_numpy(dtype=np.float64)
        row.update(regression_metrics(y, pred))
    return row


def _normalise_labels(frame: pd.DataFrame, classes: list[Any]) -> pd.DataFrame:
    """Labels that came back from JSON as floats (1.0) compared with int classes (1)."""
    if all(isinstance(c, int | np.integer) and not isinstance(c, bool) for c in classes):
        for column in ("label", "prediction"):
            s = frame[column]
            frame[column] = [
                int(v) if isinstance(v, float | np.floating) and float(v).is_integer() else v
                for v in s.tolist()
            ]
            frame[column] = frame[column].astype(object).where(s.notna(), None)
    return frame


def performance(
    frame: Any,
    *,
    task: str | None = None,
    window: str | None = "1h",
    segment_by: str | None = None,
    classes: list[Any] | None = None,
    positive: Any | None = None,
) -> PerformanceReport:
    """Realised performance of ``frame`` (``ts``, ``prediction``, ``label`` (null when
    not yet known), ``proba_<i>`` for classifiers, ``label_delay_s``) per ``window``, and
    per value of ``segment_by`` when given.

    Classifiers: accuracy, precision, recall, F1 (of ``positive``, default the second
    class, for two classes; macro otherwise), ROC AUC (one-vs-rest macro for several
    classes) and log loss from the probabilities; regressors: MAE, RMSE, MAPE. ``task``
    is inferred when None. Metrics use the labelled rows; coverage counts all rows.
    """
    import pandas as pd

    from loopstack.monitoring._labels import _as_frame

    df = _as_frame(frame, "predictions").copy()
    for column in ("ts", "prediction", "label", *([segment_by] if segment_by else [])):
        if column not in df.columns:
            raise Invalid(
                f"expected a column {column!r}; got {list(map(str, df.columns))}", field=column
            )
    if task is None:
        task = infer_task(df)
    if task not in ("classification", "regression"):
        raise Invalid(
            f"the 'task' must be 'classification' or 'regression'; got {task!r}", field="task"
        )
    probas = proba_columns(df) if task == "classification" else []
    cls = infer_classes(df, classes) if task == "classification" else []
    if task == "classification":
        df = _normalise_labels(df, cls)
        if positive is not None and positive not in cls:
            raise Invalid(
                f"the 'positive' class {positive!r} is not one of {cls}", field="positive"
            )
    df["_window"] = window_starts(df["ts"], window)
    keys = ["_window", segment_by] if segment_by else ["_window"]
    rows = []
    for key, g in df.groupby(keys, sort=True, dropna=False):
        parts = key if isinstance(key, tuple) else (key,)
        row: dict[str, Any] = {"window_start": pd.Timestamp(parts[0]).to_pydatetime()}
        if segment_by:
            row["segment"] = _plain(parts[1])
        row.update(_group_metrics(g, task, cls, positive, probas))
        rows.append(row)
    metrics = CLASSIFIER_METRICS if task == "classification" else REGRESSOR_METRICS
    notes = []
    if task == "regression" and any(r.get("mape_skipped") for r in rows):
        notes.append("MAPE leaves out rows whose label is 0 (counted in mape_skipped)")
    if task == "classification" and len(cls) == 2:
        notes.append(
            f"precision, recall and F1 of the class {cls[1] if positive is None else positive!r}"
        )
    return PerformanceReport(
        task=task,
        window=window or "whole",
        metrics=metrics,
        rows=rows,
        segment_by=segment_by,
        classes=cls or None,
        positive=positive,
        notes=notes,
    )

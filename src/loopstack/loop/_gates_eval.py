"""Evaluate a challenger's gates on one evaluation set, beside the champion if there is one.

Both models predict the same rows; each threshold is computed overall or on its slice;
the primary's change must also survive a paired bootstrap; fairness looks at the
challenger per group; the data gate reads the evaluation data's validation result and
the lineage gate the version's run and its dataset inputs.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from loopstack.errors import Invalid, LoopstackError, NotFound
from loopstack.loop._fairness import check_fairness
from loopstack.loop._gates import Gates, MetricThreshold
from loopstack.loop._gates_metrics import Predictions, point
from loopstack.loop._gates_provenance import dataset_ref, lineage_gate, validation_gate
from loopstack.loop._gates_report import GateReport, GateResult
from loopstack.loop._significance import paired_bootstrap

if TYPE_CHECKING:
    import pandas as pd

    from loopstack.registry import ModelVersion
    from loopstack.store import Stores

__all__ = ["evaluate_gates"]

_MODELS_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<version>[^/]+))$")


@dataclass(frozen=True)
class _Model:
    label: str
    version: ModelVersion | None
    predictor: Any


def _registry(stores: Stores, project_id: int) -> Any:
    from loopstack.registry import SqlRegistry

    return SqlRegistry(stores, actor="loop", project_id=project_id)


def _resolve(model: Any, stores: Stores, project_id: int, role: str) -> _Model:
    from loopstack.registry import ModelVersion
    from loopstack.registry.flavors import load_package

    version: ModelVersion | None = None
    if isinstance(model, str):
        m = _MODELS_URI.match(model)
        if m is None:
            raise Invalid(
                f"the {role} must be a model URI like 'models:/<name>/<version>' or "
                f"'models:/<name>@<alias>', a ModelVersion or a loaded model; got {model!r}",
                field=role,
            )
        reg = _registry(stores, project_id)
        number: Any = m["version"]
        if m["alias"] or number == "latest":
            number = reg.get_version_by_alias(m["name"], m["alias"] or "latest").version
        version = reg.get_verified_model_version(m["name"], number)
    elif isinstance(model, ModelVersion):
        version = _registry(stores, project_id).get_verified_model_version(
            model.name, model.version
        )
    elif not hasattr(model, "predict"):
        raise Invalid(
            f"the {role} must be a model URI, a ModelVersion or a model with predict; "
            f"got {type(model).__name__} instead",
            field=role,
        )
    if version is None:
        return _Model(f"<{type(model).__name__}>", None, model)
    if not version.files:
        raise NotFound(f"{version.uri} has no loopstack package; it cannot be evaluated")
    with tempfile.TemporaryDirectory(prefix="loopstack-gates-") as tmp:
        local = stores.artifacts.download(version.source, Path(tmp) / "dl")
        target = Path(tempfile.mkdtemp(prefix="loopstack-model-"))
        shutil.copytree(local, target, dirs_exist_ok=True)
    return _Model(version.uri, version, load_package(target, expected_files=version.files))


def _predict(model: _Model, features: pd.DataFrame, y: np.ndarray, gates: Gates) -> Predictions:
    est = model.predictor
    try:
        if hasattr(est, "predict_both"):
            labels, proba = est.predict_both(features)
            inner = est.model
        else:
            labels = np.asarray(est.predict(features))
            has = gates.task == "classification" and hasattr(est, "predict_proba")
            proba = np.asarray(est.predict_proba(features)) if has else None
            inner = est
    except LoopstackError:
        raise
    except Exception as exc:  # a foreign model's own error, translated at the boundary
        raise Invalid(
            f"{model.label} could not predict the evaluation set ({type(exc).__name__}: {exc})",
            field="data",
        ) from exc
    labels = np.asarray(labels)
    if gates.task == "regression":
        labels = labels.reshape(-1)
    if labels.shape[0] != y.shape[0] or (proba is not None and len(proba) != y.shape[0]):
        raise Invalid(
            f"{model.label} gave {labels.shape[0]} predictions for {y.shape[0]} rows",
            field="data",
        )
    if gates.task == "regression":
        return Predictions(y, labels)
    classes = getattr(inner, "classes_", None)
    if classes is None:
        seen = set(y.tolist()) | set(labels.tolist())
        try:
            classes = sorted(seen)
        except TypeError:  # labels of mixed types
            classes = sorted(seen, key=str)
    classes = tuple(np.asarray(classes).tolist())
    if len(classes) < 2:
        raise Invalid(
            f"{model.label} knows one class ({list(classes)}); a classifier's gates need two "
            "or more",
            field="challenger",
        )
    if gates.positive is not None and gates.positive not in classes:
        raise Invalid(
            f"the positive class must be one of {list(classes)}; got {gates.positive!r}",
            field="positive",
        )
    probs = None if proba is None else np.asarray(proba, dtype=np.float64)
    return Predictions(y, labels, probs, classes, gates.positive)


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def _slice_mask(t: MetricThreshold, data: pd.DataFrame) -> tuple[np.ndarray | None, str | None]:
    mask = np.ones(len(data), dtype=bool)
    for column, value in (t.slice or {}).items():
        if column not in data.columns:
            return None, f"the slice column {column!r} is not in the evaluation set"
        mask &= data[column].to_numpy() == value
    return mask, None


def _threshold(
    kind: str,
    t: MetricThreshold,
    gates: Gates,
    data: pd.DataFrame,
    ch: Predictions,
    champ: Predictions | None,
) -> GateResult:
    gate = f"{kind}:{t.name}"
    evidence: dict[str, Any] = {**t.to_dict(), "champion": None}
    mask, missing = _slice_mask(t, data)
    if mask is None:
        return GateResult(gate, False, str(missing), evidence)
    evidence["rows"] = rows = int(mask.sum())
    if rows == 0:
        return GateResult(gate, False, "the slice has no rows in the evaluation set", evidence)
    new = ch.subset(mask)
    evidence["value"] = value = point(t.metric, new)
    if value is None:
        why = "probabilities and both classes" if t.metric in ("roc_auc", "log_loss") else "rows"
        return GateResult(gate, False, f"{t.metric} cannot be computed (needs {why})", evidence)
    ok: list[str] = [f"{t.metric} {_fmt(value)}"]
    bad: list[str] = []
    if t.min_value is not None:
        (bad if value < t.min_value else ok).append(
            f"{_fmt(value)} {'<' if value < t.min_value else '>='} min {_fmt(t.min_value)}"
        )
    if t.max_value is not None:
        (bad if value > t.max_value else ok).append(
            f"{_fmt(value)} {'>' if value > t.max_value else '<='} max {_fmt(t.max_value)}"
        )
    if t.has_change_threshold and champ is None:
        ok.append("no champion: change thresholds skipped")
    elif t.has_change_threshold and champ is not None:
        old = champ.subset(mask)
        evidence["champion"] = before = point(t.metric, old)
        if before is None:
            bad.append(f"the champion's {t.metric} cannot be computed")
            return GateResult(gate, False, "; ".join(bad), evidence)
        sign = 1.0 if t.higher_is_better else -1.0
        evidence["delta"] = change = sign * (value - before)  # positive: the challenger is better
        unit = ""
        if t.relative:
            if before == 0:
                bad.append(f"a relative change is undefined: the champion's {t.metric} is 0")
                return GateResult(gate, False, "; ".join(bad), evidence)
            evidence["relative_delta"] = change = change / abs(before)
            unit = " (relative)"
        bound = t.min_improvement if t.min_improvement is not None else -(t.max_regression or 0.0)
        evidence["required_change"] = bound
        text = f"improvement {change:+.4g}{unit} over champion {_fmt(before)}"
        if change < bound:
            bad.append(f"{text} < required {bound:+.4g}")
        else:
            ok.append(f"{text} >= {bound:+.4g}")
        if kind == "primary" and gates.significance is not None:
            boot = paired_bootstrap(
                t.metric,
                new,
                old,
                higher_is_better=bool(t.higher_is_better),
                relative=t.relative,
                null=min(bound, 0.0),
                n_bootstrap=gates.n_bootstrap,
                seed=gates.seed,
                significance=gates.significance,
            )
            evidence["bootstrap"] = boot.to_dict()
            evidence["significance"] = gates.significance
            ci = f"{boot.level:.0%} CI [{boot.ci_low:+.4g}, {boot.ci_high:+.4g}]"
            if boot.p_value > gates.significance:
                bad.append(
                    f"not significant: p={boot.p_value:.3g} > {gates.significance:g} "
                    f"({gates.n_bootstrap} paired resamples, {ci})"
                )
            else:
                ok.append(f"p={boot.p_value:.3g} <= {gates.significance:g}, {ci}")
    if bad:
        return GateResult(gate, False, "; ".join(bad), evidence)
    return GateResult(gate, True, "; ".join(ok), evidence)


def evaluate_gates(
    gates: Gates,
    challenger: Any,
    champion: Any = None,
    *,
    data: pd.DataFrame | None = None,
    label: str = "y",
    dataset_version: Any = None,
    suite: Any = None,
    stores: Stores | None = None,
    project_id: int = 0,
) -> GateReport:
    """Every gate of ``gates`` for ``challenger`` against ``champion`` on ``data``.

    ``challenger`` / ``champion``: a model URI (``models:/fraud/3``,
    ``models:/fraud@production``), a ``ModelVersion``, or a loaded model. ``data`` holds
    the features and the ``label`` column (plus any slice and group columns); without it
    the rows of ``dataset_version`` are the evaluation set.
    ``dataset_version`` (a ``DatasetVersion`` or ``"name/version"``) is what the data
    gate looks up the validation result of; with ``suite`` the suite is run instead.

    >>> report = evaluate_gates(gates, "models:/fraud/4", "models:/fraud@production",
    ...                         data=holdout, label="is_fraud", dataset_version="holdout/3")
    >>> print(report.render())
    """
    if not isinstance(gates, Gates):
        raise Invalid(f"expected Gates; got {type(gates).__name__} instead", field="gates")
    if stores is None:
        from loopstack.store import open_stores

        stores = open_stores()
    if data is None:
        ref = dataset_ref(dataset_version)
        if ref is None:
            raise Invalid(
                "an evaluation set is needed: pass data= (a DataFrame) or dataset_version=",
                field="data",
            )
        from loopstack.data import DatasetStore

        data = DatasetStore(stores, actor="loop", project_id=project_id).get(*ref).to_pandas()
    import pandas

    if not isinstance(data, pandas.DataFrame) and hasattr(data, "to_pandas"):
        data = data.to_pandas()  # a DatasetVersion or an Arrow table
    if label not in getattr(data, "columns", ()):
        raise Invalid(
            f"the evaluation set must have the label column {label!r}; got columns "
            f"{list(getattr(data, 'columns', []))}",
            field="label",
        )
    if len(data) == 0:
        raise Invalid("the evaluation set must have rows; got none", field="data")
    unlabelled = int(data[label].isna().sum())
    if unlabelled:
        raise Invalid(
            f"every row of the evaluation set must have a label; {unlabelled} of {len(data)} "
            f"rows have no {label!r}",
            field="label",
        )
    new = _resolve(challenger, stores, project_id, "challenger")
    old = None if champion is None else _resolve(champion, stores, project_id, "champion")
    data = data.reset_index(drop=True)
    features = data.drop(columns=[label])
    y = data[label].to_numpy()
    ch = _predict(new, features, y, gates)
    champ = None if old is None else _predict(old, features, y, gates)
    results: list[GateResult] = []
    if gates.require_validation:
        results.append(validation_gate(stores, project_id, dataset_version, suite, data))
    results.append(_threshold("primary", gates.primary, gates, data, ch, champ))
    for guard in gates.guardrails:
        results.append(_threshold("guardrail", guard, gates, data, ch, champ))
    if gates.fairness is not None:
        f = gates.fairness
        gate = f"fairness:{f.metric} by {f.group}"
        if f.group not in data.columns:
            results.append(
                GateResult(gate, False, f"the group column {f.group!r} is not in the data", {})
            )
        else:
            passed, reason, evidence = check_fairness(f, data[f.group].to_numpy(), ch, champ)
            results.append(GateResult(gate, passed, reason, evidence))
    if gates.require_lineage:
        results.append(lineage_gate(stores, project_id, new.version))
    return GateReport(
        results,
        challenger=new.label,
        champion=None if old is None else old.label,
        evaluation_id=uuid.uuid4().hex,
    )

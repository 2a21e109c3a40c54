"""Turn what a user passes to ``log_input`` into a dataset record with a content hash."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from loopstack.errors import Invalid
from loopstack.tracking._entities import DatasetInput

__all__ = ["dataset_input"]


def _frame_digest(df: Any) -> str:
    import pandas as pd

    h = hashlib.sha256()
    h.update(json.dumps([[str(c), str(t)] for c, t in df.dtypes.items()]).encode())
    h.update(pd.util.hash_pandas_object(df, index=True).to_numpy().tobytes())
    return h.hexdigest()


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        h.update(f.relative_to(path).as_posix().encode() if path.is_dir() else b"")
        with f.open("rb") as fh:
            while chunk := fh.read(1 << 20):
                h.update(chunk)
    return h.hexdigest()


def dataset_input(
    data: Any, *, name: str | None = None, context: str | None = None, source: str | None = None
) -> DatasetInput:
    """A ``DatasetInput`` for a DataFrame, Arrow table, numpy array, file path or DatasetVersion."""
    tags = {"mlflow.data.context": context} if context else {}
    if isinstance(data, DatasetInput):
        return data
    if hasattr(data, "as_dataset_input"):  # a loopstack.data DatasetVersion: linked, not re-hashed
        return data.as_dataset_input(name=name, context=context)  # type: ignore[no-any-return]
    if isinstance(data, str | Path):
        path = Path(data)
        if not path.exists():
            raise Invalid(
                f"expected a DataFrame or an existing file; got the path {str(path)!r}, "
                "which does not exist",
                field="dataset",
            )
        return DatasetInput(
            name or path.name,
            _file_digest(path),
            "local",
            str(path.resolve()),
            None,
            json.dumps(
                {
                    "bytes": sum(
                        f.stat().st_size
                        for f in ([path] if path.is_file() else path.rglob("*"))
                        if f.is_file()
                    )
                }
            ),
            tags,
        )
    import numpy as np
    import pandas as pd

    source_type = "dataframe"
    if hasattr(data, "to_pandas") and not isinstance(data, pd.DataFrame):
        data, source_type = data.to_pandas(), "arrow"
    elif isinstance(data, np.ndarray):
        data, source_type = pd.DataFrame(data.reshape(len(data), -1)), "ndarray"
    elif not isinstance(data, pd.DataFrame):
        raise Invalid(
            "expected a pandas DataFrame, a pyarrow Table, a numpy array or a path; "
            f"got {type(data).__name__} instead",
            field="dataset",
        )
    digest = _frame_digest(data)
    schema = json.dumps(
        {"columns": [{"name": str(c), "type": str(t)} for c, t in data.dtypes.items()]}
    )
    profile = json.dumps({"num_rows": int(len(data)), "num_columns": int(data.shape[1])})
    return DatasetInput(
        name or f"dataset-{digest[:8]}",
        digest,
        source_type,
        source or "in-memory",
        schema,
        profile,
        tags,
    )

"""predict_batch on a real model and real Parquet: every row once, the same probabilities
as the model in memory, bad input refused before any work, a corrupted chunk named."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import loopstack as ls
from loopstack.errors import Conflict, Invalid, NotFound

from .conftest import COLUMNS, frame, write_parquet


def test_scores_every_row_once_with_the_models_probabilities(
    model_uri: str, tmp_path: Path
) -> None:
    data = frame(3_000)
    inputs = tmp_path / "in"
    inputs.mkdir()
    write_parquet(inputs / "a.parquet", data[:1_800], 300)
    write_parquet(inputs / "b.parquet", data[1_800:], 300)
    seen: list[tuple[int, int]] = []
    result = ls.predict_batch(
        model_uri,
        str(inputs),
        tmp_path / "out.parquet",
        key_columns=["account_id"],
        chunk_rows=600,
        workers=2,
        on_progress=lambda done, total: seen.append((done, total)),
    )
    out = pd.read_parquet(result.output)
    assert result.rows == 3_000 and result.chunks == 5 and len(out) == 3_000
    assert out["account_id"].tolist() == data["account_id"].tolist()
    assert set(out["model_version"]) == {model_uri.rsplit("/", 1)[1]}
    expected = ls.load_model(model_uri).model.predict_proba(data[COLUMNS])
    np.testing.assert_allclose(out[["proba_0", "proba_1"]].to_numpy(), expected, rtol=1e-6)
    assert seen[-1] == (3_000, 3_000)
    assert not (tmp_path / "out.parquet.staging").exists()

    graph = ls.lineage(f"run:{result.run_id}")
    assert f"model_version:scorer/{model_uri.rsplit('/', 1)[1]}" in graph.upstream
    assert any(n.startswith("dataset:") for n in graph.upstream)


def test_without_keys_rows_get_global_row_ids(model_uri: str, tmp_path: Path) -> None:
    src = write_parquet(tmp_path / "in.parquet", frame(1_000), 250)
    result = ls.predict_batch(model_uri, src, tmp_path / "o.parquet", chunk_rows=250, workers=1)
    assert pd.read_parquet(result.output)["row_id"].tolist() == list(range(1_000))


def test_bad_input_is_refused_before_any_work(model_uri: str, tmp_path: Path) -> None:
    src = write_parquet(tmp_path / "in.parquet", frame(100), 50)
    out = tmp_path / "out.parquet"
    with pytest.raises(NotFound):
        ls.predict_batch("models:/no-such-model/1", src, out)
    with pytest.raises(Invalid, match="matches no file"):
        ls.predict_batch(model_uri, str(tmp_path / "nothing-*.parquet"), out)
    narrow = write_parquet(tmp_path / "narrow.parquet", frame(10).drop(columns=["f3"]), 10)
    with pytest.raises(Invalid, match="lacks column\\(s\\) 'f3'"):
        ls.predict_batch(model_uri, narrow, out)
    out.write_bytes(b"already here")
    with pytest.raises(Conflict, match="exists; pass overwrite"):
        ls.predict_batch(model_uri, src, out)
    assert out.read_bytes() == b"already here"
    assert not (tmp_path / "out.parquet.staging").exists()
    ls.predict_batch(model_uri, src, out, overwrite=True)
    assert len(pd.read_parquet(out)) == 100


def test_a_corrupted_chunk_fails_the_job_naming_it_and_keeps_what_was_done(
    model_uri: str, tmp_path: Path
) -> None:
    inputs = tmp_path / "in"
    inputs.mkdir()
    write_parquet(inputs / "a.parquet", frame(400), 100)
    bad = write_parquet(inputs / "b.parquet", frame(400, seed=3), 100)
    raw = bytearray(bad.read_bytes())
    raw[200:2_000] = b"\xff" * 1_800  # the data pages of its first row groups, not the footer
    bad.write_bytes(bytes(raw))
    out = tmp_path / "out.parquet"
    with pytest.raises(Invalid, match=r"chunk 00001-000000 .*b\.parquet"):
        ls.predict_batch(model_uri, inputs, out, chunk_rows=100, workers=1)
    assert not out.exists()
    parts = sorted(p.name for p in (tmp_path / "out.parquet.staging").glob("part-*.parquet"))
    kept = {p.split("-")[1] + "-" + p.split("-")[2] for p in parts}
    assert {f"00000-{g:06d}" for g in range(4)} <= kept  # every chunk of a.parquet
    assert "00001-000000" not in kept


def test_a_chunk_scored_in_cache_sized_slices_gives_the_same_scores(
    model_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from loopstack.serving.batch import _worker

    monkeypatch.setattr(_worker, "_CACHE_BYTES", 1)  # the floor: 1,024-row model calls
    data = frame(2_500)
    src = write_parquet(tmp_path / "in.parquet", data, 2_500)
    result = ls.predict_batch(model_uri, src, tmp_path / "o.parquet", workers=1)  # forked
    out = pd.read_parquet(result.output)
    model = ls.load_model(model_uri).model
    np.testing.assert_allclose(
        out[["proba_0", "proba_1"]].to_numpy(), model.predict_proba(data[COLUMNS]), rtol=1e-6
    )
    assert out["prediction"].tolist() == model.predict(data[COLUMNS]).tolist()
    assert result.chunks == 1 and len(out) == 2_500


def test_forked_workers_score_with_the_model_the_job_loaded_not_a_reload(
    model_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import loopstack.registry.flavors as flavors
    from loopstack.serving.batch import _job, _worker

    if _job._START_METHOD != "fork":
        pytest.skip("workers are spawned here: nothing is shared with them")
    loads = tmp_path / "loads.txt"  # a line per load, from whichever process loads
    real = flavors.load_package

    def counted(*args: object, **kwargs: object) -> object:
        with loads.open("a") as f:
            f.write(f"{os.getpid()}\n")
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(flavors, "load_package", counted)
    data = frame(2_400)
    src = write_parquet(tmp_path / "in.parquet", data, 300)
    result = ls.predict_batch(model_uri, src, tmp_path / "o.parquet", chunk_rows=600, workers=2)
    assert loads.read_text().split() == [str(os.getpid())]  # the job's own load, once
    out = pd.read_parquet(result.output)
    expected = ls.load_model(model_uri).model.predict_proba(data[COLUMNS])
    np.testing.assert_allclose(out[["proba_0", "proba_1"]].to_numpy(), expected, rtol=1e-6)
    assert _worker._preloaded == {} and _worker._loaded == {}  # nothing kept after the job

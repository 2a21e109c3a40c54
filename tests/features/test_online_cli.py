"""`loopstack features materialize | materialize-incremental | get` against a Parquet source."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import typer
from typer.testing import CliRunner

from loopstack.cli._features_online import parse_entity, register
from loopstack.errors import Invalid
from loopstack.features import Entity, FeatureStore, FeatureView, Field, FileSource

T0 = datetime(2024, 1, 1, tzinfo=UTC)


@pytest.fixture
def app(ls_home: Path, tmp_path: Path) -> typer.Typer:
    path = tmp_path / "stats.parquet"
    pq.write_table(
        pa.table(
            {
                "driver_id": [1, 2, 1],
                "event_timestamp": [T0, T0, T0 + timedelta(hours=1)],
                "rate": [0.1, 0.2, 0.3],
            }
        ),
        path,
    )
    driver = Entity("driver", join_keys=["driver_id"])
    FeatureStore().apply(
        [
            driver,
            FeatureView(
                "stats",
                entities=[driver],
                source=FileSource(path, "event_timestamp"),
                schema=[Field("rate", "float64")],
            ),
        ]
    )
    group = typer.Typer()
    register(group)
    return group


def invoke(app: typer.Typer, *args: str):  # noqa: ANN201 - click's Result
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "250"})


def test_materialize_then_get(app: typer.Typer) -> None:
    out = invoke(app, "materialize", "2023-12-31", "2024-01-02", "--views", "stats")
    assert out.exit_code == 0, out.output
    assert "stats" in out.output
    out = invoke(app, "get", "stats:rate", "--entity", "driver_id=1", "-e", "driver_id=2", "--json")
    assert out.exit_code == 0, out.output
    rows = json.loads(out.output)
    assert [r["rate"] for r in rows] == [0.3, 0.2]
    assert rows[0]["rate__event_timestamp"].startswith("2024-01-01 01:00:00")
    out = invoke(app, "get", "stats:rate", "--entity", "driver_id=1")
    assert out.exit_code == 0 and "0.3" in out.output


def test_materialize_incremental(app: typer.Typer) -> None:
    out = invoke(app, "materialize-incremental", "2024-01-02")
    assert out.exit_code == 0, out.output
    assert "stats" in out.output
    out = invoke(app, "materialize-incremental", "2024-01-02")
    assert "nothing to materialize" in out.output


def test_parse_entity() -> None:
    assert parse_entity("driver_id=1001") == {"driver_id": 1001}
    assert parse_entity("a=1.5, b=x") == {"a": 1.5, "b": "x"}
    with pytest.raises(Invalid):
        parse_entity("driver_id")

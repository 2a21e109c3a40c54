"""`loopstack predict batch MODEL_URI --input ... --output ...`: batch scoring of Parquet
with a progress bar (rows, rows/s, ETA); ``loopstack.serving.batch`` does the work."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

app = typer.Typer(no_args_is_help=True, help="Predictions: batch scoring of Parquet files.")


@app.command("batch")
def batch(
    model_uri: str = typer.Argument(..., help="models:/name@alias, models:/name/N, runs:/…"),
    input: list[str] = typer.Option(  # noqa: A002 - the option's name
        [], "--input", "-i", help="A Parquet file, a directory of them, or a glob."
    ),
    dataset: str | None = typer.Option(
        None, "--dataset", "-d", help="A registered dataset version (name/version) to score."
    ),
    output: Path = typer.Option(..., "--output", "-o", help="The Parquet file to write."),
    key: list[str] = typer.Option(
        [], "--key", "-k", help="Input column(s) copied beside each prediction (default: row_id)."
    ),
    chunk_rows: int = typer.Option(200_000, "--chunk-rows", help="Rows per chunk (about)."),
    workers: int | None = typer.Option(None, "--workers", "-w", help="Default: the cores."),
    executor: str = typer.Option("local", "--executor", "-e", help="local or ray."),
    address: str | None = typer.Option(
        None, "--address", help="Ray's address (auto, ray://host:10001); default: a local Ray."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output."),
    no_resume: bool = typer.Option(
        False, "--no-resume", help="Start over instead of reusing finished chunks."
    ),
    feature: list[str] = typer.Option(
        [], "--feature", "-f", help="A feature ref (view:feature, view:*) joined to each row."
    ),
    feature_service: str | None = typer.Option(
        None, "--feature-service", help="A feature service whose features are joined."
    ),
    as_of: str | None = typer.Option(
        None, "--as-of", help="Features from the offline store as of this ISO time."
    ),
    timestamp_column: str | None = typer.Option(
        None, "--timestamp-column", help="Features as of each row's time in this input column."
    ),
    online: bool = typer.Option(False, "--online", help="Features from the online store."),
    full_feature_names: bool = typer.Option(
        False, "--full-feature-names", help="Name features view__feature."
    ),
) -> None:
    """Score every row of the input into the output, chunk by chunk; a rerun of an
    interrupted job resumes from its finished chunks. With --feature or --feature-service,
    each row first gets feature values (offline at --as-of or --timestamp-column, or
    --online)."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from loopstack.cli._output import console
    from loopstack.errors import Invalid
    from loopstack.serving.batch import predict_batch

    if feature and feature_service:
        raise Invalid("pass --feature or --feature-service, not both", field="features")
    features: Any = list(feature) or feature_service
    out = console()
    bar = Progress(
        TextColumn("scoring"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("rows"),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=out,
        transient=False,
    )
    task = bar.add_task("rows", total=None, rate="")
    started: list[Any] = []  # the bar shows once the job starts: bad input prints no bar
    try:

        def progress(done: int, total: int) -> None:
            import time

            now = time.perf_counter()
            if not started:
                started.append((now, done))
                bar.start()
            t0, d0 = started[0]
            rate = (done - d0) / (now - t0) if now > t0 else 0.0
            bar.update(task, completed=done, total=total, rate=f"{rate:,.0f} rows/s")

        result = predict_batch(
            model_uri,
            list(input) or None,
            output,
            dataset=dataset,
            key_columns=list(key) or None,
            chunk_rows=chunk_rows,
            workers=workers,
            executor=executor,
            address=address,
            overwrite=overwrite,
            resume=not no_resume,
            on_progress=progress,
            features=features,
            as_of=as_of,
            timestamp_column=timestamp_column,
            online=online,
            full_feature_names=full_feature_names,
        )
    finally:
        bar.stop()
    resumed = f", {result.chunks_resumed} resumed" if result.chunks_resumed else ""
    out.print(
        f"wrote {result.rows:,} predictions of version {result.model_version} to "
        f"{result.output} ({result.chunks} chunks{resumed}, {result.rows_per_s:,.0f} rows/s; "
        f"run {result.run_id})"
    )

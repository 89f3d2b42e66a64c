"""`python -m tools bench` (`make bench`): throughput, transport overhead, latency and memory against baselines."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console

from shared.settings import get_settings
from tools.bench.pipeline import DEFAULT_SOURCES, BenchOptions, render_markdown, run_bench

err = Console(stderr=True)


def bench(
    articles: Annotated[int, typer.Option(min=1, help="corpus size (distinct ~500-word articles)")] = 400,
    rounds: Annotated[int, typer.Option(min=1, help="rounds per run (fresh articles each); the best is kept")] = 3,
    replicas: Annotated[str, typer.Option(help="enrich replica counts to run, comma-separated")] = "1,2",
    batch_size: Annotated[int | None, typer.Option(help="default: NEWSFLOW_BATCH_SIZE")] = None,
    poll_ms: Annotated[int | None, typer.Option(help="default: NEWSFLOW_POLL_MS")] = None,
    passthrough: Annotated[bool, typer.Option(help="measure the raw redis-py passthrough baseline")] = True,
    inprocess: Annotated[bool, typer.Option(help="measure the in-process (one core) baseline")] = True,
    latency: Annotated[bool, typer.Option(help="measure push→stored latency with paced pushes")] = True,
    latency_fraction: Annotated[float, typer.Option(help="paced rate as a share of the measured max")] = 0.5,
    latency_articles: Annotated[int | None, typer.Option(help="paced articles (default: half the corpus)")] = None,
    sources: Annotated[Path, typer.Option(help="texts the corpus is recombined from")] = DEFAULT_SOURCES,
    storage_rows: Annotated[int, typer.Option(help="records for the storage upsert measurement (0: skip)")] = 2048,
    postgres_url: Annotated[
        str | None, typer.Option(help="also measure PostgreSQL upserts here (in a private, dropped schema)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
    scale: Annotated[
        str | None,
        typer.Option(
            help="instead: per-article costs with this many articles stored, e.g. 1000,10000,100000 "
            "(store and index bulk-loaded; add --postgres-url for PostgreSQL)"
        ),
    ] = None,
) -> None:
    """Run the corpus through a private Redis + SQLite: passthrough, in-process and the deployed pipeline."""
    if scale is not None:
        run_scale_bench(scale, postgres_url, as_json)
        return
    overrides: dict[str, int] = {}
    if batch_size is not None:
        overrides["batch_size"] = batch_size
    if poll_ms is not None:
        overrides["poll_ms"] = poll_ms
    settings = get_settings().model_copy(update=overrides)
    try:
        counts = tuple(int(part) for part in replicas.split(",") if part.strip())
    except ValueError as exc:
        raise typer.BadParameter("--replicas is a comma-separated list of counts, e.g. 1,2") from exc
    options = BenchOptions(
        articles=articles,
        rounds=rounds,
        replicas=counts,
        passthrough=passthrough,
        inprocess=inprocess,
        latency=latency,
        latency_fraction=latency_fraction,
        latency_articles=latency_articles,
        sources=sources,
        storage_rows=storage_rows,
        postgres_url=postgres_url,
    )
    report = run_bench(settings, options, progress=lambda step: err.print(f"[bold]bench[/] {step}"))
    emit(report.to_dict() if as_json else render_markdown(report), failed=bool(report.failures))


def bench_warc(
    pages: Annotated[int, typer.Option(min=1, help="pages in the synthetic crawl (two records each)")] = 5000,
    sample: Annotated[int, typer.Option(min=0, help="articles run through the stages' logic (0: skip)")] = 100,
    push: Annotated[bool, typer.Option(help="also push the file onto a private Redis")] = True,
) -> None:
    """WARC read speed with warcio and FastWARC, newsflow's reader and push, and the pipeline's pace beside them."""
    from tools.bench.warc import render, run_warc_bench

    rates, file_mb = run_warc_bench(get_settings(), pages=pages, sample=sample, push=push)
    sys.stdout.write(render(rates, file_mb))


def run_scale_bench(levels: str, postgres_url: str | None, as_json: bool) -> None:
    """`bench --scale 1000,10000,100000`: the scale benchmark (tools/bench/scale.py)."""
    from tools.bench.scale import ScaleOptions, render_scale, run_scale

    try:
        sizes = tuple(int(part.replace("_", "")) for part in levels.split(",") if part.strip())
    except ValueError as exc:
        raise typer.BadParameter("--scale is a comma-separated list of sizes, e.g. 1000,10000,100000") from exc
    if not sizes or min(sizes) < 100:
        raise typer.BadParameter("--scale sizes start at 100 articles")
    options = ScaleOptions(levels=sizes, postgres_url=postgres_url)
    report = run_scale(get_settings(), options, progress=lambda step: err.print(f"[bold]bench[/] {step}"))
    emit(report.to_dict() if as_json else render_scale(report), failed=bool(report.failures))


def emit(report: dict[str, Any] | str, *, failed: bool) -> None:
    """Print a report (JSON for a dict, else markdown); exit 1 when part of it failed."""
    if isinstance(report, dict):
        sys.stdout.buffer.write(orjson.dumps(report, option=orjson.OPT_INDENT_2) + b"\n")
    else:
        sys.stdout.write(report)
    if failed:
        raise typer.Exit(1)


def bench_api(
    articles: Annotated[int, typer.Option(min=1, help="stored articles to search")] = 100_000,
    rounds: Annotated[int, typer.Option(min=1, help="timed passes over the query mix per endpoint")] = 5,
    sqlite: Annotated[
        Path | None, typer.Option(help="SQLite file to load (reused when it holds enough); default under data/")
    ] = None,
    postgres_url: Annotated[
        str | None, typer.Option(help="also measure PostgreSQL here, in schema bench_api_N (dropped unless --keep)")
    ] = None,
    keep: Annotated[bool, typer.Option(help="keep the loaded SQLite file / PostgreSQL schema for a rerun")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
) -> None:
    """p50/p95 of GET /articles?q= and /articles/facets over a synthetic corpus on SQLite (and PostgreSQL)."""
    import psycopg

    from tools.bench.api import bench_backend
    from tools.bench.api import render_markdown as render_api
    from tools.bench.corpus import SyntheticCorpus

    def progress(step: str) -> None:
        err.print(f"[bold]bench-api[/] {step}")

    corpus = SyntheticCorpus(tag="api")
    path = sqlite or Path("data") / f"bench-api-{articles}.db"
    reports = [bench_backend("sqlite", f"sqlite:///{path.resolve()}", corpus, articles, rounds, progress)]
    if not keep and sqlite is None:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    if postgres_url:
        schema = f"bench_api_{articles}"
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            admin.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}".encode())
        separator = "&" if "?" in postgres_url else "?"
        url = f"{postgres_url}{separator}options=-csearch_path%3D{schema}"
        try:
            reports.append(bench_backend("postgres", url, corpus, articles, rounds, progress))
        finally:
            if not keep:
                with psycopg.connect(postgres_url, autocommit=True) as admin:
                    admin.execute(f"DROP SCHEMA {schema} CASCADE".encode())
    if as_json:
        sys.stdout.buffer.write(orjson.dumps(reports, option=orjson.OPT_INDENT_2) + b"\n")
    else:
        sys.stdout.write(render_api(reports))

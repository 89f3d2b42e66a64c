"""Pipeline commands: push articles, process them in-process, serve one stage, run the local stack, trim."""

from __future__ import annotations

import asyncio
import importlib
import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from newsflow.inputs import InputError, RawInput, read_inputs
from shared.settings import get_settings, redact_url
from shared.streams import STAGES, names, trim_acknowledged
from shared.transport.producer import enqueue_raw

err = Console(stderr=True)


async def push_inputs(items: list[RawInput], redis_url: str, *, progress: Progress | None = None) -> int:
    """Queue the raw articles on the raw stream, advancing the progress bar chunk by chunk."""
    from redis.asyncio import Redis

    redis = Redis.from_url(redis_url)
    task = progress.add_task("queued", total=len(items)) if progress else None

    def advance(count: int) -> None:
        if progress is not None and task is not None:
            progress.advance(task, count)

    try:
        ids = await enqueue_raw(redis, names(), [item.data for item in items], origin="cli", on_chunk=advance)
    finally:
        await redis.aclose()
    return len(ids)


def push(
    paths: Annotated[list[str], typer.Argument(help="files (.txt .html .json .jsonl), directories, or - for stdin")],
    redis_url: Annotated[str | None, typer.Option(help="default: NEWSFLOW_REDIS_URL")] = None,
) -> None:
    """Queue raw articles on the raw stream; lists what could not be read (exit status 1 then)."""
    settings = get_settings()
    items: list[RawInput] = []
    errors: list[InputError] = []
    for item in read_inputs(paths):
        (errors if isinstance(item, InputError) else items).append(item)  # type: ignore[arg-type]
    with Progress(
        TextColumn("[bold]push"), BarColumn(), MofNCompleteColumn(), console=err, disable=not err.is_terminal
    ) as progress:
        try:
            queued = asyncio.run(push_inputs(items, redis_url or settings.redis_url, progress=progress))
        except OSError as exc:
            err.print(f"[red]cannot reach Redis at {redact_url(redis_url or settings.redis_url)}: {exc}")
            raise typer.Exit(2) from exc
    err.print(f"queued {queued} article(s) on {names().raw}")
    for error in errors:
        err.print(f"[red]could not read[/] {error.where}: {error.error}")
    if errors:
        raise typer.Exit(1)


def process(
    paths: Annotated[list[str], typer.Argument(help="files (.txt .html .json .jsonl), directories, or - for stdin")],
    stages: Annotated[str, typer.Option(help="stop after this stage: clean | enrich")] = "enrich",
    batch_size: Annotated[int, typer.Option(help="articles per NLP batch")] = 64,
) -> None:
    """Run ingest -> clean -> enrich in this process (no Redis, no storage); one JSON record per line, in order."""
    from newsflow.process import Failure, LocalPipeline

    if stages not in ("clean", "enrich"):
        raise typer.BadParameter("--stages is clean or enrich")
    pipeline = LocalPipeline(get_settings(), stop_after=stages)  # type: ignore[arg-type]
    out = sys.stdout.buffer
    failures = 0
    for result in pipeline.run(read_inputs(paths), batch_size=batch_size):
        if isinstance(result, Failure):
            failures += 1
            err.print(f"[red]{result.where}[/]: {result.stage} rejected it ({result.reason}): {result.error}")
            continue
        out.write(result.to_json() + b"\n")
    out.flush()
    if failures:
        raise typer.Exit(1)


def serve(stage: Annotated[str, typer.Argument(help="ingest | clean | enrich | publish | api")]) -> None:
    """Run one service in the foreground (a stage: as `faststream run services.STAGE.main:app`; api: uvicorn)."""
    if stage not in (*STAGES, "api"):
        raise typer.BadParameter(f"service is one of {', '.join((*STAGES, 'api'))}")
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover - uvloop is optional off Linux
        pass
    if stage == "api":
        serve_api()
        return
    module = importlib.import_module(f"services.{stage}.main")
    asyncio.run(module.app.run())


def serve_api() -> None:
    """The read API and console on NEWSFLOW_HTTP_HOST:NEWSFLOW_HTTP_PORT (default 8080); SIGTERM drains requests."""
    import uvicorn

    from shared.observability.health import http_port

    settings = get_settings()
    port = http_port(settings, "api")
    if port is None:
        err.print("[red]NEWSFLOW_HTTP_PORT=0 turns HTTP off, and the API is nothing but HTTP")
        raise typer.Exit(2)
    from services.api.main import app as api_app  # imported here: it reads settings and refuses bad ones

    config = uvicorn.Config(
        api_app, host=settings.http_host, port=port, access_log=False, log_config=None, server_header=False,
        timeout_graceful_shutdown=int(settings.shutdown_timeout_s),
    )
    asyncio.run(uvicorn.Server(config).serve())


def up(
    replicas: Annotated[int, typer.Option("--enrich-replicas", help="enrich processes to run")] = 1,
) -> None:
    """The local stack: a private Redis when none answers, then the four services; Ctrl-C stops everything."""
    from newsflow.localstack import run_local_stack

    raise typer.Exit(run_local_stack(get_settings(), enrich_replicas=replicas))


def trim() -> None:
    """Trim the pipeline streams below what every consumer group has acknowledged (XTRIM MINID)."""
    from redis.asyncio import Redis

    async def trim_all() -> dict[str, int]:
        redis = Redis.from_url(get_settings().redis_url)
        try:
            return {stream: await trim_acknowledged(redis, stream) for stream in names().pipeline_streams}
        finally:
            await redis.aclose()

    for stream, removed in asyncio.run(trim_all()).items():
        err.print(f"{stream}: trimmed {removed} acknowledged entr{'y' if removed == 1 else 'ies'}")


def register_pipeline_commands(app: typer.Typer) -> None:
    """Attach the pipeline commands to the `newsflow` app."""
    for command in (push, process, serve, up, trim):
        app.command()(command)

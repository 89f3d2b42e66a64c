"""Pipeline commands: push articles, process them in-process, serve one stage, run the local stack, trim."""

from __future__ import annotations

import asyncio
import importlib
import signal
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from newsflow.cli.errors import fail
from newsflow.inputs import InputError, RawInput, expand_paths, read_inputs
from newsflow.warc import CheckpointMismatch, WarcPush, default_checkpoint, is_warc, push_warc
from shared.errors import ConfigurationError
from shared.observability.logging import get_logger
from shared.settings import Settings, get_settings, redact_url
from shared.streams import SERVICES, names, trim_acknowledged
from shared.transport.producer import enqueue_raw

err = Console(stderr=True, soft_wrap=True)


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


async def push_warc_file(
    path: Path, settings: Settings, redis_url: str, *, checkpoint: Path, resume: bool
) -> WarcPush:
    """Stream one WARC file onto the raw stream, with a progress bar in bytes and a checkpoint per chunk."""
    from redis.asyncio import Redis

    redis = Redis.from_url(redis_url)
    streams = names(settings)

    async def enqueue(articles: list[dict[str, Any]]) -> int:
        # enqueue_raw returns once Redis has replied to the XADDs: what "acknowledged" means for --resume.
        return len(await enqueue_raw(redis, streams, articles, origin=f"warc:{path.name}"))

    size = path.stat().st_size
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
               TextColumn("{task.fields[articles]:,} articles"), TimeRemainingColumn())
    with Progress(*columns, console=err, disable=not err.is_terminal) as progress:
        task = progress.add_task(path.name, total=size, articles=0)

        def advance(offset: int, state: WarcPush) -> None:
            progress.update(task, completed=offset, articles=state.articles)

        try:
            return await push_warc(
                path, enqueue, checkpoint=checkpoint, resume=resume, max_bytes=settings.max_article_bytes,
                on_progress=advance,
            )
        finally:
            await redis.aclose()


def _report_warc(path: Path, state: WarcPush, raw_stream: str, checkpoint: Path) -> None:
    """One summary line for the whole file (a resumed push counts what earlier runs did too), then its damage."""
    read_mb = (state.offset - state.started_offset) / 1e6
    run_records = state.records - state.records_before
    speed = (
        f" ({run_records / state.seconds:,.0f} records/s, {read_mb / state.seconds:,.1f} MB/s)"
        if state.seconds > 0.05
        else ""
    )
    skipped = ", ".join(f"{reason} {count:,}" for reason, count in sorted(state.skipped.items())) or "none"
    resumed = f"; resumed at byte {state.started_offset:,}, totals for the whole file" if state.started_offset else ""
    err.print(
        f"{path}: queued {state.articles:,} article(s) on {raw_stream} from {state.records:,} record(s); "
        f"skipped {skipped}; {state.problem_count:,} damaged{resumed}; read {read_mb:,.1f} MB in "
        f"{state.seconds:.1f}s{speed}; checkpoint {checkpoint}"
    )
    for offset, problem in state.problems:
        err.print(f"[red]damaged record[/] {path}@{offset}: {problem}")
    if state.problem_count > len(state.problems):
        err.print(f"[red]… and {state.problem_count - len(state.problems):,} more damaged record(s)")


def require_paths(paths: list[str]) -> None:
    """Every named file or directory exists (`-` is stdin); else one line and exit 2, before anything is read."""
    for name in paths:
        if name != "-" and not Path(name).exists():
            fail(f"no such file or directory: {name}")


def push(
    paths: Annotated[
        list[str], typer.Argument(help="files (.txt .html .json .jsonl .warc .warc.gz), directories, or - for stdin")
    ],
    redis_url: Annotated[str | None, typer.Option(help="default: NEWSFLOW_REDIS_URL")] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="WARC: go on after the last record acknowledged (see the checkpoint)")
    ] = False,
    checkpoint: Annotated[
        Path | None,
        typer.Option(help="WARC: checkpoint file (default DATA_DIR/checkpoints/NAME.HASH.json); one WARC file only"),
    ] = None,
) -> None:
    """Queue raw articles on the raw stream; lists what could not be read (exit status 1 then)."""
    settings = get_settings()
    url = redis_url or settings.redis_url
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise typer.BadParameter(f"{redact_url(url)!r} is not a Redis URL (redis://, rediss:// or unix://)")
    require_paths(paths)
    expanded = list(expand_paths(paths))
    warcs = [p for p in expanded if isinstance(p, Path) and is_warc(p) and p.is_file()]
    others = [p for p in expanded if not (isinstance(p, Path) and p in warcs)]
    if checkpoint is not None and len(warcs) != 1:
        raise typer.BadParameter("--checkpoint names the checkpoint of one WARC file; give exactly one")
    damaged = False
    for path in warcs:
        saved_at = checkpoint or default_checkpoint(path, Path(settings.data_dir))
        try:
            state = asyncio.run(push_warc_file(path, settings, url, checkpoint=saved_at, resume=resume))
        except CheckpointMismatch as exc:
            fail(f"{path}: {exc}")
        except OSError as exc:
            fail(
                f"{path}: cannot push ({type(exc).__name__}: {exc}); Redis at {redact_url(url)}; run the same "
                f"command with --resume to go on from checkpoint {saved_at}"
            )
        if state.complete and state.started_offset >= state.size and state.records == state.records_before:
            err.print(f"{path}: already pushed to the end (checkpoint {saved_at}); nothing queued")
            continue
        _report_warc(path, state, names(settings).raw, saved_at)
        damaged = damaged or state.problem_count > 0
    if warcs and not others:
        raise typer.Exit(1 if damaged else 0)
    items: list[RawInput] = []
    errors: list[InputError] = []
    for item in read_inputs(others, max_bytes=settings.max_article_bytes):
        (errors if isinstance(item, InputError) else items).append(item)  # type: ignore[arg-type]
    with Progress(
        TextColumn("[bold]push"), BarColumn(), MofNCompleteColumn(), console=err, disable=not err.is_terminal
    ) as progress:
        try:
            queued = asyncio.run(push_inputs(items, url, progress=progress))
        except OSError as exc:
            fail(f"cannot reach Redis at {redact_url(url)}: {exc}")
    err.print(f"queued {queued} article(s) on {names().raw}")
    for error in errors:
        err.print(f"[red]could not read[/] {error.where}: {error.error}")
    if errors or damaged:
        raise typer.Exit(1)


def process(
    paths: Annotated[
        list[str], typer.Argument(help="files (.txt .html .json .jsonl .warc .warc.gz), directories, or - for stdin")
    ],
    stages: Annotated[str, typer.Option(help="stop after this stage: clean | enrich")] = "enrich",
    batch_size: Annotated[int, typer.Option(min=1, help="articles per NLP batch")] = 64,
) -> None:
    """Run ingest -> clean -> enrich in this process (no Redis, no storage); one JSON record per line, in order."""
    from newsflow.process import Failure, LocalPipeline

    if stages not in ("clean", "enrich"):
        raise typer.BadParameter("--stages is clean or enrich")
    require_paths(paths)
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


def serve(stage: Annotated[str, typer.Argument(help="fetch | ingest | clean | enrich | publish | api")]) -> None:
    """Run one service in the foreground (a stage: as `faststream run services.STAGE.main:app`; api: uvicorn)."""
    if stage not in (*SERVICES, "api"):
        raise typer.BadParameter(f"service is one of {', '.join((*SERVICES, 'api'))}")
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover - uvloop is optional off Linux
        pass
    if stage == "api":
        serve_api()
        return
    module = importlib.import_module(f"services.{stage}.main")
    log = get_logger("newsflow.serve")
    try:
        asked = asyncio.run(run_until_asked_to_stop(module.app))
    except ConfigurationError as exc:
        # Settings or a dependency that cannot work (e.g. a database that is not UTF8): one clear line, exit 2.
        log.error(exc.event, stage=stage, error=str(exc))
        raise typer.Exit(2) from None
    except Exception:
        # Anything else that ends the service is one structured event (a JSON line in a container, traceback as
        # a field) rather than a terminal-drawn traceback; the supervisor or restart policy brings it back.
        log.exception("service.crashed", stage=stage)
        raise typer.Exit(1) from None
    if not asked:
        # It stopped by itself (a state no retry could fix, or FastStream giving up a subscriber): exit 0 would
        # tell `restart: on-failure` and every supervisor that all is well.
        failure = getattr(getattr(module, "broker", None), "failure", None)
        log.error("service.stopped_unexpectedly", stage=stage, reason=failure or "the consumer stopped by itself")
        raise typer.Exit(1)


async def run_until_asked_to_stop(app: Any) -> bool:
    """Run a FastStream app; True when it stopped because SIGTERM or SIGINT asked it to."""
    asked: list[int] = []

    def stop(sig: int) -> None:
        asked.append(sig)
        app.exit()

    running = asyncio.ensure_future(app.run())
    await asyncio.sleep(0)  # app.run() has installed FastStream's own handlers: take them over, keeping what they do
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop, sig)
    await running
    return bool(asked)


def serve_api() -> None:
    """The read API and console on NEWSFLOW_HTTP_HOST:NEWSFLOW_HTTP_PORT (default 8080); SIGTERM drains requests."""
    import uvicorn

    from shared.observability.health import bind_socket, http_port
    from shared.observability.httpserver import server_config

    settings = get_settings()
    port = http_port(settings, "api")
    if port is None:
        fail("NEWSFLOW_HTTP_PORT=0 turns HTTP off, and the API is nothing but HTTP")
    from services.api.main import app as api_app  # imported here: it reads settings and refuses bad ones

    # The port is bound before the app starts, so `api.started` means it is ours; a taken port is one line
    # (the event the stages log) and exit 1, not uvicorn's message after the app has started.
    try:
        sock = bind_socket(settings.http_host, port)
    except OSError as exc:
        get_logger("newsflow.http").error(
            "http.bind_failed", stage="api", host=settings.http_host, port=port, error=str(exc)
        )
        raise typer.Exit(1) from None
    config = server_config(
        api_app, settings,
        timeout_graceful_shutdown=int(settings.shutdown_timeout_s),
    )
    asyncio.run(uvicorn.Server(config).serve(sockets=[sock]))


def up(
    replicas: Annotated[int, typer.Option("--enrich-replicas", min=1, help="enrich processes to run")] = 1,
) -> None:
    """The local stack: a private Redis when none answers, then the five services; Ctrl-C stops everything."""
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

"""`newsflow status`: the streams, their groups and consumers, the DLQ, the last minute's throughput, and a verdict.

The verdict is not ok (exit status 1) when a stage's group is missing, a stage has a backlog and no live consumer,
entries are pending past the claim time, or dead letters arrived in the last window — each named per stage.
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Annotated

import orjson
import typer
from redis.asyncio import Redis
from redis.exceptions import RedisError
from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from shared.observability.status import (
    COUNT_CAP,
    DEFAULT_DLQ_WINDOW_S,
    PipelineStatus,
    collect_status,
    format_age,
)
from shared.settings import get_settings, redact_url
from shared.streams import names

EXIT_NOT_OK = 1
EXIT_UNREACHABLE = 2

# Off a terminal (cron, CI logs) rich would wrap at 80 columns; the tables need more.
out = Console() if sys.stdout.isatty() else Console(width=160)
err = Console(stderr=True, soft_wrap=True)


_age = format_age


def _count(n: int) -> str:
    return f"≥{n:,}" if n >= COUNT_CAP else f"{n:,}"


def render_status(status: PipelineStatus) -> Group:
    """Rich tables: streams and their groups, the consumers of each group, the DLQ by stage and reason."""
    streams = Table(title="streams", title_justify="left")
    for column in ("stream", "length", "added/min", "group", "lag", "pending", "oldest pending", "stuck", "consumers"):
        streams.add_column(column, justify="left" if column in ("stream", "group") else "right", no_wrap=True)
    consumers = Table(title="consumers", title_justify="left")
    for column in ("stream", "group", "consumer", "pending", "idle"):
        consumers.add_column(column, justify="right" if column in ("pending", "idle") else "left", no_wrap=True)
    for stream in status.streams:
        if not stream.groups:
            streams.add_row(stream.name, f"{stream.length:,}", _count(stream.last_minute), "-", "", "", "", "", "")
        for i, group in enumerate(stream.groups):
            streams.add_row(
                stream.name if i == 0 else "",
                f"{stream.length:,}" if i == 0 else "",
                _count(stream.last_minute) if i == 0 else "",
                group.name,
                f"{group.lag:,}" if group.lag is not None else "?",
                f"{group.pending:,}",
                _age(group.oldest_pending_age_s),
                Text(f"{group.stuck_entries:,}", style="bold red") if group.stuck else Text("0"),
                Text(str(len(group.consumers))) if group.consumers else Text("none", style="yellow"),
            )
            for consumer in group.consumers:
                consumers.add_row(
                    stream.name, group.name, consumer.name, f"{consumer.pending:,}", _age(consumer.idle_s)
                )
    dlq_summary = Text(f"dlq: {status.dlq_length:,} entries, {status.dlq_last_minute:,} in the last minute")
    dlq = Table(title="dlq by stage and reason", title_justify="left")
    dlq.add_column("stage")
    dlq.add_column("reason")
    dlq.add_column("entries", justify="right")
    for stage, reasons in status.dlq_by_reason.items():
        for reason, count in reasons.items():
            dlq.add_row(stage, reason, f"{count:,}")
    sources = Table(title="sources (fetch)", title_justify="left")
    for column in ("source", "kind", "last poll", "failed polls in a row", "queued", "fetched", "failed", "skipped",
                   "last error"):
        sources.add_column(column, justify="left" if column in ("source", "kind", "last poll", "last error")
                           else "right", overflow="fold")
    for source in status.sources:
        error = source.last_error if source.failing else source.last_page_error
        sources.add_row(
            source.url, source.kind or "-", f"{source.last_poll_at or '-'} {source.last_poll or ''}".strip(),
            Text(f"{source.consecutive_failures:,}", style="bold red" if source.failing else ""),
            f"{source.urls_queued:,}", f"{source.pages_fetched:,}",
            Text(f"{source.pages_failed:,}", style="red" if source.pages_failed else ""),
            f"{source.pages_skipped:,}", error or "",
        )
    if status.problems:
        verdict = Text("NOT OK:", style="bold red")
        for problem in status.problems:
            verdict.append(f"\n  {problem.stage}: {problem.reason.replace('_', ' ')}: {problem.detail}", style="red")
    else:
        verdict = Text(
            f"ok: every stage's group read by a live consumer, nothing pending for more than "
            f"{status.stuck_after_s:g}s, no dead letters in the last {status.dlq_window_s:g}s",
            style="green",
        )
    failing = Text(
        f"failing sources: {', '.join(s.url for s in status.failing_sources)}" if status.failing_sources else "",
        style="bold red",
    )
    if not status.sources:
        return Group(streams, consumers, dlq_summary, dlq, verdict)
    return Group(streams, consumers, dlq_summary, dlq, sources, failing, verdict)


async def _snapshot(redis_url: str, stuck_after_s: float, live_within_s: float, dlq_window_s: float) -> PipelineStatus:
    redis = Redis.from_url(redis_url, socket_connect_timeout=5, socket_timeout=10)
    try:
        return await collect_status(
            redis, names(), stuck_after_s=stuck_after_s, live_within_s=live_within_s, dlq_window_s=dlq_window_s
        )
    finally:
        await redis.aclose()


def status(
    watch: Annotated[bool, typer.Option("--watch", "-w", help="refresh until Ctrl-C")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON document (per refresh with --watch)")] = False,
    stuck_after: Annotated[
        float | None,
        typer.Option(
            "--stuck-after",
            min=0.001,
            help="an entry pending longer is stuck (seconds; default twice NEWSFLOW_CLAIM_IDLE_MS: past it, no "
            "live consumer claimed it)",
        ),
    ] = None,
    dlq_window: Annotated[
        float,
        typer.Option(
            "--dlq-window", min=0, help="dead letters newer than this make the verdict not ok (seconds; 0: never)"
        ),
    ] = DEFAULT_DLQ_WINDOW_S,
    interval: Annotated[float, typer.Option(min=0.1, help="seconds between refreshes with --watch")] = 2.0,
) -> None:
    """Streams, groups, consumers, DLQ and throughput; exit 1 when something is not ok, 2 when Redis is unreachable.

    Not ok: a stage's group is missing, a stage has a backlog and no live consumer (none read within
    NEWSFLOW_CLAIM_IDLE_MS), entries are pending past --stuck-after, or dead letters arrived within --dlq-window.
    """
    settings = get_settings()
    redis_url = settings.redis_url
    claim_idle_s = settings.claim_idle_ms / 1000
    stuck_after_s = stuck_after if stuck_after is not None else 2 * claim_idle_s

    def take() -> PipelineStatus:
        try:
            return asyncio.run(_snapshot(redis_url, stuck_after_s, claim_idle_s, dlq_window))
        except (RedisError, OSError) as exc:
            err.print(f"[red]cannot read Redis at {redact_url(redis_url)}: {type(exc).__name__}: {escape(str(exc))}")
            raise typer.Exit(EXIT_UNREACHABLE) from exc

    def emit_json(snapshot: PipelineStatus) -> None:
        typer.echo(orjson.dumps(snapshot.to_dict()).decode())

    snapshot = take()
    if not watch:
        if as_json:
            emit_json(snapshot)
        else:
            out.print(render_status(snapshot))
        raise typer.Exit(0 if snapshot.ok else EXIT_NOT_OK)
    try:
        if as_json:
            while True:
                emit_json(snapshot)
                time.sleep(interval)
                snapshot = take()
        with Live(render_status(snapshot), console=out, auto_refresh=False) as live:
            while True:
                time.sleep(interval)
                snapshot = take()
                live.update(render_status(snapshot), refresh=True)
    except KeyboardInterrupt:
        pass
    raise typer.Exit(0 if snapshot.ok else EXIT_NOT_OK)

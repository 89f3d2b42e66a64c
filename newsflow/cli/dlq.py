"""`newsflow dlq`: what could not be processed, why, and putting it back once fixed."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import orjson
import typer
from redis.asyncio import Redis
from rich.console import Console
from rich.table import Table

from shared.settings import get_settings
from shared.streams import names
from shared.transport import dlq

dlq_app = typer.Typer(help="Inspect, replay and purge the dead-letter queue.", no_args_is_help=True)
console = Console()
T = TypeVar("T")


def _with_redis(job: Callable[[Redis], Awaitable[T]]) -> T:
    async def run() -> T:
        redis = Redis.from_url(get_settings().redis_url)
        try:
            return await job(redis)
        finally:
            await redis.aclose()

    return asyncio.run(run())


@dlq_app.command("list")
def list_command(
    stage: Annotated[str | None, typer.Option(help="only this stage")] = None,
    reason: Annotated[str | None, typer.Option(help="only this reason code")] = None,
    limit: Annotated[int, typer.Option(help="at most this many")] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines")] = False,
) -> None:
    """Dead letters, oldest first."""
    entries = _with_redis(lambda r: dlq.list_entries(r, names(), stage=stage, reason=reason, limit=limit))
    if as_json:
        for entry in entries:
            typer.echo(orjson.dumps(entry.summary()).decode())
        return
    table = Table("id", "stage", "reason", "deliveries", "failed at", "error")
    for entry in entries:
        letter = entry.letter
        table.add_row(
            entry.id,
            letter.stage,
            letter.reason,
            str(letter.deliveries),
            letter.failed_at.strftime("%Y-%m-%d %H:%M:%S"),
            letter.error[:80],
        )
    console.print(table)
    console.print(f"{len(entries)} entr{'y' if len(entries) == 1 else 'ies'}")


@dlq_app.command("show")
def show_command(entry_id: str, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """One dead letter in full: reason, error, traceback and the original payload."""
    entry = _with_redis(lambda r: dlq.get_entry(r, names(), entry_id))
    if entry is None:
        console.print(f"[red]no DLQ entry {entry_id}")
        raise typer.Exit(1)
    if as_json:
        typer.echo(orjson.dumps(entry.summary(), option=orjson.OPT_INDENT_2).decode())
        return
    for key, value in entry.summary().items():
        console.print(f"[bold]{key}[/]: {value}", markup=True, highlight=False)


@dlq_app.command("replay")
def replay_command(
    entry_ids: Annotated[list[str] | None, typer.Argument(help="DLQ entry ids")] = None,
    replay_all: Annotated[bool, typer.Option("--all", help="every entry")] = False,
    reason: Annotated[str | None, typer.Option(help="every entry with this reason")] = None,
    stage: Annotated[str | None, typer.Option(help="with --all/--reason: only this stage")] = None,
) -> None:
    """Put dead letters back on their stage's input stream (each leaves the DLQ once re-queued)."""
    if not entry_ids and not replay_all and reason is None:
        raise typer.BadParameter("name entry ids, or --all, or --reason R")

    async def job(redis: Redis) -> tuple[int, list[str]]:
        streams = names()
        if entry_ids:
            found = [await dlq.get_entry(redis, streams, i) for i in entry_ids]
            missing = [i for i, e in zip(entry_ids, found, strict=True) if e is None]
            entries = [e for e in found if e is not None]
        else:
            missing = []
            entries = await dlq.list_entries(redis, streams, stage=stage, reason=reason)
        return len(await dlq.replay(redis, streams, entries)), missing

    replayed, missing = _with_redis(job)
    console.print(f"replayed {replayed} entr{'y' if replayed == 1 else 'ies'}")
    for entry_id in missing:
        console.print(f"[red]no DLQ entry {entry_id}")
    if missing:
        raise typer.Exit(1)


@dlq_app.command("purge")
def purge_command(
    reason: Annotated[str | None, typer.Option(help="only this reason")] = None,
    stage: Annotated[str | None, typer.Option(help="only this stage")] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask for confirmation")] = False,
) -> None:
    """Delete dead letters for good (asks first)."""

    async def job(redis: Redis) -> int:
        entries = await dlq.list_entries(redis, names(), stage=stage, reason=reason)
        if not entries:
            return 0
        if not yes and not typer.confirm(f"Delete {len(entries)} DLQ entries for good?"):
            raise typer.Abort()
        return await dlq.purge(redis, names(), entries)

    console.print(f"purged {_with_redis(job)} entries")

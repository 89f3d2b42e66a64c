"""`newsflow dlq`: what could not be processed, why, and putting it back once fixed (or saving it, then deleting)."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import IO, Annotated, TypeVar

import orjson
import typer
from redis.asyncio import Redis
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from newsflow.cli.errors import EXIT_INCOMPLETE, fail, report
from shared.settings import get_settings
from shared.streams import SERVICES, names
from shared.transport import dlq

dlq_app = typer.Typer(help="Inspect, replay, export and purge the dead-letter queue.", no_args_is_help=True)
console = Console() if sys.stdout.isatty() else Console(width=160)
err = Console(stderr=True, soft_wrap=True, highlight=False)
T = TypeVar("T")
# `dlq show` prints this much of a payload unless --full.
SHOWN_BYTES = 2_000
# `dlq export --delete` deletes what it wrote after every this many entries, once they are on disk.
EXPORT_CHUNK = 100


def _stage(value: str | None) -> str | None:
    if value is not None and value not in SERVICES:
        raise typer.BadParameter(f"{value!r} is not a stage; one of {', '.join(SERVICES)}")
    return value


def _entry_id(value: str) -> str:
    try:
        return dlq.check_entry_id(value)
    except dlq.BadEntryId as exc:
        raise typer.BadParameter(str(exc)) from exc


def _entry_ids(values: list[str] | None) -> list[str] | None:
    return [_entry_id(value) for value in values] if values else values


StageOption = Annotated[str | None, typer.Option(help="only this stage", callback=_stage)]
ReasonOption = Annotated[str | None, typer.Option(help="only this reason code")]
EntryId = Annotated[str, typer.Argument(metavar="ID", help="a DLQ entry id (from `dlq list`)", callback=_entry_id)]


def _with_redis(job: Callable[[Redis], Awaitable[T]]) -> T:
    async def run() -> T:
        redis = Redis.from_url(get_settings().redis_url, socket_connect_timeout=5, socket_timeout=30)
        try:
            return await job(redis)
        finally:
            await redis.aclose()

    return asyncio.run(run())


def _missing(entry_id: str) -> str:
    return f"no DLQ entry {entry_id} (newsflow dlq list shows the entries)"


@dlq_app.command("list")
def list_command(
    stage: StageOption = None,
    reason: ReasonOption = None,
    limit: Annotated[int, typer.Option(min=1, help="at most this many")] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines (headers: no payloads)")] = False,
) -> None:
    """Dead letters, oldest first: stage, reason, error and payload size (never the payloads themselves)."""
    headers = _with_redis(lambda r: dlq.list_headers(r, names(), stage=stage, reason=reason, limit=limit))
    if as_json:
        for header in headers:
            typer.echo(orjson.dumps(header.summary()).decode())
        return
    table = Table("id", "stage", "reason", "deliveries", "failed at", "bytes", "error")
    for header in headers:
        letter = header.letter
        table.add_row(
            header.id,
            letter.stage,
            escape(letter.reason),
            str(letter.deliveries),
            letter.failed_at.strftime("%Y-%m-%d %H:%M:%S"),
            f"{header.payload_bytes:,}",
            escape(letter.error[:80]),
        )
    console.print(table)
    console.print(f"{len(headers)} entr{'y' if len(headers) == 1 else 'ies'}")


@dlq_app.command("show")
def show_command(
    entry_id: EntryId,
    full: Annotated[bool, typer.Option("--full", help=f"the whole payload (default: its first {SHOWN_BYTES:,} bytes)")]
    = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """One dead letter: reason, error, traceback and the original payload (cut short unless --full)."""
    entry = _with_redis(lambda r: dlq.get_entry(r, names(), entry_id, limit=None if full else SHOWN_BYTES))
    if entry is None:
        fail(_missing(entry_id))
    if as_json:
        typer.echo(orjson.dumps(entry.summary(), option=orjson.OPT_INDENT_2).decode())
        return
    for key, value in entry.header.summary().items():
        if value is not None and key != "traceback":
            console.print(f"[bold]{key}[/]: {escape(str(value))}", highlight=False)
    if entry.letter.traceback:
        console.print(f"[bold]traceback[/]:\n{escape(entry.letter.traceback)}", highlight=False)
    if entry.missing:
        console.print("[bold]payload[/]: [red]missing[/] (its key is gone; nothing to replay)")
        return
    if entry.complete:
        console.print("[bold]payload[/]:")
    else:
        console.print(
            f"[bold]payload[/] (the first {len(entry.payload):,} of {entry.header.payload_bytes:,} bytes; "
            "--full prints it all):"
        )
    # Written as it is, not through rich: no markup, no wrapping, and fast on a payload of megabytes.
    sys.stdout.buffer.write(entry.payload + (b"" if entry.payload.endswith(b"\n") else b"\n"))
    sys.stdout.flush()


@dlq_app.command("replay")
def replay_command(
    entry_ids: Annotated[
        list[str] | None, typer.Argument(metavar="[ID]...", help="DLQ entry ids", callback=_entry_ids)
    ] = None,
    replay_all: Annotated[bool, typer.Option("--all", help="every entry")] = False,
    reason: Annotated[str | None, typer.Option(help="every entry with this reason")] = None,
    stage: Annotated[str | None, typer.Option(help="with --all/--reason: only this stage", callback=_stage)] = None,
) -> None:
    """Put dead letters back on their stage's input stream (each leaves the DLQ once re-queued).

    Named ids must all be in the DLQ, or nothing is replayed.
    """
    if not entry_ids and not replay_all and reason is None:
        raise typer.BadParameter("name entry ids, or --all, or --reason R")
    if entry_ids and (replay_all or reason is not None or stage is not None):
        raise typer.BadParameter("name entry ids, or select with --all/--reason/--stage, not both")

    async def job(redis: Redis) -> tuple[list[dlq.DlqHeader], list[str | None]]:
        streams = names()
        if entry_ids:
            found = [await dlq.get_header(redis, streams, i) for i in entry_ids]
            missing = [i for i, h in zip(entry_ids, found, strict=True) if h is None]
            if missing:
                fail(f"{_missing(', '.join(missing))}; nothing replayed")
            headers = [h for h in found if h is not None]
        else:
            headers = await dlq.list_headers(redis, streams, stage=stage, reason=reason)
        return headers, await dlq.replay(redis, streams, headers)

    headers, requeued = _with_redis(job)
    gone = [h.id for h, new_id in zip(headers, requeued, strict=True) if new_id is None]
    replayed = len(requeued) - len(gone)
    err.print(f"replayed {replayed} entr{'y' if replayed == 1 else 'ies'}")
    if gone:
        # Replayed or deleted by someone else meanwhile, or written with no payload to put back.
        report(f"not replayed (gone meanwhile, or no payload): {', '.join(gone)}")
        raise typer.Exit(EXIT_INCOMPLETE)


@dlq_app.command("purge")
def purge_command(
    reason: ReasonOption = None,
    stage: StageOption = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask for confirmation")] = False,
) -> None:
    """Delete dead letters (and their payloads) for good (asks first; `dlq export` saves them)."""

    async def job(redis: Redis) -> int:
        headers = await dlq.list_headers(redis, names(), stage=stage, reason=reason)
        if not headers:
            return 0
        if not yes and not typer.confirm(f"Delete {len(headers)} DLQ entries for good?"):
            raise typer.Abort()
        return await dlq.delete(redis, names(), headers)

    err.print(f"purged {_with_redis(job)} entries")


def _open_output(output: Path | None) -> IO[bytes]:
    if output is None:
        return sys.stdout.buffer
    try:
        return output.open("ab")
    except OSError as exc:
        fail(f"cannot write {output}: {exc.strerror or exc}")


@dlq_app.command("export")
def export_command(
    output: Annotated[Path | None, typer.Option("--output", "-o", help="JSONL file to append to; default stdout")]
    = None,
    stage: StageOption = None,
    reason: ReasonOption = None,
    delete: Annotated[
        bool, typer.Option("--delete", help="delete each entry from the DLQ once it is written and synced to disk")
    ] = False,
) -> None:
    """Write dead letters with their whole payloads as JSON lines, oldest first, one payload in memory at a time.

    Each line: the letter's fields, `origin`, `payload_bytes` and `payload` (text; `payload_base64` when the payload
    is not UTF-8). Save the DLQ before it is trimmed (NEWSFLOW_DLQ_MAXLEN) or purged.
    """
    if delete and output is None:
        raise typer.BadParameter("--delete needs --output FILE: entries are deleted once they are on disk")
    sink = _open_output(output)

    def synced() -> None:
        sink.flush()
        if output is not None:
            os.fsync(sink.fileno())

    async def job(redis: Redis) -> tuple[int, int]:
        streams = names()
        written = deleted = 0
        chunk: list[dlq.DlqHeader] = []
        async for entry in dlq.iter_entries(redis, streams, stage=stage, reason=reason):
            sink.write(dlq.export_line(entry))
            written += 1
            chunk.append(entry.header)
            if delete and len(chunk) >= EXPORT_CHUNK:
                synced()
                deleted += await dlq.delete(redis, streams, chunk)
                chunk = []
        synced()
        if delete and chunk:
            deleted += await dlq.delete(redis, streams, chunk)
        return written, deleted

    try:
        written, deleted = _with_redis(job)
    finally:
        if output is not None:
            sink.close()
    where = f" to {output}" if output is not None else ""
    deleted_note = f"; deleted {deleted}" if delete else ""
    err.print(f"exported {written} entr{'y' if written == 1 else 'ies'}{where}{deleted_note}")

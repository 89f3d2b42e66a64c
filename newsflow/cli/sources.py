"""`newsflow sources add|list|remove`: the feeds and news sitemaps the fetch stage polls, and how they are doing."""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime
from typing import Annotated

import orjson
import typer
from redis.asyncio import Redis
from redis.exceptions import RedisError
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from newsflow.cli.articles import JsonFlag, StorageUrl, run_with_storage
from newsflow.cli.errors import fail
from services.fetch.addresses import AddressGuard
from services.fetch.coordination import Coordination
from services.fetch.urls import normalise_source_url
from shared.observability.sources import SourceState, read_source_states
from shared.settings import get_settings, redact_url
from shared.storage import Source, source_id
from shared.streams import names

sources_app = typer.Typer(help="Feeds and news sitemaps the fetch stage polls.", no_args_is_help=True)
out = Console() if sys.stdout.isatty() else Console(width=200)
err = Console(stderr=True, soft_wrap=True)


def _ago(text: str | None, now: datetime) -> str:
    """`3m ago` / `in 4m` for an ISO time."""
    if not text:
        return "-"
    seconds = (now - datetime.fromisoformat(text)).total_seconds()
    span = abs(seconds)
    amount = f"{span:.0f}s" if span < 60 else f"{span / 60:.0f}m" if span < 3600 else f"{span / 3600:.1f}h"
    return f"{amount} ago" if seconds >= 0 else f"in {amount}"


async def _states() -> dict[str, SourceState] | None:
    """The fetch stage's per-source state from Redis; None (and a note) when Redis cannot be read."""
    settings = get_settings()
    redis = Redis.from_url(settings.redis_url, socket_connect_timeout=3, socket_timeout=10)
    try:
        return {state.id: state for state in await read_source_states(redis, names(settings))}
    except (RedisError, OSError) as exc:
        where = redact_url(settings.redis_url)
        err.print(f"[yellow]no poll state: cannot read Redis at {where} ({type(exc).__name__})")
        return None
    finally:
        await redis.aclose()


@sources_app.command("add")
def add_command(
    url: Annotated[str, typer.Argument(help="an RSS/Atom feed, a sitemap or sitemap index (.xml or .xml.gz)")],
    interval: Annotated[
        int | None, typer.Option(min=1, help="seconds between polls (default NEWSFLOW_FETCH_POLL_INTERVAL_S)")
    ] = None,
    name: Annotated[str | None, typer.Option(help="a label for listings")] = None,
    storage_url: StorageUrl = None,
) -> None:
    """Register a feed or sitemap; the fetch stage polls it within seconds, then every INTERVAL."""
    try:
        normalised = normalise_source_url(url)
    except ValueError as exc:
        err.print(f"[red]cannot add: {escape(str(exc))}", soft_wrap=True)
        raise typer.Exit(2) from exc
    settings = get_settings()
    blocked = AddressGuard.for_settings(settings.fetch_allow_private).refuse_literal(normalised)
    if blocked is not None:
        # Registered all the same: the fetch stage that polls it may run with the guard lifted (`newsflow up`).
        err.print(f"[yellow]note: {blocked} is not a public address; a fetch stage polls it only with "
                  "NEWSFLOW_FETCH_ALLOW_PRIVATE=true", soft_wrap=True)
    every = interval or settings.fetch_poll_interval_s
    source = Source(id=source_id(normalised), url=normalised, name=name, interval_s=every, added_at=datetime.now(UTC))
    stored, created = run_with_storage(storage_url, lambda storage: storage.add_source(source), create=True)
    if created:
        err.print(f"added {stored.id} {stored.url} (polled every {stored.interval_s}s)")
    else:
        err.print(f"already registered as {stored.id} {stored.url} (polled every {stored.interval_s}s)")


@sources_app.command("list")
def list_command(as_json: JsonFlag = False, storage_url: StorageUrl = None) -> None:
    """Registered sources with their last poll, next poll, pages fetched and failures."""
    registered = run_with_storage(storage_url, lambda storage: storage.list_sources())
    states = asyncio.run(_states()) or {}
    if as_json:
        for source in registered:
            state = states.get(source.id)
            typer.echo(orjson.dumps({**source.to_dict(), "state": state.to_dict() if state else None}).decode())
        return
    if not registered:
        err.print("no sources registered: newsflow sources add URL")
        return
    now = datetime.now(UTC)
    table = Table(title="sources", title_justify="left")
    for column in ("id", "url", "kind", "every", "last poll", "next poll", "queued", "fetched", "failed",
                   "skipped", "last error"):
        table.add_column(column, justify="right" if column in ("every", "queued", "fetched", "failed", "skipped")
                         else "left", overflow="fold")
    for source in registered:
        state = states.get(source.id)
        label = f"{source.name}\n{source.url}" if source.name else source.url
        if state is None:
            table.add_row(source.id, escape(label), "-", f"{source.interval_s}s", "not yet", "-", "", "", "", "", "")
            continue
        last = f"{_ago(state.last_poll_at, now)} {state.last_poll or ''}".strip()
        if state.failing:
            last_poll = Text(f"{last} ({state.consecutive_failures} in a row)", style="bold red")
        else:
            last_poll = Text(last)
        error = state.last_error if state.failing else state.last_page_error
        table.add_row(
            source.id, escape(label), state.kind or "-", f"{source.interval_s}s", last_poll,
            _ago(state.next_poll_at, now), f"{state.urls_queued:,}", f"{state.pages_fetched:,}",
            Text(f"{state.pages_failed:,}", style="red" if state.pages_failed else ""), f"{state.pages_skipped:,}",
            escape(error or ""),
        )
    out.print(table)


@sources_app.command("remove")
def remove_command(
    key: Annotated[str, typer.Argument(help="the source's id (from `sources list`) or its URL")],
    storage_url: StorageUrl = None,
) -> None:
    """Stop polling a source; what it already queued is still fetched."""
    try:
        key = normalise_source_url(key) if "://" in key else key
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    removed = run_with_storage(storage_url, lambda storage: storage.remove_source(key))
    if removed is None:
        fail(f"no source {key} (newsflow sources list shows the registered ones)")

    async def forget(source: Source) -> None:
        settings = get_settings()
        redis = Redis.from_url(settings.redis_url, socket_connect_timeout=3, socket_timeout=10)
        try:
            await Coordination(redis, names(settings), "cli").forget_source(source.id, source.url)
        except (RedisError, OSError) as exc:
            err.print(f"[yellow]cannot reach Redis ({type(exc).__name__}): the source's poll state is left there")
        finally:
            await redis.aclose()

    asyncio.run(forget(removed))
    err.print(f"removed {removed.id} {removed.url}")

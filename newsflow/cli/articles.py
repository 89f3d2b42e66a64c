"""Read side of the CLI: `newsflow articles list|show|search|export|count` and `newsflow db migrate`."""

from __future__ import annotations

import asyncio
import csv
import functools
import inspect
import logging
import re
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, nullcontext
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Annotated, Any, Literal, TypeVar

import orjson
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from newsflow.cli.errors import fail
from shared.errors import ConfigurationError, TransientError
from shared.events import CONTENT_TYPES, ArticleRecord
from shared.settings import get_settings, redact_url
from shared.storage import (
    HIGHLIGHT_END,
    HIGHLIGHT_START,
    LATEST_VERSION,
    ArticleFilters,
    Storage,
    open_storage,
)
from shared.storage.paging import Sort
from shared.storage.sqlite import sqlite_path

T = TypeVar("T")

articles_app = typer.Typer(help="Query stored articles.", no_args_is_help=True)
db_app = typer.Typer(help="Storage administration.", no_args_is_help=True)
err = Console(stderr=True, soft_wrap=True)

StorageUrl = Annotated[
    str | None, typer.Option("--storage-url", help="default: NEWSFLOW_STORAGE_URL (sqlite:///data/newsflow.db)")
]
JsonFlag = Annotated[bool, typer.Option("--json", help="one JSON object per line instead of a table")]
Source = Annotated[str | None, typer.Option(help="source domain or name, e.g. independent.co.uk")]
Lang = Annotated[str | None, typer.Option(help="language code, e.g. en")]
Category = Annotated[str | None, typer.Option(help="topic category")]


def _content_type(value: str | None) -> str | None:
    if value is not None and value.strip().lower() not in CONTENT_TYPES:
        raise typer.BadParameter(f"{value!r} is not one of {', '.join(CONTENT_TYPES)}")
    return value


ContentTypeOption = Annotated[
    str | None,
    typer.Option(
        "--content-type",
        callback=_content_type,
        help="what clean found: article, brief, results, listing, liveblog",
    ),
]
EntityName = Annotated[str | None, typer.Option(help="entity name or part of it, case-insensitive")]
Country = Annotated[str | None, typer.Option(help="ISO code or country name, e.g. KP or 'North Korea'")]
Since = Annotated[
    str | None, typer.Option(help="published at or after: ISO date/time, or an age like 7d, 12h")
]
Until = Annotated[str | None, typer.Option(help="published before: ISO date/time, or an age like 7d, 12h")]
# The options `list`, `export` and `count` filter by, in the order their --help shows them (`build_filters`' names).
FILTER_OPTIONS = {
    "source": Source,
    "lang": Lang,
    "category": Category,
    "content_type": ContentTypeOption,
    "entity": EntityName,
    "country": Country,
    "since": Since,
    "until": Until,
}

NEWEST = Sort.parse("-published_at")
RELEVANCE = Sort.parse("relevance")
NO_FILTERS = ArticleFilters()
_AGE = re.compile(r"^(\d+)\s*([mhdw])$")
_AGE_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}

CSV_COLUMNS = (
    "id", "external_id", "url", "title", "source_domain", "source_name", "published_at", "language",
    "word_count", "reading_time_s", "category", "sentiment", "sentiment_label", "authors", "keywords",
    "entities", "countries", "summary", "body", "content_type",
)


def parse_moment(text: str) -> datetime:
    """`2024-06-01`, `2024-06-01T12:00:00+02:00` or an age (`30m`, `12h`, `7d`, `2w`) as a UTC datetime."""
    cleaned = text.strip()
    age = _AGE.match(cleaned.lower())
    if age:
        return datetime.now(UTC) - timedelta(**{_AGE_UNITS[age.group(2)]: int(age.group(1))})
    try:
        moment = datetime.fromisoformat(cleaned.replace("Z", "+00:00"))
    except ValueError as error:
        raise typer.BadParameter(f"{text!r} is neither an ISO date/time nor an age like 7d") from error
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def build_filters(
    source: str | None = None,
    lang: str | None = None,
    category: str | None = None,
    entity: str | None = None,
    country: str | None = None,
    since: str | None = None,
    until: str | None = None,
    limit: int | None = None,
    content_type: str | None = None,
) -> ArticleFilters:
    """Filters from CLI option values."""
    return ArticleFilters(
        source=source, lang=lang, category=category, entity=entity, country=country,
        since=parse_moment(since) if since else None, until=parse_moment(until) if until else None,
        limit=limit, content_type=content_type,
    )


def with_filter_options(command: Callable[..., None]) -> Callable[..., None]:
    """`command` with the FILTER_OPTIONS in place of its `filters` parameter, which gets the filters they make."""
    signature = inspect.signature(command, eval_str=True)
    options = [
        inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None, annotation=annotation)
        for name, annotation in FILTER_OPTIONS.items()
    ]
    parameters = [new for old in signature.parameters.values() for new in (options if old.name == "filters" else [old])]

    @functools.wraps(command)
    def run(**values: Any) -> None:
        filters = build_filters(**{name: values.pop(name) for name in FILTER_OPTIONS})
        command(filters=filters, **values)

    run.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]  # what typer reads
    return run


def quiet_pool_warnings() -> None:
    """psycopg's pool logs each failed connection attempt to stderr; a command says it once, in its own line."""
    logging.getLogger("psycopg.pool").setLevel(logging.ERROR)


@asynccontextmanager
async def migrated_storage(url: str) -> AsyncIterator[tuple[Storage, list[int]]]:
    """The storage at `url` migrated to the current schema, and the migrations that took; closed afterwards."""
    quiet_pool_warnings()
    storage = open_storage(url)
    try:
        yield storage, await storage.migrate()
    finally:
        await storage.close()


def run_with_storage(
    storage_url: str | None, work: Callable[[Storage], Awaitable[T]], *, create: bool = False
) -> T:
    """Open storage (migrating it to the current schema), run `work`, close; outages exit with status 2.

    A SQLite file that is not there is refused (a mistyped path would otherwise read as an empty database) unless
    `create`: the commands that write (`sources add`, `db migrate`) make it.
    """
    url = storage_url or get_settings().storage_url
    if not create and url.startswith("sqlite:"):
        try:
            path = sqlite_path(url)
        except ValueError as error:
            fail(str(error))
        if not path.exists():
            fail(f"no SQLite database at {path} (publish creates it when it starts; `newsflow db migrate` makes one)")

    async def main() -> T:
        async with migrated_storage(url) as (storage, _):
            return await work(storage)

    try:
        return asyncio.run(main())
    except (ValueError, ConfigurationError) as error:
        fail(str(error))
    except TransientError as error:
        fail(f"storage unavailable at {redact_url(url)}: {error}")


def _json_line(data: Any) -> str:
    return orjson.dumps(data).decode()


def _highlight(snippet: str) -> str:
    """Search snippet with its « » markers as rich bold text."""
    return escape(snippet).replace(HIGHLIGHT_START, "[bold yellow]").replace(HIGHLIGHT_END, "[/bold yellow]")


def _date(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M") if moment else "—"


@articles_app.command("list")
@with_filter_options
def list_command(
    filters: ArticleFilters = NO_FILTERS,
    limit: Annotated[int, typer.Option(min=1, help="at most this many, newest first")] = 20,
    as_json: JsonFlag = False,
    storage_url: StorageUrl = None,
) -> None:
    """List stored articles, newest publication first."""
    filters = replace(filters, limit=limit)
    if as_json:  # whole records, with the field names of `articles export` and the HTTP API
        page = run_with_storage(storage_url, lambda storage: storage.query_articles(filters, sort=NEWEST, limit=limit))
        for item in page.items:
            typer.echo(_json_line(item))
        return
    summaries = run_with_storage(storage_url, lambda storage: storage.list_articles(filters))
    table = Table(title=f"{len(summaries)} article(s)")
    for column in ("id", "published", "source", "lang", "category", "words", "rev", "title"):
        table.add_column(column, overflow="fold")
    for s in summaries:
        # Most rows are articles; the other types (a brief, a results table) say so before the title.
        kind = "" if s.content_type == "article" else f"[dim]{s.content_type}:[/dim] "
        table.add_row(
            s.id, _date(s.published_at), s.source_domain or "—", s.language or "—", s.category or "—",
            str(s.word_count or "—"), str(s.revision), kind + escape(s.title),
        )
    Console().print(table)


@articles_app.command("show")
def show_command(
    article_id: Annotated[str, typer.Argument(metavar="ID", help="the article id")],
    as_json: Annotated[bool, typer.Option("--json", help="the stored record as JSON")] = False,
    storage_url: StorageUrl = None,
) -> None:
    """Show one stored record as it was published (--json: the fields of `articles export`)."""
    record = run_with_storage(storage_url, lambda storage: storage.get_article(article_id))
    if record is None:
        fail(f"no article with id {article_id} (newsflow articles list shows the stored ones)")
    if as_json:
        typer.echo(orjson.dumps(record.model_dump(mode="json"), option=orjson.OPT_INDENT_2).decode())
        return
    _print_record(Console(), record)


def _print_record(console: Console, record: ArticleRecord) -> None:
    console.print(f"[bold]{escape(record.title)}[/bold]")
    facts = [
        ("id", record.id), ("url", record.url), ("source", record.source_domain or record.source_name),
        ("authors", ", ".join(record.authors)), ("published", _date(record.published_at)),
        ("fetched", _date(record.fetched_at) if record.fetched_at else None), ("origin", record.origin),
        ("type", record.content_type), ("language", record.language), ("category", record.category),
        ("sentiment", record.sentiment_label or (f"{record.sentiment:.2f}" if record.sentiment is not None else None)),
        ("words", record.word_count), ("countries", ", ".join(record.countries)),
        ("keywords", ", ".join(record.keywords)),
        ("near duplicates", ", ".join(f"{d.id} ({d.similarity:.2f})" for d in record.near_duplicates)),
        ("lineage", " → ".join(f"{stamp.stage} {stamp.duration_ms:.0f} ms" for stamp in record.trace)),
    ]
    for name, value in facts:
        if value not in (None, ""):
            console.print(f"[dim]{name:>15}[/dim]  {escape(str(value))}")
    if record.summary:
        console.print(f"\n[italic]{escape(record.summary)}[/italic]")
    console.print()
    console.print(escape(record.body))
    if record.entities:
        table = Table(title="entities")
        for column in ("name", "label", "mentions"):
            table.add_column(column)
        for entity in record.entities:
            table.add_row(escape(entity.name), entity.label, str(len(entity.mentions)))
        console.print(table)


@articles_app.command("search")
def search_command(
    query: Annotated[str, typer.Argument(help='words, "a phrase", OR, -excluded')],
    limit: Annotated[int, typer.Option(min=1, help="at most this many hits")] = 10,
    as_json: JsonFlag = False,
    storage_url: StorageUrl = None,
) -> None:
    """Full-text search over titles and bodies, most relevant first."""
    if as_json:  # whole records plus `score` and `snippet`, as the HTTP API returns them
        filters = ArticleFilters(query=query)
        page = run_with_storage(
            storage_url, lambda storage: storage.query_articles(filters, sort=RELEVANCE, limit=limit)
        )
        for item in page.items:
            typer.echo(_json_line(item))
        return
    hits = run_with_storage(storage_url, lambda storage: storage.search(query, limit))
    if not hits:
        err.print(f"no article matches {escape(query)!r}")
        return
    table = Table(title=f"{len(hits)} hit(s) for {escape(query)!r}")
    for column in ("score", "id", "title", "snippet"):
        table.add_column(column, overflow="fold")
    for hit in hits:
        table.add_row(f"{hit.score:.3f}", hit.id, escape(hit.title), _highlight(hit.snippet))
    Console().print(table)


def csv_row(record: ArticleRecord) -> list[Any]:
    """One CSV row (`CSV_COLUMNS`); list fields joined with "; "."""
    return [
        record.id, record.external_id, record.url, record.title, record.source_domain, record.source_name,
        record.published_at.isoformat() if record.published_at else None, record.language,
        record.word_count, record.reading_time_s, record.category, record.sentiment, record.sentiment_label,
        "; ".join(record.authors), "; ".join(record.keywords), "; ".join(e.name for e in record.entities),
        "; ".join(record.countries), record.summary, record.body, record.content_type,
    ]


async def export_records(
    storage: Storage, filters: ArticleFilters, output: IO[str], fmt: Literal["jsonl", "csv"]
) -> int:
    """Write matching records to `output` one at a time as they stream in; returns how many."""
    writer = csv.writer(output) if fmt == "csv" else None
    if writer is not None:
        writer.writerow(CSV_COLUMNS)
    written = 0
    async for record in storage.iter_export(filters):
        if writer is not None:
            writer.writerow(csv_row(record))
        else:
            output.write(record.model_dump_json())
            output.write("\n")
        written += 1
    return written


@articles_app.command("export")
@with_filter_options
def export_command(
    fmt: Annotated[Literal["jsonl", "csv"], typer.Option("--format", help="jsonl (full records) or csv")] = "jsonl",
    output: Annotated[Path | None, typer.Option("--output", "-o", help="file to write; default stdout")] = None,
    filters: ArticleFilters = NO_FILTERS,
    limit: Annotated[int | None, typer.Option(min=1, help="at most this many")] = None,
    storage_url: StorageUrl = None,
) -> None:
    """Stream matching records, in storage order, without loading them all into memory."""
    filters = replace(filters, limit=limit)
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
    target = output.open("w", encoding="utf-8", newline="") if output else nullcontext(sys.stdout)
    with target as stream:
        written = run_with_storage(storage_url, lambda storage: export_records(storage, filters, stream, fmt))
    err.print(f"exported {written} article(s)" + (f" to {escape(str(output))}" if output else ""))


@articles_app.command("count")
@with_filter_options
def count_command(
    filters: ArticleFilters = NO_FILTERS,
    storage_url: StorageUrl = None,
) -> None:
    """Print how many stored articles match the filters."""
    typer.echo(str(run_with_storage(storage_url, lambda storage: storage.count(filters))))


@db_app.command("migrate")
def migrate_command(storage_url: StorageUrl = None) -> None:
    """Apply pending schema migrations (publish also does this at start)."""
    url = storage_url or get_settings().storage_url

    async def main() -> tuple[list[int], int]:
        async with migrated_storage(url) as (storage, applied):
            return applied, await storage.schema_version()

    try:
        applied, version = asyncio.run(main())
    except (ValueError, ConfigurationError, TransientError) as error:
        fail(f"cannot migrate {redact_url(url)}: {error}")
    if applied:
        typer.echo(f"applied migration(s) {', '.join(map(str, applied))}; schema version {version}")
    else:
        typer.echo(f"schema up to date (version {version}, latest {LATEST_VERSION})")

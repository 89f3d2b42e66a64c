"""PostgreSQL backend: psycopg 3 async with a connection pool, tsvector + GIN for search."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, TypeVar

import psycopg
from psycopg import errors as pg_errors
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import AsyncConnectionPool

from shared.errors import ConfigurationError, Rejected, TransientError
from shared.events import ArticleRecord, SkippedRevision
from shared.links import DEFAULT_LINK_TIMEOUT_S, libpq_link_options
from shared.storage.base import (
    HIGHLIGHT_END,
    HIGHLIGHT_START,
    ArticleFilters,
    ArticlePage,
    ArticleSummary,
    Facets,
    PageRequest,
    PageRow,
    RecordRows,
    Storage,
    UpsertResult,
    dedupe_newest,
    record_rows,
    skipped_revision,
    storable,
    with_skipped_revisions,
)
from shared.storage.migrations import pending
from shared.storage.paging import Cursor, Sort, Tiers, project
from shared.storage.queries import (
    NEAR_DUPLICATES_SQL,
    ORDER_NEWEST_FIRST,
    SUMMARY_COLUMNS,
    duplicates_from_rows,
    facet_columns,
    facets_from_rows,
    facets_union,
    filter_clause,
    filter_conditions,
)
from shared.storage.sources import SOURCE_COLUMNS, Source, insert_source_sql

T = TypeVar("T")

POOL_MIN_SIZE = 1
POOL_MAX_SIZE = 4
CONNECT_TIMEOUT_S = 10.0
EXPORT_FETCH_ROWS = 500
# Two publish replicas writing the same ids can still lose a lock race; the retry is cheap and bounded.
_CONFLICT_RETRIES = 5
# Any fixed key works: it only serialises concurrent `migrate()` calls (replicas starting together).
_MIGRATION_LOCK_KEY = 0x6E657773  # "news"

_ARTICLE_FIELDS = (
    "id", "external_id", "url", "origin", "title", "body", "authors", "source_domain", "source_name",
    "published_at", "language", "word_count", "reading_time_s", "summary", "sentiment", "sentiment_label",
    "category", "category_score", "duplicate_of", "content_hash", "received_at", "fingerprint", "record",
    "content_type", "revision_at",
)
_JSON_FIELDS = frozenset({"authors", "record"})
# A tsvector holds at most 1 MB. Measured (pg_column_size of to_tsvector('english', ...)): 1.8 bytes per character
# of distinct English-like words, up to 4.7 for CJK written in short spaced groups; so the body is indexed on its
# first 150,000 characters (~25,000 words, several times the longest news story) and stored whole.
SEARCH_BODY_CHARS = 150_000
_SEARCH_VECTOR = (
    "setweight(to_tsvector('english'::regconfig, coalesce(%(title)s, '')), 'A') || "
    f"setweight(to_tsvector('english'::regconfig, left(coalesce(%(body)s, ''), {SEARCH_BODY_CHARS})), 'B')"
)
# The WHERE makes an identical re-push a no-op even when it raced past the fingerprint pre-check, and keeps a newer
# revision a racing writer stored meanwhile; ON CONFLICT ... DO UPDATE locks the row either way, so racing writers
# queue instead of duplicating. Named parameters: psycopg sends each once, though title and body appear twice.
_UPSERT_ARTICLE = (
    f"INSERT INTO articles ({', '.join(_ARTICLE_FIELDS)}, search_vector, revision, created_at, updated_at) "
    # JSON columns arrive as text already serialised by pydantic/orjson and are cast on the server.
    "VALUES ("
    + ", ".join(f"%({name})s::jsonb" if name in _JSON_FIELDS else f"%({name})s" for name in _ARTICLE_FIELDS)
    + f", {_SEARCH_VECTOR}, 1, %(now)s, %(now)s) "
    "ON CONFLICT (id) DO UPDATE SET "
    + ", ".join(f"{name} = EXCLUDED.{name}" for name in (*_ARTICLE_FIELDS, "search_vector") if name != "id")
    + ", revision = articles.revision + 1, updated_at = EXCLUDED.updated_at "
    "WHERE articles.fingerprint <> EXCLUDED.fingerprint "
    "AND coalesce(articles.revision_at, articles.received_at) <= EXCLUDED.revision_at "
    "RETURNING revision, updated_at, (xmax = 0) AS inserted"
)
# SQLSTATE classes: the server or the connection is in trouble (retry later) — connection exceptions, transaction
# rollbacks (serialisation, deadlock), insufficient resources (disk full, out of memory, too many connections),
# operator intervention (shutdown, restart, statement cancelled), system errors; lock timeouts and a read-only
# server (a standby not promoted yet). And the schema or the grants are not what newsflow needs (class 42: a table
# dropped or renamed by hand, a privilege revoked; 3D/3F: database or schema gone): no article's fault either, so
# every batch would fail alike — wait for the operator (not ready) rather than dead-letter them all.
_TRANSIENT_CLASSES = ("08", "40", "53", "57", "58", "42", "3D", "3F")
_TRANSIENT_STATES = frozenset({"55P03", "55006", "25006"})
# ... or the values are what the server refuses: data exceptions (NUL, encoding, out of range, too long),
# integrity constraints, program limits (tsvector over 1 MB, an index row over the btree maximum).
_REJECTING_CLASSES = ("22", "23", "54")


def classified(error: Exception) -> Exception:
    """What a psycopg error means for the article: TransientError (retry), Rejected (this article), or itself (a
    failure nobody classified: the stage leaves that article pending for redelivery)."""
    state = getattr(error, "sqlstate", None)
    if state is None:
        if isinstance(error, (psycopg.DataError, UnicodeEncodeError)):  # refused client-side (a NUL byte)
            return Rejected("storage_rejected", f"PostgreSQL client refused it: {_first_lines(error)}")
        if isinstance(error, (psycopg.OperationalError, psycopg.InterfaceError)):
            return TransientError(f"postgresql unavailable: {error}")
        return error
    if state.startswith(_TRANSIENT_CLASSES) or state in _TRANSIENT_STATES:
        return TransientError(f"postgresql unavailable ({state}): {error}")
    if state.startswith(_REJECTING_CLASSES):
        name = type(error).__name__
        return Rejected("storage_rejected", f"PostgreSQL refused it ({state} {name}): {_first_lines(error)}")
    return error


def _first_lines(error: BaseException, limit: int = 600) -> str:
    """The server's message and detail, without the statement context it quotes."""
    lines = [line for line in str(error).splitlines() if line.strip() and not line.startswith(("CONTEXT", "LINE "))]
    return " ".join(lines)[:limit]


# Articles without a publication date sort below every dated one (NULLS LAST when newest first).
_NO_DATE = "'0001-01-01 00:00:00+00'::timestamptz"
_HEADLINE_OPTIONS = (
    f"StartSel={HIGHLIGHT_START}, StopSel={HIGHLIGHT_END}, MaxWords=30, MinWords=12, MaxFragments=2, "
    'FragmentDelimiter=" … "'
)
_CHILD_TABLES = ("article_entities", "mentions", "places", "article_countries", "keywords", "near_duplicates")


async def _configure_connection(connection: psycopg.AsyncConnection[Any]) -> None:
    # Timestamps come back in UTC whatever the server's or role's default time zone is.
    await connection.execute("SET TIME ZONE 'UTC'")
    # psycopg prepares a statement once it has run 5 times, and PostgreSQL may then switch it to a generic plan,
    # made without the parameters' values: for `search_vector @@ $1 AND seq BETWEEN $2 AND $3` that plan walks the
    # sequence range and checks every article's vector, since it cannot tell a rare word from a common one
    # (measured at 100,000 articles: a rare word's relevance page 26 ms -> 2,046 ms once generic; search p95 over
    # the scale bench's queries 4.7 s). Every plan here depends on how many articles the terms and filters match:
    # plan each execution for its own values (statements stay prepared, only the planning is per execution).
    await connection.execute("SET plan_cache_mode = force_custom_plan")


async def _require_utf8(pool: AsyncConnectionPool) -> None:
    """Refuse a database that is not UTF8: psycopg returns its text as bytes, and articles are Unicode."""
    async with pool.connection() as connection:
        encoding = connection.info.parameter_status("server_encoding")
        database = connection.info.dbname
    if encoding != "UTF8":
        raise ConfigurationError(
            f"PostgreSQL database {database!r} has server_encoding {encoding}; newsflow needs UTF8: create it with "
            "CREATE DATABASE ... ENCODING 'UTF8' TEMPLATE template0 (or a cluster with initdb --encoding=UTF8)",
            event="storage.refused",
        )


class PostgresStorage(Storage):
    """Articles in PostgreSQL through a lazily opened async connection pool."""

    def __init__(
        self, url: str, connect_timeout_s: float = CONNECT_TIMEOUT_S, link_timeout_s: float = DEFAULT_LINK_TIMEOUT_S
    ) -> None:
        self.url = url
        self.connect_timeout_s = connect_timeout_s
        self.link_timeout_s = link_timeout_s
        # A dead link drops the connection within link_timeout_s instead of waiting on TCP (shared/links.py);
        # what the URL sets itself is kept.
        given = conninfo_to_dict(url)
        self.link_options = {k: v for k, v in libpq_link_options(link_timeout_s).items() if k not in given}
        self._pool: AsyncConnectionPool | None = None
        self._pool_lock = asyncio.Lock()

    # -- plumbing -----------------------------------------------------------------------------------

    async def _get_pool(self) -> AsyncConnectionPool:
        if self._pool is not None:
            return self._pool
        async with self._pool_lock:
            if self._pool is None:
                try:
                    # One plain connection first: the pool would keep retrying a refused connection for its whole
                    # timeout, and a service waiting for its database logs one line per attempt, not one per 10 s.
                    probe = await psycopg.AsyncConnection.connect(
                        self.url,
                        connect_timeout=max(1, int(self.connect_timeout_s)),
                        autocommit=True,
                        **self.link_options,
                    )
                except (psycopg.OperationalError, psycopg.InterfaceError) as error:
                    raise TransientError(f"postgresql unavailable: {_first_lines(error)}") from error
                await probe.close()
                pool = AsyncConnectionPool(
                    self.url,
                    min_size=POOL_MIN_SIZE,
                    max_size=POOL_MAX_SIZE,
                    timeout=self.connect_timeout_s,
                    kwargs={
                        "autocommit": True,
                        "connect_timeout": max(1, int(self.connect_timeout_s)),
                        **self.link_options,
                    },
                    # The pool reconnects lost connections with a backoff that doubles for up to this long, then
                    # gives up until a connection is asked for again. At its default (5 min) the wait grew with
                    # the outage: after a 2-minute partition its next attempt could come 2 minutes after the
                    # network was back. Capped at the link timeout, it comes within that.
                    reconnect_timeout=self.link_timeout_s,
                    configure=_configure_connection,
                    open=False,
                )
                try:
                    await pool.open(wait=True, timeout=self.connect_timeout_s)
                except (psycopg.OperationalError, psycopg.InterfaceError) as error:
                    await pool.close()
                    raise TransientError(f"postgresql unavailable: {error}") from error
                try:
                    await _require_utf8(pool)
                except ConfigurationError:
                    await pool.close()
                    raise
                self._pool = pool
        return self._pool

    async def _run(self, work: Callable[[psycopg.AsyncConnection[Any]], Awaitable[T]]) -> T:
        """Run `work` on a pooled connection; retry lock conflicts, report outages as transient."""
        pool = await self._get_pool()
        for attempt in range(_CONFLICT_RETRIES):
            try:
                async with pool.connection() as connection:
                    return await work(connection)
            except (pg_errors.SerializationFailure, pg_errors.DeadlockDetected) as error:
                if attempt == _CONFLICT_RETRIES - 1:
                    raise TransientError(f"postgresql write conflict: {error}") from error
                await asyncio.sleep(random.uniform(0.01, 0.05) * (attempt + 1))
            except (psycopg.Error, UnicodeEncodeError) as error:
                meaning = classified(error)
                if meaning is error:
                    raise
                raise meaning from error
        raise AssertionError("unreachable")

    async def check(self) -> None:
        """TransientError unless the server answers a query."""

        async def ping(connection: psycopg.AsyncConnection[Any]) -> None:
            await connection.execute(b"SELECT 1")

        await self._run(ping)

    # -- schema -------------------------------------------------------------------------------------

    async def migrate(self, target: int | None = None) -> list[int]:
        """Apply pending migrations in one transaction under an advisory lock (replicas start together)."""

        async def run(connection: psycopg.AsyncConnection[Any]) -> list[int]:
            async with connection.transaction():
                await connection.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK_KEY,))
                await connection.execute(
                    "CREATE TABLE IF NOT EXISTS schema_migrations ("
                    "version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL)"
                )
                cursor = await connection.execute("SELECT version FROM schema_migrations")
                applied = {row[0] for row in await cursor.fetchall()}
                applied_now: list[int] = []
                for migration in pending(applied, target):
                    for statement in migration.statements("postgres"):
                        await connection.execute(statement)
                    await connection.execute(
                        "INSERT INTO schema_migrations (version, name, applied_at) VALUES (%s, %s, %s)",
                        (migration.version, migration.name, datetime.now(UTC)),
                    )
                    applied_now.append(migration.version)
                return applied_now

        return await self._run(run)

    async def schema_version(self) -> int:
        """The highest applied migration (0 when none)."""

        async def read(connection: psycopg.AsyncConnection[Any]) -> int:
            cursor = await connection.execute("SELECT to_regclass('schema_migrations') IS NOT NULL")
            exists = await cursor.fetchone()
            if not exists or not exists[0]:
                return 0
            cursor = await connection.execute("SELECT coalesce(max(version), 0) FROM schema_migrations")
            row = await cursor.fetchone()
            return int(row[0]) if row else 0

        return await self._run(read)

    # -- writes -------------------------------------------------------------------------------------

    async def upsert_articles(self, records: Sequence[ArticleRecord]) -> list[UpsertResult]:
        """Insert new ids, update changed ones (revision + 1), leave identical ones untouched."""
        if not records:
            return []
        storing = [_search_cut_noted(storable(record)) for record in records]
        batch, older = dedupe_newest(storing)
        rows = [record_rows(record) for record in batch]

        async def write(connection: psycopg.AsyncConnection[Any]) -> dict[str, UpsertResult]:
            async with connection.transaction():
                return await _upsert(connection, rows, older)

        results = await self._run(write)
        beaten = {id(record) for record in older}
        return [
            replace(results[record.id], changed=False, stale=True) if id(record) in beaten else results[record.id]
            for record in storing
        ]

    # -- reads --------------------------------------------------------------------------------------

    async def get_article(self, article_id: str) -> ArticleRecord | None:
        """The stored record JSON, parsed back into the contract model."""

        async def read(connection: psycopg.AsyncConnection[Any]) -> str | None:
            # ::text skips psycopg's JSON decoding; pydantic parses the text directly.
            cursor = await connection.execute("SELECT record::text FROM articles WHERE id = %s", (article_id,))
            row = await cursor.fetchone()
            return None if row is None else str(row[0])

        text = await self._run(read)
        return None if text is None else ArticleRecord.model_validate_json(text)

    async def list_articles(self, filters: ArticleFilters | None = None) -> list[ArticleSummary]:
        """Summaries, newest publication first."""
        filters = filters or ArticleFilters()
        where, params = filter_clause(filters, "%s", lambda moment: moment)
        sql = f"SELECT {SUMMARY_COLUMNS} FROM articles a {where} {ORDER_NEWEST_FIRST}"
        if filters.limit is not None:
            sql += " LIMIT %s"
            params.append(filters.limit)

        async def read(connection: psycopg.AsyncConnection[Any]) -> list[ArticleSummary]:
            cursor = await connection.execute(sql.encode(), params)
            return [
                ArticleSummary(
                    id=row[0], title=row[1], url=row[2], source_domain=row[3], language=row[4],
                    category=row[5], published_at=row[6], word_count=row[7], revision=row[8],
                    updated_at=row[9], content_type=row[10],
                )
                for row in await cursor.fetchall()
            ]

        return await self._run(read)

    async def count(self, filters: ArticleFilters | None = None) -> int:
        """Number of matching articles."""
        where, params = filter_clause(filters or ArticleFilters(), "%s", lambda moment: moment)
        sql = f"SELECT count(*) FROM articles a {where}"

        async def read(connection: psycopg.AsyncConnection[Any]) -> int:
            cursor = await connection.execute(sql.encode(), params)
            row = await cursor.fetchone()
            return int(row[0]) if row else 0

        return await self._run(read)

    async def _read_page(self, request: PageRequest) -> ArticlePage:
        """Keyset pages below a sequence watermark; ts_rank_cd tier by tier; headlines for the page only."""
        f, sort, limit, after = request.filters, request.sort, request.limit, request.after
        conditions, params = filter_conditions(f, "%s", lambda moment: moment)
        if f.query:
            conditions.insert(0, f"a.search_vector @@ {_TSQUERY}")
            params.insert(0, f.query)

        async def read(connection: psycopg.AsyncConnection[Any]) -> ArticlePage:
            if after is not None:
                watermark = after.watermark
            else:
                found = await (await connection.execute(b"SELECT coalesce(max(seq), 0) FROM articles")).fetchone()
                watermark = int(found[0]) if found else 0
            if sort.key == "relevance":
                assert f.query is not None
                page = await _ranked_page(connection, f.query, conditions, params, watermark, after, limit)
            else:
                page = await _ordered_page(connection, sort, conditions, params, watermark, after, limit)
            items = await _page_items(connection, [seq for seq, _, _ in page[:limit]], f.query, request.fields)
            return request.page(page, items, watermark)

        return await self._run(read)

    async def facets(self, filters: ArticleFilters, *, size: int = 10) -> Facets:
        """Exact over a match set the planner expects to be small; else over sequence buckets, scaled up."""
        f = filters.normalised()
        conditions, params = filter_conditions(f, "%s", lambda moment: moment)
        if f.query:
            conditions.insert(0, f"a.search_vector @@ {_TSQUERY}")
            params.insert(0, f.query)
        clause = ("WHERE " + " AND ".join(conditions)) if conditions else ""
        columns = facet_columns("to_char(a.published_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')")

        async def read(connection: psycopg.AsyncConnection[Any]) -> Facets:
            async with connection.transaction():  # the counts from one snapshot
                await connection.execute(b"SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                expected = await _estimated_rows(connection, f"SELECT 1 FROM articles a {clause}", params)
                buckets = _SAMPLE_BUCKETS
                if expected > 2 * FACET_SAMPLE:
                    # The largest power-of-two share of the 64 buckets that keeps about FACET_SAMPLE matches.
                    while buckets > 1 and expected * buckets / _SAMPLE_BUCKETS > FACET_SAMPLE:
                        buckets //= 2
                every = _SAMPLE_BUCKETS // buckets
                where = [*conditions, f"mod(a.seq, {_SAMPLE_BUCKETS}) < {buckets}"] if every > 1 else conditions
                sample = f"SELECT {columns} FROM articles a" + (f" WHERE {' AND '.join(where)}" if where else "")
                sql = (
                    f"WITH m AS MATERIALIZED ({sample}) SELECT 'total', NULL, NULL, count(*) FROM m UNION ALL "
                    + facets_union("m", size)
                )
                await connection.execute(b"SET LOCAL enable_indexscan = off")  # bitmaps: text index AND buckets
                rows = await (await connection.execute(sql.encode(), params)).fetchall()
            total = next((int(row[3]) for row in rows if row[0] == "total"), 0) * every
            return facets_from_rows(total, every, [row for row in rows if row[0] != "total"])

        return await self._run(read)

    async def near_duplicates(self, article_id: str, fields: Sequence[str] | None = None) -> list[dict[str, Any]]:
        """Both directions of the near-duplicate relation, and exact copies (similarity 1.0)."""
        sql = NEAR_DUPLICATES_SQL.format(record="a.record::text")

        async def read(connection: psycopg.AsyncConnection[Any]) -> list[dict[str, Any]]:
            cursor = await connection.execute(sql.encode(), [article_id] * 4)
            return duplicates_from_rows(await cursor.fetchall(), fields)

        return await self._run(read)

    async def iter_export(self, filters: ArticleFilters | None = None) -> AsyncIterator[ArticleRecord]:
        """Records in storage order through a server-side cursor, `EXPORT_FETCH_ROWS` per round trip."""
        filters = filters or ArticleFilters()
        where, params = filter_clause(filters, "%s", lambda moment: moment)
        sql = f"SELECT a.record::text FROM articles a {where} ORDER BY a.seq"
        if filters.limit is not None:
            sql += " LIMIT %s"
            params.append(filters.limit)
        pool = await self._get_pool()
        try:
            # A named cursor lives on the server: only one fetch's rows are ever in this process.
            async with (
                pool.connection() as connection,
                connection.transaction(),
                connection.cursor(name="newsflow_export") as cursor,
            ):
                cursor.itersize = EXPORT_FETCH_ROWS
                await cursor.execute(sql.encode(), params)
                while rows := await cursor.fetchmany(EXPORT_FETCH_ROWS):
                    for (text,) in rows:
                        yield ArticleRecord.model_validate_json(text)
        except (psycopg.OperationalError, psycopg.InterfaceError) as error:
            raise TransientError(f"postgresql unavailable: {error}") from error

    # -- sources ------------------------------------------------------------------------------------

    async def add_source(self, source: Source) -> tuple[Source, bool]:
        """INSERT unless the URL is registered; the row that is stored afterwards."""
        values = (source.id, source.url, source.name, source.interval_s, source.added_at)

        async def write(connection: psycopg.AsyncConnection[Any]) -> tuple[tuple[Any, ...], bool]:
            async with connection.transaction():
                cursor = await connection.execute(insert_source_sql("%s"), values)
                created = cursor.rowcount == 1
                cursor = await connection.execute(
                    f"SELECT {SOURCE_COLUMNS} FROM sources WHERE url = %s", (source.url,)
                )
                row = await cursor.fetchone()
                assert row is not None
                return tuple(row), created

        row, created = await self._run(write)
        return _source(row), created

    async def list_sources(self) -> list[Source]:
        """Oldest first."""

        async def read(connection: psycopg.AsyncConnection[Any]) -> list[Source]:
            cursor = await connection.execute(f"SELECT {SOURCE_COLUMNS} FROM sources ORDER BY added_at, id")
            return [_source(row) for row in await cursor.fetchall()]

        return await self._run(read)

    async def remove_source(self, key: str) -> Source | None:
        """DELETE by id or URL."""

        async def write(connection: psycopg.AsyncConnection[Any]) -> Source | None:
            cursor = await connection.execute(
                f"DELETE FROM sources WHERE id = %s OR url = %s RETURNING {SOURCE_COLUMNS}", (key, key)
            )
            row = await cursor.fetchone()
            return _source(row) if row else None

        return await self._run(write)

    async def close(self) -> None:
        """Close the pool."""
        if self._pool is not None:
            await self._pool.close()
            self._pool = None


def _search_cut_noted(record: ArticleRecord) -> ArticleRecord:
    """Say in the record that only the first part of a very long body is in the search index."""
    if len(record.body) <= SEARCH_BODY_CHARS:
        return record
    note = (f"the body is searchable on its first {SEARCH_BODY_CHARS:,} of {len(record.body):,} characters "
            "(a PostgreSQL tsvector holds at most 1 MB); it is stored whole")
    return record.model_copy(update={"skipped": {**record.skipped, "search_index": note}})


async def _upsert(
    connection: psycopg.AsyncConnection[Any], rows: list[RecordRows], older: list[ArticleRecord]
) -> dict[str, UpsertResult]:
    """The body of the upsert transaction; `rows` are sorted by id so writers lock in one order. Newest wins."""
    now = datetime.now(UTC)
    ids = [row.article["id"] for row in rows]
    cursor = await connection.execute(
        "SELECT id, fingerprint, revision, updated_at, coalesce(revision_at, received_at) FROM articles "
        "WHERE id = ANY(%s)",
        (ids,),
    )
    existing = {row[0]: (row[1], row[2], row[3], row[4]) for row in await cursor.fetchall()}

    results: dict[str, UpsertResult] = {}
    late: dict[str, list[SkippedRevision]] = {}
    for record in older:
        late.setdefault(record.id, []).append(skipped_revision(record, now))
    to_write = []
    for row in rows:
        article_id = row.article["id"]
        previous = existing.get(article_id)
        if previous is not None and previous[0] == row.article["fingerprint"]:
            if row.article["revision_at"] > previous[3]:  # the same content again, later: the newest revision now
                await connection.execute(
                    "UPDATE articles SET revision_at = %s WHERE id = %s", (row.article["revision_at"], article_id)
                )
            results[article_id] = UpsertResult(article_id, previous[1], False, previous[2])
        elif previous is not None and row.article["revision_at"] < previous[3]:
            late.setdefault(article_id, []).append(skipped_revision(row.source, now))
            results[article_id] = UpsertResult(article_id, previous[1], False, previous[2], stale=True)
        else:
            to_write.append(row)

    # Entities before articles, both in sorted order: racing transactions take locks in the same sequence.
    entity_ids = await _entity_ids(connection, to_write) if to_write else {}
    written: list[RecordRows] = []
    for row in to_write:
        article = row.article
        cursor = await connection.execute(_UPSERT_ARTICLE, {**article, "now": now})
        returned = await cursor.fetchone()
        article_id = article["id"]
        if returned is None:  # a racing writer stored this exact content, or a newer revision, first
            cursor = await connection.execute(
                "SELECT revision, updated_at, fingerprint FROM articles WHERE id = %s", (article_id,)
            )
            current = await cursor.fetchone()
            assert current is not None
            stale = current[2] != article["fingerprint"]
            if stale:
                late.setdefault(article_id, []).append(skipped_revision(row.source, now))
            results[article_id] = UpsertResult(article_id, current[0], False, current[1], stale=stale)
            continue
        revision, updated_at, inserted = returned
        results[article_id] = UpsertResult(article_id, revision, True, updated_at)
        written.append(row)
        if not inserted:
            for table in _CHILD_TABLES:
                await connection.execute(f"DELETE FROM {table} WHERE article_id = %s", (article_id,))
    if written:
        await _insert_children(connection, written, entity_ids)
    for article_id, revisions in sorted(late.items()):
        cursor = await connection.execute("SELECT record::text FROM articles WHERE id = %s", (article_id,))
        stored = await cursor.fetchone()
        if stored is not None:
            await connection.execute(
                "UPDATE articles SET record = %s::jsonb WHERE id = %s",
                (with_skipped_revisions(stored[0], revisions), article_id),
            )
    return results


async def _entity_ids(
    connection: psycopg.AsyncConnection[Any], rows: list[RecordRows]
) -> dict[tuple[str, str], int]:
    names = sorted({(name, label) for row in rows for name, label, _ in row.entities})
    if not names:
        return {}
    entity_names = [name for name, _ in names]
    entity_labels = [label for _, label in names]
    await connection.execute(
        "INSERT INTO entities (name, label, name_key) "
        "SELECT n, l, lower(n) FROM unnest(%s::text[], %s::text[]) AS t(n, l) ORDER BY n, l "
        "ON CONFLICT (name, label) DO NOTHING",
        (entity_names, entity_labels),
    )
    cursor = await connection.execute(
        "SELECT e.id, e.name, e.label FROM entities e "
        "JOIN unnest(%s::text[], %s::text[]) AS t(n, l) ON e.name = t.n AND e.label = t.l",
        (entity_names, entity_labels),
    )
    return {(name, label): entity_id for entity_id, name, label in await cursor.fetchall()}


async def _insert_children(
    connection: psycopg.AsyncConnection[Any], rows: list[RecordRows], entity_ids: dict[tuple[str, str], int]
) -> None:
    """COPY the batch's child rows, one COPY per table (measured ~3x faster than INSERT ... unnest)."""
    tables: list[tuple[str, list[tuple[Any, ...]]]] = [
        ("article_entities (article_id, entity_id, mention_count)", [
            (row.article["id"], entity_ids[(name, label)], count)
            for row in rows for name, label, count in row.entities
        ]),
        ("mentions (article_id, ordinal, entity_id, field, start_offset, end_offset, text)", [
            (row.article["id"], ordinal, entity_ids[(name, label)], field, start, end, text)
            for row in rows for name, label, ordinal, field, start, end, text in row.mentions
        ]),
        ("places (article_id, name, country_code, country, latitude, longitude, mentions)",
         [(row.article["id"], *place) for row in rows for place in row.places]),
        ("article_countries (article_id, country_code, ordinal)",
         [(row.article["id"], *country) for row in rows for country in row.countries]),
        ("keywords (article_id, keyword, ordinal)",
         [(row.article["id"], *keyword) for row in rows for keyword in row.keywords]),
        ("near_duplicates (article_id, duplicate_id, similarity)",
         [(row.article["id"], *duplicate) for row in rows for duplicate in row.near_duplicates]),
    ]
    async with connection.cursor() as cursor:
        for table, values in tables:
            if not values:
                continue
            async with cursor.copy(f"COPY {table} FROM STDIN".encode()) as copy:
                for value in values:
                    await copy.write_row(value)


def _source(row: Sequence[Any]) -> Source:
    return Source(id=row[0], url=row[1], name=row[2], interval_s=int(row[3]), added_at=row[4])


_TSQUERY = "websearch_to_tsquery('english', %s)"
# Facets over more matches than twice this (as the planner expects them) count a sample of about this many:
# checking a match and reading its facets costs ~30 µs on the 2-core machine, ranking one ~45 µs.
FACET_SAMPLE = 1_500
_SAMPLE_BUCKETS = 64
RELEVANCE_TIER = 1_500
# When the planner expects one tier's matches or fewer in a larger corpus, the newest this many tiers' worth of
# articles are counted to check (`_matches_by_density`).
DENSITY_SPAN_TIERS = 4


async def _estimated_rows(connection: psycopg.AsyncConnection[Any], sql: str, params: Sequence[Any]) -> int:
    """The planner's row estimate for `sql` (EXPLAIN, nothing executed): enough to size tiers and samples."""
    cursor = await connection.execute(f"EXPLAIN (FORMAT JSON) {sql}".encode(), params)
    row = await cursor.fetchone()
    plan = row[0] if row else [{}]
    return int((plan[0] if isinstance(plan, list) else plan).get("Plan", {}).get("Plan Rows", 0))


_PUBLISHED_KEY = f"coalesce(a.published_at, {_NO_DATE})"  # the expression of index articles_published_key


async def _ordered_page(
    connection: psycopg.AsyncConnection[Any], sort: Sort, conditions: list[str], params: list[Any],
    watermark: int, after: Cursor | None, limit: int,
) -> list[PageRow]:
    """Rows in sort-key order (the planner walks articles_published_key / _received_key, or sorts few matches)."""
    key = _PUBLISHED_KEY if sort.key == "published_at" else "a.received_at"
    where, values = [*conditions, "a.seq <= %s"], [*params, watermark]
    direction, beyond = ("DESC", "<") if sort.descending else ("ASC", ">")
    if after is not None:
        where.append(f"({key}, a.seq) {beyond} (%s::timestamptz, %s)")
        values += [after.key, after.seq]
    sql = (
        f"SELECT a.seq, {key} FROM articles a WHERE {' AND '.join(where)} "
        f"ORDER BY {key} {direction}, a.seq {direction} LIMIT %s"
    )
    rows = await (await connection.execute(sql.encode(), [*values, limit + 1])).fetchall()
    return [(seq, moment.isoformat(), None) for seq, moment in rows]


async def _ranked_page(
    connection: psycopg.AsyncConnection[Any], query: str, conditions: list[str], params: list[Any], watermark: int,
    after: Cursor | None, limit: int,
) -> list[PageRow]:
    """ts_rank_cd order within tiers of ~`RELEVANCE_TIER` matches (as the planner expects them), newest tier
    first; the cursor key is [tier, width, score]. ts_rank_cd looks at the article alone, so scores never shift
    as others arrive."""
    where = " AND ".join(conditions)
    if after is not None:
        tier, width, _ = after.key
        tiers = Tiers(watermark, int(width))
    else:
        # Sized by every filter, not the terms alone: selective filters make one tier (exact ranking), rather
        # than a walk through every tier of a common word looking for the few that pass.
        expected = await _estimated_rows(
            connection, f"SELECT 1 FROM articles a WHERE {where} AND a.seq <= %s", [*params, watermark]
        )
        if expected <= RELEVANCE_TIER < watermark // DENSITY_SPAN_TIERS:
            expected = max(expected, await _matches_by_density(connection, where, params, watermark))
        tier, tiers = 0, Tiers.for_matches(watermark, expected, RELEVANCE_TIER)
    rows: list[PageRow] = []
    anchor = after
    score = f"ts_rank_cd(a.search_vector, {_TSQUERY})"
    while len(rows) <= limit and (bounds := tiers.bounds(tier)) is not None:
        keyset, keyset_values = "", []
        if anchor is not None:
            keyset = f" AND ({score}, a.seq) < (%s::real, %s)"
            keyset_values = [query, anchor.key[2], anchor.seq]
        sql = (
            f"SELECT a.seq, {score} AS score FROM articles a WHERE {where} AND a.seq > %s AND a.seq <= %s{keyset} "
            "ORDER BY score DESC, a.seq DESC LIMIT %s"
        )
        async with connection.transaction():
            if len(conditions) == 1:
                # Terms alone: a bitmap AND of the text index and the tier's sequence range reads only the tier's
                # matches; the index scan of the range the planner prefers detoasts every article in it.
                await connection.execute(b"SET LOCAL enable_indexscan = off")
            found_rows = await (await connection.execute(
                sql.encode(), [query, *params, *bounds, *keyset_values, limit + 1 - len(rows)]
            )).fetchall()
        rows += [(seq, [tier, tiers.width, float(value)], float(value)) for seq, value in found_rows]
        tier, anchor = tier + 1, None
    return rows


async def _matches_by_density(
    connection: psycopg.AsyncConnection[Any], where: str, params: list[Any], watermark: int
) -> int:
    """The matches below `watermark`, extrapolated from those among the newest `DENSITY_SPAN_TIERS` tiers' worth of
    articles (counted up to one tier).

    The planner's estimate for several terms assumes they occur independently; words that go together in the news
    ("republic" and "death", a first name and a surname) match far more: 7,883 of 100,000 articles where it
    expected 54, so one tier held every match and all 7,883 vectors were ranked (240 ms instead of ~40). Counting
    the newest slice reads only the slice's matches (a bitmap AND of the text index and the sequence range).
    """
    span = DENSITY_SPAN_TIERS * RELEVANCE_TIER
    sql = (
        f"SELECT count(*) FROM (SELECT 1 FROM articles a WHERE {where} AND a.seq > %s AND a.seq <= %s LIMIT %s) s"
    )
    async with connection.transaction():
        await connection.execute(b"SET LOCAL enable_indexscan = off")
        row = await (await connection.execute(
            sql.encode(), [*params, watermark - span, watermark, RELEVANCE_TIER + 1]
        )).fetchone()
    found = int(row[0]) if row else 0
    return found * watermark // span


async def _page_items(
    connection: psycopg.AsyncConnection[Any], seqs: list[int], query: str | None, fields: Sequence[str] | None
) -> list[dict[str, Any]]:
    """The page's records in page order, with score and headline when the query has full-text terms."""
    if not seqs:
        return []
    if query is None:
        cursor = await connection.execute(b"SELECT seq, record::text, NULL, NULL FROM articles WHERE seq = ANY(%s)",
                                          (seqs,))
    else:
        cursor = await connection.execute(
            f"SELECT seq, record::text, ts_rank_cd(search_vector, q), ts_headline('english', body, q, "
            f"'{_HEADLINE_OPTIONS}') FROM articles, {_TSQUERY} q WHERE seq = ANY(%s)".encode(),
            (query, seqs),
        )
    found = {row[0]: row[1:] for row in await cursor.fetchall()}
    return [
        project(found[seq][0], fields, {"score": float(found[seq][1]), "snippet": found[seq][2]} if query else None)
        for seq in seqs
    ]

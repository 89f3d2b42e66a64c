"""SQLite backend: one WAL-mode connection driven from a dedicated worker thread, FTS5 for search."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from shared.errors import Rejected, TransientError
from shared.events import ArticleRecord, SkippedRevision
from shared.observability.logging import get_logger
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
    to_utc,
    with_skipped_revisions,
)
from shared.storage.migrations import Migration, pending
from shared.storage.paging import Cursor, SampleStep, Sort, Tiers, project
from shared.storage.queries import (
    NEAR_DUPLICATES_SQL,
    ORDER_NEWEST_FIRST,
    SUMMARY_COLUMNS,
    duplicates_from_rows,
    escape_like,
    facet_columns,
    facets_from_rows,
    facets_union,
    filter_clause,
    fts5_query,
)
from shared.storage.sources import SOURCE_COLUMNS, Source, insert_source_sql

T = TypeVar("T")

BUSY_TIMEOUT_MS = 10_000
EXPORT_FETCH_ROWS = 500
# Worth retrying later (never the article's fault): a lock held past busy_timeout, a file that cannot be opened or
# written (directory gone or read-only, disk full, I/O error), a file that is not (yet) a database again, a table
# dropped or renamed by hand (every batch would fail alike: wait for the operator rather than dead-letter them all).
_TRANSIENT_CODES = ("SQLITE_BUSY", "SQLITE_LOCKED", "SQLITE_CANTOPEN", "SQLITE_IOERR", "SQLITE_FULL", "SQLITE_READONLY",
                    "SQLITE_NOTADB", "SQLITE_CORRUPT", "SQLITE_PROTOCOL", "SQLITE_NOMEM")
_TRANSIENT_MESSAGES = ("locked", "busy", "unable to open", "disk i/o", "disk is full", "readonly", "not a database",
                       "no such table", "no such column")
# This article's values are what SQLite refuses (too big, a constraint, an integer past 64 bits): retrying is no use.
_REJECTING_CODES = ("SQLITE_TOOBIG", "SQLITE_CONSTRAINT", "SQLITE_MISMATCH", "SQLITE_RANGE")
_LOCK_RETRIES = 3

log = get_logger("newsflow.storage")


def sqlite_path(url: str) -> Path:
    """`sqlite:///rel/path.db` -> rel/path.db, `sqlite:////abs/path.db` -> /abs/path.db."""
    prefix = "sqlite:///"
    if not url.startswith(prefix):
        raise ValueError(f"not a sqlite URL (expected {prefix}path): {url!r}")
    path = url[len(prefix):].split("?", 1)[0]
    if not path:
        raise ValueError(f"sqlite URL without a path: {url!r}")
    return Path(path)


def _timestamp(moment: datetime) -> str:
    """Fixed-precision UTC ISO text, so comparing strings compares instants."""
    return to_utc(moment).isoformat(timespec="microseconds")


def _parse_timestamp(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def _is_transient(error: Exception) -> bool:
    code = getattr(error, "sqlite_errorname", "") or ""
    if code.startswith(_TRANSIENT_CODES):
        return True
    message = str(error).lower()
    return isinstance(error, sqlite3.OperationalError) and any(part in message for part in _TRANSIENT_MESSAGES)


def _rejects_the_input(error: Exception) -> bool:
    """True when the statement failed on the values it was given (the article), not on the database."""
    if isinstance(error, (OverflowError, UnicodeEncodeError, sqlite3.DataError, sqlite3.IntegrityError)):
        return True
    code = getattr(error, "sqlite_errorname", "") or ""
    return code.startswith(_REJECTING_CODES)


FileIdentity = tuple[int, int]  # (device, inode) of the database file


def _identity_of(path: Path) -> FileIdentity | None:
    try:
        status = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    return status.st_dev, status.st_ino


_ARTICLE_FIELDS = (
    "id", "external_id", "url", "origin", "title", "body", "authors", "source_domain", "source_name",
    "published_at", "language", "word_count", "reading_time_s", "summary", "sentiment", "sentiment_label",
    "category", "category_score", "duplicate_of", "content_hash", "received_at", "fingerprint", "record",
    "content_type", "revision_at",
)
_INSERT_ARTICLE = (
    f"INSERT INTO articles ({', '.join(_ARTICLE_FIELDS)}, revision, created_at, updated_at) "
    f"VALUES ({', '.join('?' for _ in _ARTICLE_FIELDS)}, 1, ?, ?)"
)
_UPDATE_ARTICLE = (
    "UPDATE articles SET "
    + ", ".join(f"{name} = ?" for name in _ARTICLE_FIELDS if name != "id")
    + ", revision = revision + 1, updated_at = ? WHERE id = ? RETURNING revision"
)
# Title matches weigh four times body matches; negated so that a larger score is a better match.
_BM25_SCORE = "-bm25(articles_fts, 4.0, 1.0)"
_CHILD_TABLES = ("article_entities", "mentions", "places", "article_countries", "keywords", "near_duplicates")


class SQLiteStorage(Storage):
    """Articles in one SQLite file (WAL, busy timeout, BEGIN IMMEDIATE writes)."""

    def __init__(self, url: str, *, read_mostly: bool = False) -> None:
        self.url = url
        self.read_mostly = read_mostly
        self.path = sqlite_path(url)
        # sqlite3 connections are not for concurrent use: one thread owns this one.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-storage")
        self._connection: sqlite3.Connection | None = None
        # The file the connection opened; None until the first open. Writers (publish) that migrated once migrate
        # again a database file that was recreated or replaced under them.
        self._identity: FileIdentity | None = None
        self._migrated = False

    # -- plumbing -----------------------------------------------------------------------------------

    def _connect(self, *, create_directory: bool = True) -> sqlite3.Connection:
        if create_directory:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        elif not self.path.parent.is_dir():
            # Removed by someone else: recreating it here would hide that (and write where nobody looks).
            raise TransientError(f"sqlite {self.path}: its directory {self.path.parent} does not exist")
        # isolation_level=None: no implicit transactions; every write opens BEGIN IMMEDIATE itself so
        # the write lock is taken up front and two writers never deadlock upgrading read locks.
        connection = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute("PRAGMA synchronous = NORMAL")  # durable across crashes in WAL mode
        connection.execute("PRAGMA foreign_keys = ON")
        if self.read_mostly:
            # Rows are wide (body and record JSON); a 64 MB page cache and a mapped file keep the read API's
            # repeated page and facet reads off the system-call path. Writers and exports keep the small default.
            connection.execute("PRAGMA cache_size = -65536")
            connection.execute("PRAGMA mmap_size = 268435456")
        return connection

    def _connection_in_thread(self) -> sqlite3.Connection:
        """The open connection — after checking that the file it writes is still the one at `path`."""
        if self._connection is not None:
            self._verify_file()
            return self._connection
        reopening = self._identity is not None
        connection = self._connect(create_directory=not reopening)
        try:
            identity = _identity_of(self.path)
            if identity is None:
                raise TransientError(f"sqlite {self.path}: the database file vanished while it was opened")
            applied = self._migrate_in_thread(connection) if reopening and self._migrated else []
        except BaseException:
            connection.close()
            raise
        self._connection, self._identity = connection, identity
        if reopening:
            log.error("storage.reopened", path=str(self.path), migrated=applied,
                      note="a new database file is in use: what the old one held is not in it")
        return connection

    def _verify_file(self) -> None:
        """Raise TransientError (and drop the connection) when the file was removed or replaced under us.

        SQLite keeps writing to the inode it opened: once the path points elsewhere (or nowhere), every commit
        would succeed into a file nobody can open again. The next attempt reopens whatever is at the path.
        """
        identity = _identity_of(self.path)
        if identity == self._identity:
            return
        if identity is None:
            what = "removed" if self.path.parent.is_dir() else f"removed with its directory {self.path.parent}"
        else:
            what = "replaced by another file"
        log.error("storage.unavailable", path=str(self.path), error=f"the database file was {what}",
                  action="not acknowledging; reopening (and migrating) once the path is usable again")
        self._drop_connection()
        raise TransientError(f"sqlite {self.path}: the database file was {what} under the process")

    def _drop_connection(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(sqlite3.Error):
                self._connection.close()
            self._connection = None

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run `work` on the storage thread, on a verified file; classify what fails (see `_is_transient`)."""

        def call() -> T:
            for attempt in range(_LOCK_RETRIES):
                try:
                    result = work(self._connection_in_thread())
                    # A commit that raced a removal went to the old inode: not stored, so not a success.
                    self._verify_file()
                    return result
                except TransientError:
                    raise
                except (sqlite3.Error, OverflowError, UnicodeEncodeError) as error:
                    if _rejects_the_input(error):
                        raise Rejected("storage_rejected", f"SQLite refused it: {error}") from error
                    if not _is_transient(error):
                        raise
                    if attempt == _LOCK_RETRIES - 1:
                        raise TransientError(f"sqlite {self.path}: {error}") from error
                    time.sleep(0.05 * (attempt + 1))
            raise AssertionError("unreachable")

        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, call)

    async def check(self) -> None:
        """TransientError unless the database file at `path` is the open one and answers."""
        await self._run(lambda connection: connection.execute("SELECT 1").fetchone())

    @staticmethod
    def _write(connection: sqlite3.Connection, work: Callable[[sqlite3.Connection], T]) -> T:
        connection.execute("BEGIN IMMEDIATE")
        try:
            result = work(connection)
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")
        return result

    # -- schema -------------------------------------------------------------------------------------

    async def migrate(self, target: int | None = None) -> list[int]:
        """Apply pending migrations, each in its own transaction with its `schema_migrations` row."""
        applied = await self._run(functools.partial(self._migrate_in_thread, target=target))
        self._migrated = target is None
        return applied

    def _migrate_in_thread(self, connection: sqlite3.Connection, target: int | None = None) -> list[int]:
        applied_now: list[int] = []

        def ensure_table(c: sqlite3.Connection) -> set[int]:
            c.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                "version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
            )
            return {row[0] for row in c.execute("SELECT version FROM schema_migrations")}

        applied = self._write(connection, ensure_table)
        for migration in pending(applied, target):

            def apply(c: sqlite3.Connection, migration: Migration = migration) -> bool:
                version = migration.version
                # Another process may have applied it while we waited for the write lock.
                if c.execute("SELECT 1 FROM schema_migrations WHERE version = ?", (version,)).fetchone():
                    return False
                for statement in migration.statements("sqlite"):
                    c.execute(statement)
                c.execute(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                    (version, migration.name, _timestamp(datetime.now(UTC))),
                )
                return True

            if self._write(connection, apply):
                applied_now.append(migration.version)
        return applied_now

    async def schema_version(self) -> int:
        """The highest applied migration (0 when none)."""

        def read(connection: sqlite3.Connection) -> int:
            exists = connection.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
            ).fetchone()
            if not exists:
                return 0
            row = connection.execute("SELECT max(version) FROM schema_migrations").fetchone()
            return int(row[0] or 0)

        return await self._run(read)

    # -- writes -------------------------------------------------------------------------------------

    async def upsert_articles(self, records: Sequence[ArticleRecord]) -> list[UpsertResult]:
        """Insert new ids, update changed ones (revision + 1), leave identical ones untouched."""
        if not records:
            return []
        storing = [storable(record) for record in records]
        batch, older = dedupe_newest(storing)
        rows = [record_rows(record) for record in batch]  # CPU work outside the write lock
        work = functools.partial(_upsert, rows=rows, older=older)
        results = await self._run(functools.partial(self._write, work=work))
        return [_result_for(record, results, older) for record in storing]

    # -- reads --------------------------------------------------------------------------------------

    async def get_article(self, article_id: str) -> ArticleRecord | None:
        """The stored record JSON, parsed back into the contract model."""

        def read(connection: sqlite3.Connection) -> str | None:
            row = connection.execute("SELECT record FROM articles WHERE id = ?", (article_id,)).fetchone()
            return None if row is None else str(row[0])

        text = await self._run(read)
        return None if text is None else ArticleRecord.model_validate_json(text)

    async def list_articles(self, filters: ArticleFilters | None = None) -> list[ArticleSummary]:
        """Summaries, newest publication first."""
        filters = filters or ArticleFilters()
        where, params = filter_clause(filters, "?", _timestamp)
        sql = f"SELECT {SUMMARY_COLUMNS} FROM articles a {where} {ORDER_NEWEST_FIRST}"
        if filters.limit is not None:
            sql += " LIMIT ?"
            params.append(filters.limit)

        def read(connection: sqlite3.Connection) -> list[ArticleSummary]:
            return [
                ArticleSummary(
                    id=row[0], title=row[1], url=row[2], source_domain=row[3], language=row[4],
                    category=row[5], published_at=_parse_timestamp(row[6]), word_count=row[7],
                    revision=row[8], updated_at=datetime.fromisoformat(row[9]), content_type=row[10],
                )
                for row in connection.execute(sql, params)
            ]

        return await self._run(read)

    async def count(self, filters: ArticleFilters | None = None) -> int:
        """Number of matching articles."""
        where, params = filter_clause(filters or ArticleFilters(), "?", _timestamp)
        sql = f"SELECT count(*) FROM articles a {where}"
        return await self._run(lambda connection: int(connection.execute(sql, params).fetchone()[0]))

    async def _read_page(self, request: PageRequest) -> ArticlePage:
        """Keyset pages below a sequence watermark: a sort-key index walk, or bm25 ranking tier by tier."""
        f, sort, limit, after = request.filters, request.sort, request.limit, request.after
        expression = fts5_query(f.query) if f.query else None
        if f.query and expression is None:
            return ArticlePage([], None)  # nothing searchable in the terms ("!!!"): nothing matches
        conditions, params = _indexed_conditions(f)

        def read(connection: sqlite3.Connection) -> ArticlePage:
            connection.execute("BEGIN")  # one snapshot for the watermark, the page and its records
            try:
                if after is not None:
                    watermark = after.watermark
                else:
                    watermark = int(connection.execute("SELECT coalesce(max(seq), 0) FROM articles").fetchone()[0])
                if sort.key == "relevance":
                    assert expression is not None
                    page = _ranked_page(connection, expression, conditions, params, watermark, after, limit)
                else:
                    page = _ordered_page(connection, sort, expression, conditions, params, watermark, after, limit)
                items = _page_items(connection, [seq for seq, _, _ in page[:limit]], expression, request.fields, page)
            finally:
                connection.execute("COMMIT")
            return request.page(page, items, watermark)

        return await self._run(read)

    async def facets(self, filters: ArticleFilters, *, size: int = 10) -> Facets:
        """An exact total; the facets counted over the matches, or over every k-th of a large match set."""
        f = filters.normalised()
        expression = fts5_query(f.query) if f.query else None
        templates, params = _indexed_conditions(f)
        conditions = [c.format(seq="a.seq") for c in templates]
        columns = facet_columns("substr(a.published_at, 1, 10)")

        def read(connection: sqlite3.Connection) -> Facets:
            connection.execute("BEGIN")
            try:
                if f.query and expression is None:
                    return facets_from_rows(0, 1, [])
                connection.execute("DROP TABLE IF EXISTS temp.facet_sample")
                if not conditions and expression is None:
                    total = int(connection.execute("SELECT count(*) FROM articles").fetchone()[0])
                    step = SampleStep.for_matches(total, FACET_SAMPLE).every
                    # Every k-th sequence number, looked up by rowid: no pass over the whole table.
                    top = int(connection.execute("SELECT coalesce(max(seq), 0) FROM articles").fetchone()[0])
                    connection.execute(
                        "CREATE TEMP TABLE facet_sample AS WITH RECURSIVE s(x) AS (SELECT ? UNION ALL "
                        f"SELECT x + ? FROM s WHERE x + ? <= ?) SELECT {columns} FROM s JOIN articles a ON a.seq = s.x",
                        (step, step, step, top),
                    )
                else:
                    # The matches' sequence numbers once (from indexes and the text index: no row read), then
                    # the rows of every k-th.
                    connection.execute("DROP TABLE IF EXISTS temp.facet_matches")
                    if expression is not None:  # the text index's rowids are the sequence numbers
                        matches = " AND ".join(["articles_fts MATCH ?", *(c.format(seq="rowid") for c in templates)])
                        connection.execute(
                            f"CREATE TEMP TABLE facet_matches AS SELECT rowid AS seq FROM articles_fts WHERE {matches}",
                            [expression, *params],
                        )
                    else:
                        connection.execute(
                            "CREATE TEMP TABLE facet_matches AS SELECT a.seq FROM articles a "
                            f"WHERE {' AND '.join(conditions)}",
                            params,
                        )
                    total = int(connection.execute("SELECT count(*) FROM temp.facet_matches").fetchone()[0])
                    step = SampleStep.for_matches(total, FACET_SAMPLE).every
                    connection.execute(
                        f"CREATE TEMP TABLE facet_sample AS SELECT {columns} FROM temp.facet_matches fm "
                        f"JOIN articles a ON a.seq = fm.seq WHERE fm.seq % {step} = 0"
                    )
                    connection.execute("DROP TABLE temp.facet_matches")
                rows = connection.execute(facets_union("facet_sample", size, pin="+")).fetchall()
                connection.execute("DROP TABLE temp.facet_sample")
            finally:
                connection.execute("COMMIT")
            return facets_from_rows(total, step, rows)

        return await self._run(read)

    async def near_duplicates(self, article_id: str, fields: Sequence[str] | None = None) -> list[dict[str, Any]]:
        """Both directions of the near-duplicate relation, and exact copies (similarity 1.0)."""

        def read(connection: sqlite3.Connection) -> list[dict[str, Any]]:
            sql = NEAR_DUPLICATES_SQL.format(record="a.record").replace("%s", "?")
            return duplicates_from_rows(connection.execute(sql, [article_id] * 4).fetchall(), fields)

        return await self._run(read)

    async def iter_export(self, filters: ArticleFilters | None = None) -> AsyncIterator[ArticleRecord]:
        """Records in storage order, read `EXPORT_FETCH_ROWS` at a time on a private read connection."""
        filters = filters or ArticleFilters()
        where, params = filter_clause(filters, "?", _timestamp)
        sql = f"SELECT a.record FROM articles a {where} ORDER BY a.seq"
        if filters.limit is not None:
            sql += " LIMIT ?"
            params.append(filters.limit)
        # A separate connection and thread: the export reads one consistent WAL snapshot and never
        # blocks (or is blocked by) upserts on the main connection.
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-export")
        loop = asyncio.get_running_loop()
        connection: sqlite3.Connection | None = None
        try:
            connection = await loop.run_in_executor(executor, self._connect)
            cursor = await loop.run_in_executor(executor, connection.execute, sql, params)
            while True:
                rows = await loop.run_in_executor(executor, cursor.fetchmany, EXPORT_FETCH_ROWS)
                if not rows:
                    break
                for (text,) in rows:
                    yield ArticleRecord.model_validate_json(text)
        except sqlite3.OperationalError as error:
            if _is_transient(error):
                raise TransientError(f"sqlite {self.path}: {error}") from error
            raise
        finally:
            if connection is not None:
                await loop.run_in_executor(executor, connection.close)
            executor.shutdown(wait=False)

    # -- sources ------------------------------------------------------------------------------------

    async def add_source(self, source: Source) -> tuple[Source, bool]:
        """INSERT unless the URL is registered; the row that is stored afterwards."""
        values = (source.id, source.url, source.name, source.interval_s, _timestamp(source.added_at))

        def write(connection: sqlite3.Connection) -> tuple[tuple[Any, ...], bool]:
            created = connection.execute(insert_source_sql("?"), values).rowcount == 1
            row = connection.execute(f"SELECT {SOURCE_COLUMNS} FROM sources WHERE url = ?", (source.url,)).fetchone()
            return tuple(row), created

        row, created = await self._run(functools.partial(self._write, work=write))
        return _source(row), created

    async def list_sources(self) -> list[Source]:
        """Oldest first."""
        sql = f"SELECT {SOURCE_COLUMNS} FROM sources ORDER BY added_at, id"
        rows = await self._run(lambda connection: connection.execute(sql).fetchall())
        return [_source(row) for row in rows]

    async def remove_source(self, key: str) -> Source | None:
        """DELETE by id or URL."""

        def write(connection: sqlite3.Connection) -> tuple[Any, ...] | None:
            row = connection.execute(
                f"DELETE FROM sources WHERE id = ? OR url = ? RETURNING {SOURCE_COLUMNS}", (key, key)
            ).fetchone()
            return tuple(row) if row else None

        row = await self._run(functools.partial(self._write, work=write))
        return _source(row) if row else None

    async def close(self) -> None:
        """Close the connection and stop the worker thread."""

        def shut(connection: sqlite3.Connection | None) -> None:
            if connection is not None:
                connection.close()
            self._connection = None

        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, shut, self._connection)
        self._executor.shutdown(wait=True)


def _upsert(
    connection: sqlite3.Connection, rows: list[RecordRows], older: list[ArticleRecord]
) -> dict[str, UpsertResult]:
    """The body of the upsert transaction (the write lock is already held); newest revision wins."""
    now = datetime.now(UTC)
    now_text = _timestamp(now)
    ids = [r.article["id"] for r in rows]
    existing: dict[str, tuple[str, int, str, str]] = {}
    for start in range(0, len(ids), 500):  # stay far below SQLite's bound-parameter limit
        chunk = ids[start:start + 500]
        marks = ", ".join("?" for _ in chunk)
        for article_id, fingerprint, revision, updated_at, revision_at in connection.execute(
            "SELECT id, fingerprint, revision, updated_at, coalesce(revision_at, received_at) "
            f"FROM articles WHERE id IN ({marks})",
            chunk,
        ):
            existing[article_id] = (fingerprint, revision, updated_at, revision_at)

    results: dict[str, UpsertResult] = {}
    written: list[RecordRows] = []
    late: dict[str, list[SkippedRevision]] = {}
    for row in rows:
        article = row.article
        article_id = article["id"]
        values = [
            _timestamp(value) if isinstance(value, datetime) else value
            for value in (article[name] for name in _ARTICLE_FIELDS)
        ]
        revision_at = _timestamp(article["revision_at"])
        previous = existing.get(article_id)
        if previous is not None and previous[0] == article["fingerprint"]:
            if revision_at > previous[3]:  # the same content again, later: it is the newest revision now
                connection.execute("UPDATE articles SET revision_at = ? WHERE id = ?", (revision_at, article_id))
            results[article_id] = UpsertResult(article_id, previous[1], False, datetime.fromisoformat(previous[2]))
            continue
        if previous is not None and revision_at < previous[3]:
            late.setdefault(article_id, []).append(skipped_revision(row.source, now))
            results[article_id] = UpsertResult(
                article_id, previous[1], False, datetime.fromisoformat(previous[2]), stale=True
            )
            continue
        if previous is None:
            connection.execute(_INSERT_ARTICLE, [*values, now_text, now_text])
            revision = 1
        else:
            revision = connection.execute(_UPDATE_ARTICLE, [*values[1:], now_text, article_id]).fetchone()[0]
            for table in _CHILD_TABLES:
                connection.execute(f"DELETE FROM {table} WHERE article_id = ?", (article_id,))
        results[article_id] = UpsertResult(article_id, revision, True, now)
        written.append(row)

    if written:
        _insert_children(connection, written)
    for record in older:
        late.setdefault(record.id, []).append(skipped_revision(record, now))
    for article_id, revisions in sorted(late.items()):
        (stored,) = connection.execute("SELECT record FROM articles WHERE id = ?", (article_id,)).fetchone()
        connection.execute(
            "UPDATE articles SET record = ? WHERE id = ?", (with_skipped_revisions(stored, revisions), article_id)
        )
    return results


def _result_for(record: ArticleRecord, results: dict[str, UpsertResult], older: list[ArticleRecord]) -> UpsertResult:
    """The result of one input record: its id's, marked stale when a newer revision in its batch beat it."""
    result = results[record.id]
    if any(record is beaten for beaten in older):
        return replace(result, changed=False, stale=True)
    return result


def _insert_children(connection: sqlite3.Connection, rows: list[RecordRows]) -> None:
    names = sorted({(name, label) for row in rows for name, label, _ in row.entities})
    connection.executemany(
        "INSERT OR IGNORE INTO entities (name, label, name_key) VALUES (?, ?, lower(?))",
        [(name, label, name) for name, label in names],
    )
    entity_ids: dict[tuple[str, str], int] = {}
    for name, label in names:
        entity_ids[(name, label)] = connection.execute(
            "SELECT id FROM entities WHERE name = ? AND label = ?", (name, label)
        ).fetchone()[0]

    def each(make: Callable[[str, RecordRows], list[tuple[Any, ...]]]) -> list[tuple[Any, ...]]:
        return [values for row in rows for values in make(row.article["id"], row)]

    connection.executemany(
        "INSERT INTO article_entities (article_id, entity_id, mention_count) VALUES (?, ?, ?)",
        each(lambda aid, r: [(aid, entity_ids[(n, lb)], c) for n, lb, c in r.entities]),
    )
    connection.executemany(
        "INSERT INTO mentions (article_id, ordinal, entity_id, field, start_offset, end_offset, text) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        each(lambda aid, r: [(aid, o, entity_ids[(n, lb)], f, s, e, t) for n, lb, o, f, s, e, t in r.mentions]),
    )
    connection.executemany(
        "INSERT INTO places (article_id, name, country_code, country, latitude, longitude, mentions) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        each(lambda aid, r: [(aid, *place) for place in r.places]),
    )
    connection.executemany(
        "INSERT INTO article_countries (article_id, country_code, ordinal) VALUES (?, ?, ?)",
        each(lambda aid, r: [(aid, *country) for country in r.countries]),
    )
    connection.executemany(
        "INSERT INTO keywords (article_id, keyword, ordinal) VALUES (?, ?, ?)",
        each(lambda aid, r: [(aid, *keyword) for keyword in r.keywords]),
    )
    connection.executemany(
        "INSERT INTO near_duplicates (article_id, duplicate_id, similarity) VALUES (?, ?, ?)",
        each(lambda aid, r: [(aid, *duplicate) for duplicate in r.near_duplicates]),
    )


def _source(row: Sequence[Any]) -> Source:
    return Source(id=row[0], url=row[1], name=row[2], interval_s=int(row[3]), added_at=datetime.fromisoformat(row[4]))


# Facets over more matches than twice this count every k-th of them (a 2-core machine aggregates ~200k entity
# rows per second in SQLite; 3,000 articles name ~40k).
FACET_SAMPLE = 3_000
_PUBLISHED_KEY = "coalesce(a.published_at, '')"  # the expression of index articles_published_key


def _ordered_page(
    connection: sqlite3.Connection, sort: Sort, expression: str | None, conditions: list[str], params: list[Any],
    watermark: int, after: Cursor | None, limit: int,
) -> list[PageRow]:
    """Walk the sort key's index, newest (or oldest) first, keeping rows that pass every filter."""
    key = _PUBLISHED_KEY if sort.key == "published_at" else "a.received_at"
    where, values = [*(c.format(seq="+a.seq") for c in conditions), "a.seq <= ?"], [*params, watermark]
    if expression is not None:
        # The unary + keeps the planner off the rowid: it walks the sort index and probes the match set (built
        # once), which stops after one page however common the word; sorting every match would read them all.
        where.insert(0, "+a.seq IN (SELECT rowid FROM articles_fts WHERE articles_fts MATCH ?)")
        values.insert(0, expression)
    direction, beyond = ("DESC", "<") if sort.descending else ("ASC", ">")
    if after is not None:
        where.append(f"({key} {beyond} ? OR ({key} = ? AND a.seq {beyond} ?))")
        values += [after.key, after.key, after.seq]
    sql = (
        f"SELECT a.seq, {key} FROM articles a WHERE {' AND '.join(where)} "
        f"ORDER BY {key} {direction}, a.seq {direction} LIMIT ?"
    )
    return [(seq, key_value, None) for seq, key_value in connection.execute(sql, [*values, limit + 1])]


def _ranked_page(
    connection: sqlite3.Connection, expression: str, conditions: list[str], params: list[Any], watermark: int,
    after: Cursor | None, limit: int,
) -> list[PageRow]:
    """bm25 order within tiers of ~`RELEVANCE_TIER` matches, newest tier first; the cursor key is
    [tier, width, score]."""
    if conditions:
        # The filters' sets are built once, into the request's own candidate list, not once per tier.
        connection.execute("DROP TABLE IF EXISTS temp.ranked_candidates")
        connection.execute(
            "CREATE TEMP TABLE ranked_candidates AS SELECT rowid AS seq FROM articles_fts WHERE articles_fts MATCH ? "
            f"AND rowid <= ? AND {' AND '.join(c.format(seq='rowid') for c in conditions)}",
            [expression, watermark, *params],
        )
        conditions, params = ["{seq} IN (SELECT seq FROM temp.ranked_candidates)"], []
        count_sql = "SELECT count(*) FROM temp.ranked_candidates"
        count_params: list[Any] = []
    else:
        count_sql = "SELECT count(*) FROM articles_fts WHERE articles_fts MATCH ? AND rowid <= ?"
        count_params = [expression, watermark]
    if after is not None:
        tier, width, _ = after.key
        tiers = Tiers(watermark, int(width))
    else:
        tier, tiers = 0, Tiers.for_matches(watermark, int(connection.execute(count_sql, count_params).fetchone()[0]))
    found: list[PageRow] = []
    anchor = after
    while len(found) <= limit and (bounds := tiers.bounds(tier)) is not None:
        where = ["articles_fts MATCH ?", "articles_fts.rowid > ?", "articles_fts.rowid <= ?"]
        values: list[Any] = [expression, *bounds]
        if anchor is not None:
            # bm25 weighs terms by corpus statistics, which arrivals shift: compare against the anchor article's
            # score now, not the one it had when the previous page was read.
            where.append(
                f"({_BM25_SCORE}, articles_fts.rowid) < (coalesce((SELECT {_BM25_SCORE} FROM articles_fts "
                "WHERE articles_fts MATCH ? AND articles_fts.rowid = ?), ?), ?)"
            )
            values += [expression, anchor.seq, anchor.key[2], anchor.seq]
        # Ranking alone, filters probed by rowid: no article row is read until the page is known.
        where += [c.format(seq="articles_fts.rowid") for c in conditions]
        values += params
        sql = (
            f"SELECT articles_fts.rowid, {_BM25_SCORE} AS score FROM articles_fts WHERE {' AND '.join(where)} "
            "ORDER BY score DESC, articles_fts.rowid DESC LIMIT ?"
        )
        for seq, score in connection.execute(sql, [*values, limit + 1 - len(found)]):
            found.append((seq, [tier, tiers.width, score], score))
        tier, anchor = tier + 1, None
    return found


def _page_items(
    connection: sqlite3.Connection, seqs: list[int], expression: str | None, fields: Sequence[str] | None,
    page: list[PageRow],
) -> list[dict[str, Any]]:
    """The page's records in page order, with score and snippet when the query has full-text terms."""
    if not seqs:
        return []
    marks = ", ".join("?" for _ in seqs)
    records = dict(connection.execute(f"SELECT seq, record FROM articles WHERE seq IN ({marks})", seqs))
    snippets: dict[int, str] = {}
    scores: dict[int, float] = {}
    if expression is not None:
        for seq, snippet, score in connection.execute(
            f"SELECT rowid, snippet(articles_fts, 1, '{HIGHLIGHT_START}', '{HIGHLIGHT_END}', '…', 24), "
            f"{_BM25_SCORE} FROM articles_fts WHERE articles_fts MATCH ? AND rowid IN ({marks})",
            [expression, *seqs],
        ):
            snippets[seq], scores[seq] = snippet, float(score)
    return [
        project(records[seq], fields, {"score": scores.get(seq), "snippet": snippets.get(seq)} if expression else None)
        for seq in seqs
    ]


def _indexed_conditions(f: ArticleFilters) -> tuple[list[str], list[Any]]:
    """The filters as `{seq} IN (...)` templates, each set read from an index alone.

    An article row holds its body and record JSON (kilobytes, overflow pages): a condition on a row column costs
    a row read per candidate. These sets are built once per query from indexes, then probed by sequence number
    (the FTS5 rowid), so ranking, index walks and samples never read a row that does not match.
    """
    sets: list[str] = []
    params: list[Any] = []

    def add(sql: str, *values: Any, negate: bool = False) -> None:
        sets.append(f"{{seq}} {'NOT IN' if negate else 'IN'} ({sql})")
        params.extend(values)

    if f.source:
        add("SELECT seq FROM articles WHERE lower(source_domain) = ? UNION "
            "SELECT seq FROM articles WHERE lower(source_name) = ?", f.source, f.source)
    if f.lang:
        add("SELECT seq FROM articles WHERE language = ?", f.lang)
    if f.category:
        add("SELECT seq FROM articles WHERE lower(category) = ?", f.category)
    if f.content_type:
        add("SELECT seq FROM articles WHERE content_type = ?", f.content_type)
    if f.entity or f.entity_label:
        entity = [*(["e.name_key LIKE lower(?) ESCAPE '\\'"] if f.entity else []),
                  *(["e.label = ?"] if f.entity_label else [])]
        # CROSS JOIN fixes the order: the (few) entities first; a LIKE '%x%' gives the planner no estimate.
        add("SELECT a2.seq FROM entities e CROSS JOIN article_entities ae ON ae.entity_id = e.id "
            f"JOIN articles a2 ON a2.id = ae.article_id WHERE {' AND '.join(entity)}",
            *([f"%{escape_like(f.entity)}%"] if f.entity else []), *([f.entity_label] if f.entity_label else []))
    if f.country:
        add("SELECT a2.seq FROM article_countries ac JOIN articles a2 ON a2.id = ac.article_id "
            "WHERE ac.country_code = ?", f.country)
    for column, start, end in (("published_at", f.since, f.until), ("received_at", f.received_since,
                                                                     f.received_until)):
        if start or end:
            bounds = [*([f"{column} >= ?"] if start else []), *([f"{column} < ?"] if end else [])]
            add(f"SELECT seq FROM articles WHERE {' AND '.join(bounds)}",
                *[_timestamp(moment) for moment in (start, end) if moment])
    if f.duplicates is not None:
        add("SELECT seq FROM articles WHERE duplicate_of IS NOT NULL UNION "
            "SELECT a2.seq FROM near_duplicates nd JOIN articles a2 ON a2.id = nd.article_id",
            negate=not f.duplicates)
    return sets, params

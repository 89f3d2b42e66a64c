"""What each backend does with rows it cannot store, revisions out of order, and a database that goes away."""

from __future__ import annotations

import random
import shutil
import sqlite3
import string
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from psycopg import errors as pg_errors

from shared.errors import Rejected, TransientError
from shared.events import Entity, Mention
from shared.storage import LATEST_VERSION, Storage, open_storage
from shared.storage.base import MAX_SKIPPED_REVISIONS
from shared.storage.postgres import SEARCH_BODY_CHARS, classified
from shared.storage.sqlite import sqlite_path
from tests.integration.test_storage import BASE_TIME, make_record
from tests.servers import refused_port

pytestmark = pytest.mark.integration


@pytest.fixture(params=["sqlite", "postgres"])
def storage_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database on each backend (PostgreSQL: a private schema)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/store.db"
    return str(request.getfixturevalue("postgres_schema_url"))


@pytest.fixture
async def storage(storage_url: str) -> AsyncIterator[Storage]:
    """A migrated storage on the backend under test."""
    async with open_storage(storage_url) as store:
        await store.migrate()
        yield store


def incompressible(n: int) -> str:
    """Text PostgreSQL cannot compress below `n` * 6 bits (index rows are compressed before the size check)."""
    rng = random.Random(n)
    return "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(n))


# -- sanitised: what no database can hold is removed, counted, and the offsets still fit -----------------------


async def test_nul_and_unpaired_surrogates_are_removed_everywhere_and_counted(storage: Storage) -> None:
    body = "Harbour\x00 talks resumed. The council\ud800 met the ferry operators."
    start = body.index("ferry")
    record = make_record(
        "nul", body=body, summary="Harbour talks resumed.", title="Ferry\x00 strike", external_id="client\x00-1",
        authors=["Ann\x00 Lee"],
        keywords=["ferry\x00"],
        entities=[Entity(name="ferry\x00", label="ORG", mentions=[Mention(text="ferry", start=start,
                                                                           end=start + 5, field="body")])],
    )
    (result,) = await storage.upsert_articles([record])
    assert result.changed
    stored = await storage.get_article("nul")
    assert stored is not None
    assert (stored.title, stored.external_id, stored.authors, stored.keywords) == (
        "Ferry strike", "client-1", ["Ann Lee"], ["ferry"])
    assert stored.body == "Harbour talks resumed. The council met the ferry operators."
    assert stored.dropped == {"nul_characters": 6, "unpaired_surrogates": 1}
    mention = stored.entities[0].mentions[0]
    assert stored.body[mention.start:mention.end] == "ferry"
    assert [hit.id for hit in await storage.search("ferry operators")] == ["nul"]
    # A re-push of the same unclean record is the same content: nothing changes.
    (again,) = await storage.upsert_articles([record])
    assert not again.changed and again.revision == 1


# -- refused: the row alone fails, with the database's own words -------------------------------------------------


async def test_a_value_postgres_refuses_fails_the_batch_as_rejected_with_its_message(
    storage: Storage, storage_url: str,
) -> None:
    bad = make_record("bad", word_count=2**40)  # past PostgreSQL's 32-bit INTEGER; SQLite's are 64-bit
    if storage_url.startswith("sqlite"):
        await storage.upsert_articles([make_record("fine"), bad])
        assert await storage.count() == 2
        return
    with pytest.raises(Rejected) as refused:
        await storage.upsert_articles([make_record("fine"), bad])
    assert refused.value.reason == "storage_rejected"
    assert "22003" in refused.value.message and "integer out of range" in refused.value.message
    assert await storage.count() == 0, "the batch is one transaction: nothing of it is stored"
    await storage.upsert_articles([make_record("fine")])
    assert await storage.count() == 1


async def test_a_value_no_backend_can_hold_is_rejected_before_the_database(storage: Storage) -> None:
    with pytest.raises(Rejected, match="64-bit"):
        await storage.upsert_articles([make_record("fine"), make_record("bad", word_count=2**70)])
    assert await storage.count() == 0


async def test_postgres_index_row_over_the_btree_limit_is_rejected(postgres_schema_url: str) -> None:
    async with open_storage(postgres_schema_url) as storage:
        await storage.migrate()
        record = make_record("wide", entities=[Entity(name=incompressible(5000), label="ORG", mentions=[])])
        with pytest.raises(Rejected) as refused:
            await storage.upsert_articles([record])
        assert "54000" in refused.value.message and "index row" in refused.value.message


async def test_sqlite_stores_what_postgres_index_refuses(tmp_path: Path) -> None:
    async with open_storage(f"sqlite:///{tmp_path}/wide.db") as storage:
        await storage.migrate()
        name = incompressible(5000)
        await storage.upsert_articles([make_record("wide", entities=[Entity(name=name, label="ORG", mentions=[])])])
        stored = await storage.get_article("wide")
        assert stored is not None and stored.entities[0].name == name


async def test_a_body_past_the_tsvector_limit_is_stored_whole_and_searchable_by_its_first_part(
    storage: Storage, storage_url: str,
) -> None:
    words = [f"w{i:07d}x" for i in range(240_000)]  # ~2.4 MB of distinct words: a ~4 MB tsvector
    body = "Zanzibarish opening. " + " ".join(words)
    await storage.upsert_articles([make_record("huge", body=body, summary="")])
    stored = await storage.get_article("huge")
    assert stored is not None and stored.body == body
    assert [hit.id for hit in await storage.search("Zanzibarish")] == ["huge"]
    late_word = words[-1]
    if storage_url.startswith("postgresql"):
        assert "search_index" in stored.skipped and f"{SEARCH_BODY_CHARS:,}" in stored.skipped["search_index"]
        assert await storage.search(late_word) == [], "only the first part is indexed"
    else:  # FTS5 has no such limit: everything is indexed, nothing noted
        assert "search_index" not in stored.skipped
        assert [hit.id for hit in await storage.search(late_word)] == ["huge"]


def test_postgres_errors_are_classified_by_sqlstate() -> None:
    transient = [pg_errors.AdminShutdown, pg_errors.CannotConnectNow, pg_errors.DiskFull, pg_errors.OutOfMemory,
                 pg_errors.TooManyConnections, pg_errors.LockNotAvailable, pg_errors.ReadOnlySqlTransaction,
                 pg_errors.QueryCanceled, pg_errors.ConnectionFailure, pg_errors.IoError]
    refusing = [pg_errors.ProgramLimitExceeded, pg_errors.StringDataRightTruncation, pg_errors.UntranslatableCharacter,
                pg_errors.CharacterNotInRepertoire, pg_errors.NumericValueOutOfRange, pg_errors.NotNullViolation]
    for kind in transient:
        assert isinstance(classified(kind("x")), TransientError), kind
    for kind in refusing:
        meaning = classified(kind("the server's message"))
        assert isinstance(meaning, Rejected) and "the server's message" in meaning.message, kind
    # A client-side refusal (psycopg will not send a NUL) and a bare lost connection.
    assert isinstance(classified(psycopg.DataError("PostgreSQL text fields cannot contain NUL")), Rejected)
    assert isinstance(classified(psycopg.OperationalError("server closed the connection")), TransientError)
    # The schema or grants broken by hand: every batch would fail alike, so it is waited out, not dead-lettered.
    for kind in (pg_errors.UndefinedTable, pg_errors.InsufficientPrivilege, pg_errors.InvalidSchemaName):
        assert isinstance(classified(kind("relation \"articles\" does not exist")), TransientError), kind
    # Neither the article's, the server's nor the schema's: left as it is (the stage leaves that entry pending).
    internal = pg_errors.InternalError_("unexpected state")
    assert classified(internal) is internal


def test_sqlite_errors_are_classified_by_code() -> None:
    from shared.storage.sqlite import _is_transient, _rejects_the_input

    def error(kind: type[sqlite3.Error], message: str, code: str) -> sqlite3.Error:
        made = kind(message)
        made.sqlite_errorname = code
        return made

    for code in ("SQLITE_BUSY", "SQLITE_FULL", "SQLITE_READONLY_DIRECTORY", "SQLITE_IOERR_WRITE", "SQLITE_CANTOPEN"):
        assert _is_transient(error(sqlite3.OperationalError, "x", code)), code
    assert _is_transient(error(sqlite3.OperationalError, "attempt to write a readonly database", ""))
    assert _is_transient(error(sqlite3.OperationalError, "no such table: keywords", "SQLITE_ERROR"))
    for code in ("SQLITE_TOOBIG", "SQLITE_CONSTRAINT_NOTNULL"):
        assert _rejects_the_input(error(sqlite3.DataError, "x", code)), code
    assert _rejects_the_input(OverflowError("Python int too large to convert to SQLite INTEGER"))
    assert not _rejects_the_input(error(sqlite3.OperationalError, "database or disk is full", "SQLITE_FULL"))


async def test_a_table_renamed_by_hand_is_waited_out_not_blamed_on_the_article(
    storage: Storage, storage_url: str,
) -> None:
    def rename(old: str, new: str) -> None:
        sql = f"ALTER TABLE {old} RENAME TO {new}"
        if storage_url.startswith("sqlite"):
            with sqlite3.connect(sqlite_path(storage_url)) as connection:
                connection.execute(sql)
        else:
            with psycopg.connect(storage_url, autocommit=True) as connection:
                connection.execute(sql)

    await storage.upsert_articles([make_record("first")])
    rename("keywords", "keywords_away")
    with pytest.raises(TransientError):
        await storage.upsert_articles([make_record("second")])
    rename("keywords_away", "keywords")
    await storage.upsert_articles([make_record("second")])
    assert await storage.count() == 2


async def test_postgres_unreachable_is_transient_at_once() -> None:
    storage = open_storage(f"postgresql://postgres@127.0.0.1:{refused_port()}/nowhere")
    try:
        with pytest.raises(TransientError):
            await storage.migrate()
    finally:
        await storage.close()


async def test_sqlite_disk_full_is_transient(tmp_path: Path) -> None:
    async with open_storage(f"sqlite:///{tmp_path}/full.db") as storage:
        await storage.migrate()
        # The file may not grow: what a full disk does to a write.
        await storage._run(lambda c: c.execute(  # type: ignore[attr-defined]
            "PRAGMA max_page_count = " + str(c.execute("PRAGMA page_count").fetchone()[0])))
        with pytest.raises(TransientError, match="full"):
            await storage.upsert_articles([make_record("big", body="word " * 50_000)])


# -- newest revision wins ----------------------------------------------------------------------------------------


async def test_an_older_revision_arriving_late_is_noted_not_stored(storage: Storage) -> None:
    newer = make_record("r", title="newer", received_at=BASE_TIME + timedelta(hours=1))
    older = make_record("r", title="older", received_at=BASE_TIME, content_hash="hash-older")
    await storage.upsert_articles([newer])
    (result,) = await storage.upsert_articles([older])
    assert (result.stale, result.changed, result.revision) == (True, False, 1)
    stored = await storage.get_article("r")
    assert stored is not None and stored.title == "newer"
    assert [(s.received_at, s.content_hash) for s in stored.skipped_revisions] == [(BASE_TIME, "hash-older")]
    # Newer content still replaces it, and the notes of the replaced revision go with it.
    (third,) = await storage.upsert_articles([make_record("r", title="newest", received_at=BASE_TIME
                                                          + timedelta(hours=2))])
    assert (third.changed, third.revision) == (True, 2)
    stored = await storage.get_article("r")
    assert stored is not None and stored.title == "newest" and stored.skipped_revisions == []


async def test_a_clients_updated_at_decides_over_the_receipt_time(storage: Storage) -> None:
    first = make_record("u", title="A", received_at=BASE_TIME + timedelta(hours=5), updated_at=BASE_TIME)
    second = make_record("u", title="B", received_at=BASE_TIME, updated_at=BASE_TIME + timedelta(days=1))
    await storage.upsert_articles([first])
    (result,) = await storage.upsert_articles([second])
    assert (result.changed, result.revision) == (True, 2)
    (late,) = await storage.upsert_articles([first])
    assert late.stale
    stored = await storage.get_article("u")
    assert stored is not None and stored.title == "B"
    assert [s.updated_at for s in stored.skipped_revisions] == [BASE_TIME]


async def test_the_same_content_pushed_again_later_is_the_newest_revision(storage: Storage) -> None:
    await storage.upsert_articles([make_record("c", title="two", received_at=BASE_TIME + timedelta(hours=1))])
    (repush,) = await storage.upsert_articles([make_record("c", title="two",
                                                           received_at=BASE_TIME + timedelta(hours=3))])
    assert not repush.changed and not repush.stale
    # Made after the first push of "two" but before its re-push: older than what is stored now.
    (late,) = await storage.upsert_articles([make_record("c", title="one", received_at=BASE_TIME
                                                         + timedelta(hours=2))])
    assert late.stale
    stored = await storage.get_article("c")
    assert stored is not None and stored.title == "two"


async def test_revisions_in_one_batch_the_newest_wins_whatever_the_order(storage: Storage) -> None:
    batch = [make_record("b", title="new", received_at=BASE_TIME + timedelta(minutes=5)),
             make_record("b", title="old", received_at=BASE_TIME)]
    results = await storage.upsert_articles(batch)
    assert [(r.changed, r.stale) for r in results] == [(True, False), (False, True)]
    stored = await storage.get_article("b")
    assert stored is not None and stored.title == "new" and len(stored.skipped_revisions) == 1


async def test_a_record_keeps_only_its_latest_skipped_revisions(storage: Storage) -> None:
    await storage.upsert_articles([make_record("k", received_at=BASE_TIME + timedelta(days=1))])
    for minute in range(MAX_SKIPPED_REVISIONS + 5):
        await storage.upsert_articles([make_record("k", title=f"old {minute}",
                                                   received_at=BASE_TIME + timedelta(minutes=minute))])
    stored = await storage.get_article("k")
    assert stored is not None and len(stored.skipped_revisions) == MAX_SKIPPED_REVISIONS
    assert stored.skipped_revisions[-1].received_at == BASE_TIME + timedelta(minutes=MAX_SKIPPED_REVISIONS + 4)


# -- SQLite: the file under the process ------------------------------------------------------------------------


async def test_sqlite_directory_removed_is_never_written_into_and_a_new_database_follows(tmp_path: Path) -> None:
    directory = tmp_path / "store"
    async with open_storage(f"sqlite:///{directory / 'news.db'}") as storage:
        await storage.migrate()
        await storage.upsert_articles([make_record("before")])
        shutil.rmtree(directory)
        for _ in range(2):
            with pytest.raises(TransientError, match="removed"):
                await storage.upsert_articles([make_record("during")])
            with pytest.raises(TransientError):
                await storage.check()
        assert not directory.exists(), "the removed directory is not quietly recreated"
        directory.mkdir()
        await storage.check()
        await storage.upsert_articles([make_record("after")])
        assert await storage.schema_version() == LATEST_VERSION, "the new file was migrated"
        assert await storage.get_article("after") is not None
        assert await storage.get_article("before") is None, "what the removed file held went with it"


async def test_sqlite_file_replaced_writes_go_to_the_file_at_the_path(tmp_path: Path) -> None:
    path = tmp_path / "news.db"
    async with open_storage(f"sqlite:///{path}") as storage:
        await storage.migrate()
        await storage.upsert_articles([make_record("old-file")])
        other = tmp_path / "restored.db"
        async with open_storage(f"sqlite:///{other}") as restored:
            await restored.migrate(target=6)  # an older copy: the schema of the previous release
        for suffix in ("-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        other.replace(path)
        with pytest.raises(TransientError, match="replaced"):
            await storage.upsert_articles([make_record("new-file")])
        await storage.upsert_articles([make_record("new-file")])
        assert await storage.schema_version() == LATEST_VERSION
        assert await storage.get_article("new-file") is not None
        assert await storage.get_article("old-file") is None

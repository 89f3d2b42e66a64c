"""Storage faults with the real publish service as a process: bad rows, databases that stop, files that vanish.

Each test pushes enriched events (what enrich hands publish) onto a private prefix, injects its fault while they
flow, and checks the promise: every article stored exactly once or dead-lettered with the database's reason,
nothing pending past the claim idle time plus a margin, the service alive (or exited non-zero) — and where the
fault makes storage unusable, that nothing was acknowledged or announced as published meanwhile.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import shutil
import string
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

import httpx
import orjson
import psycopg
import pytest
import redis

from shared.events import (
    CleanSection,
    DeadLetter,
    EnrichedArticle,
    EnrichSection,
    Entity,
    IngestSection,
    Mention,
    Stamp,
)
from shared.storage import open_storage
from shared.storage.sqlite import sqlite_path
from tests.conftest import ServiceProcess, wait_for
from tests.servers import PostgresCluster, free_port, postgres_binaries_missing

BASE = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
WORDS = ("harbour", "council", "budget", "ferry", "strike", "museum", "river", "school", "court", "market")
# Claim idle in these tests (3 s, from service_env) plus a margin: nothing may be pending longer than this.
PENDING_LIMIT_S = 3.0 + 7.0


def enriched(n: int, *, body: str | None = None, title: str | None = None, external_id: str | None = None,
             received_at: datetime | None = None, url: str | None = None, **enrich: Any) -> EnrichedArticle:
    """An enriched event as enrich writes it: article `n`, its own URL and id unless `url` is given."""
    text = body if body is not None else (
        f"Story {n}. " + " ".join(f"The {WORDS[(n + i) % 10]} report number {n} was read on day {i}." for i in range(8))
    )
    ingest = IngestSection(
        external_id=external_id if external_id is not None else f"client-{n}",
        url=url or f"https://faults.example.org/story/{n}",
        origin="test",
        received_at=received_at or BASE + timedelta(seconds=n),
        content_hash=f"hash-{n}-{len(text)}",
        kind="text",
        content=text,
    )
    stamp = Stamp(stage="enrich", version="test", worker="w", started_at=BASE, finished_at=BASE, duration_ms=1.0)
    return EnrichedArticle(
        id=f"faults-{n:04d}" if url is None else "faults-" + hashlib.sha256(url.encode()).hexdigest()[:12],
        ingest=ingest,
        trace=[stamp],
        clean=CleanSection(title=title if title is not None else f"Story {n}", body=text, extractor="test",
                           url=ingest.url),
        enrich=EnrichSection(language="en", word_count=len(text.split()), reading_time_s=10, **enrich),
    )


def push(client: redis.Redis, prefix: str, events: list[EnrichedArticle]) -> None:
    pipe = client.pipeline(transaction=False)
    for event in events:
        pipe.xadd(f"{prefix}:enriched", {"data": event.to_json()})
    pipe.execute()


def stored(storage_url: str) -> dict[str, Any]:
    """id -> record of everything in storage; {} before there is a database (never creating one itself)."""
    if storage_url.startswith("sqlite:") and not sqlite_path(storage_url).exists():
        return {}

    async def read() -> dict[str, Any]:
        async with open_storage(storage_url) as storage:
            if await storage.schema_version() == 0:
                return {}
            ids: list[str] = []
            records = {}
            async for record in storage.iter_export():
                ids.append(record.id)
                records[record.id] = record
            assert len(ids) == len(set(ids)), "an article is stored twice"
            return records

    return asyncio.run(read())


def dead_letters(client: redis.Redis, prefix: str) -> list[DeadLetter]:
    return [DeadLetter.model_validate_json(f[b"data"]) for _, f in client.xrange(f"{prefix}:dlq")]


def pending(client: redis.Redis, prefix: str) -> tuple[int, float]:
    """(entries pending in publish's group, idle seconds of the oldest)."""
    rows = client.xpending_range(f"{prefix}:enriched", "publish", min="-", max="+", count=1000)
    return len(rows), max((r["time_since_delivered"] / 1000 for r in rows), default=0.0)


def published_ids(client: redis.Redis, prefix: str) -> list[str]:
    return [orjson.loads(f[b"data"])["id"] for _, f in client.xrange(f"{prefix}:published")]


def figures(client: redis.Redis, prefix: str, storage_url: str, service: ServiceProcess, pushed: int) -> dict[str, Any]:
    """What the fault left behind, printed for the record (the closing note's before/after numbers)."""
    letters = dead_letters(client, prefix)
    count, oldest = pending(client, prefix)
    result = {
        "pushed": pushed,
        "stored": len(stored(storage_url)),
        "dead_lettered": len(letters),
        "reasons": sorted({letter.reason for letter in letters}),
        "pending": count,
        "oldest_pending_s": round(oldest, 1),
        "published_events": client.xlen(f"{prefix}:published"),
        "exit_code": service.process.poll() if service.process else None,
    }
    print("storage fault figures:", json.dumps(result))
    return result


def push_and_count(
    client: redis.Redis, prefix: str, storage_url: str, service: ServiceProcess, events: list[EnrichedArticle], *,
    stored_at_least: int, dead_at_least: int = 0, pushed: int | None = None, timeout: float = 30,
) -> dict[str, Any]:
    """Push `events`, wait until that many are stored and dead-lettered (or more dead-lettered: a failure to report
    at once), then the figures over `pushed` articles (default: these events)."""
    push(client, prefix, events)

    def arrived() -> bool:
        dead = len(dead_letters(client, prefix))
        return dead > dead_at_least or (dead == dead_at_least and len(stored(storage_url)) >= stored_at_least)

    wait_for(arrived, timeout=timeout, what=f"{stored_at_least} stored and {dead_at_least} dead-lettered")
    return figures(client, prefix, storage_url, service, len(events) if pushed is None else pushed)


def readiness(port: int) -> tuple[int, str]:
    try:
        answer = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5)
    except httpx.HTTPError as error:
        return -1, str(error)
    return answer.status_code, answer.json().get("reason", "")


def log_events(service: ServiceProcess, name: str) -> list[dict[str, Any]]:
    found = []
    for line in list(service.lines):
        if f'"{name}"' in line:
            try:
                found.append(json.loads(line))
            except ValueError:
                continue
    return found


def pipeline_status(env: dict[str, str]) -> tuple[int, dict[str, Any]]:
    """`newsflow status --json` against the test's prefix: (exit status, document)."""
    run = subprocess.run([sys.executable, "-m", "newsflow.cli", "status", "--json"], env=env, capture_output=True,
                         text=True, timeout=60)
    return run.returncode, json.loads(run.stdout) if run.stdout.strip() else {}


def assert_status_ok(env: dict[str, str]) -> None:
    """After the fault: status exits 0, says ok, and publish's group holds nothing.

    Only publish runs here, so the stages upstream of it get their groups first, as a deployed pipeline has them
    (status rightly reports a stage whose group is missing as not ok).
    """
    client = redis.Redis.from_url(env["NEWSFLOW_REDIS_URL"])
    prefix = env["NEWSFLOW_KEY_PREFIX"]
    for stream, group in (("raw", "ingest"), ("ingested", "clean"), ("cleaned", "enrich")):
        with suppress(redis.ResponseError):  # BUSYGROUP: already there
            client.xgroup_create(f"{prefix}:{stream}", group, id="$", mkstream=True)
    code, document = pipeline_status(env)
    assert code == 0 and document.get("ok") is True, document.get("problems", document)
    [enriched_stream] = [s for s in document["streams"] if s["name"].endswith(":enriched")]
    [group] = [g for g in enriched_stream["groups"] if g["name"] == "publish"]
    assert group["pending"] == 0 and group["lag"] == 0, group


def assert_settled(client: redis.Redis, prefix: str, service: ServiceProcess) -> None:
    """Nothing pending past the claim idle time plus margin; the service alive, and it stops cleanly when asked."""
    wait_for(lambda: pending(client, prefix)[0] == 0, timeout=PENDING_LIMIT_S, interval=0.25,
             what="publish's pending entries to clear")
    assert service.process is not None and service.process.poll() is None, "publish exited:\n" + service.output()
    assert service.stop() == 0, "SIGTERM after the fault: exit status 0"


@contextmanager
def publish_waiting_for_postgres(env: dict[str, str], cluster: PostgresCluster) -> Iterator[ServiceProcess]:
    """Publish started while `cluster` is down, once it answers /readyz with 503; killed afterwards if still running."""
    cluster.stop()
    service = ServiceProcess("publish", env)
    service.start(wait=False)
    try:
        port = int(env["NEWSFLOW_HTTP_PORT"])
        wait_for(lambda: readiness(port)[0] == 503, timeout=30, what="publish to answer /readyz with 503")
        yield service
    finally:
        service.stop(kill=True)  # SIGKILL only what still runs (stop() signals a live process alone)


@pytest.fixture
def publish_env(service_env: dict[str, str]) -> dict[str, str]:
    return {**service_env, "NEWSFLOW_HTTP_PORT": str(free_port()), "NEWSFLOW_BATCH_SIZE": "16"}


class Publish(NamedTuple):
    """The publish service a test started, its environment, and a client on its Redis with its key prefix."""

    env: dict[str, str]
    client: redis.Redis
    prefix: str
    service: ServiceProcess


@pytest.fixture
def publish_on_postgres(
    start_service: Callable[..., ServiceProcess], publish_env: dict[str, str], postgres_schema_url: str,
) -> Publish:
    """Publish running on a private schema of the machine's PostgreSQL."""
    env = {**publish_env, "NEWSFLOW_STORAGE_URL": postgres_schema_url}
    client = redis.Redis.from_url(env["NEWSFLOW_REDIS_URL"])
    return Publish(env, client, env["NEWSFLOW_KEY_PREFIX"], start_service("publish", env))


@pytest.fixture(scope="module")
def cluster() -> Iterator[PostgresCluster]:
    """One private PostgreSQL cluster for this module's stop/restart faults (initdb once, not per test)."""
    reason = postgres_binaries_missing()
    if reason:
        pytest.skip(reason)
    private = PostgresCluster()
    try:
        private.init().start()
        yield private
    finally:
        private.destroy()


@pytest.fixture
def cluster_url(cluster: PostgresCluster) -> str:
    """A fresh database of its own on the private cluster, which is running when the test starts."""
    if not cluster.running():
        cluster.start()
    database = f"faults_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(f"postgresql://postgres@127.0.0.1:{cluster.port}/postgres", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{database}"')
    return f"postgresql://postgres@127.0.0.1:{cluster.port}/{database}"


# -- PostgreSQL: rows the database refuses ---------------------------------------------------------------------


def test_postgres_nul_characters_are_stripped_and_the_whole_batch_stored(
    publish_on_postgres: Publish,
) -> None:
    env, client, prefix, service = publish_on_postgres
    body = "Harbour\x00 talks resumed. The council met\x00 the ferry operators on Monday."
    start = body.index("council")
    poisoned = enriched(
        7, body=body, title="Ferry\x00 strike", external_id="client\x00-7",
        entities=[Entity(name="council", label="ORG",
                         mentions=[Mention(text="council", start=start, end=start + 7, field="body")])],
        keywords=["ferry\x00"],
    )
    events = [enriched(n) for n in range(40) if n != 7] + [poisoned]
    result = push_and_count(client, prefix, env["NEWSFLOW_STORAGE_URL"], service, events, stored_at_least=40)
    assert result["stored"] == 40 and result["dead_lettered"] == 0
    record = stored(env["NEWSFLOW_STORAGE_URL"])[poisoned.id]
    assert (record.title, record.external_id, record.keywords) == ("Ferry strike", "client-7", ["ferry"])
    assert "\x00" not in record.body
    assert record.dropped == {"nul_characters": 5}
    # Offsets still point at the words they name once the NULs before them are gone.
    mention = record.entities[0].mentions[0]
    assert record.body[mention.start:mention.end] == "council"
    assert_settled(client, prefix, service)
    assert sorted(published_ids(client, prefix)) == sorted(e.id for e in events)


def test_postgres_body_beyond_the_tsvector_limit_is_stored_and_searchable_by_its_first_part(
    publish_on_postgres: Publish,
) -> None:
    env, client, prefix, service = publish_on_postgres
    # ~2.4 MB of distinct words: its tsvector would be ~2.5 MB, over PostgreSQL's 1 MB limit.
    huge = "Zanzibarish opening line. " + " ".join(f"w{i:07d}x" for i in range(240_000))
    events = [enriched(n) for n in range(20)] + [enriched(99, body=huge)]
    result = push_and_count(client, prefix, env["NEWSFLOW_STORAGE_URL"], service, events, stored_at_least=21,
                            timeout=60)
    assert result["stored"] == 21 and result["dead_lettered"] == 0
    record = stored(env["NEWSFLOW_STORAGE_URL"])["faults-0099"]
    assert record.body == huge, "the body is stored whole; only its index is cut"
    assert "search_index" in record.skipped

    async def search(word: str) -> list[str]:
        async with open_storage(env["NEWSFLOW_STORAGE_URL"]) as storage:
            return [hit.id for hit in await storage.search(word)]

    assert asyncio.run(search("Zanzibarish")) == ["faults-0099"]
    assert_settled(client, prefix, service)


def test_postgres_rows_over_a_limit_go_to_the_dlq_alone_with_the_database_message(
    publish_on_postgres: Publish,
) -> None:
    env, client, prefix, service = publish_on_postgres
    # An entity name past the btree index row limit (2704 bytes, after compression: so not a repeated word), and a
    # word count past a 32-bit integer.
    rng = random.Random(3)
    long_name = "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(5000))
    too_long = enriched(3, entities=[Entity(name=long_name, label="ORG", mentions=[])])
    out_of_range = enriched(11).model_copy(
        update={"enrich": enriched(11).enrich.model_copy(update={"word_count": 2**40})}
    )
    events = [too_long, out_of_range, *(enriched(n) for n in range(30) if n not in (3, 11))]
    result = push_and_count(client, prefix, env["NEWSFLOW_STORAGE_URL"], service, events, stored_at_least=28,
                            dead_at_least=2, timeout=60)
    assert (result["stored"], result["dead_lettered"]) == (28, 2)
    letters = {letter.article_id: letter for letter in dead_letters(client, prefix)}
    assert set(letters) == {too_long.id, out_of_range.id}
    assert {letter.reason for letter in letters.values()} == {"storage_rejected"}
    assert "index row" in letters[too_long.id].error
    assert "out of range" in letters[out_of_range.id].error
    assert_settled(client, prefix, service)


# -- PostgreSQL: the server stops -------------------------------------------------------------------------------


def test_postgres_down_at_start_publish_waits_unready_then_stores_everything(
    publish_env: dict[str, str], cluster: PostgresCluster, cluster_url: str,
) -> None:
    env = {**publish_env, "NEWSFLOW_STORAGE_URL": cluster_url}
    port = int(env["NEWSFLOW_HTTP_PORT"])
    client = redis.Redis.from_url(env["NEWSFLOW_REDIS_URL"])
    prefix = env["NEWSFLOW_KEY_PREFIX"]
    with publish_waiting_for_postgres(env, cluster) as service:
        assert "storage" in readiness(port)[1]
        events = [enriched(n) for n in range(30)]
        push(client, prefix, events)
        time.sleep(4)
        assert service.process is not None and service.process.poll() is None, "publish exited:\n" + service.output()
        waits = log_events(service, "dependency.unavailable")
        assert 2 <= len(waits) <= 8, f"one line per retry with backoff, got {len(waits)}"
        assert client.xlen(f"{prefix}:published") == 0
        cluster.start()
        wait_for(lambda: len(stored(env["NEWSFLOW_STORAGE_URL"])) >= 30, timeout=60, what="30 articles stored")
        wait_for(lambda: readiness(port)[0] == 200, timeout=20, what="publish ready")
        result = figures(client, prefix, env["NEWSFLOW_STORAGE_URL"], service, len(events))
        assert (result["stored"], result["dead_lettered"]) == (30, 0)
        assert_settled(client, prefix, service)


def test_publish_waiting_for_postgres_stops_on_sigterm_with_its_batch_pending(
    publish_env: dict[str, str], cluster: PostgresCluster, cluster_url: str,
) -> None:
    env = {**publish_env, "NEWSFLOW_STORAGE_URL": cluster_url}
    client = redis.Redis.from_url(env["NEWSFLOW_REDIS_URL"])
    prefix = env["NEWSFLOW_KEY_PREFIX"]
    with publish_waiting_for_postgres(env, cluster) as service:
        push(client, prefix, [enriched(n) for n in range(5)])
        wait_for(lambda: pending(client, prefix)[0] > 0, timeout=10, what="a batch in hand")
        started = time.monotonic()
        assert service.stop(timeout=20) == 0, service.output()[-2000:]
        assert time.monotonic() - started < 10, "SIGTERM ends the wait at once"
        assert client.xlen(f"{prefix}:published") == 0
        assert pending(client, prefix)[0] > 0, "the batch in hand stays pending for the next start"


def test_a_database_that_comes_back_unusable_stops_publish_with_exit_2(
    publish_env: dict[str, str], cluster: PostgresCluster, cluster_url: str,
) -> None:
    """Down at start, then up as a database newsflow refuses (not UTF8): one clear line and exit 2, not a wait."""
    admin = cluster_url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute("CREATE DATABASE faults_ascii ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C' "
                           "TEMPLATE template0")
    env = {**publish_env, "NEWSFLOW_STORAGE_URL": cluster_url.rsplit("/", 1)[0] + "/faults_ascii"}
    cluster.stop()
    service = ServiceProcess("publish", env)
    service.start(wait=False)
    try:
        wait_for(lambda: log_events(service, "dependency.unavailable"), timeout=30, what="publish waiting")
        cluster.start()
        assert service.process is not None
        assert service.process.wait(timeout=60) == 2, service.output()[-2000:]
        [refused] = log_events(service, "storage.refused")
        assert "server_encoding SQL_ASCII" in refused["error"]
        assert "Traceback" not in service.output()
    finally:
        service.stop(kill=True)
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute("DROP DATABASE IF EXISTS faults_ascii")


def test_postgres_restarts_while_articles_flow_nothing_lost_or_doubled(
    start_service: Callable[..., ServiceProcess], publish_env: dict[str, str], cluster: PostgresCluster,
    cluster_url: str,
) -> None:
    env = {**publish_env, "NEWSFLOW_STORAGE_URL": cluster_url}
    client = redis.Redis.from_url(env["NEWSFLOW_REDIS_URL"])
    prefix = env["NEWSFLOW_KEY_PREFIX"]
    service = start_service("publish", env)
    events = [enriched(n) for n in range(150)]
    push(client, prefix, events[:50])
    wait_for(lambda: len(stored(env["NEWSFLOW_STORAGE_URL"])) >= 50, timeout=30, what="first 50 stored")
    cluster.stop(mode="immediate")  # like a crash: connections cut, no goodbye
    push(client, prefix, events[50:100])
    time.sleep(3)
    assert client.xlen(f"{prefix}:published") == 50, "nothing announced while the database is down"
    cluster.start()
    result = push_and_count(client, prefix, env["NEWSFLOW_STORAGE_URL"], service, events[100:], stored_at_least=150,
                            pushed=len(events), timeout=60)
    assert (result["stored"], result["dead_lettered"]) == (150, 0)
    assert sorted(set(published_ids(client, prefix))) == sorted(e.id for e in events)
    assert_settled(client, prefix, service)
    assert_status_ok(env)


# -- SQLite: the file or its directory goes away ------------------------------------------------------------------


def test_sqlite_directory_removed_nothing_acknowledged_until_it_is_back(
    start_service: Callable[..., ServiceProcess], publish_env: dict[str, str], tmp_path: Path,
) -> None:
    directory = tmp_path / "store"
    env = {**publish_env, "NEWSFLOW_STORAGE_URL": f"sqlite:///{directory / 'newsflow.db'}"}
    client = redis.Redis.from_url(env["NEWSFLOW_REDIS_URL"])
    prefix = env["NEWSFLOW_KEY_PREFIX"]
    service = start_service("publish", env, http=True)  # on a port of its own, another if it was taken meanwhile
    port = int(service.env["NEWSFLOW_HTTP_PORT"])
    first, second = [enriched(n) for n in range(50)], [enriched(n) for n in range(50, 150)]
    push(client, prefix, first)
    wait_for(lambda: client.xlen(f"{prefix}:published") >= 50, timeout=30, what="first 50 published")
    shutil.rmtree(directory)
    push(client, prefix, second)
    wait_for(lambda: readiness(port)[0] == 503, timeout=20, what="publish to report not ready")
    assert "storage" in readiness(port)[1]
    time.sleep(2)
    before = figures(client, prefix, env["NEWSFLOW_STORAGE_URL"], service, len(first) + len(second))
    assert before["published_events"] == 50, "nothing announced as published while the database is gone"
    assert client.xpending(f"{prefix}:enriched", "publish")["pending"] > 0, "the batch in hand stays unacknowledged"
    assert not directory.exists(), "publish does not write into a directory the operator removed"
    assert log_events(service, "storage.unavailable"), "an error is logged"
    directory.mkdir()  # the operator brings the path back: publish creates and migrates a new database there
    wait_for(lambda: len(stored(env["NEWSFLOW_STORAGE_URL"])) >= 100, timeout=60, what="the 100 stored in the new file")
    after = figures(client, prefix, env["NEWSFLOW_STORAGE_URL"], service, len(first) + len(second))
    assert set(stored(env["NEWSFLOW_STORAGE_URL"])) == {e.id for e in second}
    assert after["dead_lettered"] == 0 and after["published_events"] == 150
    wait_for(lambda: readiness(port)[0] == 200, timeout=20, what="publish ready again")
    assert_settled(client, prefix, service)
    assert_status_ok(env)


def test_sqlite_file_replaced_under_the_process_writes_go_to_the_new_file(
    start_service: Callable[..., ServiceProcess], publish_env: dict[str, str], tmp_path: Path,
) -> None:
    path = tmp_path / "store" / "newsflow.db"
    env = {**publish_env, "NEWSFLOW_STORAGE_URL": f"sqlite:///{path}"}
    client = redis.Redis.from_url(env["NEWSFLOW_REDIS_URL"])
    prefix = env["NEWSFLOW_KEY_PREFIX"]
    service = start_service("publish", env)
    first, second = [enriched(n) for n in range(30)], [enriched(n) for n in range(30, 90)]
    push(client, prefix, first)
    wait_for(lambda: client.xlen(f"{prefix}:published") >= 30, timeout=30, what="first 30 published")
    # An operator restores an older copy: the first 10 articles only (a backup taken earlier).
    backup = tmp_path / "backup.db"
    asyncio.run(_copy_first(env["NEWSFLOW_STORAGE_URL"], f"sqlite:///{backup}", 10))
    for suffix in ("-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    backup.replace(path)
    result = push_and_count(client, prefix, env["NEWSFLOW_STORAGE_URL"], service, second, stored_at_least=70,
                            pushed=len(first) + len(second))
    assert set(stored(env["NEWSFLOW_STORAGE_URL"])) == {e.id for e in first[:10] + second}
    assert result["dead_lettered"] == 0
    assert log_events(service, "storage.reopened")
    assert_settled(client, prefix, service)


async def _copy_first(source_url: str, target_url: str, count: int) -> None:
    async with open_storage(source_url) as source, open_storage(target_url) as target:
        await target.migrate()
        records = [record async for record in source.iter_export()][:count]
        await target.upsert_articles(records)


# -- both backends: revisions arriving out of order -----------------------------------------------------------------


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_an_older_revision_arriving_late_never_overwrites_the_newer(
    backend: str, request: pytest.FixtureRequest, start_service: Callable[..., ServiceProcess],
    publish_env: dict[str, str],
) -> None:
    storage_url = request.getfixturevalue("postgres_schema_url") if backend == "postgres" else (
        publish_env["NEWSFLOW_STORAGE_URL"])
    env = {**publish_env, "NEWSFLOW_STORAGE_URL": storage_url}
    client = redis.Redis.from_url(env["NEWSFLOW_REDIS_URL"])
    prefix = env["NEWSFLOW_KEY_PREFIX"]
    service = start_service("publish", env)
    url = "https://faults.example.org/story/revised"
    old = enriched(1, url=url, body="First version: the ferry strike began.", received_at=BASE)
    new = enriched(2, url=url, body="Second version: the ferry strike ended.", received_at=BASE + timedelta(hours=1))
    assert old.id == new.id
    push(client, prefix, [new])
    wait_for(lambda: client.xlen(f"{prefix}:published") >= 1, timeout=30, what="the newer revision published")
    push(client, prefix, [old])  # the older one, delivered late (a slow replica, a DLQ replay)
    # A client's own updated_at decides over the receipt time when it gives one.
    dated_old = enriched(3, url=url + "/dated", body="Dated first.", received_at=BASE + timedelta(hours=5))
    dated_old = dated_old.model_copy(update={"ingest": dated_old.ingest.model_copy(update={"updated_at": BASE})})
    dated_new = enriched(4, url=url + "/dated", body="Dated second.", received_at=BASE)
    dated_new = dated_new.model_copy(
        update={"ingest": dated_new.ingest.model_copy(update={"updated_at": BASE + timedelta(days=1)})}
    )
    push(client, prefix, [dated_new, dated_old])
    wait_for(lambda: pending(client, prefix)[0] == 0 and client.xlen(f"{prefix}:published") >= 2, timeout=30,
             what="all revisions handled")
    time.sleep(1)
    records = stored(storage_url)
    assert records[new.id].body == "Second version: the ferry strike ended."
    assert records[new.id].received_at == BASE + timedelta(hours=1)
    assert [s.received_at for s in records[new.id].skipped_revisions] == [BASE]
    assert records[dated_new.id].body == "Dated second."
    assert [s.updated_at for s in records[dated_new.id].skipped_revisions] == [BASE]
    result = figures(client, prefix, storage_url, service, 4)
    assert (result["stored"], result["dead_lettered"]) == (2, 0)
    assert log_events(service, "article.revision_skipped")
    assert_settled(client, prefix, service)

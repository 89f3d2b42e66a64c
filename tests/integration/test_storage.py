"""Storage against both real backends: a SQLite file, and PostgreSQL in a private schema per test."""

from __future__ import annotations

import asyncio
import sqlite3
import tracemalloc
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import psutil
import psycopg
import pytest

from shared.events import ArticleRecord, Entity, Mention, NearDuplicate, Place, Stamp
from shared.storage import LATEST_VERSION, ArticleFilters, Storage, open_storage
from shared.storage.sqlite import sqlite_path

BASE_TIME = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)

pytestmark = pytest.mark.integration


# -- record factory ---------------------------------------------------------------------------------


def stamp(stage: str = "publish", at: datetime = BASE_TIME) -> Stamp:
    """A lineage stamp; tests vary `at` to mimic a re-run of the pipeline."""
    return Stamp(stage=stage, version="test", worker="w1", started_at=at, finished_at=at, duration_ms=1.5)


def entity(name: str, label: str, body: str) -> Entity:
    """An entity whose single mention points at its first occurrence in `body` (or 0 when absent)."""
    start = max(body.find(name), 0)
    return Entity(name=name, label=label, mentions=[Mention(text=name, start=start, end=start + len(name),
                                                              field="body")])


def make_record(article_id: str, **overrides: Any) -> ArticleRecord:
    """A complete, valid ArticleRecord; any field can be overridden."""
    body = overrides.pop("body", "Officials met in the capital to discuss trade.\n\nTalks continue next week.")
    fields: dict[str, Any] = {
        "id": article_id,
        "external_id": f"ext-{article_id}",
        "url": f"https://news.example.com/{article_id}",
        "origin": "test",
        "title": f"Article {article_id}",
        "body": body,
        "authors": ["Ethan Kim"],
        "source_domain": "news.example.com",
        "source_name": "Example News",
        "published_at": BASE_TIME,
        "language": "en",
        "word_count": len(body.split()),
        "reading_time_s": 10,
        "summary": body.split("\n")[0],
        "keywords": ["trade", "talks"],
        "sentiment": 0.1,
        "sentiment_label": "neutral",
        "category": "politics",
        "category_score": 0.7,
        "entities": [],
        "places": [],
        "countries": [],
        "near_duplicates": [],
        "duplicate_of": None,
        "content_hash": f"hash-{article_id}",
        "received_at": BASE_TIME,
        "trace": [stamp()],
    }
    fields.update(overrides)
    return ArticleRecord(**fields)


# -- backends ---------------------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgres"])
def storage_url(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    """A fresh, empty database on each backend; PostgreSQL gets a private schema dropped afterwards."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/store.db"
    # Only the PostgreSQL half asks for the session's PostgreSQL (the machine's, or a private cluster).
    return str(request.getfixturevalue("postgres_schema_url"))


@pytest.fixture
async def storage(storage_url: str) -> AsyncIterator[Storage]:
    """A migrated storage on the backend under test."""
    store = open_storage(storage_url)
    await store.migrate()
    try:
        yield store
    finally:
        await store.close()


def execute_raw(url: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Run SQL with `?` placeholders directly on the backend (to build an old-schema database)."""
    if url.startswith("sqlite"):
        with sqlite3.connect(sqlite_path(url)) as connection:
            return connection.execute(sql, params).fetchall()
    with psycopg.connect(url, autocommit=True) as connection:
        cursor = connection.execute(sql.replace("?", "%s"), params)
        return cursor.fetchall() if cursor.description else []


# -- migrations -------------------------------------------------------------------------------------


async def test_migrate_from_empty_creates_schema_once(storage_url: str) -> None:
    store = open_storage(storage_url)
    try:
        assert await store.schema_version() == 0
        assert await store.migrate() == list(range(1, LATEST_VERSION + 1))
        assert await store.schema_version() == LATEST_VERSION
        assert await store.migrate() == []  # applied at every start: a no-op the second time
        assert await store.count() == 0
    finally:
        await store.close()


async def test_concurrent_migrations_apply_each_version_once(storage_url: str) -> None:
    stores = [open_storage(storage_url) for _ in range(3)]
    try:
        applied = await asyncio.gather(*(store.migrate() for store in stores))
        assert sorted(v for versions in applied for v in versions) == list(range(1, LATEST_VERSION + 1))
        rows = execute_raw(storage_url, "SELECT version FROM schema_migrations ORDER BY version")
        assert [row[0] for row in rows] == list(range(1, LATEST_VERSION + 1))
    finally:
        for store in stores:
            await store.close()


async def test_upgrading_a_v1_database_keeps_its_articles_and_makes_them_filterable(storage_url: str) -> None:
    store = open_storage(storage_url)
    try:
        assert await store.migrate(target=1) == [1]
        # An article and its entity as the v1 code stored them (no entities.name_key yet).
        old = make_record("old-1", title="Putin visits Pyongyang")
        now = BASE_TIME.isoformat() if storage_url.startswith("sqlite") else BASE_TIME
        execute_raw(
            storage_url,
            "INSERT INTO articles (id, origin, title, body, authors, summary, content_hash, received_at, "
            "fingerprint, record, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (old.id, old.origin, old.title, old.body, "[]", "", old.content_hash, now, "fp-v1",
             old.model_dump_json(), now, now),
        )
        execute_raw(storage_url, "INSERT INTO entities (name, label) VALUES (?, ?)", ("Vladimir Putin", "PERSON"))
        execute_raw(
            storage_url,
            "INSERT INTO article_entities (article_id, entity_id, mention_count) "
            "SELECT ?, id, 1 FROM entities WHERE name = ?",
            (old.id, "Vladimir Putin"),
        )
        assert await store.schema_version() == 1

        assert await store.migrate() == list(range(2, LATEST_VERSION + 1))

        assert await store.schema_version() == LATEST_VERSION
        assert await store.get_article("old-1") == old
        assert [a.id for a in await store.list_articles(ArticleFilters(entity="putin"))] == ["old-1"]
        # Rows stored before clean typed its input were articles, and filter as such.
        assert [a.content_type for a in await store.list_articles(ArticleFilters(content_type="article"))] == [
            "article"
        ]
        # New writes work on the upgraded schema and share the backfilled entity row.
        new = make_record("new-1", entities=[entity("Vladimir Putin", "PERSON", "Vladimir Putin spoke.")])
        await store.upsert_articles([new])
        assert await store.count(ArticleFilters(entity="vladimir")) == 2
        assert execute_raw(storage_url, "SELECT count(*) FROM entities")[0][0] == 1
    finally:
        await store.close()


# -- upsert -----------------------------------------------------------------------------------------


async def test_upsert_inserts_then_identical_repush_changes_nothing(storage: Storage) -> None:
    record = make_record("a1")
    (first,) = await storage.upsert_articles([record])
    assert (first.id, first.revision, first.changed) == ("a1", 1, True)

    # The same article through a later pipeline run: new receipt time and lineage, same content.
    rerun = record.model_copy(update={
        "received_at": BASE_TIME + timedelta(hours=1),
        "trace": [stamp(at=BASE_TIME + timedelta(hours=1))],
    })
    (second,) = await storage.upsert_articles([rerun])
    assert (second.revision, second.changed) == (1, False)
    assert second.stored_at == first.stored_at
    assert await storage.get_article("a1") == record  # the stored record was not rewritten
    assert (await storage.list_articles())[0].updated_at == first.stored_at
    assert await storage.count() == 1


async def test_changed_repush_bumps_revision_and_replaces_child_rows(storage: Storage) -> None:
    body = "Sergei Shoigu met Kim Jong Un in Pyongyang."
    original = make_record(
        "a1", body=body,
        entities=[entity("Sergei Shoigu", "PERSON", body)],
        places=[Place(name="Pyongyang", country_code="KP", country="North Korea")],
        countries=["KP"], keywords=["shoigu"],
    )
    await storage.upsert_articles([original])
    corrected = original.model_copy(update={
        "title": "Corrected title",
        "entities": [entity("Kim Jong Un", "PERSON", body)],
        "places": [Place(name="Moscow", country_code="RU", country="Russia")],
        "countries": ["RU"],
    })
    (result,) = await storage.upsert_articles([corrected])
    assert (result.revision, result.changed) == (2, True)
    stored = await storage.get_article("a1")
    assert stored is not None and stored.title == "Corrected title"
    assert await storage.count() == 1
    # Queries follow the new revision, not a mix of old and new child rows.
    assert await storage.count(ArticleFilters(entity="Shoigu")) == 0
    assert await storage.count(ArticleFilters(entity="Kim Jong")) == 1
    assert await storage.count(ArticleFilters(country="KP")) == 0
    assert await storage.count(ArticleFilters(country="RU")) == 1
    assert [hit.id for hit in await storage.search("corrected")] == ["a1"]
    (third,) = await storage.upsert_articles([corrected.model_copy(update={"summary": "new summary"})])
    assert third.revision == 3


async def test_batch_results_follow_input_order_and_the_last_of_equally_new_duplicates_wins(storage: Storage) -> None:
    await storage.upsert_articles([make_record("b")])
    batch = [make_record("c"), make_record("b"), make_record("a"), make_record("a", title="second a")]
    results = await storage.upsert_articles(batch)
    assert [(r.id, r.revision, r.changed, r.stale) for r in results] == [
        ("c", 1, True, False), ("b", 1, False, False), ("a", 1, False, True), ("a", 1, True, False)
    ]
    stored = await storage.get_article("a")
    assert stored is not None and stored.title == "second a"
    assert [s.content_hash for s in stored.skipped_revisions] == ["hash-a"]
    assert await storage.count() == 3


async def test_get_article_returns_the_full_record_as_published(storage: Storage) -> None:
    body = "Vladimir Putin’s ally Sergei Shoigu arrived in North Korea."
    record = make_record(
        "full", body=body, title="Shoigu’s visit",
        entities=[entity("Vladimir Putin", "PERSON", body), entity("Sergei Shoigu", "PERSON", body),
                  entity("North Korea", "GPE", body)],
        places=[Place(name="North Korea", country_code="KP", country="North Korea", latitude=40.0,
                      longitude=127.0, mentions=2)],
        countries=["KP"],
        near_duplicates=[NearDuplicate(id="other", similarity=0.91)],
        trace=[stamp("ingest"), stamp("clean"), stamp("enrich"), stamp("publish")],
        published_at=datetime(2024, 5, 17, 9, 30, tzinfo=UTC),
    )
    await storage.upsert_articles([record])
    assert await storage.get_article("full") == record
    assert await storage.get_article("missing") is None


# -- search -----------------------------------------------------------------------------------------


async def test_search_ranks_more_relevant_articles_first_with_snippets(storage: Storage) -> None:
    await storage.upsert_articles([
        make_record("passing", title="Trade talks resume",
                    body="Ministers discussed tariffs. A short remark about Shoigu closed the meeting."),
        make_record("focused", title="Shoigu visits Pyongyang",
                    body="Shoigu arrived on Tuesday. Shoigu met officials, and Shoigu toured the port."),
        make_record("unrelated", title="Weather", body="Rain is expected across the region tomorrow."),
    ])
    hits = await storage.search("Shoigu")
    assert [hit.id for hit in hits] == ["focused", "passing"]
    assert hits[0].score > hits[1].score
    assert all("«Shoigu»" in hit.snippet for hit in hits)
    assert hits[0].title == "Shoigu visits Pyongyang"


async def test_search_handles_phrases_punctuation_and_limits(storage: Storage) -> None:
    await storage.upsert_articles([
        make_record("nk", body="Delegates from North Korea and Russia signed the pact in Putin's presence."),
        make_record("sk", body="North of the border, Korea watchers in the south were cautious."),
    ])
    assert {hit.id for hit in await storage.search("korea")} == {"nk", "sk"}
    assert [hit.id for hit in await storage.search('"North Korea"')] == ["nk"]
    assert [hit.id for hit in await storage.search("Putin's")] == ["nk"]  # no query syntax error
    assert [hit.id for hit in await storage.search("korea -russia")] == ["sk"]
    assert len(await storage.search("korea", limit=1)) == 1
    assert await storage.search("   ") == []
    assert await storage.search("zeppelin") == []


# -- filters ----------------------------------------------------------------------------------------


async def test_each_filter_narrows_the_listing(storage: Storage) -> None:
    body_ru = "Vladimir Putin spoke in Moscow."
    body_fr = "Emmanuel Macron spoke in Paris."
    await storage.upsert_articles([
        make_record("ru", body=body_ru, source_domain="independent.co.uk", source_name="The Independent",
                    language="en", category="politics", published_at=BASE_TIME - timedelta(days=3),
                    entities=[entity("Vladimir Putin", "PERSON", body_ru)],
                    places=[Place(name="Moscow", country_code="RU", country="Russia")], countries=["RU"]),
        make_record("fr", body=body_fr, source_domain="lemonde.fr", source_name="Le Monde", language="fr",
                    category="Economy", published_at=BASE_TIME - timedelta(days=1),
                    entities=[entity("Emmanuel Macron", "PERSON", body_fr)],
                    places=[Place(name="Paris", country_code="FR", country="France")], countries=["FR"]),
        make_record("undated", published_at=None, language="en", category=None, source_domain=None,
                    source_name=None),
    ])

    async def ids(**filters: Any) -> list[str]:
        listed = [a.id for a in await storage.list_articles(ArticleFilters(**filters))]
        if "limit" not in filters:  # count applies the same filters
            assert await storage.count(ArticleFilters(**filters)) == len(listed)
        return listed

    assert await ids() == ["fr", "ru", "undated"]  # newest publication first, undated last
    assert await ids(source="independent.co.uk") == ["ru"]
    assert await ids(source="le monde") == ["fr"]
    assert await ids(lang="EN") == ["ru", "undated"]
    assert await ids(category="economy") == ["fr"]
    assert await ids(entity="putin") == ["ru"]
    assert await ids(entity="MACRON") == ["fr"]
    assert await ids(entity="50%_") == []  # LIKE wildcards in input are literal
    assert await ids(country="fr") == ["fr"]
    assert await ids(country="Russia") == ["ru"]
    assert await ids(since=BASE_TIME - timedelta(days=2)) == ["fr"]
    assert await ids(until=BASE_TIME - timedelta(days=2)) == ["ru"]
    assert await ids(since=BASE_TIME - timedelta(days=5), until=BASE_TIME) == ["fr", "ru"]
    assert await ids(lang="en", country="RU", entity="putin") == ["ru"]
    assert await ids(limit=1) == ["fr"]
    assert await storage.count(ArticleFilters(lang="en")) == 2


async def test_content_type_is_stored_and_filters_the_listing(storage: Storage) -> None:
    await storage.upsert_articles([
        make_record("story", published_at=BASE_TIME - timedelta(days=2)),
        make_record("scores", content_type="results", published_at=BASE_TIME - timedelta(days=1)),
        make_record("brief", content_type="brief", published_at=BASE_TIME),
    ])
    listed = await storage.list_articles(ArticleFilters(content_type="Results"))
    assert [(a.id, a.content_type) for a in listed] == [("scores", "results")]
    assert await storage.count(ArticleFilters(content_type="brief")) == 1
    assert [a.id for a in await storage.list_articles(ArticleFilters(content_type="article"))] == ["story"]
    stored = await storage.get_article("scores")
    assert stored is not None and stored.content_type == "results"
    assert [a.content_type for a in await storage.list_articles()] == ["brief", "results", "article"]


# -- export -----------------------------------------------------------------------------------------


async def test_export_streams_10000_rows_in_bounded_memory(storage: Storage) -> None:
    total = 10_000
    paragraph = " ".join(f"word{i % 97}" for i in range(120))
    body = f"{paragraph}\n\n{paragraph}"
    for start in range(0, total, 1_000):  # built per chunk so the fixture data is never all in memory
        await storage.upsert_articles([
            make_record(f"x{i:05d}", body=body, published_at=BASE_TIME + timedelta(seconds=i))
            for i in range(start, start + 1_000)
        ])
    assert await storage.count() == total

    process = psutil.Process()
    rss_before = process.memory_info().rss
    rss_peak = rss_before
    exported_bytes = 0
    seen = 0
    tracemalloc.start()
    try:
        async for record in storage.iter_export():
            assert record.id == f"x{seen:05d}"  # storage (insertion) order
            exported_bytes += len(record.model_dump_json())
            seen += 1
            if seen % 1_000 == 0:
                rss_peak = max(rss_peak, process.memory_info().rss)
        _, traced_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert seen == total
    # Holding every row would need at least `exported_bytes` (~30 MB); streaming holds one fetch.
    assert exported_bytes > 25_000_000
    assert traced_peak < exported_bytes / 5, (traced_peak, exported_bytes)
    assert rss_peak - rss_before < exported_bytes / 2, (rss_peak - rss_before, exported_bytes)

    filtered = [r.id async for r in storage.iter_export(ArticleFilters(since=BASE_TIME + timedelta(seconds=9_990)))]
    assert filtered == [f"x{i:05d}" for i in range(9_990, total)]


# -- concurrency ------------------------------------------------------------------------------------


async def test_two_publishers_writing_the_same_ids_at_once_leave_one_row_each(storage_url: str) -> None:
    ids = [f"c{i:03d}" for i in range(120)]
    replica_a, replica_b = open_storage(storage_url), open_storage(storage_url)
    try:
        await replica_a.migrate()
        await replica_b.migrate()

        async def publish(store: Storage, order: list[str], title: str) -> list[bool]:
            changed: list[bool] = []
            for start in range(0, len(order), 20):
                batch = [make_record(i, title=title) for i in order[start:start + 20]]
                changed += [result.changed for result in await store.upsert_articles(batch)]
            return changed

        # Same content from both replicas (a redelivered batch): each id is written exactly once.
        changed_a, changed_b = await asyncio.gather(
            publish(replica_a, ids, "same"), publish(replica_b, list(reversed(ids)), "same")
        )
        assert sum(changed_a) + sum(changed_b) == len(ids)
        assert await replica_a.count() == len(ids)
        assert {a.revision for a in await replica_a.list_articles()} == {1}

        # Different content: both writes land, one after the other, on the same row.
        await asyncio.gather(publish(replica_a, ids, "from a"), publish(replica_b, ids, "from b"))
        listed = await replica_b.list_articles()
        assert len(listed) == len(ids)
        assert {a.revision for a in listed} == {3}
        assert {a.title for a in listed} <= {"from a", "from b"}
    finally:
        await replica_a.close()
        await replica_b.close()


async def test_summaries_serialise_to_json(storage: Storage) -> None:
    await storage.upsert_articles([make_record("j1")])
    (summary,) = await storage.list_articles()
    data = orjson.loads(orjson.dumps(summary.to_dict()))
    assert data["id"] == "j1" and data["revision"] == 1
    assert datetime.fromisoformat(data["published_at"]) == BASE_TIME


async def test_sources_are_registered_once_listed_and_removed_by_id_or_url(storage: Storage) -> None:
    from shared.storage import Source, source_id

    feed = "https://news.example/rss.xml"
    first = Source(id=source_id(feed), url=feed, name="Example", interval_s=300, added_at=BASE_TIME)
    stored, created = await storage.add_source(first)
    assert created and stored == first
    again, created = await storage.add_source(Source(id=source_id(feed), url=feed, name=None, interval_s=60,
                                                     added_at=BASE_TIME + timedelta(days=1)))
    assert not created and again == first  # the row already there wins
    sitemap = "https://news.example/news-sitemap.xml"
    second = Source(id=source_id(sitemap), url=sitemap, name=None, interval_s=900,
                    added_at=BASE_TIME + timedelta(hours=1))
    await storage.add_source(second)
    assert await storage.list_sources() == [first, second]
    assert await storage.remove_source(first.id) == first
    assert await storage.remove_source(sitemap) == second
    assert await storage.remove_source(sitemap) is None
    assert await storage.list_sources() == []

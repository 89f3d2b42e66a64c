"""Storage logic that needs no database: URLs, search-query translation, fingerprints, row mapping."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from shared.errors import TransientError
from shared.events import ArticleRecord, Entity, Mention, NearDuplicate, Place, Stamp
from shared.storage import ArticleFilters, content_fingerprint, open_storage
from shared.storage.base import country_code, record_rows
from shared.storage.postgres import PostgresStorage
from shared.storage.queries import filter_clause, fts5_query
from shared.storage.sqlite import SQLiteStorage, sqlite_path

NOW = datetime(2024, 6, 1, tzinfo=UTC)


def record(**overrides: object) -> ArticleRecord:
    fields: dict[str, object] = dict(
        id="a1", external_id=None, url=None, origin="test", title="Title", body="Putin spoke.", authors=[],
        source_domain=None, source_name=None, published_at=None, language="en", word_count=2,
        reading_time_s=1, summary="", keywords=[], sentiment=None, sentiment_label=None, category=None,
        category_score=None, entities=[], places=[], countries=[], near_duplicates=[], duplicate_of=None,
        content_hash="h", received_at=NOW,
        trace=[Stamp(stage="publish", version="1", worker="w", started_at=NOW, finished_at=NOW, duration_ms=1)],
    )
    fields.update(overrides)
    return ArticleRecord.model_validate(fields)


def test_sqlite_urls_map_to_relative_and_absolute_paths() -> None:
    assert sqlite_path("sqlite:///data/newsflow.db") == Path("data/newsflow.db")
    assert sqlite_path("sqlite:////var/lib/nf.db") == Path("/var/lib/nf.db")
    with pytest.raises(ValueError):
        sqlite_path("sqlite:///")


def test_open_storage_picks_the_backend_by_scheme() -> None:
    assert isinstance(open_storage("sqlite:///x.db"), SQLiteStorage)
    assert isinstance(open_storage("postgresql://u@h/db"), PostgresStorage)
    with pytest.raises(ValueError, match="unsupported storage URL"):
        open_storage("mysql://u@h/db")


def test_unreachable_postgresql_is_a_transient_error() -> None:
    async def attempt() -> None:
        storage = PostgresStorage("postgresql://postgres@127.0.0.1:1/none", connect_timeout_s=0.5)
        try:
            await storage.count()
        finally:
            await storage.close()

    with pytest.raises(TransientError):
        asyncio.run(attempt())


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("Shoigu", '"Shoigu"'),
        ("Putin's visit", '"Putin s" "visit"'),
        ('"North Korea" talks', '"North Korea" "talks"'),
        ("korea OR japan", '"korea" OR "japan"'),
        ("OR korea OR", '"korea"'),
        ("korea -russia -china", '("korea") NOT ("russia" OR "china")'),
        ("shoig*", '"shoig"*'),
        ("U.S.-Korea", '"U S Korea"'),
        ("-only", None),
        ("  !!  ", None),
    ],
)
def test_user_queries_become_safe_fts5_expressions(query: str, expected: str | None) -> None:
    assert fts5_query(query) == expected


def test_fingerprint_ignores_lineage_and_receipt_time_but_not_content() -> None:
    base = record()
    # A page fetched again (a later crawl, the next poll) with the same content is the same revision.
    rerun = base.model_copy(update={"received_at": NOW + timedelta(hours=2), "trace": [], "fetched_at": NOW})
    assert content_fingerprint(rerun) == content_fingerprint(base)
    assert content_fingerprint(base.model_copy(update={"title": "Other"})) != content_fingerprint(base)
    assert content_fingerprint(base.model_copy(update={"keywords": ["x"]})) != content_fingerprint(base)


def test_record_rows_split_children_and_merge_place_countries() -> None:
    rows = record_rows(record(
        entities=[Entity(name="Vladimir Putin", label="PERSON",
                         mentions=[Mention(text="Putin", start=0, end=5, field="body"),
                                   Mention(text="Putin", start=0, end=5, field="title")])],
        places=[Place(name="Moscow", country_code="RU"), Place(name="Kyiv", country_code="ua")],
        countries=["RU"], keywords=["a", "b", "a"],
        near_duplicates=[NearDuplicate(id="a1", similarity=1.0), NearDuplicate(id="b", similarity=0.8)],
        published_at=datetime(2024, 6, 1, 14, 0),  # naive -> taken as UTC
    ))
    assert rows.entities == [("Vladimir Putin", "PERSON", 2)]
    assert [m[3] for m in rows.mentions] == ["body", "title"]
    assert rows.countries == [("RU", 0), ("UA", 1)]
    assert rows.keywords == [("a", 0), ("b", 1)]
    assert rows.near_duplicates == [("b", 0.8)]  # a self-link is dropped
    assert rows.article["published_at"] == datetime(2024, 6, 1, 14, 0, tzinfo=UTC)


def test_country_filter_accepts_codes_and_names() -> None:
    assert country_code("kp") == "KP"
    assert country_code("North Korea") == "KP"
    assert country_code("Russia") == "RU"
    assert country_code("UK") == "GB"


def test_filter_clause_parameters_follow_placeholders() -> None:
    where, params = filter_clause(
        ArticleFilters(source="X.com", entity="50%", since=NOW, country="fr"), "?", lambda m: m.isoformat()
    )
    assert where.count("?") == len(params)
    assert params == ["x.com", "x.com", "%50\\%%", "FR", NOW.isoformat()]
    assert filter_clause(ArticleFilters(), "%s", lambda m: m) == ("", [])

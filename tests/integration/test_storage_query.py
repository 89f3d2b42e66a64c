"""The read API's storage queries on both real backends: filters, ranked search, keyset pages, facets, duplicates."""

from __future__ import annotations

from datetime import timedelta

import pytest

from shared.events import NearDuplicate
from shared.storage import ArticleFilters, Storage
from shared.storage.paging import Sort
from tests.integration import test_storage
from tests.integration.test_storage import BASE_TIME, entity, execute_raw, make_record

pytestmark = pytest.mark.integration
# The same fixtures as the storage tests: a fresh database on each backend.
storage_url = test_storage.storage_url
storage = test_storage.storage

NEWEST = Sort.parse("-published_at")


async def fill(storage: Storage) -> None:
    """Six articles over three days, two sources, two languages, entities, countries and one near-duplicate."""
    records = []
    for n in range(6):
        body = (
            f"Vladimir Putin met officials in Moscow on day {n}.\n\nThe talks covered energy and trade."
            if n % 2 == 0
            else f"Olaf Scholz spoke in Berlin about the economy, item {n}.\n\nMarkets rose after the speech."
        )
        records.append(
            make_record(
                f"a{n}",
                body=body,
                title="Putin in Moscow" if n % 2 == 0 else "Scholz on the economy",
                source_domain="one.example" if n < 4 else "two.example",
                language="en" if n != 5 else "de",
                category="politics" if n % 2 == 0 else "business",
                published_at=BASE_TIME + timedelta(days=n // 2, hours=n),
                received_at=BASE_TIME + timedelta(days=10, minutes=n),
                entities=[entity("Vladimir Putin", "PERSON", body), entity("Moscow", "GPE", body)]
                if n % 2 == 0
                else [entity("Olaf Scholz", "PERSON", body), entity("Berlin", "GPE", body)],
                countries=["RU"] if n % 2 == 0 else ["DE"],
                near_duplicates=[NearDuplicate(id="a0", similarity=0.91)] if n == 2 else [],
            )
        )
    await storage.upsert_articles(records)


async def test_filters_sort_and_projection(storage: Storage) -> None:
    await fill(storage)
    page = await storage.query_articles(ArticleFilters(source="one.example"), sort=NEWEST, limit=10)
    assert [item["id"] for item in page.items] == ["a3", "a2", "a1", "a0"]
    assert page.next_cursor is None
    assert set(page.items[0]) >= {"id", "external_id", "title", "body", "entities", "trace"}

    projected = await storage.query_articles(
        ArticleFilters(entity_label="PERSON", entity="scholz"), sort=Sort.parse("published_at"), limit=10,
        fields=["id", "title"],
    )
    assert projected.items == [
        {"id": "a1", "title": "Scholz on the economy"},
        {"id": "a3", "title": "Scholz on the economy"},
        {"id": "a5", "title": "Scholz on the economy"},
    ]
    by_country = await storage.query_articles(ArticleFilters(country="Russia", lang="en"), sort=NEWEST, limit=10)
    assert [item["id"] for item in by_country.items] == ["a4", "a2", "a0"]
    received = await storage.query_articles(
        ArticleFilters(received_since=BASE_TIME + timedelta(days=10, minutes=4)), sort=Sort.parse("-received_at"),
        limit=10,
    )
    assert [item["id"] for item in received.items] == ["a5", "a4"]
    duplicates = await storage.query_articles(ArticleFilters(duplicates=True), sort=NEWEST, limit=10)
    assert [item["id"] for item in duplicates.items] == ["a2"]
    originals = await storage.query_articles(ArticleFilters(duplicates=False), sort=NEWEST, limit=10)
    assert "a2" not in [item["id"] for item in originals.items] and len(originals.items) == 5


async def test_full_text_is_ranked_with_snippets(storage: Storage) -> None:
    await fill(storage)
    page = await storage.query_articles(ArticleFilters(query="putin"), sort=Sort.parse("relevance"), limit=10)
    assert sorted(item["id"] for item in page.items) == ["a0", "a2", "a4"]
    scores = [item["score"] for item in page.items]
    assert scores == sorted(scores, reverse=True) and all(score > 0 for score in scores)
    assert all("«" in item["snippet"] for item in page.items)
    nothing = await storage.query_articles(ArticleFilters(query="!!!"), sort=NEWEST, limit=10)
    assert nothing.items == []
    with pytest.raises(ValueError, match="relevance"):
        await storage.query_articles(ArticleFilters(), sort=Sort.parse("relevance"), limit=10)


@pytest.mark.parametrize("sort", ["-published_at", "published_at", "received_at", "relevance"])
async def test_cursor_pages_are_stable_under_inserts(storage: Storage, sort: str) -> None:
    records = [
        make_record(f"p{n:02d}", title="Trade talks", body=f"Trade talks resumed. Round {n} of the trade negotiations.",
                    published_at=BASE_TIME + timedelta(hours=n % 7) if n % 5 else None,
                    received_at=BASE_TIME + timedelta(minutes=n))
        for n in range(23)
    ]
    await storage.upsert_articles(records)
    filters = ArticleFilters(query="trade")
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page = await storage.query_articles(filters, sort=Sort.parse(sort), limit=5, cursor=cursor)
        seen += [item["id"] for item in page.items]
        pages += 1
        if pages == 2:  # arrivals mid-pagination, sorting before, between and after the pages read so far
            await storage.upsert_articles([
                make_record(f"new{n}", title="Trade trade trade", body="Trade news. Trade again, trade.",
                            published_at=BASE_TIME + timedelta(hours=n), received_at=BASE_TIME + timedelta(minutes=n))
                for n in range(-1, 9, 3)
            ])
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert sorted(seen) == sorted(r.id for r in records)  # every original once, no arrival, nothing twice
    assert pages == 5
    with pytest.raises(ValueError, match="another query"):
        await storage.query_articles(ArticleFilters(query="talks"), sort=Sort.parse(sort), limit=5, cursor=cursor)


async def test_facets_count_the_filtered_set(storage: Storage) -> None:
    await fill(storage)
    everything = await storage.facets(ArticleFilters())
    assert everything.total == 6
    assert [(c.value, c.count) for c in everything.sources] == [("one.example", 4), ("two.example", 2)]
    assert [(c.value, c.count) for c in everything.languages] == [("en", 5), ("de", 1)]
    assert [(c.value, c.count) for c in everything.days] == [("2024-06-01", 2), ("2024-06-02", 2), ("2024-06-03", 2)]
    assert [(c.value, c.count) for c in everything.entities["PERSON"]] == [("Olaf Scholz", 3), ("Vladimir Putin", 3)]
    narrowed = await storage.facets(ArticleFilters(query="putin", source="one.example"))
    assert narrowed.total == 2
    assert [(c.value, c.count) for c in narrowed.countries] == [("RU", 2)]
    assert [(c.value, c.count) for c in narrowed.categories] == [("politics", 2)]
    assert [c.value for c in narrowed.entities["GPE"]] == ["Moscow"]
    assert (await storage.facets(ArticleFilters(query="nosuchword"))).total == 0


async def test_near_duplicates_in_both_directions(storage: Storage) -> None:
    await fill(storage)
    earlier = await storage.near_duplicates("a2", fields=["id", "title"])
    assert earlier == [{"id": "a0", "title": "Putin in Moscow", "similarity": 0.91, "relation": "earlier"}]
    later = await storage.near_duplicates("a0", fields=["id"])
    assert later == [{"id": "a2", "similarity": 0.91, "relation": "later"}]
    assert await storage.near_duplicates("a1") == []


async def test_relevance_tiers_page_through_every_match_once(
    storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib

    from shared.storage import paging

    monkeypatch.setattr(paging, "RELEVANCE_TIER", 4)  # 14 matches: tiers of about four
    backend = importlib.import_module(type(storage).__module__)
    if hasattr(backend, "RELEVANCE_TIER"):
        monkeypatch.setattr(backend, "RELEVANCE_TIER", 4)
    records = [make_record(f"r{n:02d}", title="Harbour", body="harbour " * (1 + n % 5) + f"story {n}.")
               for n in range(14)]
    await storage.upsert_articles(records)
    execute_raw(storage.url, "ANALYZE")  # the PostgreSQL backend sizes tiers from the planner's estimate
    seen: list[str] = []
    cursor = None
    while True:
        page = await storage.query_articles(ArticleFilters(query="harbour"), sort=Sort.parse("relevance"), limit=3,
                                            cursor=cursor)
        seen += [item["id"] for item in page.items]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert sorted(seen) == sorted(r.id for r in records)  # each once, across the tiers


async def test_large_match_sets_are_faceted_over_a_sample(storage: Storage, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    backend = importlib.import_module(type(storage).__module__)
    monkeypatch.setattr(backend, "FACET_SAMPLE", 3)  # more than 6 matches: a sample is counted and scaled
    await storage.upsert_articles([
        make_record(f"s{n:02d}", source_domain="big.example" if n % 4 else "small.example", body=f"Ports story {n}.")
        for n in range(20)
    ])
    execute_raw(storage.url, "ANALYZE")
    for filters in (ArticleFilters(), ArticleFilters(query="ports"), ArticleFilters(category="politics")):
        facets = await storage.facets(filters)
        every = facets.sample_every
        assert every > 1 and facets.to_dict()["sampled"]
        assert all(c.count % every == 0 for c in [*facets.sources, *facets.days])
        assert facets.total == 20 if storage.url.startswith("sqlite") else facets.total % every == 0
    exact = await storage.facets(ArticleFilters(source="small.example"))
    assert exact.total == 5 and exact.sample_every == 1 and exact.sources[0].count == 5

"""The synthetic scale corpus: deterministic per article, ~10 % near-duplicates that the index sees as such."""

from __future__ import annotations

import asyncio
from pathlib import Path

from services.enrich.dedup import DEFAULT_THRESHOLD, Signer, similarity
from shared.storage import open_storage
from tools.bench.corpus import SyntheticCorpus, article_id, bulk_load


def test_article_n_is_the_same_whatever_else_was_generated() -> None:
    first, second = SyntheticCorpus(), SyntheticCorpus()
    assert [first.article(n) for n in (3, 700, 41)] == [second.article(n) for n in (3, 700, 41)]
    assert first.article(5) != first.article(6)
    assert first.record(12) == second.record(12)
    assert SyntheticCorpus(seed=2).article(5).body != first.article(5).body


def test_articles_look_like_news_with_true_entity_offsets() -> None:
    corpus = SyntheticCorpus()
    for number in range(40):
        article = corpus.article(number)
        assert 450 <= len(article.body.split()) <= 700
        assert article.id == article_id("scale", number) and len(article.id) == 24
        assert article.entities
        for name, _label, spans in article.entities:
            assert all(article.body[start:end] == name for start, end in spans)
        record = corpus.record(number)
        assert {p.country_code for p in record.places} <= set(record.countries)


def test_a_tenth_are_near_duplicates_of_a_recent_story() -> None:
    corpus = SyntheticCorpus()
    articles = [corpus.article(n) for n in range(600)]
    copies = [a for a in articles if a.near_duplicate_of]
    assert 35 <= len(copies) <= 90
    by_id = {a.id: a for a in articles}
    signer = Signer()
    for copy in copies[:15]:
        original = by_id[copy.near_duplicate_of or ""]
        assert original.near_duplicate_of is None  # a copy lists the first story, never another copy
        a, b = signer.sign(copy.body), signer.sign(original.body)
        assert a is not None and b is not None and similarity(a, b) >= DEFAULT_THRESHOLD
    others = [a for a in articles[:60] if not a.near_duplicate_of]
    a, b = signer.sign(others[0].body), signer.sign(others[1].body)
    assert a is not None and b is not None and similarity(a, b) < 0.2


def test_bulk_load_writes_through_the_storage(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'bulk.db'}"
    corpus = SyntheticCorpus()
    seen: list[int] = []
    written = asyncio.run(bulk_load(url, corpus.records(0, 130), batch_size=50, progress=lambda n, _s: seen.append(n)))
    assert written == 130 and seen[-1] == 130

    async def read() -> tuple[int, int]:
        async with open_storage(url) as storage:
            record = await storage.get_article(article_id("scale", 7))
            assert record == corpus.record(7)
            hits = await storage.search(corpus.article(7).title.split(": ", 1)[1])
            return await storage.count(), len(hits)

    count, hits = asyncio.run(read())
    assert count == 130 and hits >= 1

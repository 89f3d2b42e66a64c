"""Upsert throughput of a storage backend on realistic records (batches of 32, ~500-word bodies, ~20 entities)."""

from __future__ import annotations

import asyncio
import random
import time
from datetime import UTC, datetime, timedelta

from shared.events import ArticleRecord, Entity, Mention, NearDuplicate, Place, Stamp
from shared.storage import open_storage

BATCH_SIZE = 32
_VOCABULARY = (
    "minister", "government", "talks", "security", "border", "trade", "sanctions", "election",
    "parliament", "economy", "market", "energy", "military", "agreement", "summit", "president", "report",
    "officials", "spokesperson", "statement", "pressure", "growth", "inflation", "policy", "alliance",
    "visit", "delegation", "conference", "negotiations", "region", "capital", "province", "investment",
    "exports", "council", "treaty", "defence", "infrastructure", "vote", "campaign", "opposition",
    "coalition", "court", "ruling", "inquiry",
)
_PEOPLE = ("Sergei Shoigu", "Kim Jong Un", "Vladimir Putin", "Olaf Scholz", "Emmanuel Macron", "Joe Biden",
           "Xi Jinping", "Rishi Sunak", "Ursula von der Leyen", "Antony Blinken", "Fumio Kishida")
_ORGS = ("United Nations", "NATO", "European Union", "Kremlin", "Pentagon", "World Bank", "IMF", "Reuters")
_PLACES = (("North Korea", "KP"), ("Russia", "RU"), ("Germany", "DE"), ("France", "FR"), ("China", "CN"),
           ("United States", "US"), ("Japan", "JP"), ("Ukraine", "UA"), ("Pyongyang", "KP"), ("Moscow", "RU"))


def realistic_record(index: int, rng: random.Random, words: int = 500, entities: int = 20) -> ArticleRecord:
    """A synthetic enriched record shaped like real output: body of `words` words, `entities` entities."""
    paragraphs = []
    remaining = words
    while remaining > 0:
        size = min(remaining, rng.randint(40, 90))
        paragraphs.append(" ".join(rng.choice(_VOCABULARY) for _ in range(size)).capitalize() + ".")
        remaining -= size
    body = "\n\n".join(paragraphs)
    title = f"{rng.choice(_PEOPLE)} {rng.choice(_VOCABULARY)} {rng.choice(_VOCABULARY)} report {index}"
    pool = [(name, "PERSON") for name in _PEOPLE] + [(name, "ORG") for name in _ORGS]
    pool += [(name, "GPE") for name, _ in _PLACES]
    chosen = rng.sample(pool, min(entities, len(pool)))
    entity_models = []
    for name, label in chosen:
        mentions = []
        for _ in range(rng.randint(1, 4)):
            start = rng.randint(0, max(0, len(body) - len(name)))
            mentions.append(Mention(text=name, start=start, end=start + len(name), field="body"))
        entity_models.append(Entity(name=name, label=label, mentions=mentions))
    places = [Place(name=name, country_code=code, country=name, mentions=rng.randint(1, 3))
              for name, code in _PLACES if (name, "GPE") in chosen]
    now = datetime.now(UTC)
    stamp = Stamp(stage="publish", version="bench", worker="bench", started_at=now, finished_at=now,
                  duration_ms=0.0)
    return ArticleRecord(
        id=f"bench-{index:08d}",
        external_id=f"bench-{index}",
        url=f"https://news.example.com/{index}",
        origin="bench",
        title=title,
        body=body,
        authors=["Ethan Kim"],
        source_domain="news.example.com",
        source_name="Example News",
        published_at=now - timedelta(minutes=index),
        language="en",
        word_count=words,
        reading_time_s=words * 60 // 230,
        summary=paragraphs[0][:300],
        keywords=rng.sample(_VOCABULARY, 8),
        sentiment=rng.uniform(-1, 1),
        sentiment_label="neutral",
        category="politics",
        category_score=0.8,
        entities=entity_models,
        places=places,
        countries=list(dict.fromkeys(place.country_code for place in places if place.country_code)),
        near_duplicates=[NearDuplicate(id=f"bench-{index - 1:08d}", similarity=0.9)] if index % 10 == 1 else [],
        duplicate_of=None,
        content_hash=f"{index:064x}",
        received_at=now,
        trace=[stamp],
    )


async def measure_upsert_throughput(url: str, n: int = 2_048, seed: int = 7) -> float:
    """Rows per second upserting `n` new realistic records in batches of 32 into the storage at `url`.

    Records are generated before the clock starts, so only storage work (fingerprint, rows, SQL) is timed.
    """
    rng = random.Random(seed)
    offset = rng.randint(0, 10**7)  # fresh ids, so every upsert is an insert even on a reused database
    records = [realistic_record(offset + i, rng) for i in range(n)]
    storage = open_storage(url)
    try:
        await storage.migrate()
        started = time.perf_counter()
        for start in range(0, n, BATCH_SIZE):
            await storage.upsert_articles(records[start:start + BATCH_SIZE])
        elapsed = time.perf_counter() - started
    finally:
        await storage.close()
    return n / elapsed


def main() -> None:
    """`python -m tools.bench.storage URL [N]`: print upsert rows/s."""
    import sys

    if len(sys.argv) < 2:
        raise SystemExit("usage: python -m tools.bench.storage STORAGE_URL [N]")
    url = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 2_048
    rate = asyncio.run(measure_upsert_throughput(url, n))
    print(f"{url.split(':', 1)[0]} upsert: {rate:,.0f} rows/s ({n} records, batches of {BATCH_SIZE})")


if __name__ == "__main__":
    main()

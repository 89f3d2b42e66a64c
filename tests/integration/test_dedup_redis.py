"""The near-duplicate index against real Redis: shared by replicas, safe under concurrency, survives restarts."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from services.enrich.dedup import (
    BUCKET_CAP,
    DEFAULT_THRESHOLD,
    MAX_NEAR_DUPLICATES,
    SEQ_DIGITS,
    NearDuplicateIndex,
    band_buckets,
)
from shared.settings import Settings

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
STORY = (
    "The city council approved a new budget for schools and roads on Monday after a long debate. Teachers "
    "welcomed the extra money, which will pay for new classrooms and books. Road repairs will start in spring "
    "and last until the end of the year, officials said, adding that the plan had support from both parties "
    "and would be reviewed again next autumn when the first results are known to the public and the press."
)
OTHER = (
    "Harlow Town reached the semifinal of the county cup on Saturday after a 3-1 win over Ridgeway Rovers in "
    "front of a crowd of 4,000. Striker Tomas Bell scored twice in the first half and the goalkeeper saved a "
    "penalty before the break, and the coach praised his players after the match."
)

# A replica in its own process: adds its share of near-copies of STORY and prints what it found.
REPLICA = """
import asyncio, json, sys
from redis.asyncio import Redis
from services.enrich.dedup import (
    BUCKET_CAP,
    DEFAULT_THRESHOLD,
    MAX_NEAR_DUPLICATES,
    SEQ_DIGITS,
    NearDuplicateIndex,
    band_buckets,
)
from shared.settings import Settings

async def main(url, prefix, ids):
    redis = Redis.from_url(url)
    index = NearDuplicateIndex(redis, Settings(key_prefix=prefix))
    story = sys.stdin.read()
    found = {}
    for article_id in ids:
        near, duplicate_of = await index.check_and_add(article_id, story + " Edition " + article_id + ".", "")
        found[article_id] = [n.id for n in near]
    await redis.aclose()
    print(json.dumps(found))

asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3].split(",")))
"""


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()


async def test_two_instances_share_one_index(redis_url: str, key_prefix: str) -> None:
    first_client, second_client = Redis.from_url(redis_url), Redis.from_url(redis_url, decode_responses=True)
    settings = Settings(key_prefix=key_prefix)
    first, second = NearDuplicateIndex(first_client, settings), NearDuplicateIndex(second_client, settings)
    try:
        assert await first.check_and_add("a", STORY, "hash-a") == ([], None)
        near, duplicate_of = await second.check_and_add("b", STORY.replace("Monday", "Tuesday"), "hash-b")
        assert [n.id for n in near] == ["a"] and near[0].similarity >= 0.7 and duplicate_of is None
        assert await second.check_and_add("c", OTHER, "hash-c") == ([], None)
        near, duplicate_of = await first.check_and_add("d", STORY, "hash-a")
        assert duplicate_of == "a" and [n.id for n in near] == ["a", "b"]
        keys = [str(key) for key in await second_client.keys(f"{key_prefix}:*")]
        assert keys and all(key.startswith(f"{key_prefix}:dedup:") for key in keys)
    finally:
        await first_client.aclose()
        await second_client.aclose()


async def bucket_members(redis: Redis, index: NearDuplicateIndex) -> dict[tuple[str, bytes], bytes]:
    """Every band bucket's members (the raw packed value), by (band key, bucket)."""
    members: dict[tuple[str, bytes], bytes] = {}
    for key in index.band_keys:
        for bucket, value in (await redis.hgetall(key)).items():
            members[(key, bucket)] = value
    return members


async def test_reprocessing_is_idempotent(redis: Redis, key_prefix: str) -> None:
    index = NearDuplicateIndex(redis, Settings(key_prefix=key_prefix))
    await index.check_and_add("a", STORY, "hash-a")
    await index.check_and_add("b", STORY + " Updated.", "hash-b")
    before = await bucket_members(redis, index)
    # At-least-once delivery: "a" again lists neither itself nor the later "b", and inserts nothing new.
    assert await index.check_and_add("a", STORY, "hash-a") == ([], None)
    near, _ = await index.check_and_add("b", STORY + " Updated.", "hash-b")
    assert [n.id for n in near] == ["a"]
    assert await bucket_members(redis, index) == before
    assert await redis.zcard(index.key("seen")) == 2 and await redis.hlen(index.key("docs")) == 2


async def test_index_survives_a_new_client(redis_url: str, key_prefix: str) -> None:
    settings = Settings(key_prefix=key_prefix)
    before = Redis.from_url(redis_url)
    await NearDuplicateIndex(before, settings).check_and_add("a", STORY, "hash-a")
    await before.aclose()
    # A restarted enrich process: a new connection, a new index object, the same corpus.
    after = Redis.from_url(redis_url)
    try:
        near, duplicate_of = await NearDuplicateIndex(after, settings).check_and_add("z", STORY, "hash-a")
        assert [n.id for n in near] == ["a"] and duplicate_of == "a"
    finally:
        await after.aclose()


def test_two_processes_adding_concurrently_see_every_earlier_copy(redis_url: str, key_prefix: str) -> None:
    ids = [f"p{process}-{n}" for process in range(2) for n in range(10)]
    shares = [",".join(i for i in ids if i.startswith(f"p{process}-")) for process in range(2)]
    replicas = [
        subprocess.Popen(
            [sys.executable, "-c", REPLICA, redis_url, key_prefix, share],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for share in shares
    ]
    found: dict[str, list[str]] = {}
    for replica in replicas:
        out, _ = replica.communicate(STORY, timeout=120)
        assert replica.returncode == 0
        found.update(json.loads(out))
    assert set(found) == set(ids)
    # Every pair of copies is reported exactly once, by whichever of the two was indexed second.
    pairs = [frozenset((article_id, other)) for article_id, others in found.items() for other in others]
    assert len(pairs) == len(set(pairs)) == len(ids) * (len(ids) - 1) // 2
    assert sorted(len(others) for others in found.values()) == list(range(len(ids)))


def copies(count: int) -> list[tuple[str, str, str]]:
    """`count` near-copies of STORY (an edition line each), as (id, body, content hash)."""
    return [(f"c{n:03d}", f"{STORY} Edition {n}.", f"hash-c{n}") for n in range(count)]


async def test_one_batch_sees_its_own_earlier_copies(redis: Redis, key_prefix: str) -> None:
    index = NearDuplicateIndex(redis, Settings(key_prefix=key_prefix))
    results = await index.check_and_add_many([("a", STORY, "h"), ("b", OTHER, "o"), ("c", STORY, "h")])
    assert results[0] == ([], None) and results[1] == ([], None)
    near, duplicate_of = results[2]
    assert [n.id for n in near] == ["a"] and duplicate_of == "a"


async def test_a_much_copied_story_keeps_buckets_capped(redis: Redis, key_prefix: str) -> None:
    index = NearDuplicateIndex(redis, Settings(key_prefix=key_prefix))
    found = []
    batch = copies(BUCKET_CAP * 2 + 10)
    for start in range(0, len(batch), 32):
        found += await index.check_and_add_many(batch[start : start + 32])
    # Every bucket holds at most the newest BUCKET_CAP articles, so a lookup reads a bounded set...
    members = await bucket_members(redis, index)
    assert members and max(len(value) for value in members.values()) <= BUCKET_CAP * SEQ_DIGITS
    # ...and the last copy still lists the most similar earlier copies, as many as are reported.
    near, _ = found[-1]
    assert len(near) == MAX_NEAR_DUPLICATES and all(n.similarity >= DEFAULT_THRESHOLD for n in near)
    assert [len(n) for n, _ in found[:5]] == [0, 1, 2, 3, 4]


async def test_the_article_horizon_evicts_the_oldest(redis: Redis, key_prefix: str) -> None:
    index = NearDuplicateIndex(redis, Settings(key_prefix=key_prefix, dedup_horizon_articles=20))
    distinct = [(f"d{n}", f"{OTHER} {' '.join(f'word{n}x{k}' for k in range(60))}", f"hash-d{n}") for n in range(50)]
    for start in range(0, len(distinct), 8):
        await index.check_and_add_many(distinct[start : start + 8])
    assert await redis.zcard(index.key("seen")) == 20
    assert await redis.hlen(index.key("docs")) == 20
    assert await redis.hlen(index.key("content")) == 20
    members = await bucket_members(redis, index)
    assert sum(len(value) // SEQ_DIGITS for value in members.values()) == 20 * index.bands
    # The trade-off: a copy of an article that left the horizon is not flagged; one still inside it is.
    assert await index.check_and_add("late-0", distinct[0][1], distinct[0][2]) == ([], None)
    near, duplicate_of = await index.check_and_add("late-49", distinct[49][1], distinct[49][2])
    assert [n.id for n in near] == ["d49"] and duplicate_of == "d49"


async def test_the_time_horizon_evicts_what_is_older(redis: Redis, key_prefix: str) -> None:
    settings = Settings(key_prefix=key_prefix, dedup_horizon_days=0.5 / 86_400)  # half a second
    index = NearDuplicateIndex(redis, settings)
    await index.check_and_add("old", STORY, "hash-old")
    await asyncio.sleep(0.7)
    assert await index.check_and_add("new", STORY, "hash-old") == ([], None)
    assert await redis.zrange(index.key("seen"), 0, -1) == [b"new"]


async def test_an_index_in_the_previous_layout_is_moved_over(redis: Redis, key_prefix: str) -> None:
    index = NearDuplicateIndex(redis, Settings(key_prefix=key_prefix))
    # The layout before bounded buckets: order hash, hex signatures, one set per bucket.
    for order, (article_id, body) in enumerate([("a", STORY), ("b", OTHER)], start=1):
        signature = index.signer.sign(body)
        assert signature is not None
        await redis.hset(index.key("order"), article_id, order)
        await redis.hset(index.key("sig"), article_id, signature.astype("<u4").tobytes().hex())
        await redis.hset(index.key("content"), f"hash-{article_id}", article_id)
        for band, bucket in enumerate(band_buckets(signature, index.bands, index.rows)):
            await redis.sadd(index.key("band", str(band), bucket), article_id)
    await redis.set(index.key("seq"), 2)
    assert await index.upgrade() == 2
    assert await redis.keys(index.key("band", "*")) == []
    assert not await redis.exists(index.key("order"), index.key("sig"), index.key("seq"))
    assert await index.upgrade() == 0  # nothing left to move
    near, duplicate_of = await index.check_and_add("c", STORY + " Updated.", "hash-a")
    assert [n.id for n in near] == ["a"] and duplicate_of == "a"
    assert await index.check_and_add("b", OTHER, "hash-b") == ([], None)  # re-processing a moved article

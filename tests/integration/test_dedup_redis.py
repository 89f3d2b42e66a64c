"""The near-duplicate index against real Redis: shared by replicas, safe under concurrency, survives restarts."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from services.enrich.dedup import NearDuplicateIndex
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
from services.enrich.dedup import NearDuplicateIndex
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


async def test_reprocessing_is_idempotent(redis: Redis, key_prefix: str) -> None:
    index = NearDuplicateIndex(redis, Settings(key_prefix=key_prefix))
    await index.check_and_add("a", STORY, "hash-a")
    await index.check_and_add("b", STORY + " Updated.", "hash-b")
    bucket_sizes_before = [await redis.scard(k) for k in sorted(await redis.keys(index.key("band", "*")))]
    # At-least-once delivery: "a" again lists neither itself nor the later "b", and inserts nothing new.
    assert await index.check_and_add("a", STORY, "hash-a") == ([], None)
    near, _ = await index.check_and_add("b", STORY + " Updated.", "hash-b")
    assert [n.id for n in near] == ["a"]
    assert [await redis.scard(k) for k in sorted(await redis.keys(index.key("band", "*")))] == bucket_sizes_before
    assert await redis.hlen(index.key("order")) == 2


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

"""Near-duplicates across the corpus with two enrich replicas sharing the index in Redis."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import orjson
import pytest
import redis

from shared.events import ArticleRecord
from shared.storage import open_storage
from tests.conftest import ServiceProcess, wait_for

pytestmark = pytest.mark.integration

STORY = (
    "The city council voted on Tuesday to expand the tram network to the northern suburbs, a project that "
    "officials say will cost 420 million euros and take six years to complete. Supporters said the line would "
    "cut commuting times in half for tens of thousands of residents, while opponents warned that the budget "
    "estimates were unrealistic and that construction would disrupt local businesses for years. The mayor "
    "promised an independent review of the costs before the first contracts are signed next spring."
)
OTHER = (
    "Scientists at the university observatory reported the discovery of a comet that will pass close to Earth "
    "next winter. The object, first seen in images taken last month, is expected to be visible with binoculars "
    "for several weeks. Astronomers said there was no risk of collision and invited the public to open nights "
    "at the observatory once the comet brightens, weather permitting."
)


def stored(url: str) -> dict[str, ArticleRecord]:
    async def read() -> dict[str, ArticleRecord]:
        async with open_storage(url) as storage:
            await storage.migrate()
            return {r.external_id or "": r async for r in storage.iter_export()}

    return asyncio.run(read())


def test_two_enrich_replicas_share_one_near_duplicate_index(
    start_service: Callable[..., ServiceProcess], service_env: dict[str, str]
) -> None:
    for stage in ("ingest", "clean", "enrich", "enrich", "publish"):
        start_service(stage)
    client = redis.Redis.from_url(service_env["NEWSFLOW_REDIS_URL"])
    raw = f"{service_env['NEWSFLOW_KEY_PREFIX']}:raw"

    def push(external_id: str, url: str, text: str) -> None:
        client.xadd(raw, {"data": orjson.dumps({"id": external_id, "url": url, "text": text})})

    push("original", "https://a.example.com/tram", "Tram network to expand north\n\n" + STORY)
    wait_for(lambda: "original" in stored(service_env["NEWSFLOW_STORAGE_URL"]), timeout=60, what="the original")
    # A syndicated copy with a different headline and one changed sentence, an exact copy, and an unrelated story;
    # as one batch, so both replicas take a share.
    time.sleep(0.2)
    push("syndicated", "https://b.example.org/news/tram",
         "Council backs tram extension\n\n" + STORY.replace("next spring", "early next year"))
    push("exact-copy", "https://c.example.net/tram-copy", "Tram network to expand north\n\n" + STORY)
    push("unrelated", "https://a.example.com/comet", "Comet to pass close to Earth\n\n" + OTHER)
    records = wait_for(lambda: (r := stored(service_env["NEWSFLOW_STORAGE_URL"])) and len(r) == 4 and r,
                       timeout=90, what="four records")
    assert isinstance(records, dict)
    original = records["original"]
    syndicated = {d.id: d.similarity for d in records["syndicated"].near_duplicates}
    assert syndicated.get(original.id, 0) >= 0.7
    assert records["exact-copy"].duplicate_of == original.id
    assert records["unrelated"].near_duplicates == []
    assert original.near_duplicates == []  # only earlier articles are listed

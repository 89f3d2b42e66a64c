"""Each service's wiring with FastStream's TestRedisBroker: subscriber -> policy -> logic -> next stream.

The broker is the in-memory test broker; the policy's own writes (XADD/XACK) go to the real Redis under a
private prefix, where the test reads them back.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import orjson
import pytest
import redis
from faststream.redis import TestRedisBroker

from shared.events import CleanedArticle, DeadLetter, EnrichedArticle, IngestedArticle, PublishedEvent
from shared.settings import get_settings
from tests.conftest import SEED
from tests.httpsite import Site

pytestmark = pytest.mark.integration


@pytest.fixture
def load_service(
    monkeypatch: pytest.MonkeyPatch, redis_url: str, key_prefix: str, tmp_path: Path
) -> Iterator[Any]:
    monkeypatch.setenv("NEWSFLOW_REDIS_URL", redis_url)
    monkeypatch.setenv("NEWSFLOW_KEY_PREFIX", key_prefix)
    monkeypatch.setenv("NEWSFLOW_STORAGE_URL", f"sqlite:///{tmp_path / 'wiring.db'}")
    monkeypatch.setenv("NEWSFLOW_LOG_FORMAT", "json")
    monkeypatch.setenv("NEWSFLOW_HTTP_PORT", "0")
    monkeypatch.setenv("NEWSFLOW_FETCH_ALLOW_PRIVATE", "true")  # fetch's test site is on 127.0.0.1

    def load(stage: str) -> ModuleType:
        get_settings.cache_clear()
        name = f"services.{stage}.main"
        sys.modules.pop(name, None)
        return importlib.import_module(name)

    yield load
    get_settings.cache_clear()


def entries(redis_url: str, stream: str) -> list[dict[bytes, bytes]]:
    return [fields for _, fields in redis.Redis.from_url(redis_url).xrange(stream)]


async def run_through(module: ModuleType, *messages: Any) -> None:
    async with TestRedisBroker(module.broker) as broker, module.stage.lifespan():
        for message in messages:
            await broker.publish(message, stream=module.stage.input_stream)


async def test_ingest_wires_raw_to_ingested_and_dlq(load_service: Any, redis_url: str) -> None:
    ingest = load_service("ingest")
    await run_through(ingest, {"id": "s1", "text": SEED.read_text()}, {"html": "<p>x</p>", "text": "y"})
    [out] = entries(redis_url, ingest.stage.output_stream)
    article = IngestedArticle.model_validate_json(out[b"data"])
    assert article.ingest.external_id == "s1"
    assert [s.stage for s in article.trace] == ["ingest"]
    [letter] = entries(redis_url, ingest.stage.streams.dlq)
    assert DeadLetter.model_validate_json(letter[b"data"]).reason == "both_text_and_html"


async def test_clean_wires_ingested_to_cleaned(load_service: Any, redis_url: str) -> None:
    ingest = load_service("ingest")
    await run_through(ingest, {"id": "s1", "text": SEED.read_text()})
    article = IngestedArticle.model_validate_json(entries(redis_url, ingest.stage.output_stream)[0][b"data"])
    clean = load_service("clean")
    await run_through(clean, article.model_dump(mode="json"))
    cleaned = CleanedArticle.model_validate_json(entries(redis_url, clean.stage.output_stream)[0][b"data"])
    assert cleaned.clean.authors == ["Ethan Kim"]
    assert [s.stage for s in cleaned.trace] == ["ingest", "clean"]


async def test_enrich_and_publish_wire_through_to_storage(load_service: Any, redis_url: str) -> None:
    ingest = load_service("ingest")
    await run_through(ingest, {"id": "s1", "text": SEED.read_text()})
    article = entries(redis_url, ingest.stage.output_stream)[0][b"data"]
    clean = load_service("clean")
    await run_through(clean, IngestedArticle.model_validate_json(article).model_dump(mode="json"))
    cleaned = CleanedArticle.model_validate_json(entries(redis_url, clean.stage.output_stream)[0][b"data"])
    enrich = load_service("enrich")
    await run_through(enrich, cleaned.model_dump(mode="json"))
    enriched = EnrichedArticle.model_validate_json(entries(redis_url, enrich.stage.output_stream)[0][b"data"])
    assert enriched.enrich.language == "en"
    publish = load_service("publish")
    await publish.storage.migrate()
    await run_through(publish, enriched.model_dump(mode="json"))
    event = PublishedEvent.model_validate_json(entries(redis_url, publish.stage.output_stream)[0][b"data"])
    assert event.id == enriched.id and event.revision == 1
    record = await publish.storage.get_article(enriched.id)
    assert record is not None
    assert [s.stage for s in record.trace] == ["ingest", "clean", "enrich", "publish"]
    await publish.storage.close()


async def test_fetch_wires_discovered_to_raw_and_a_bad_job_to_the_dlq(
    load_service: Any, redis_url: str, site: Site
) -> None:
    from datetime import UTC, datetime

    from shared.events import FetchJob

    site.add("/story.html", "<html><body><article><p>" + SEED.read_text() + "</p></article></body></html>")
    fetch = load_service("fetch")
    job = FetchJob(url=site.url("/story.html"), source_id="s1", source_url=site.url("/feed.xml"),
                   discovered_at=datetime.now(UTC))
    await run_through(fetch, job.model_dump(mode="json"), {"schema_version": 1, "url": "no source"})
    await fetch.fetcher.close()
    [out] = entries(redis_url, fetch.stage.output_stream)
    assert out[b"origin"] == site.url("/feed.xml").encode()
    raw = orjson.loads(out[b"data"])
    assert raw["url"] == site.url("/story.html") and "Shoigu" in raw["html"]
    [letter] = entries(redis_url, fetch.stage.streams.dlq)
    assert DeadLetter.model_validate_json(letter[b"data"]).reason == "invalid_event"

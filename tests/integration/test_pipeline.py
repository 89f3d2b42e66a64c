"""The walking pipeline: four services as real processes on real Redis, the seed in, a stored record out."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
import redis

from shared.events import ArticleRecord, DeadLetter, PublishedEvent
from shared.storage import open_storage
from shared.streams import STAGES
from tests.conftest import ROOT, SEED, ServiceProcess, wait_for

pytestmark = pytest.mark.integration


def push(env: dict[str, str], *paths: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "newsflow.cli", "push", *paths], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)


def stored(env: dict[str, str]) -> list[ArticleRecord]:
    async def read() -> list[ArticleRecord]:
        async with open_storage(env["NEWSFLOW_STORAGE_URL"]) as storage:
            await storage.migrate()
            records = []
            async for record in storage.iter_export():
                records.append(record)
            return records

    return asyncio.run(read())


def dead_letters(env: dict[str, str]) -> list[DeadLetter]:
    client = redis.Redis.from_url(env["NEWSFLOW_REDIS_URL"])
    rows = client.xrange(f"{env['NEWSFLOW_KEY_PREFIX']}:dlq")
    return [DeadLetter.model_validate_json(fields[b"data"]) for _, fields in rows]


@pytest.fixture
def pipeline(start_service: Callable[..., ServiceProcess]) -> dict[str, ServiceProcess]:
    return {stage: start_service(stage) for stage in STAGES}


def test_seed_is_stored_once_with_its_lineage_and_bad_input_is_dead_lettered(
    pipeline: dict[str, ServiceProcess], service_env: dict[str, str], tmp_path: Path
) -> None:
    result = push(service_env, str(SEED))
    assert result.returncode == 0, result.stderr
    assert "queued 1 article" in result.stderr

    records = wait_for(lambda: stored(service_env), timeout=90, what="the seed in storage")
    assert isinstance(records, list) and len(records) == 1
    record = records[0]
    assert record.title == "Sergei Shoigu’s Visit to North Korea: Strengthening Security Ties"
    assert record.external_id == "article-000"
    assert record.source_domain == "independent.co.uk"
    assert record.authors == ["Ethan Kim"]
    assert "Loading Now" not in record.body and "Post Comment" not in record.body
    assert [stamp.stage for stamp in record.trace] == ["ingest", "clean", "enrich", "publish"]
    people = {e.name for e in record.entities if e.label == "PERSON"}
    assert {"Sergei Shoigu", "Kim Jong Un", "Vladimir Putin"} <= people
    assert record.language == "en"

    client = redis.Redis.from_url(service_env["NEWSFLOW_REDIS_URL"])
    published = client.xrange(f"{service_env['NEWSFLOW_KEY_PREFIX']}:published")
    event = PublishedEvent.model_validate_json(published[0][1][b"data"])
    assert (event.id, event.revision) == (record.id, 1)

    # A second push of the same file updates the same record: still one row.
    assert push(service_env, str(SEED)).returncode == 0
    wait_for(lambda: len(client.xrange(f"{service_env['NEWSFLOW_KEY_PREFIX']}:published")) == 2, timeout=60,
             what="the re-push published")
    assert [r.id for r in stored(service_env)] == [record.id]

    # An invalid article is dead-lettered with its reason; the valid one right after it is still stored.
    bad = tmp_path / "bad.json"
    bad.write_text('{"text": "one body", "html": "<p>and another</p>"}')
    good = tmp_path / "good.txt"
    good.write_text("A different story\n\n" + "The council met on Tuesday to agree the city budget. " * 12)
    assert push(service_env, str(bad), str(good)).returncode == 0
    wait_for(lambda: len(stored(service_env)) == 2, timeout=60, what="the valid article after the bad one")
    letters = dead_letters(service_env)
    assert [(d.stage, d.reason) for d in letters] == [("ingest", "both_text_and_html")]

    for service in pipeline.values():
        assert service.stop() == 0, service.output()[-3000:]
    canonical = [orjson.loads(line) for line in pipeline["clean"].lines if '"article.cleaned"' in line]
    assert canonical and {"article_id", "stage", "msg_id", "duration_ms"} <= canonical[0].keys()

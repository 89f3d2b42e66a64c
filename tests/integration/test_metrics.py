"""/metrics of a running ingest service after a known number of good and bad articles."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import orjson
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import ServiceProcess, wait_for

pytestmark = pytest.mark.integration


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """name + sorted labels -> value, for every sample in an exposition."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_metrics_count_what_the_stage_did(
    redis_url: str, key_prefix: str, service_env: dict[str, str], start_service: Callable[..., ServiceProcess]
) -> None:
    base = start_service("ingest", http=True).base_url
    client = redis.Redis.from_url(redis_url)
    raw, ingested, dlq = (f"{key_prefix}:{name}" for name in ("raw", "ingested", "dlq"))
    for i in range(7):
        client.xadd(raw, {"data": orjson.dumps({"id": f"a{i}", "text": f"Article number {i} has a body."})})
    client.xadd(raw, {"data": b"{not json"})
    client.xadd(raw, {"data": orjson.dumps({"text": "a", "html": "<p>b</p>"})})
    client.xadd(raw, {"data": orjson.dumps({"html": "<p>both</p>", "text": "again"})})
    wait_for(lambda: client.xlen(ingested) == 7 and client.xlen(dlq) == 3, timeout=30, what="ingest to finish")
    # Another group on the same stream, with an entry it never acknowledges: not this service's gauges.
    client.xgroup_create(raw, "auditor", id="$")
    client.xadd(raw, {"data": orjson.dumps({"text": "late 1"})})
    client.xreadgroup("auditor", "slow-auditor", {raw: ">"}, count=1)
    client.xadd(raw, {"data": orjson.dumps({"text": "late 2"})})
    wait_for(lambda: client.xlen(ingested) == 9, timeout=30, what="ingest to take the late ones")

    response = httpx.get(f"{base}/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    found = samples(response.text)
    assert found[("newsflow_articles_processed_total", (("stage", "ingest"),))] == 9
    assert found[("newsflow_articles_dead_lettered_total", (("reason", "invalid_json"), ("stage", "ingest")))] == 1
    both = (("reason", "both_text_and_html"), ("stage", "ingest"))
    assert found[("newsflow_articles_dead_lettered_total", both)] == 2
    assert found[("newsflow_article_processing_seconds_count", (("stage", "ingest"),))] == 9
    assert found[("newsflow_batch_size_sum", (("stage", "ingest"),))] == 12  # every entry arrived in some batch
    assert found[("newsflow_stream_length", (("stream", raw),))] == 12
    ours = (("group", "ingest"), ("stream", raw))
    assert found[("newsflow_group_pending", ours)] == 0
    assert found[("newsflow_group_lag", ours)] == 0
    assert found[("newsflow_group_consumers", ours)] == 1
    assert found[("newsflow_redis_up", ())] == 1
    # The gauges describe the stage's own group only; the auditor group is not this service's business.
    assert ("newsflow_group_pending", (("group", "auditor"), ("stream", raw))) not in found
    assert any(name == "process_resident_memory_bytes" for name, _ in found)

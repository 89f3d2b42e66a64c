"""A client on a test host that uses Redis or PostgreSQL the way the stages do, and says when each request went through.

`python -m tests.linkprobe redis|postgres URL` (NEWSFLOW_LINK_TIMEOUT_S from the environment, as a service reads it)
makes one request after another through newsflow's own client — `make_redis`, or the PostgreSQL storage's pool —
retrying failures after 0.2 s, and prints one JSON line per request: when it ended (time.monotonic(), one clock for
every process on the machine), whether it succeeded, and the error if not. tests/e2e/test_dead_link.py runs it on a
host whose link it cuts and restores.

Each request waits 3 s on the server before its reply (BLPOP with a timeout, as a stage's XREADGROUP blocks;
pg_sleep, as a slow upsert does), so a cut most likely falls while the server holds it: the reply is then sent into
the dead link, and the server retransmits it with a backoff that doubles for as long as the cut lasts — the case
where a client without a timeout of its own waited the longest after the link came back.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import psycopg

from shared.settings import Settings
from shared.storage import open_storage
from shared.storage.postgres import PostgresStorage
from shared.transport.broker import make_redis

PAUSE_S = 0.2
SERVER_WAIT_S = 3


def say(**facts: object) -> None:
    sys.stdout.buffer.write(orjson.dumps({"at": time.monotonic(), **facts}) + b"\n")
    sys.stdout.flush()


async def probe(request: Callable[[], Awaitable[object]]) -> None:
    while True:
        started = time.monotonic()
        try:
            await request()
        except Exception as exc:
            say(ok=False, took=round(time.monotonic() - started, 2), error=f"{type(exc).__name__}: {exc}"[:200])
            await asyncio.sleep(PAUSE_S)
            continue
        say(ok=True, took=round(time.monotonic() - started, 2))
        await asyncio.sleep(PAUSE_S)


async def main(kind: str, url: str) -> None:
    settings = Settings()
    logging.getLogger("psycopg.pool").setLevel(logging.ERROR)  # one warning per failed reconnection otherwise
    if kind == "redis":
        redis = make_redis(settings.model_copy(update={"redis_url": url}))
        await probe(lambda: redis.blpop(["linkprobe"], timeout=SERVER_WAIT_S))
    elif kind == "postgres":
        storage = open_storage(url, link_timeout_s=settings.link_timeout_s)
        assert isinstance(storage, PostgresStorage)

        async def sleep_on_server(connection: psycopg.AsyncConnection[Any]) -> None:
            await connection.execute("SELECT pg_sleep(%s)", (SERVER_WAIT_S,))

        await probe(lambda: storage._run(sleep_on_server))
    else:
        raise SystemExit(f"usage: python -m tests.linkprobe redis|postgres URL (not {kind!r})")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))

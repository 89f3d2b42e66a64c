"""Putting raw articles on the raw stream: the one producer used by the CLI, the HTTP API and tests."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import orjson
from redis.asyncio import Redis

from shared.streams import StreamNames

CHUNK = 500


async def enqueue_raw(
    redis: Redis,
    streams: StreamNames,
    articles: Sequence[dict[str, Any] | bytes],
    *,
    origin: str,
    on_chunk: Callable[[int], None] | None = None,
) -> list[str]:
    """XADD each raw article as `data` (JSON) + `origin`, pipelined in chunks; returns the entry ids."""
    ids: list[str] = []
    for start in range(0, len(articles), CHUNK):
        chunk = articles[start : start + CHUNK]
        async with redis.pipeline(transaction=False) as pipe:
            for article in chunk:
                data = article if isinstance(article, bytes) else orjson.dumps(article)
                pipe.xadd(streams.raw, {"data": data, "origin": origin})
            ids.extend(entry_id.decode() for entry_id in await pipe.execute())
        if on_chunk is not None:
            on_chunk(len(chunk))
    return ids

"""fetch: poll registered feeds and news sitemaps, download each new article page once, politely, onto the raw stream.

Two loops in one process: the poller (services/fetch/poller.py) queues new article URLs on the discovered stream;
the consumer below reads them through the delivery policy like every stage and writes each page to the raw
stream, with `origin` = the feed, in the same transaction as its XACK.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from faststream import AckPolicy, FastStream
from faststream.redis.annotations import RedisBatchStreamMessage
from redis.asyncio import Redis

from services.fetch.downloads import FetchOutcome, PageFetcher, describe_outcome
from services.fetch.poller import SourcePoller
from shared.errors import ConfigurationError
from shared.events import FetchJob
from shared.observability.logging import configure_logging, get_logger
from shared.settings import get_settings
from shared.transport.broker import make_broker
from shared.transport.delivery import Stage, decode_event, keep_raw_entries

settings = get_settings()
configure_logging(settings, service="fetch")
broker = make_broker(settings)
try:
    fetcher = PageFetcher(settings)
except ConfigurationError as exc:
    # A configuration mistake, not a crash: one clear log line and exit status 2, no traceback.
    get_logger("newsflow.fetch").error(exc.event, error=str(exc))
    raise SystemExit(2) from exc
poller = SourcePoller(settings, fetcher)


async def start(redis: Redis) -> None:
    """The shared state and HTTP client, before the first page; then the poller beside the consumer."""
    await fetcher.start(redis)


stage: Stage[FetchJob, FetchOutcome] = Stage(
    "fetch",
    settings,
    decode=decode_event(FetchJob),
    process=fetcher.process,
    describe=describe_outcome,
    on_start=start,
    write=fetcher.write,  # pages to the raw stream, retries to the delayed set, failures onto their source
)


@asynccontextmanager
async def lifespan() -> AsyncIterator[None]:
    """The stage's lifespan with the poller running inside it (stopped first, so it never outlives Redis)."""
    async with stage.lifespan():
        polling = asyncio.create_task(poller.run())
        try:
            yield
        finally:
            await poller.stop()
            await polling
            await fetcher.close()


app = FastStream(broker, lifespan=lifespan, on_shutdown=[stage.begin_shutdown])


@broker.subscriber(stream=stage.subscription(), parser=keep_raw_entries, ack_policy=AckPolicy.MANUAL)
async def on_discovered(batch: RedisBatchStreamMessage) -> None:
    """newsflow:discovered -> newsflow:raw (each page once), the delayed set, or its source's failures."""
    await stage.handle(batch)

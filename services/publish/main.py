"""publish: idempotent upsert of each enriched article into storage, then a small event for downstream."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from faststream import AckPolicy, FastStream
from faststream.redis.annotations import RedisBatchStreamMessage

from shared.errors import Rejected
from shared.events import ArticleRecord, EnrichedArticle, PublishedEvent
from shared.observability.logging import configure_logging
from shared.settings import get_settings
from shared.storage import open_storage
from shared.transport.broker import make_broker
from shared.transport.delivery import Stage, decode_event, keep_raw_entries

settings = get_settings()
configure_logging(settings, service="publish")
broker = make_broker(settings)
storage = open_storage(settings.storage_url)


async def accept(articles: list[EnrichedArticle]) -> list[EnrichedArticle | Rejected]:
    """Nothing to compute: publish's work is the storage commit in `store`."""
    return list(articles)


async def store(articles: list[EnrichedArticle]) -> list[PublishedEvent]:
    """Upsert the batch in one transaction; one published event per stored record."""
    results = await storage.upsert_articles([ArticleRecord.from_article(a) for a in articles])
    by_id = {a.id: a for a in articles}
    return [
        PublishedEvent(
            id=r.id,
            url=by_id[r.id].clean.url or by_id[r.id].ingest.url,
            title=by_id[r.id].clean.title,
            revision=r.revision,
            stored_at=r.stored_at,
        )
        for r in results
    ]


stage: Stage[EnrichedArticle, EnrichedArticle] = Stage(
    "publish",
    settings,
    decode=decode_event(EnrichedArticle),
    process=accept,
    sink=store,
    describe=lambda a: {"title": a.clean.title[:80], "trace": [s.stage for s in a.trace]},
)


@asynccontextmanager
async def lifespan() -> AsyncIterator[None]:
    """Migrate storage before the first message; close it after the last."""
    await storage.migrate()
    try:
        async with stage.lifespan():
            yield
    finally:
        await storage.close()


app = FastStream(broker, lifespan=lifespan, on_shutdown=[stage.begin_shutdown])


@broker.subscriber(stream=stage.subscription(), parser=keep_raw_entries, ack_policy=AckPolicy.MANUAL)
async def on_enriched(batch: RedisBatchStreamMessage) -> None:
    """newsflow:enriched -> storage + newsflow:published (or the DLQ)."""
    await stage.handle(batch)

"""publish: idempotent upsert of each enriched article into storage, then a small event for downstream."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from faststream import AckPolicy, FastStream
from faststream.redis.annotations import RedisBatchStreamMessage

from shared.errors import Rejected
from shared.events import ArticleRecord, EnrichedArticle, PublishedEvent
from shared.observability.logging import configure_logging, get_logger
from shared.settings import get_settings
from shared.storage import open_storage
from shared.transport.broker import make_broker
from shared.transport.delivery import Stage, decode_event, keep_raw_entries

settings = get_settings()
configure_logging(settings, service="publish")
broker = make_broker(settings)
storage = open_storage(settings.storage_url, link_timeout_s=settings.link_timeout_s)
log = get_logger("newsflow.publish")


async def accept(articles: list[EnrichedArticle]) -> list[EnrichedArticle | Rejected]:
    """Nothing to compute: publish's work is the storage commit in `store`."""
    return list(articles)


async def store(articles: list[EnrichedArticle]) -> list[PublishedEvent]:
    """Upsert the batch in one transaction; one published event per stored record, none for a late old revision."""
    results = await storage.upsert_articles([ArticleRecord.from_article(a) for a in articles])
    events = []
    for article, result in zip(articles, results, strict=True):
        if result.stale:
            log.warning(
                "article.revision_skipped",
                article_id=article.id,
                received_at=article.ingest.received_at.isoformat(),
                updated_at=article.ingest.updated_at.isoformat() if article.ingest.updated_at else None,
                stored_revision=result.revision,
                why="a newer revision of this article is stored; this one is noted in its skipped_revisions",
            )
            continue
        events.append(
            PublishedEvent(
                id=result.id,
                url=article.clean.url or article.ingest.url,
                title=article.clean.title,
                revision=result.revision,
                stored_at=result.stored_at,
            )
        )
    return events


stage: Stage[EnrichedArticle, EnrichedArticle] = Stage(
    "publish",
    settings,
    decode=decode_event(EnrichedArticle),
    process=accept,
    sink=store,
    sink_name="storage",
    # Storage is migrated before the first batch; while the database is unreachable the service waits, not ready.
    prepare=storage.migrate,
    check=storage.check,
    describe=lambda a: {"title": a.clean.title[:80], "trace": [s.stage for s in a.trace]},
)


@asynccontextmanager
async def lifespan() -> AsyncIterator[None]:
    """Storage is migrated by the stage (`prepare`) before the first batch; closed after the last."""
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

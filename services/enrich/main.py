"""enrich: language, entities, places, keywords, summary, sentiment, topic and near-duplicates for each article."""

from __future__ import annotations

from faststream import AckPolicy, FastStream
from faststream.redis.annotations import RedisBatchStreamMessage
from redis.asyncio import Redis

from services.enrich.dedup import NearDuplicateIndex
from services.enrich.enricher import Enricher
from services.enrich.memory import limit_malloc_arenas
from services.enrich.step import enrich_articles
from shared.errors import Rejected
from shared.events import CleanedArticle, EnrichedArticle
from shared.observability.logging import configure_logging
from shared.settings import get_settings
from shared.transport.broker import make_broker
from shared.transport.delivery import Stage, decode_event, keep_raw_entries

limit_malloc_arenas()  # before the first worker thread allocates
settings = get_settings()
configure_logging(settings, service="enrich")
broker = make_broker(settings)
enricher = Enricher(settings)  # models load once, at import, before the first message
index: NearDuplicateIndex | None = None


async def open_index(redis: Redis) -> None:
    """The near-duplicate index lives in Redis, shared by every enrich replica (moved on from an older layout)."""
    global index
    index = NearDuplicateIndex(redis, settings)
    await index.upgrade()


async def enrich(articles: list[CleanedArticle]) -> list[EnrichedArticle | Rejected]:
    """Enrich a batch (NLP in a worker thread, then the shared duplicate index)."""
    assert index is not None, "the stage's lifespan opens the index"
    return list(await enrich_articles(enricher, index, articles))


stage: Stage[CleanedArticle, EnrichedArticle] = Stage(
    "enrich",
    settings,
    decode=decode_event(CleanedArticle),
    process=enrich,
    on_start=open_index,
    describe=lambda a: {
        "language": a.enrich.language,
        "entities": len(a.enrich.entities),
        "category": a.enrich.category,
        "near_duplicates": len(a.enrich.near_duplicates),
    },
)
app = FastStream(broker, lifespan=stage.lifespan, on_shutdown=[stage.begin_shutdown])


@broker.subscriber(stream=stage.subscription(), parser=keep_raw_entries, ack_policy=AckPolicy.MANUAL)
async def on_cleaned(batch: RedisBatchStreamMessage) -> None:
    """newsflow:cleaned -> newsflow:enriched (or the DLQ)."""
    await stage.handle(batch)

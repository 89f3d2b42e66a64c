"""clean: turn each raw page (text or HTML) into an article — title, authors, body, source, date."""

from __future__ import annotations

from faststream import AckPolicy, FastStream
from faststream.redis.annotations import RedisBatchStreamMessage

from services.clean.article import clean_article
from shared.events import CleanedArticle, IngestedArticle
from shared.observability.logging import configure_logging
from shared.settings import get_settings
from shared.transport.broker import make_broker
from shared.transport.delivery import Stage, decode_event, keep_raw_entries, per_article

settings = get_settings()
configure_logging(settings, service="clean")
broker = make_broker(settings)


def clean(article: IngestedArticle) -> CleanedArticle:
    """Add the clean section to one ingested article."""
    section = clean_article(article.ingest, min_words=settings.min_body_words)
    return CleanedArticle(id=article.id, ingest=article.ingest, trace=article.trace, clean=section)


stage: Stage[IngestedArticle, CleanedArticle] = Stage(
    "clean",
    settings,
    decode=decode_event(IngestedArticle),
    process=per_article(clean),
    describe=lambda a: {
        "title": a.clean.title[:80],
        "source_domain": a.clean.source_domain,
        "extractor": a.clean.extractor,
        "authors": a.clean.authors,
    },
)
app = FastStream(broker, lifespan=stage.lifespan, on_shutdown=[stage.begin_shutdown])


@broker.subscriber(stream=stage.subscription(), parser=keep_raw_entries, ack_policy=AckPolicy.MANUAL)
async def on_ingested(batch: RedisBatchStreamMessage) -> None:
    """newsflow:ingested -> newsflow:cleaned (or the DLQ)."""
    await stage.handle(batch)

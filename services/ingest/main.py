"""ingest: validate raw articles, give each its stable id, origin and receipt time, hand them to clean."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from faststream import AckPolicy, FastStream
from faststream.redis.annotations import RedisBatchStreamMessage

from services.ingest.http import ingest_routes
from services.ingest.validate import ingest_article, parse_raw_payload
from shared.events import IngestedArticle, RawArticle
from shared.observability.logging import configure_logging
from shared.settings import get_settings
from shared.transport.broker import make_broker
from shared.transport.delivery import Stage, StreamEntry, keep_raw_entries, per_article

settings = get_settings()
configure_logging(settings, service="ingest")
broker = make_broker(settings)


@dataclass(frozen=True, slots=True)
class RawInput:
    """A validated raw article and where and when it entered the pipeline."""

    article: RawArticle
    origin: str
    received_at: datetime


def decode_raw(entry: StreamEntry) -> RawInput:
    """Validate the payload; the receipt time is the entry id's, so a redelivery yields the same event."""
    millis = int(entry.msg_id.partition("-")[0] or 0)
    received_at = datetime.fromtimestamp(millis / 1000, UTC) if millis else datetime.now(UTC)
    return RawInput(
        article=parse_raw_payload(entry.payload, max_bytes=settings.max_article_bytes),
        origin=entry.field("origin") or "redis",
        received_at=received_at,
    )


def ingest(item: RawInput) -> IngestedArticle:
    """Identity and origin for one raw article."""
    return ingest_article(item.article, origin=item.origin, received_at=item.received_at)


stage: Stage[RawInput, IngestedArticle] = Stage(
    "ingest",
    settings,
    decode=decode_raw,
    process=per_article(ingest),
    describe=lambda a: {"kind": a.ingest.kind, "origin": a.ingest.origin, "external_id": a.ingest.external_id},
    http_routes=ingest_routes,  # POST /articles beside health and metrics, when enabled
)
app = FastStream(broker, lifespan=stage.lifespan, on_shutdown=[stage.begin_shutdown])


@broker.subscriber(stream=stage.subscription(), parser=keep_raw_entries, ack_policy=AckPolicy.MANUAL)
async def on_raw(batch: RedisBatchStreamMessage) -> None:
    """newsflow:raw -> newsflow:ingested (or the DLQ)."""
    await stage.handle(batch)

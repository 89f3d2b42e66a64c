"""Prometheus metrics for a stage: outcomes by reason, timings, batch sizes, and stream gauges read at scrape time."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    gc_collector,
    generate_latest,
    platform_collector,
    process_collector,
)
from redis.asyncio import Redis

from shared.observability.status import stream_status

# A registry of our own (not the global one): nothing a library registers leaks in, and tests can read it.
REGISTRY = CollectorRegistry(auto_describe=True)
process_collector.ProcessCollector(registry=REGISTRY)
platform_collector.PlatformCollector(registry=REGISTRY)
gc_collector.GCCollector(registry=REGISTRY)

ARTICLES_PROCESSED = Counter(
    "newsflow_articles_processed",
    "Articles a stage processed and handed on (its output committed).",
    ["stage"],
    registry=REGISTRY,
)
ARTICLES_DEAD_LETTERED = Counter(
    "newsflow_articles_dead_lettered",
    "Articles a stage sent to the DLQ, by reason.",
    ["stage", "reason"],
    registry=REGISTRY,
)
DLQ_TRIMMED = Counter(
    "newsflow_dlq_trimmed",
    "Oldest DLQ entries dropped (with their payloads) to hold the DLQ at NEWSFLOW_DLQ_MAXLEN.",
    ["stage"],
    registry=REGISTRY,
)
HTTP_REFUSED = Counter(
    "newsflow_http_refused",
    "HTTP connections cut off: headers or body too slow (header_timeout, body_timeout), or over the connection cap "
    "(too_many_connections).",
    ["reason"],
    registry=REGISTRY,
)
TRANSIENT_FAILURES = Counter(
    "newsflow_transient_failures",
    "Failed attempts at a step because a dependency (Redis, storage) was unavailable; the step is retried.",
    ["stage", "step", "reason"],
    registry=REGISTRY,
)
GROUPS_RECREATED = Counter(
    "newsflow_groups_recreated",
    "Consumer groups found gone (Redis restarted empty, a key deleted) and created again at id 0.",
    ["stream", "group"],
    registry=REGISTRY,
)
# Per-article logic time: a batch's processing time divided by its size (as stamped in the trace).
PROCESSING_SECONDS = Histogram(
    "newsflow_article_processing_seconds",
    "Processing time per article (the batch's logic time shared among its articles).",
    ["stage"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
    registry=REGISTRY,
)
BATCH_SECONDS = Histogram(
    "newsflow_batch_seconds",
    "Wall time to process and commit one batch (decode, process, sink, XADD + XACK).",
    ["stage"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
    registry=REGISTRY,
)
BATCH_SIZE = Histogram(
    "newsflow_batch_size",
    "Entries per delivered batch.",
    ["stage"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1000),
    registry=REGISTRY,
)
STREAM_LENGTH = Gauge("newsflow_stream_length", "Entries in the stream (XLEN).", ["stream"], registry=REGISTRY)
GROUP_LAG = Gauge(
    "newsflow_group_lag", "Entries not yet delivered to the group.", ["stream", "group"], registry=REGISTRY
)
GROUP_PENDING = Gauge(
    "newsflow_group_pending", "Entries delivered but not acknowledged.", ["stream", "group"], registry=REGISTRY
)
GROUP_OLDEST_PENDING = Gauge(
    "newsflow_group_oldest_pending_age_seconds",
    "Age of the oldest unacknowledged entry (0 when none).",
    ["stream", "group"],
    registry=REGISTRY,
)
GROUP_CONSUMERS = Gauge("newsflow_group_consumers", "Consumers in the group.", ["stream", "group"], registry=REGISTRY)
REDIS_UP = Gauge("newsflow_redis_up", "1 when Redis answered the last scrape's queries.", registry=REGISTRY)


def record_outcomes(stage: str, *, processed: int, dead_letter_reasons: Iterable[str]) -> None:
    """Count what one batch (or one claimer pass) produced."""
    if processed:
        ARTICLES_PROCESSED.labels(stage).inc(processed)
    for reason in dead_letter_reasons:
        ARTICLES_DEAD_LETTERED.labels(stage, reason).inc()


def record_dlq_trimmed(stage: str, dropped: int) -> None:
    """Count DLQ entries this stage dropped by retention."""
    DLQ_TRIMMED.labels(stage).inc(dropped)


def record_http_refused(reason: str) -> None:
    """Count one HTTP connection cut off by a slow-client limit."""
    HTTP_REFUSED.labels(reason).inc()


def record_batch(stage: str, *, size: int, processed: int, per_article_s: float, batch_s: float) -> None:
    """Timings and size of one committed batch."""
    BATCH_SIZE.labels(stage).observe(size)
    BATCH_SECONDS.labels(stage).observe(batch_s)
    per_article = PROCESSING_SECONDS.labels(stage)
    for _ in range(processed):
        per_article.observe(per_article_s)


def record_transient_failure(stage: str, step: str, error: BaseException) -> None:
    """One failed attempt that will be retried."""
    TRANSIENT_FAILURES.labels(stage, step, type(error).__name__).inc()


def record_group_recreated(stream: str, group: str) -> None:
    """A consumer group was found gone and created again."""
    GROUPS_RECREATED.labels(stream, group).inc()


async def refresh_stream_gauges(redis: Redis, stream: str, group: str) -> None:
    """Read the stage's input stream and group (XLEN, XINFO GROUPS, XPENDING) into the gauges."""
    status = await stream_status(redis, stream, stuck_after_s=3600)
    STREAM_LENGTH.labels(stream).set(status.length)
    for found in status.groups:
        if found.name != group:
            continue
        if found.lag is not None:
            GROUP_LAG.labels(stream, group).set(found.lag)
        GROUP_PENDING.labels(stream, group).set(found.pending)
        GROUP_OLDEST_PENDING.labels(stream, group).set(found.oldest_pending_age_s or 0)
        GROUP_CONSUMERS.labels(stream, group).set(len(found.consumers))


def render() -> tuple[bytes, str]:
    """The exposition text and its content type."""
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST

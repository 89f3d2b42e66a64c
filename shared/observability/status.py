"""A snapshot of the pipeline's streams: lengths, group lag and pending, consumers, stuck entries, DLQ, throughput."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any, cast

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from shared.observability.sources import SourceState, read_source_states
from shared.streams import StreamNames
from shared.transport.dlq import counts_by_reason

THROUGHPUT_WINDOW_MS = 60_000
# Counting entries by XRANGE stops here: past it the figure is shown as "at least".
COUNT_CAP = 100_000
PAGE = 1_000
# Counting reads whole entries (see count_entries): one entry first, then pages of about this many bytes.
FIRST_PAGE = 1
PAGE_BYTES = 2_000_000


@dataclass(frozen=True, slots=True)
class ConsumerStatus:
    """One consumer of a group: what it holds and how long since it last read."""

    name: str
    pending: int
    idle_s: float


@dataclass(frozen=True, slots=True)
class GroupStatus:
    """One consumer group on a stream."""

    name: str
    # Entries not yet delivered to the group (None when Redis cannot tell, e.g. after XDEL inside the range).
    lag: int | None
    pending: int
    # Age (since it was added to the stream) of the oldest entry delivered but not acknowledged.
    oldest_pending_age_s: float | None
    # Entries delivered and left unacknowledged longer than the stuck threshold.
    stuck_entries: int
    consumers: list[ConsumerStatus] = field(default_factory=list)
    # Some entry has been pending longer than the threshold: its consumer is hung, or it keeps crashing one.
    stuck: bool = False


@dataclass(frozen=True, slots=True)
class StreamStatus:
    """One stream, its groups, and how many entries were added to it in the last minute."""

    name: str
    length: int
    last_minute: int
    groups: list[GroupStatus] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class PipelineStatus:
    """Every pipeline stream and the DLQ at one moment."""

    taken_at_ms: int
    stuck_after_s: float
    streams: list[StreamStatus]
    dlq_length: int
    dlq_last_minute: int
    dlq_by_reason: dict[str, dict[str, int]]
    # The fetch stage's sources (feeds and sitemaps) and how their polls and pages are going.
    sources: list[SourceState] = field(default_factory=list)

    @property
    def failing_sources(self) -> list[SourceState]:
        """Sources whose last poll failed."""
        return [source for source in self.sources if source.failing]

    @property
    def stuck_groups(self) -> list[tuple[str, str]]:
        """(stream, group) of every group holding an entry pending past the threshold."""
        return [(s.name, g.name) for s in self.streams for g in s.groups if g.stuck]

    def to_dict(self) -> dict[str, Any]:
        """The snapshot as JSON-friendly data (for `newsflow status --json`)."""
        data = asdict(self)
        data["sources"] = [source.to_dict() for source in self.sources]
        data["stuck_groups"] = [{"stream": s, "group": g} for s, g in self.stuck_groups]
        data["ok"] = not self.stuck_groups
        return data


def format_age(seconds: float | None) -> str:
    """`4.2s`, `7.1m`, `2.0h`; `-` for none (for the status table and the console)."""
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    if seconds < 3600:
        return f"{seconds / 60:.1f}m"
    return f"{seconds / 3600:.1f}h"


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def id_millis(stream_id: bytes | str) -> int:
    """The millisecond timestamp part of a stream id."""
    return int(_text(stream_id).partition("-")[0])


async def count_entries(redis: Redis, stream: str, start: str, end: str = "+", cap: int = COUNT_CAP) -> int:
    """Entries with ids in [start, end], counted page by page (at most `cap`).

    Redis cannot count a range of ids, nor return ids without their fields, so the entries are read: the pages
    are sized from the entries seen so far to about PAGE_BYTES each, which keeps the memory of `status` flat
    however large the articles in the stream are (a page of 1,000 raw articles of 6 MB would be 6 GB).
    """
    total = 0
    count = FIRST_PAGE
    while total < cap:
        rows = await redis.xrange(stream, min=start, max=end, count=count) or []
        total += len(rows)
        if len(rows) < count:
            break
        start = "(" + _text(cast(bytes, rows[-1][0]))
        size = sum(len(k) + len(v) for _, fields in rows for k, v in cast(dict[bytes, bytes], fields).items())
        count = max(1, min(PAGE, PAGE_BYTES * len(rows) // max(size, 1)))
        del rows
    return min(total, cap)


async def group_status(
    redis: Redis, stream: str, info: dict[Any, Any], *, stuck_after_s: float, now_ms: int
) -> GroupStatus:
    """Status of one group from its XINFO GROUPS row, plus XPENDING and XINFO CONSUMERS."""
    name = _text(info["name"])
    pending = int(info["pending"])
    lag = info.get("lag")
    if lag is None and "lag" not in info:
        # Redis < 7 has no lag field: count what lies after the group's last delivered id.
        lag = await count_entries(redis, stream, "(" + _text(info["last-delivered-id"]))
    oldest_age: float | None = None
    stuck = 0
    if pending:
        summary = await redis.xpending(stream, name)
        if summary.get("min") is not None:
            oldest_age = max(0.0, (now_ms - id_millis(summary["min"])) / 1000)
        stuck_rows = await redis.xpending_range(
            stream, name, min="-", max="+", count=pending, idle=max(1, int(stuck_after_s * 1000))
        )
        stuck = len(stuck_rows)
    consumers = [
        ConsumerStatus(name=_text(c["name"]), pending=int(c["pending"]), idle_s=int(c["idle"]) / 1000)
        for c in await redis.xinfo_consumers(stream, name)
    ]
    return GroupStatus(
        name=name,
        lag=int(lag) if lag is not None else None,
        pending=pending,
        oldest_pending_age_s=oldest_age,
        stuck_entries=stuck,
        consumers=consumers,
        stuck=stuck > 0,
    )


async def stream_status(redis: Redis, stream: str, *, stuck_after_s: float, now_ms: int | None = None) -> StreamStatus:
    """Status of one stream and all its groups (an absent stream is empty, with no groups)."""
    now_ms = now_ms if now_ms is not None else int(time.time() * 1000)
    length = int(await redis.xlen(stream))
    try:
        infos = await redis.xinfo_groups(stream)
    except ResponseError as exc:
        if "no such key" not in str(exc).lower():
            raise
        infos = []
    groups = [await group_status(redis, stream, info, stuck_after_s=stuck_after_s, now_ms=now_ms) for info in infos]
    last_minute = await count_entries(redis, stream, str(now_ms - THROUGHPUT_WINDOW_MS)) if length else 0
    return StreamStatus(name=stream, length=length, last_minute=last_minute, groups=groups)


async def collect_status(
    redis: Redis, streams: StreamNames, *, stuck_after_s: float, now_ms: int | None = None
) -> PipelineStatus:
    """A snapshot of every pipeline stream (discovered … published), the DLQ and the fetch stage's sources."""
    now_ms = now_ms if now_ms is not None else int(time.time() * 1000)
    names = (*streams.pipeline_streams, streams.published)
    snapshot = [await stream_status(redis, name, stuck_after_s=stuck_after_s, now_ms=now_ms) for name in names]
    by_reason: dict[str, dict[str, int]] = {}
    for (stage, reason), count in sorted((await counts_by_reason(redis, streams)).items()):
        by_reason.setdefault(stage, {})[reason] = count
    return PipelineStatus(
        taken_at_ms=now_ms,
        stuck_after_s=stuck_after_s,
        streams=snapshot,
        dlq_length=int(await redis.xlen(streams.dlq)),
        dlq_last_minute=await count_entries(redis, streams.dlq, str(now_ms - THROUGHPUT_WINDOW_MS)),
        dlq_by_reason=by_reason,
        sources=await read_source_states(redis, streams),
    )

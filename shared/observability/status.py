"""A snapshot of the pipeline's streams: lengths, group lag and pending, consumers, stuck entries, DLQ, throughput.

And a verdict that tells the truth (`problems`, `ok`): per stage, a group that is missing, a backlog that no live
consumer reads, entries pending past the claim time; dead letters that arrived in the last window.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any, cast

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from shared.observability.sources import SourceState, read_source_states
from shared.streams import SERVICES, StreamNames, group_of
from shared.transport.dlq import counts_by_reason, iter_headers

THROUGHPUT_WINDOW_MS = 60_000
# Counting entries by XRANGE stops here: past it the figure is shown as "at least".
COUNT_CAP = 100_000
PAGE = 1_000
# Counting reads whole entries (see count_entries): one entry first, then pages of about this many bytes.
FIRST_PAGE = 1
PAGE_BYTES = 2_000_000
# Dead letters that arrived within this window make the verdict "not ok" (newsflow status --dlq-window).
DEFAULT_DLQ_WINDOW_S = 300.0
DLQ_WINDOW_CAP = 100_000


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
    # Entries not yet delivered to the group (counted after its last delivered id when Redis cannot tell).
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
    # Set when the key is not a stream at all (an operator wrote another type under its name).
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Problem:
    """One reason the pipeline is not ok, for one stage (or the DLQ)."""

    stage: str
    # group_missing | stream_unreadable | no_live_consumer | pending_past_claim | dlq_grew
    reason: str
    detail: str
    stream: str | None = None
    group: str | None = None
    waiting: int | None = None  # no_live_consumer: entries not yet delivered
    entries: int | None = None  # pending_past_claim: entries pending past the threshold
    count: int | None = None  # dlq_grew: dead letters in the window


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
    # A consumer is live when it read within this long (the claim idle time: past it, claimers count it dead).
    live_within_s: float = 0.0
    # Dead letters that arrived in the last `dlq_window_s` make the verdict "not ok".
    dlq_window_s: float = DEFAULT_DLQ_WINDOW_S
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Nothing to report: every stage's group exists and is read, nothing is stuck, no new dead letters."""
        return not self.problems

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
        data["ok"] = self.ok
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
    if lag is None:
        # Redis < 7 has no lag field, and 7 cannot always tell (entries deleted in the range, a group recreated):
        # count what lies after the group's last delivered id.
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
    try:
        length = int(await redis.xlen(stream))
    except ResponseError as exc:
        if "WRONGTYPE" not in str(exc):
            raise
        kind = _text(await redis.type(stream))
        return StreamStatus(name=stream, length=0, last_minute=0, error=f"the key holds a {kind}, not a stream")
    try:
        infos = await redis.xinfo_groups(stream)
    except ResponseError as exc:
        if "no such key" not in str(exc).lower():
            raise
        infos = []
    groups = [await group_status(redis, stream, info, stuck_after_s=stuck_after_s, now_ms=now_ms) for info in infos]
    last_minute = await count_entries(redis, stream, str(now_ms - THROUGHPUT_WINDOW_MS)) if length else 0
    return StreamStatus(name=stream, length=length, last_minute=last_minute, groups=groups)


async def recent_dead_letters(
    redis: Redis, streams: StreamNames, since_ms: int, cap: int = DLQ_WINDOW_CAP
) -> dict[str, int]:
    """stage -> dead letters added since `since_ms` (headers only: the payloads stay in their own keys)."""
    counts: dict[str, int] = {}
    seen = 0
    async for header in iter_headers(redis, streams, start=str(since_ms)):
        counts[header.letter.stage] = counts.get(header.letter.stage, 0) + 1
        seen += 1
        if seen >= cap:
            break
    return counts


def find_problems(
    streams: StreamNames,
    snapshot: list[StreamStatus],
    *,
    live_within_s: float,
    stuck_after_s: float,
    dlq_window_s: float,
    recent_letters: dict[str, int],
) -> list[Problem]:
    """Why the pipeline is not ok, stage by stage (see the module docstring); empty when it is."""
    by_name = {s.name: s for s in snapshot}
    problems: list[Problem] = []
    for stage in SERVICES:
        stream = streams.input_of(stage)
        found = by_name.get(stream) or StreamStatus(name=stream, length=0, last_minute=0)
        group = next((g for g in found.groups if g.name == group_of(stage)), None)
        if found.error is not None:
            problems.append(Problem(stage, "stream_unreadable", f"{stream}: {found.error}; the stage cannot read "
                                    "it (delete the key, and the stage creates the stream again at start)",
                                    stream=stream, group=group_of(stage)))
            continue
        if group is None:
            if stage == "fetch" and not found.groups and not found.length:
                continue  # no feeds followed here: fetch is optional, the four stages are not
            problems.append(Problem(stage, "group_missing", f"group {group_of(stage)} does not exist on {stream}: "
                                    "the stage never started here, or Redis lost it (restarted empty, key deleted)",
                                    stream=stream, group=group_of(stage)))
            continue
        live = [c for c in group.consumers if c.idle_s <= live_within_s]
        if group.lag and not live:
            last = min((c.idle_s for c in group.consumers), default=None)
            problems.append(Problem(
                stage, "no_live_consumer",
                f"{group.lag:,} entries waiting and no live consumer (none read in the last {live_within_s:g}s"
                + (f"; the last read {format_age(last)} ago)" if last is not None else "; no consumer at all)"),
                stream=stream, group=group.name, waiting=group.lag))
        if group.stuck:
            problems.append(Problem(
                stage, "pending_past_claim",
                f"{group.stuck_entries:,} entries pending for more than {stuck_after_s:g}s without being claimed "
                f"(oldest added {format_age(group.oldest_pending_age_s)} ago)",
                stream=stream, group=group.name, entries=group.stuck_entries))
    for stage, count in sorted(recent_letters.items()):
        problems.append(Problem(stage, "dlq_grew", f"{count:,} dead letters in the last {dlq_window_s:g}s "
                                "(newsflow dlq list --stage " + stage + ")", stream=streams.dlq, count=count))
    return problems


async def collect_status(
    redis: Redis,
    streams: StreamNames,
    *,
    stuck_after_s: float,
    now_ms: int | None = None,
    live_within_s: float | None = None,
    dlq_window_s: float = DEFAULT_DLQ_WINDOW_S,
) -> PipelineStatus:
    """A snapshot of every pipeline stream (discovered … published), the DLQ and the fetch stage's sources.

    `live_within_s` (default `stuck_after_s`): a consumer that read within it is live. `dlq_window_s`: dead
    letters newer than this are a problem (0: never).
    """
    now_ms = now_ms if now_ms is not None else int(time.time() * 1000)
    live_within_s = stuck_after_s if live_within_s is None else live_within_s
    names = (*streams.pipeline_streams, streams.published)
    snapshot = [await stream_status(redis, name, stuck_after_s=stuck_after_s, now_ms=now_ms) for name in names]
    by_reason: dict[str, dict[str, int]] = {}
    for (stage, reason), count in sorted((await counts_by_reason(redis, streams)).items()):
        by_reason.setdefault(stage, {})[reason] = count
    recent = await recent_dead_letters(redis, streams, now_ms - int(dlq_window_s * 1000)) if dlq_window_s else {}
    return PipelineStatus(
        taken_at_ms=now_ms,
        stuck_after_s=stuck_after_s,
        streams=snapshot,
        dlq_length=int(await redis.xlen(streams.dlq)),
        dlq_last_minute=await count_entries(redis, streams.dlq, str(now_ms - THROUGHPUT_WINDOW_MS)),
        dlq_by_reason=by_reason,
        sources=await read_source_states(redis, streams),
        live_within_s=live_within_s,
        dlq_window_s=dlq_window_s,
        problems=find_problems(streams, snapshot, live_within_s=live_within_s, stuck_after_s=stuck_after_s,
                               dlq_window_s=dlq_window_s, recent_letters=recent),
    )

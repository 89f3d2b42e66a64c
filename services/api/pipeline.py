"""The console's pipeline view: one row per stage from a status snapshot, and an hour of sampled lag for the chart."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from shared.observability.status import PipelineStatus
from shared.streams import SERVICES, StreamNames

HISTORY_S = 3600
STUCK_AFTER_S = 300.0


@dataclass(frozen=True, slots=True)
class StageRow:
    """What an operator reads for one stage: its input's group, and how fast its output grows."""

    stage: str
    stream: str
    consumers: int
    lag: int | None
    pending: int
    oldest_pending_age_s: float | None
    # Entries its output stream gained in the last minute; None for fetch, whose output (raw) every producer
    # pushes to as well, so the stream's growth is not fetch's work.
    per_minute: int | None
    stuck: bool
    group_exists: bool


def stage_rows(status: PipelineStatus, streams: StreamNames) -> list[StageRow]:
    """One row per stage, in pipeline order (fetch on newsflow:discovered first); a stage that never started has no
    group yet."""
    by_name = {s.name: s for s in status.streams}
    rows = []
    for stage in SERVICES:
        stream = by_name.get(streams.input_of(stage))
        output = by_name.get(streams.output_of(stage))
        group = next((g for g in stream.groups if g.name == stage), None) if stream else None
        rows.append(
            StageRow(
                stage=stage,
                stream=streams.input_of(stage),
                consumers=len(group.consumers) if group else 0,
                lag=group.lag if group else (stream.length if stream else 0),
                pending=group.pending if group else 0,
                oldest_pending_age_s=group.oldest_pending_age_s if group else None,
                per_minute=None if stage == "fetch" else output.last_minute if output else 0,
                stuck=group.stuck if group else False,
                group_exists=group is not None,
            )
        )
    return rows


@dataclass(frozen=True, slots=True)
class Sample:
    """Each stage's lag (undelivered + pending) at one moment."""

    at_ms: int
    backlog: dict[str, int]


class LagHistory:
    """The samples of the last hour, oldest first (the API samples every NEWSFLOW_STATUS_SAMPLE_S)."""

    def __init__(self, window_s: float = HISTORY_S) -> None:
        self.window_ms = int(window_s * 1000)
        self._samples: deque[Sample] = deque()

    def add(self, status: PipelineStatus, streams: StreamNames) -> None:
        """Record a snapshot, and forget what is older than the window."""
        backlog = {row.stage: (row.lag or 0) + row.pending for row in stage_rows(status, streams)}
        self._samples.append(Sample(status.taken_at_ms, backlog))
        while self._samples and self._samples[0].at_ms < status.taken_at_ms - self.window_ms:
            self._samples.popleft()

    def samples(self) -> list[Sample]:
        """Every kept sample, oldest first."""
        return list(self._samples)


@dataclass(frozen=True, slots=True)
class Chart:
    """One stage's backlog over the window as SVG polyline points, and the scale it was drawn at."""

    stage: str
    points: str
    peak: int
    latest: int


def lag_charts(samples: list[Sample], now_ms: int, *, width: int = 300, height: int = 60,
               window_ms: int = HISTORY_S * 1000) -> list[Chart]:
    """A polyline per stage: x is time (now at the right edge) over the samples kept, at least a minute and at most
    an hour, y the backlog scaled to its peak."""
    oldest = min((s.at_ms for s in samples), default=now_ms)
    window_ms = max(60_000, min(window_ms, now_ms - oldest))
    charts = []
    for stage in SERVICES:
        values = [(s.at_ms, s.backlog.get(stage, 0)) for s in samples]
        peak = max((v for _, v in values), default=0)
        scale = peak or 1
        points = " ".join(
            f"{max(0.0, width - (now_ms - at) / window_ms * width):.1f},{height - value / scale * (height - 2) - 1:.1f}"
            for at, value in values
        )
        charts.append(Chart(stage=stage, points=points, peak=peak, latest=values[-1][1] if values else 0))
    return charts

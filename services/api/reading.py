"""How the console shows one article: the body with its entity mentions marked, and the trace as a timeline."""

from __future__ import annotations

from dataclasses import dataclass

from shared.events import ArticleRecord


@dataclass(frozen=True, slots=True)
class Segment:
    """A run of body text; `label` and `entity` are set when it is a mention."""

    text: str
    label: str | None = None
    entity: str | None = None


def marked_paragraphs(record: ArticleRecord) -> list[list[Segment]]:
    """The body split into paragraphs (blank-line separated), each a list of plain and mention segments."""
    body = record.body
    mentions = sorted(
        (m.start, m.end, entity.label, entity.name)
        for entity in record.entities
        for m in entity.mentions
        if m.field == "body" and 0 <= m.start < m.end <= len(body)
    )
    paragraphs: list[list[Segment]] = []
    begin = 0
    for piece in body.split("\n\n"):
        finish = begin + len(piece)
        segments: list[Segment] = []
        position = begin
        for start, end, label, name in mentions:
            # A mention outside this paragraph, across its edge, or overlapping an earlier one stays plain text.
            if start < position or end > finish:
                continue
            if start > position:
                segments.append(Segment(body[position:start]))
            segments.append(Segment(body[start:end], label, name))
            position = end
        if position < finish:
            segments.append(Segment(body[position:finish]))
        if piece.strip():
            paragraphs.append(segments)
        begin = finish + 2
    return paragraphs


@dataclass(frozen=True, slots=True)
class TimelineStep:
    """One stage's stamp placed on the article's journey: where its bar starts and how wide it is (percent)."""

    stage: str
    worker: str
    version: str
    started_at: str
    duration_ms: float
    waited_ms: float  # since the previous stage finished (time in the queue)
    left_pct: float
    width_pct: float


def timeline(record: ArticleRecord) -> tuple[list[TimelineStep], float]:
    """The trace as bars on one time axis, and the journey's total (first start to last finish) in ms."""
    if not record.trace:
        return [], 0.0
    begin = min(stamp.started_at for stamp in record.trace)
    end = max(stamp.finished_at for stamp in record.trace)
    total_ms = max((end - begin).total_seconds() * 1000, 0.001)
    steps = []
    previous_finish = None
    for stamp in record.trace:
        offset_ms = (stamp.started_at - begin).total_seconds() * 1000
        waited = (stamp.started_at - previous_finish).total_seconds() * 1000 if previous_finish else 0.0
        steps.append(
            TimelineStep(
                stage=stamp.stage,
                worker=stamp.worker,
                version=stamp.version,
                started_at=stamp.started_at.isoformat(timespec="milliseconds"),
                duration_ms=stamp.duration_ms,
                waited_ms=max(waited, 0.0),
                left_pct=round(offset_ms / total_ms * 100, 2),
                width_pct=round(max(stamp.duration_ms / total_ms * 100, 0.5), 2),
            )
        )
        previous_finish = stamp.finished_at
    return steps, total_ms

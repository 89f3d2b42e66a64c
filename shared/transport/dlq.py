"""The dead-letter queue: list, show, replay (back onto the failed stage's input) and purge."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

from redis.asyncio import Redis

from shared.events import DeadLetter
from shared.streams import StreamNames

Row = tuple[bytes, dict[bytes, bytes]]


@dataclass(frozen=True, slots=True)
class DlqEntry:
    """One DLQ entry: its id, the letter, and the original payload byte for byte."""

    id: str
    letter: DeadLetter
    payload: bytes
    origin: str | None

    def summary(self) -> dict[str, object]:
        """The entry as JSON-friendly data (payload as text, for reading)."""
        return {
            "id": self.id,
            **self.letter.model_dump(mode="json"),
            "origin": self.origin,
            "payload": self.payload.decode("utf-8", "replace"),
        }


def _entry(entry_id: bytes, fields: dict[bytes, bytes]) -> DlqEntry:
    origin = fields.get(b"origin")
    return DlqEntry(
        id=entry_id.decode(),
        letter=DeadLetter.model_validate_json(fields[b"data"]),
        payload=fields.get(b"payload", b""),
        origin=origin.decode() if origin is not None else None,
    )


async def list_entries(
    redis: Redis, streams: StreamNames, *, stage: str | None = None, reason: str | None = None, limit: int | None = None
) -> list[DlqEntry]:
    """DLQ entries, oldest first, filtered by stage and reason."""
    found: list[DlqEntry] = []
    start = "-"
    while True:
        rows = cast(list[Row], await redis.xrange(streams.dlq, min=start, max="+", count=500))
        for entry_id, fields in rows:
            entry = _entry(entry_id, fields)
            if (stage is None or entry.letter.stage == stage) and (reason is None or entry.letter.reason == reason):
                found.append(entry)
                if limit is not None and len(found) >= limit:
                    return found
        if len(rows) < 500:
            return found
        start = "(" + rows[-1][0].decode()


async def get_entry(redis: Redis, streams: StreamNames, entry_id: str) -> DlqEntry | None:
    """One DLQ entry by id."""
    rows = cast(list[Row], await redis.xrange(streams.dlq, min=entry_id, max=entry_id))
    return _entry(*rows[0]) if rows else None


async def replay(redis: Redis, streams: StreamNames, entries: Sequence[DlqEntry]) -> list[str]:
    """Re-queue each payload on its stage's input stream; the DLQ entry is deleted in the same transaction."""
    requeued = []
    for entry in entries:
        async with redis.pipeline(transaction=True) as pipe:
            pipe.xadd(
                streams.input_of(entry.letter.stage), {"data": entry.payload, "origin": entry.origin or "dlq-replay"}
            )
            pipe.xdel(streams.dlq, entry.id)
            new_id, _ = await pipe.execute()
        requeued.append(new_id.decode())
    return requeued


async def purge(redis: Redis, streams: StreamNames, entries: Sequence[DlqEntry]) -> int:
    """Delete these entries from the DLQ."""
    if not entries:
        return 0
    return int(await redis.xdel(streams.dlq, *[e.id for e in entries]))


async def counts_by_reason(redis: Redis, streams: StreamNames) -> dict[tuple[str, str], int]:
    """(stage, reason) -> number of DLQ entries."""
    counts: dict[tuple[str, str], int] = {}
    for entry in await list_entries(redis, streams):
        key = (entry.letter.stage, entry.letter.reason)
        counts[key] = counts.get(key, 0) + 1
    return counts

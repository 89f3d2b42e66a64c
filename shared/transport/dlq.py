"""The dead-letter queue: write, list, show, replay (back onto the failed stage's input), delete, retain, export.

Each dead letter is two keys. The entry on the `dlq` stream is small and bounded — the letter (stage, reason,
error, traceback summary, ids), the origin, the payload's size and the token of its payload key — and the
original payload, byte for byte, is a STRING of its own (`dlq:payload:TOKEN`). A stream entry is always read
whole (XRANGE has no field selection), so keeping payloads out of it is what lets `newsflow status`, `dlq list`
and the console's counts read the whole DLQ in memory that does not depend on payload sizes (measured with 60
dead letters of 6 MB: `dlq list` 420 -> 63 MB peak RSS, as with an empty DLQ), and `dlq show` read a payload's
first bytes only (GETRANGE). Entries written before this layout carry their payload inline in a `payload` field;
they are read the same way, only without that saving.
"""

from __future__ import annotations

import base64
import re
import secrets
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import orjson
from redis.asyncio import Redis
from redis.exceptions import WatchError
from redis.typing import EncodableT

from shared.events import DeadLetter
from shared.streams import SERVICES, StreamNames

Row = tuple[bytes, dict[bytes, bytes]]
PAGE = 500
STAGE_INPUTS = frozenset(SERVICES)
ENTRY_ID = re.compile(r"^\d{1,20}-\d{1,20}$")


class BadEntryId(ValueError):
    """Not a stream entry id (`1732631000000-0`)."""

    def __init__(self, entry_id: str) -> None:
        super().__init__(f"{entry_id!r} is not a DLQ entry id (they look like 1732631000000-0)")
        self.entry_id = entry_id


def check_entry_id(entry_id: str) -> str:
    """The id itself when it has the `ms-seq` form; BadEntryId otherwise (a bare `ms` would be a range)."""
    if not ENTRY_ID.match(entry_id):
        raise BadEntryId(entry_id)
    return entry_id


@dataclass(frozen=True, slots=True)
class DlqHeader:
    """One DLQ entry as listed: its id, the letter and what is known of the payload, without the payload."""

    id: str
    letter: DeadLetter
    origin: str | None
    payload_bytes: int
    # Token of the payload's own key; None for an entry written with its payload inline (before that key existed).
    payload_token: str | None

    def summary(self) -> dict[str, Any]:
        """The header as JSON-friendly data (`dlq list --json`)."""
        return {
            "id": self.id,
            **self.letter.model_dump(mode="json"),
            "origin": self.origin,
            "payload_bytes": self.payload_bytes,
        }


@dataclass(frozen=True, slots=True)
class DlqEntry:
    """One DLQ entry with its payload: whole, or its first bytes when read with a limit (`complete` says which)."""

    header: DlqHeader
    payload: bytes
    complete: bool = True
    # The entry is there but its payload key is gone (deleted by hand): nothing to show or replay.
    missing: bool = False

    @property
    def id(self) -> str:
        return self.header.id

    @property
    def letter(self) -> DeadLetter:
        return self.header.letter

    @property
    def origin(self) -> str | None:
        return self.header.origin

    def summary(self) -> dict[str, Any]:
        """The entry as JSON-friendly data (payload as text, for reading; `payload_truncated` when cut)."""
        return {
            **self.header.summary(),
            "payload": None if self.missing else self.payload.decode("utf-8", "replace"),
            "payload_truncated": not self.complete,
            **({"payload_missing": True} if self.missing else {}),
        }

    def export(self) -> dict[str, Any]:
        """The entry for `dlq export`: the payload as text when it is UTF-8, else base64 in `payload_base64`."""
        data = self.header.summary()
        if self.missing:
            return {**data, "payload": None, "payload_missing": True}
        try:
            data["payload"] = self.payload.decode("utf-8")
        except UnicodeDecodeError:
            data["payload_base64"] = base64.b64encode(self.payload).decode("ascii")
        return data


def new_token() -> str:
    """A payload key's token: random, so two entries never share (and never delete) one payload."""
    return secrets.token_hex(12)


EntryFields = dict[str, bytes | str | int]


def entry_fields(letter: DeadLetter, token: str, payload_bytes: int, origin: str | None) -> EntryFields:
    """The fields of a DLQ stream entry: everything about the dead letter but its payload."""
    fields: EntryFields = {"data": letter.to_json(), "payload_key": token, "payload_bytes": payload_bytes}
    if origin is not None:
        fields["origin"] = origin
    return fields


def write_commands(
    streams: StreamNames, letter: DeadLetter, payload: bytes, origin: str | None
) -> list[tuple[EncodableT, ...]]:
    """The commands that write one dead letter, for the caller's atomic commit: its payload's key, then its entry."""
    token = new_token()
    fields = entry_fields(letter, token, len(payload), origin)
    return [
        ("SET", streams.dlq_payload(token), payload),
        ("XADD", streams.dlq, "*", *[part for pair in fields.items() for part in pair]),
    ]


def _letter(entry_id: bytes, fields: dict[bytes, bytes]) -> DeadLetter:
    try:
        return DeadLetter.model_validate_json(fields[b"data"])
    except (KeyError, ValueError) as exc:
        # Something else XADDed here (by hand, or a tool): listed as what it is, never a crash of `status`.
        return DeadLetter(
            stage="unknown", reason="unreadable_entry", error=f"not a dead letter: {type(exc).__name__}",
            deliveries=0, failed_at=datetime.fromtimestamp(int(entry_id.split(b"-")[0]) / 1000, UTC),
            stream="", msg_id="",
        )


def _header(entry_id: bytes, fields: dict[bytes, bytes]) -> DlqHeader:
    origin = fields.get(b"origin")
    token = fields.get(b"payload_key")
    size = fields.get(b"payload_bytes")
    inline = fields.get(b"payload")
    return DlqHeader(
        id=entry_id.decode(),
        letter=_letter(entry_id, fields),
        origin=origin.decode("utf-8", "replace") if origin is not None else None,
        payload_bytes=int(size) if size is not None else len(inline or b""),
        payload_token=token.decode() if token is not None else None,
    )


async def iter_headers(
    redis: Redis, streams: StreamNames, *, stage: str | None = None, reason: str | None = None, start: str = "-"
) -> AsyncIterator[DlqHeader]:
    """Every DLQ entry's header, oldest first, filtered by stage and reason, a page at a time."""
    while True:
        rows = cast(list[Row], await redis.xrange(streams.dlq, min=start, max="+", count=PAGE))
        for entry_id, fields in rows:
            header = _header(entry_id, fields)
            if (stage is None or header.letter.stage == stage) and (reason is None or header.letter.reason == reason):
                yield header
        if len(rows) < PAGE:
            return
        start = "(" + rows[-1][0].decode()


async def list_headers(
    redis: Redis, streams: StreamNames, *, stage: str | None = None, reason: str | None = None, limit: int | None = None
) -> list[DlqHeader]:
    """DLQ entry headers, oldest first, filtered by stage and reason (at most `limit`)."""
    found: list[DlqHeader] = []
    async for header in iter_headers(redis, streams, stage=stage, reason=reason):
        found.append(header)
        if limit is not None and len(found) >= limit:
            break
    return found


async def get_header(redis: Redis, streams: StreamNames, entry_id: str) -> DlqHeader | None:
    """One entry's header by id (BadEntryId for something that is not an id); None when there is no such entry."""
    check_entry_id(entry_id)
    rows = cast(list[Row], await redis.xrange(streams.dlq, min=entry_id, max=entry_id))
    return _header(*rows[0]) if rows else None


async def read_payload(
    redis: Redis, streams: StreamNames, header: DlqHeader, *, limit: int | None = None
) -> tuple[bytes, bool] | None:
    """(payload, complete): the whole payload, or its first `limit` bytes; None when its key is gone."""
    if header.payload_token is None:
        rows = cast(list[Row], await redis.xrange(streams.dlq, min=header.id, max=header.id))
        if not rows:
            return None
        inline = rows[0][1].get(b"payload", b"")
        return (inline, True) if limit is None or len(inline) <= limit else (inline[:limit], False)
    if limit is not None and limit <= 0:
        return b"", header.payload_bytes == 0
    key = streams.dlq_payload(header.payload_token)
    if limit is None or header.payload_bytes <= limit:
        whole = cast(bytes | None, await redis.get(key))
        return (whole, True) if whole is not None else None
    head = cast(bytes, await redis.getrange(key, 0, limit - 1))
    if not head and not await redis.exists(key):
        return None
    return head, False


async def get_entry(
    redis: Redis, streams: StreamNames, entry_id: str, *, limit: int | None = None
) -> DlqEntry | None:
    """One entry with its payload (its first `limit` bytes when given); None when there is no such entry."""
    header = await get_header(redis, streams, entry_id)
    if header is None:
        return None
    read = await read_payload(redis, streams, header, limit=limit)
    if read is None:
        return DlqEntry(header, b"", complete=False, missing=True)
    return DlqEntry(header, *read)


async def iter_entries(
    redis: Redis, streams: StreamNames, *, stage: str | None = None, reason: str | None = None
) -> AsyncIterator[DlqEntry]:
    """Every entry with its whole payload, oldest first, one payload in memory at a time (`dlq export`).

    An entry dropped between reading its header and its payload (retention, a replay) is left out.
    """
    async for header in iter_headers(redis, streams, stage=stage, reason=reason):
        read = await read_payload(redis, streams, header)
        if read is not None:
            yield DlqEntry(header, *read)
        elif await redis.xrange(streams.dlq, min=header.id, max=header.id):
            yield DlqEntry(header, b"", complete=False, missing=True)


async def replay(redis: Redis, streams: StreamNames, headers: Sequence[DlqHeader]) -> list[str | None]:
    """Re-queue each payload on its stage's input stream and delete the entry, in one transaction per entry.

    Returns the new stream id per entry, None for one that was gone (replayed or deleted meanwhile, or its
    payload lost). The payload key is WATCHed, so two operators replaying one entry re-queue it once.
    """
    requeued: list[str | None] = []
    for header in headers:
        if header.letter.stage not in STAGE_INPUTS:
            requeued.append(None)  # not a stage's dead letter: nowhere to put it back
            continue
        target = streams.input_of(header.letter.stage)
        envelope_origin = header.origin or "dlq-replay"
        if header.payload_token is None:
            read = await read_payload(redis, streams, header)
            if read is None:
                requeued.append(None)
                continue
            async with redis.pipeline(transaction=True) as pipe:
                pipe.xadd(target, {"data": read[0], "origin": envelope_origin})
                pipe.xdel(streams.dlq, header.id)
                new_id, _ = await pipe.execute()
            requeued.append(new_id.decode())
            continue
        key = streams.dlq_payload(header.payload_token)
        async with redis.pipeline(transaction=True) as pipe:
            try:
                await pipe.watch(key)
                payload = cast(bytes | None, await pipe.get(key))
                if payload is None:
                    await pipe.reset()  # type: ignore[no-untyped-call]
                    requeued.append(None)
                    continue
                pipe.multi()  # type: ignore[no-untyped-call]
                pipe.xadd(target, {"data": payload, "origin": envelope_origin})
                pipe.xdel(streams.dlq, header.id)
                pipe.unlink(key)
                new_id, _, _ = await pipe.execute()
            except WatchError:
                requeued.append(None)  # someone else replayed or deleted it between our read and our write
                continue
        requeued.append(new_id.decode())
    return requeued


async def delete(redis: Redis, streams: StreamNames, headers: Sequence[DlqHeader]) -> int:
    """Delete these entries and their payloads; how many entries were still there."""
    deleted = 0
    for start in range(0, len(headers), PAGE):
        chunk = headers[start : start + PAGE]
        keys = [streams.dlq_payload(h.payload_token) for h in chunk if h.payload_token is not None]
        async with redis.pipeline(transaction=True) as pipe:
            pipe.xdel(streams.dlq, *[h.id for h in chunk])
            if keys:
                pipe.unlink(*keys)
            replies = await pipe.execute()
        deleted += int(replies[0])
    return deleted


async def enforce_retention(redis: Redis, streams: StreamNames, maxlen: int) -> int:
    """Drop the oldest entries (and their payloads) beyond `maxlen`; how many were dropped. 0 keeps everything.

    Not XADD MAXLEN: a trimmed entry's payload key would stay behind. Two services trimming at once read the same
    oldest entries and delete them twice, which changes nothing.
    """
    if maxlen <= 0:
        return 0
    dropped = 0
    excess = int(await redis.xlen(streams.dlq)) - maxlen
    while excess > 0:
        rows = cast(list[Row], await redis.xrange(streams.dlq, min="-", max="+", count=min(excess, PAGE)))
        if not rows:
            break
        dropped += await delete(redis, streams, [_header(entry_id, fields) for entry_id, fields in rows])
        excess -= len(rows)
    return dropped


async def counts_by_reason(redis: Redis, streams: StreamNames) -> dict[tuple[str, str], int]:
    """(stage, reason) -> number of DLQ entries (headers only)."""
    counts: dict[tuple[str, str], int] = {}
    async for header in iter_headers(redis, streams):
        key = (header.letter.stage, header.letter.reason)
        counts[key] = counts.get(key, 0) + 1
    return counts


def export_line(entry: DlqEntry) -> bytes:
    """One JSON line of `dlq export`."""
    return orjson.dumps(entry.export()) + b"\n"

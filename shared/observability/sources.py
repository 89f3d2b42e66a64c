"""What the fetch stage records per source in Redis (one hash each, shared by its replicas), as status shows it.

The fetch stage writes these fields; `newsflow status` and `newsflow sources list` read them. Polls: how often
the feed or sitemap was read, and whether the last reads failed. Pages: what became of the article URLs it listed
(fetched onto the raw stream, failed after retries, skipped by robots.txt or for not being HTML).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from redis.asyncio import Redis

from shared.streams import StreamNames

# Hash fields (written by services/fetch, read here).
URL = "url"
KIND = "kind"
POLLS = "polls"
POLLS_FAILED = "polls_failed"
CONSECUTIVE_FAILURES = "consecutive_failures"
LAST_POLL_AT = "last_poll_at"
LAST_POLL = "last_poll"  # ok | not_modified | failed
NEXT_POLL_AT = "next_poll_at"
LAST_ERROR = "last_error"
LAST_ERROR_AT = "last_error_at"
URLS_QUEUED = "urls_queued"
PAGES_FETCHED = "pages_fetched"
PAGES_FAILED = "pages_failed"
PAGES_SKIPPED = "pages_skipped"
LAST_PAGE_ERROR = "last_page_error"
LAST_PAGE_ERROR_URL = "last_page_error_url"
LAST_PAGE_ERROR_AT = "last_page_error_at"


@dataclass(frozen=True, slots=True)
class SourceState:
    """One source's polls and pages so far (times are ISO 8601 UTC)."""

    id: str
    url: str
    kind: str | None = None
    polls: int = 0
    polls_failed: int = 0
    consecutive_failures: int = 0
    last_poll_at: str | None = None
    last_poll: str | None = None
    next_poll_at: str | None = None
    last_error: str | None = None
    last_error_at: str | None = None
    urls_queued: int = 0
    pages_fetched: int = 0
    pages_failed: int = 0
    pages_skipped: int = 0
    last_page_error: str | None = None
    last_page_error_url: str | None = None
    last_page_error_at: str | None = None

    @property
    def failing(self) -> bool:
        """Its last poll failed (the feed is unreachable, broken or refused)."""
        return self.consecutive_failures > 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready mapping, with `failing`."""
        return {**asdict(self), "failing": self.failing}

    @classmethod
    def from_hash(cls, source_id: str, fields: dict[bytes, bytes]) -> SourceState:
        """Read the hash as Redis returns it."""
        text = {k.decode(): v.decode("utf-8", "replace") for k, v in fields.items()}
        numbers = {"polls", "polls_failed", "consecutive_failures", "urls_queued", "pages_fetched", "pages_failed",
                   "pages_skipped"}
        known = set(cls.__dataclass_fields__) - {"id"}
        values: dict[str, Any] = {k: (int(v) if k in numbers else v) for k, v in text.items() if k in known}
        values.setdefault("url", "")
        return cls(id=source_id, **values)


async def read_source_states(redis: Redis, streams: StreamNames) -> list[SourceState]:
    """Every source the fetch stage has state for, by URL."""
    members = await redis.smembers(streams.fetch_sources)
    ids = sorted(m.decode() if isinstance(m, bytes) else str(m) for m in members)
    if not ids:
        return []
    async with redis.pipeline(transaction=False) as pipe:
        for source_id in ids:
            pipe.hgetall(streams.fetch_source(source_id))
        hashes = await pipe.execute()
    states = [SourceState.from_hash(source_id, fields) for source_id, fields in zip(ids, hashes, strict=True) if fields]
    return sorted(states, key=lambda state: state.url)

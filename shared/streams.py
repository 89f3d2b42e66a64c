"""Stream, group and key names, and the consumer-group administration every service runs at start."""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from shared.settings import Settings, get_settings

STAGES = ("ingest", "clean", "enrich", "publish")
# Every service that consumes a stream: fetch, in front of ingest, feeds the raw stream from registered sources.
SERVICES = ("fetch", *STAGES)


@dataclass(frozen=True)
class StreamNames:
    """Every Redis key the pipeline uses, under one prefix (default `newsflow`)."""

    prefix: str

    @property
    def discovered(self) -> str:
        """Article URLs found in registered feeds and sitemaps, each once, for fetch to download."""
        return f"{self.prefix}:discovered"

    @property
    def raw(self) -> str:
        return f"{self.prefix}:raw"

    @property
    def ingested(self) -> str:
        return f"{self.prefix}:ingested"

    @property
    def cleaned(self) -> str:
        return f"{self.prefix}:cleaned"

    @property
    def enriched(self) -> str:
        return f"{self.prefix}:enriched"

    @property
    def published(self) -> str:
        return f"{self.prefix}:published"

    @property
    def dlq(self) -> str:
        """The dead letters: one small entry each (the letter, origin, payload size and key); see dlq_payload."""
        return f"{self.prefix}:dlq"

    def dlq_payload(self, token: str) -> str:
        """STRING: one dead letter's original payload, beside its entry so that listing never reads it."""
        return self.key("dlq", "payload", token)

    def input_of(self, stage: str) -> str:
        """The stream a stage consumes."""
        return {
            "fetch": self.discovered,
            "ingest": self.raw,
            "clean": self.ingested,
            "enrich": self.cleaned,
            "publish": self.enriched,
        }[stage]

    def output_of(self, stage: str) -> str:
        """The stream a stage writes to."""
        return {
            "fetch": self.raw,
            "ingest": self.ingested,
            "clean": self.cleaned,
            "enrich": self.enriched,
            "publish": self.published,
        }[stage]

    def key(self, *parts: str) -> str:
        """A namespaced key for auxiliary state (e.g. the near-duplicate index)."""
        return ":".join((self.prefix, *parts))

    # The fetch stage's shared state (every replica reads and writes the same keys).

    @property
    def fetch_seen(self) -> str:
        """ZSET normalised URL -> first seen (ms): a URL is queued for download once."""
        return self.key("fetch", "seen")

    @property
    def fetch_delayed(self) -> str:
        """ZSET fetch job JSON -> due (ms): retries after a failure, pages whose host is busy."""
        return self.key("fetch", "delayed")

    @property
    def fetch_sources(self) -> str:
        """SET of source ids that have state (for `newsflow status`)."""
        return self.key("fetch", "sources")

    def fetch_source(self, source_id: str) -> str:
        """HASH of one source's polls, pages and failures."""
        return self.key("fetch", "source", source_id)

    def fetch_host(self, host: str) -> str:
        """STRING lease on a host: held while a request runs there, then for the politeness delay."""
        return self.key("fetch", "host", host)

    def fetch_poll(self, source_id: str) -> str:
        """STRING whose life is the time until the source is polled again (a replica polls only when it can SET NX)."""
        return self.key("fetch", "poll", source_id)

    def fetch_robots(self, origin: str) -> str:
        """STRING: a site's robots.txt, cached for every replica."""
        return self.key("fetch", "robots", origin)

    @property
    def fetch_validators(self) -> str:
        """HASH document URL -> JSON {etag, last_modified}: conditional GETs for feeds and sitemaps."""
        return self.key("fetch", "validators")

    @property
    def pipeline_streams(self) -> tuple[str, ...]:
        """The streams consumed by a stage group (the ones that may be trimmed)."""
        return (self.discovered, self.raw, self.ingested, self.cleaned, self.enriched)


def group_of(stage: str) -> str:
    """Each stage reads its input through one consumer group named after the stage."""
    return stage


def names(settings: Settings | None = None) -> StreamNames:
    """Stream names for the configured prefix."""
    return StreamNames((settings or get_settings()).key_prefix)


async def ensure_group(redis: Redis, stream: str, group: str) -> bool:
    """Create `group` on `stream` at id 0 (MKSTREAM); True when it was created now.

    Id 0, not `$`: articles pushed before a service first starts must not be skipped.
    """
    try:
        await redis.xgroup_create(name=stream, groupname=group, id="0", mkstream=True)
    except ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise
        return False
    return True


def _next_id(stream_id: bytes | str) -> str:
    """The smallest id after `stream_id` (ids are `ms-seq`)."""
    text = stream_id.decode() if isinstance(stream_id, bytes) else stream_id
    ms, _, seq = text.partition("-")
    return f"{ms}-{int(seq or 0) + 1}"


async def safe_trim_id(redis: Redis, stream: str) -> str | None:
    """The lowest id some group still needs on `stream`; None when no group reads it (nothing is safe).

    The stages read and acknowledge while this runs: a group that had entries pending in XINFO GROUPS may have
    acknowledged them all by the XPENDING a moment later (its summary then has no `min`). What XINFO said was
    delivered is still a safe floor then: the group has acknowledged at least that much. A group destroyed in
    between (NOGROUP) may be created again at id 0 and need every entry: trim nothing this time.
    """
    groups = await redis.xinfo_groups(stream)
    if not groups:
        return None
    floor: tuple[int, int] | None = None
    for group in groups:
        # Everything up to last-delivered-id is acknowledged unless pending; what comes after is unread.
        candidate: bytes | str = _next_id(group["last-delivered-id"])
        if group["pending"]:
            try:
                summary = await redis.xpending(stream, group["name"])
            except ResponseError as exc:
                if "NOGROUP" in str(exc):
                    return None
                raise
            if summary.get("min") is not None:
                candidate = summary["min"]
        text = candidate.decode() if isinstance(candidate, bytes) else candidate
        ms, _, seq = text.partition("-")
        key = (int(ms), int(seq or 0))
        floor = key if floor is None or key < floor else floor
    assert floor is not None
    return f"{floor[0]}-{floor[1]}"


async def trim_acknowledged(redis: Redis, stream: str) -> int:
    """XTRIM MINID below what every group has acknowledged; never MAXLEN over unread entries."""
    try:
        min_id = await safe_trim_id(redis, stream)
    except ResponseError as exc:
        if "no such key" in str(exc).lower():
            return 0
        raise
    if min_id is None:
        return 0
    return int(await redis.xtrim(stream, minid=min_id, approximate=False))

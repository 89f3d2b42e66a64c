"""The fetch stage's poller: reads each registered feed or sitemap when it is due and queues its new article URLs.

Beside the page consumer, every replica runs one poller. Each tick it re-reads the registry (storage), lets due
retries back onto the discovered stream, and polls the sources whose poll key it can claim — so a source is read by
one replica per interval, whichever. A poll is a conditional GET (ETag / Last-Modified from the last 200); a
sitemap index brings in its child sitemaps; links are normalised, the newest first, and only URLs the seen set
does not hold are queued. A failed poll is recorded on the source and tried again after a growing wait (never
later than its interval).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from redis.exceptions import RedisError

from services.fetch.client import Download
from services.fetch.coordination import Coordination
from services.fetch.documents import Document, DocumentError, Link, parse_document
from services.fetch.downloads import PageFetcher
from services.fetch.polite import Busy, Refused
from shared.errors import TransientError
from shared.events import FetchJob
from shared.observability.logging import get_logger
from shared.settings import Settings
from shared.storage import Source, Storage, open_storage

REGISTRY_REFRESH_S = 5.0
FORGET_SEEN_EVERY_S = 3600.0
SEEN_CHECK_CHUNK = 500

log = get_logger("newsflow.fetch")


class PollFailed(Exception):
    """The feed or sitemap could not be read (the reason is the message)."""


@dataclass
class PollResult:
    """What one poll found."""

    kind: str | None = None
    not_modified: bool = False
    links: list[Link] = field(default_factory=list)
    documents: int = 0
    child_failures: list[str] = field(default_factory=list)


def newest_first(links: Sequence[Link]) -> list[Link]:
    """Links ordered by the document's own date, newest first; undated ones keep their order, after the dated."""
    dated = sorted((link for link in links if link.modified), key=lambda link: link.modified or "", reverse=True)
    return dated + [link for link in links if not link.modified]


def poll_backoff_s(settings: Settings, interval_s: int, failures: int) -> float:
    """After `failures` polls in a row failed: base × 4^(failures - 1), never longer than the interval."""
    return float(min(interval_s, settings.fetch_retry_base_s * 4 ** max(0, failures - 1)))


class SourcePoller:
    """The poll loop of one replica."""

    def __init__(self, settings: Settings, fetcher: PageFetcher, storage: Storage | None = None) -> None:
        self.settings = settings
        self.fetcher = fetcher
        self.storage = storage or open_storage(settings.storage_url, link_timeout_s=settings.link_timeout_s)
        self.sources: list[Source] = []
        self._refreshed = 0.0
        self._forgot = time.monotonic()
        self._polls: dict[str, asyncio.Task[None]] = {}
        self._stopping = asyncio.Event()

    @property
    def coordination(self) -> Coordination:
        return self.fetcher.client.coordination

    async def run(self) -> None:
        """Tick until `stop`; a tick's failure (Redis or storage away) is logged and the next tick tries again."""
        migrated = False
        while not self._stopping.is_set():
            try:
                if not migrated:
                    await self.storage.migrate()  # the sources table, on a database no publish has opened yet
                    migrated = True
                await self.tick()
            except (TransientError, RedisError, OSError) as exc:
                log.warning("dependency.unavailable", stage="fetch", step="poll", error=f"{type(exc).__name__}: {exc}")
            except Exception:
                log.exception("poller.tick_failed", stage="fetch")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=self.settings.fetch_tick_s)

    async def stop(self) -> None:
        """Stop ticking; polls in flight are cancelled (their sources are claimed again when the lease runs out)."""
        self._stopping.set()
        for task in self._polls.values():
            task.cancel()
        for task in list(self._polls.values()):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.storage.close()

    async def tick(self) -> None:
        """Refresh the registry, release due retries, forget old URLs, start the polls that are due."""
        now = time.monotonic()
        if now - self._refreshed >= REGISTRY_REFRESH_S:
            self.sources = await self.storage.list_sources()
            self._refreshed = now
        now_ms = int(time.time() * 1000)
        await self.coordination.release_due(now_ms)
        if now - self._forgot >= FORGET_SEEN_EVERY_S:
            self._forgot = now
            forgotten = await self.coordination.forget_seen(now_ms - int(self.settings.fetch_seen_days * 86_400_000))
            if forgotten:
                log.info("seen_urls.forgotten", stage="fetch", count=forgotten)
        for source_id in [sid for sid, task in self._polls.items() if task.done()]:
            del self._polls[source_id]
        for source in self.sources:
            if source.id in self._polls:
                continue
            lease_ms = int(max(source.interval_s, 10 * self.settings.fetch_timeout_s) * 1000)
            if await self.coordination.claim_poll(source.id, lease_ms):
                self._polls[source.id] = asyncio.create_task(self.poll_logged(source))

    async def poll_logged(self, source: Source) -> None:
        """`poll`, its dependency failures logged (the source's lease runs out and a replica polls it again)."""
        try:
            await self.poll(source)
        except (TransientError, RedisError, OSError) as exc:
            log.warning("dependency.unavailable", stage="fetch", step="poll_source", source_id=source.id,
                        error=f"{type(exc).__name__}: {exc}")
        except Exception:
            log.exception("source.poll_crashed", stage="fetch", source_id=source.id, url=source.url)

    async def poll(self, source: Source) -> None:
        """Read one source, queue its new URLs, record the result and when it is due next."""
        started = datetime.now(UTC)
        t0 = time.perf_counter()
        result, error = PollResult(), None
        try:
            result = await self.read(source.url)
        except PollFailed as exc:
            error = str(exc)
        queued = 0
        if error is None and result.links:
            queued = await self.queue(source, result.links, started)
        failures = 0 if error is None else await self.coordination.consecutive_failures(source.id) + 1
        wait_s = source.interval_s if error is None else poll_backoff_s(self.settings, source.interval_s, failures)
        outcome = "failed" if error else "not_modified" if result.not_modified else "ok"
        await self.coordination.record_poll(
            source.id, source.url, kind=result.kind, outcome=outcome, error=error, queued=queued, at=started,
            next_poll_at=started + timedelta(seconds=wait_s),
        )
        await self.coordination.schedule_poll(source.id, int(wait_s * 1000))
        facts = {
            "stage": "fetch", "source_id": source.id, "url": source.url, "kind": result.kind, "outcome": outcome,
            "links": len(result.links), "queued": queued, "documents": result.documents,
            "duration_ms": round((time.perf_counter() - t0) * 1000, 1), "next_poll_in_s": round(wait_s, 1),
        }
        if error is not None:
            log.warning("source.poll_failed", **facts, error=error, consecutive_failures=failures)
        else:
            log.info("source.polled", **facts, **({"child_failures": result.child_failures[:5]}
                                                   if result.child_failures else {}))

    async def read(self, url: str) -> PollResult:
        """The document at `url` and, for a sitemap index, its child sitemaps (one level)."""
        result = PollResult()
        document = await self.read_document(url)
        result.documents = 1
        if document is None:
            result.not_modified = True
            return result
        result.kind = document.kind
        result.links = list(document.links)
        children = document.sitemaps[: self.settings.fetch_max_sitemaps_per_poll]
        for child in children:
            try:
                page = await self.read_document(child)
            except PollFailed as exc:
                result.child_failures.append(f"{child}: {exc}")
                continue
            result.documents += 1
            if page is not None:
                result.links.extend(page.links)
        if children and len(result.child_failures) == len(children):
            raise PollFailed(f"every child sitemap failed, e.g. {result.child_failures[0]}")
        return result

    async def read_document(self, url: str) -> Document | None:
        """GET a feed or sitemap conditionally; None when it has not changed since the last 200."""
        validators = await self.coordination.validators(url)
        headers = {}
        if "etag" in validators:
            headers["If-None-Match"] = validators["etag"]
        if "last_modified" in validators:
            headers["If-Modified-Since"] = validators["last_modified"]
        answer = await self.fetcher.client.get(
            url, max_bytes=self.settings.fetch_max_document_bytes, headers=headers,
            budget_s=3 * self.settings.fetch_timeout_s,
        )
        if isinstance(answer, Busy):
            raise PollFailed(f"host busy for more than {3 * self.settings.fetch_timeout_s:g}s")
        if isinstance(answer, Refused):
            if answer.robots.rule == "disallow_all":
                raise PollFailed("robots_unavailable: the site's robots.txt answered 5xx or not at all")
            raise PollFailed("robots_disallowed: robots.txt does not let us read it")
        if answer.status == 304 and validators:
            return None
        if not answer.ok:
            raise PollFailed(answer.describe())
        document = self._parse(answer)
        await self.coordination.store_validators(url, answer.headers.get("etag"), answer.headers.get("last-modified"))
        return document

    def _parse(self, answer: Download) -> Document:
        try:
            return parse_document(answer.body, answer.final_url, limit=self.settings.fetch_max_document_bytes)
        except DocumentError as exc:
            raise PollFailed(f"not_a_feed: {exc}") from exc

    async def queue(self, source: Source, links: Sequence[Link], at: datetime) -> int:
        """Queue up to the per-poll limit of links not yet seen, newest first; how many were queued."""
        candidates = newest_first(list({link.url: link for link in links}.values()))
        fresh: list[Link] = []
        redis = self.coordination.redis
        for start in range(0, len(candidates), SEEN_CHECK_CHUNK):
            chunk = candidates[start : start + SEEN_CHECK_CHUNK]
            scores = await redis.zmscore(self.coordination.streams.fetch_seen, [link.url for link in chunk])
            fresh.extend(link for link, score in zip(chunk, scores, strict=True) if score is None)
            if len(fresh) >= self.settings.fetch_max_links_per_poll:
                break
        jobs = [
            FetchJob(
                url=link.url, source_id=source.id, source_url=source.url, discovered_at=at,
                title=link.title[:2000] if link.title else None,
                published_at=link.published_at[:100] if link.published_at else None,
            )
            for link in fresh[: self.settings.fetch_max_links_per_poll]
        ]
        return await self.coordination.queue_new(jobs, int(at.timestamp() * 1000))

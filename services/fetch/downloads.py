"""The fetch stage's work on a batch of discovered URLs: download each page once, politely, and say what became of it.

Every job ends in exactly one outcome, written in the delivery policy's commit transaction with the XACK:
- `fetched`: the page, as a raw article with `origin` = the feed, goes onto the raw stream;
- `deferred`: its host is busy (another request, or the politeness delay) — back in the delayed set until free;
- `redirected`: it redirects to another host — the target goes back onto the discovered stream as a job of its
  own (same source, the listed URL kept as `requested_url`), fetched in that host's turn, under its robots.txt;
- `retry`: a timeout, refused connection, 429 or 5xx (or robots.txt's) — back in the delayed set after a growing wait;
- `failed`: a 4xx, an oversized page, too many redirects, an address the guard refuses (`blocked_address`), or
  retries used up — counted on the source;
- `skipped`: robots.txt disallows it, or it is not HTML — counted on the source.
No outcome dead-letters: a fetch failure is the source's problem, recorded on it, not the pipeline's.
"""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import Field
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from services.fetch.addresses import AddressGuard
from services.fetch.client import Download, make_client
from services.fetch.coordination import Coordination, iso
from services.fetch.pages import decode_html, looks_like_html, media_type
from services.fetch.polite import ROBOTS_RETRY_TTL_S, Busy, PoliteClient, Refused
from services.fetch.urls import host_of, normalise_url
from shared.errors import ConfigurationError, Rejected
from shared.events import Event, FetchJob, RawArticle, Stamp
from shared.observability import sources as state
from shared.settings import Settings
from shared.streams import StreamNames, names

OutcomeKind = Literal["fetched", "deferred", "redirected", "retry", "failed", "skipped"]
# Room left in NEWSFLOW_MAX_ARTICLE_BYTES for the raw article's other fields once the page is in it.
ENVELOPE_BYTES = 4096


class FetchOutcome(Event):
    """What became of one discovered URL (the stage's output; `write_outcome` turns it into Redis writes)."""

    id: str
    job: FetchJob
    outcome: OutcomeKind
    reason: str | None = None
    status: int | None = None
    final_url: str | None = None
    # `redirected`: the job to queue for the other host.
    redirect: FetchJob | None = None
    raw: RawArticle | None = None
    retry_at: datetime | None = None
    trace: list[Stamp] = Field(default_factory=list)


def retry_delay_s(settings: Settings, attempt: int, download: Download | None = None) -> float:
    """Wait before try `attempt + 1`: base × 4^attempt (±25 %), or the server's Retry-After when longer."""
    delay: float = settings.fetch_retry_base_s * 4**attempt * random.uniform(0.75, 1.25)
    retry_after = (download.headers.get("retry-after", "") if download else "").strip()
    if retry_after.isdigit():
        delay = max(delay, float(retry_after))
    return delay


def raw_article(job: FetchJob, download: Download, html: str, fetched_at: datetime) -> RawArticle:
    """The page as the raw stream takes it: its final URL, what the feed said about it, how it was fetched."""
    return RawArticle(
        url=download.final_url,
        html=html,
        published_at=job.published_at,
        fetched_at=fetched_at,
        metadata={
            "fetch": {
                "source_id": job.source_id,
                "source_url": job.source_url,
                "requested_url": job.requested_url or job.url,
                "final_url": download.final_url,
                "status": download.status,
                "content_type": download.headers.get("content-type"),
                "discovered_at": job.discovered_at.isoformat(),
                "attempts": job.attempt + 1,
                "redirects": download.redirects,
            },
            "feed": {"title": job.title, "published_at": job.published_at},
        },
    )


class PageFetcher:
    """The stage's `process` (a batch of jobs -> outcomes) and `write` (an outcome -> Redis commands)."""

    def __init__(self, settings: Settings, guard: AddressGuard | None = None) -> None:
        if settings.fetch_timeout_s * 1000 >= settings.claim_idle_ms:
            raise ConfigurationError(
                f"NEWSFLOW_FETCH_TIMEOUT_S ({settings.fetch_timeout_s:g}) must stay below NEWSFLOW_CLAIM_IDLE_MS "
                f"({settings.claim_idle_ms} ms), or another replica would claim pages still downloading",
                event="fetch.refused",
            )
        self.settings = settings
        self.streams: StreamNames = names(settings)
        self.guard = guard or AddressGuard.for_settings(settings.fetch_allow_private)
        self._client: PoliteClient | None = None

    @property
    def client(self) -> PoliteClient:
        """The polite client (made in `start`)."""
        if self._client is None:
            raise RuntimeError("PageFetcher.start() has not run")
        return self._client

    async def start(self, redis: Redis) -> None:
        """Connect the shared state and open the HTTP client (the stage's `on_start`)."""
        coordination = Coordination(redis, self.streams, self.settings.consumer)
        http = make_client(self.settings, self.guard)
        self._client = PoliteClient(self.settings, coordination, http, self.guard)

    async def close(self) -> None:
        """Close the HTTP client."""
        if self._client is not None:
            await self._client.http.aclose()
            self._client = None

    async def process(self, jobs: list[FetchJob]) -> list[FetchOutcome | Rejected]:
        """One request per host in this batch, all hosts at once; the others on a host wait their turn."""
        now = datetime.now(UTC)
        outcomes: dict[int, FetchOutcome] = {}
        first_per_host: dict[str, int] = {}
        for index, job in enumerate(jobs):
            host = host_of(job.url)
            if host in first_per_host:
                # Its turn comes after the pages ahead of it on this host.
                behind = sum(1 for i in range(index) if host_of(jobs[i].url) == host)
                wait_s = behind * (self.settings.fetch_host_delay_s + 0.5)
                outcomes[index] = self._outcome(job, "deferred", reason="host_busy",
                                                retry_at=now + timedelta(seconds=wait_s))
            else:
                first_per_host[host] = index
        fetched = await asyncio.gather(*(self.fetch_one(jobs[i]) for i in first_per_host.values()))
        outcomes.update(zip(first_per_host.values(), fetched, strict=True))
        return [outcomes[i] for i in range(len(jobs))]

    async def fetch_one(self, job: FetchJob) -> FetchOutcome:
        """Download one page and classify what came back."""
        answer = await self.client.try_get(job.url, max_bytes=self.settings.max_article_bytes,
                                           redirects=job.redirects)
        now = datetime.now(UTC)
        if isinstance(answer, Busy):
            jitter = random.uniform(0, 0.25)
            return self._outcome(job, "deferred", reason="host_busy",
                                 retry_at=now + timedelta(seconds=answer.wait_ms / 1000 + jitter))
        if isinstance(answer, Refused):
            hop = answer.url if answer.url != job.url else None
            if answer.robots.rule == "disallow_all":
                # robots.txt answered 5xx or not at all: nothing may be fetched from the site *for now* (RFC 9309).
                # The page is tried again once that verdict has expired, not skipped for good.
                if job.attempt < self.settings.fetch_retries:
                    delay = max(retry_delay_s(self.settings, job.attempt), ROBOTS_RETRY_TTL_S * random.uniform(1, 1.1))
                    return self._outcome(job, "retry", reason="robots_unavailable", final_url=hop,
                                         retry_at=now + timedelta(seconds=delay))
                return self._outcome(job, "failed", reason="robots_unavailable", final_url=hop)
            return self._outcome(job, "skipped", reason="robots_disallowed", final_url=hop)
        if answer.redirect_to is not None:
            onward = job.model_copy(update={
                "url": answer.redirect_to, "requested_url": job.requested_url or job.url,
                "redirects": answer.redirects,
            })
            return self._outcome(job, "redirected", status=answer.status, final_url=answer.redirect_to,
                                 redirect=onward)
        if not answer.ok:
            if answer.retryable and job.attempt < self.settings.fetch_retries:
                delay = retry_delay_s(self.settings, job.attempt, answer)
                return self._outcome(job, "retry", reason=answer.describe(), status=answer.status,
                                     retry_at=now + timedelta(seconds=delay))
            return self._outcome(job, "failed", reason=answer.describe(), status=answer.status,
                                 final_url=answer.final_url)
        content_type = answer.headers.get("content-type")
        if not looks_like_html(content_type, answer.body):
            return self._outcome(job, "skipped", reason=f"not_html ({media_type(content_type) or 'no type'})",
                                 status=answer.status, final_url=answer.final_url)
        page = decode_html(answer.body, content_type)
        raw = raw_article(job, answer, page.html, now)
        if len(raw.to_json()) > self.settings.max_article_bytes:
            return self._outcome(job, "failed", reason="too_large", status=answer.status, final_url=answer.final_url)
        return self._outcome(job, "fetched", status=answer.status, final_url=answer.final_url, raw=raw)

    @staticmethod
    def _outcome(job: FetchJob, outcome: OutcomeKind, **facts: Any) -> FetchOutcome:
        return FetchOutcome(id=job.url, job=job, outcome=outcome, **facts)

    def write(self, pipe: Pipeline, output: object) -> None:
        """An outcome's writes, recorded for the commit's script (run with the XACK of its job, if still held)."""
        assert isinstance(output, FetchOutcome)
        job = output.job
        source = self.streams.fetch_source(job.source_id)
        if output.outcome == "fetched" and output.raw is not None:
            pipe.xadd(self.streams.raw, {"data": output.raw.to_json(), "origin": job.source_url})
            pipe.hincrby(source, state.PAGES_FETCHED, 1)
        elif output.outcome == "redirected" and output.redirect is not None:
            # The next hop is that host's job: queued now, fetched when its lease and robots.txt allow. Its URL
            # joins the seen set (a feed listing it later does not fetch it again); the listed URL is there already.
            pipe.xadd(self.streams.discovered, {"data": output.redirect.to_json()})
            seen_as = normalise_url(output.redirect.url)
            if seen_as is not None:
                pipe.zadd(self.streams.fetch_seen, {seen_as: int(datetime.now(UTC).timestamp() * 1000)}, nx=True)
        elif output.outcome in ("deferred", "retry") and output.retry_at is not None:
            again = job if output.outcome == "deferred" else job.model_copy(update={"attempt": job.attempt + 1})
            pipe.zadd(self.streams.fetch_delayed, {again.to_json(): int(output.retry_at.timestamp() * 1000)})
        elif output.outcome == "failed":
            pipe.hincrby(source, state.PAGES_FAILED, 1)
            pipe.hset(source, mapping={
                state.LAST_PAGE_ERROR: output.reason or "failed",
                state.LAST_PAGE_ERROR_URL: job.url,
                state.LAST_PAGE_ERROR_AT: iso(datetime.now(UTC)),
            })
        else:
            pipe.hincrby(source, state.PAGES_SKIPPED, 1)


def describe_outcome(outcome: FetchOutcome) -> dict[str, Any]:
    """The canonical log line's facts."""
    facts: dict[str, Any] = {"outcome": outcome.outcome, "url": outcome.job.url, "source_id": outcome.job.source_id}
    for name in ("reason", "status", "final_url"):
        value = getattr(outcome, name)
        if value is not None and (name != "final_url" or value != outcome.job.url):
            facts[name] = value
    if outcome.job.requested_url is not None:
        facts["requested_url"] = outcome.job.requested_url
    if outcome.retry_at is not None:
        facts["retry_at"] = outcome.retry_at.isoformat()
    return facts


"""A polite GET: robots.txt obeyed, one request per host at a time across replicas, a delay between requests.

`try_get` never waits: a busy host comes back as `Busy` with the time until it is free (the page stage defers the
job by that much instead of holding its batch). `get` waits for the host, within a time budget (the poller).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import httpx

from services.fetch.client import Download, download
from services.fetch.coordination import Coordination
from services.fetch.robots import MAX_ROBOTS_BYTES, Robots
from services.fetch.urls import host_of, origin_of
from shared.settings import Settings

# A robots.txt Crawl-delay above this is taken as this (a site asking for an hour between pages is not polled).
MAX_CRAWL_DELAY_S = 300.0
# How long a robots.txt that could not be fetched (5xx, unreachable) blocks the site before the next try.
ROBOTS_RETRY_TTL_S = 300


@dataclass(frozen=True, slots=True)
class Busy:
    """Another request to the host is running, or its politeness delay has not passed."""

    wait_ms: int


@dataclass(frozen=True, slots=True)
class Refused:
    """robots.txt disallows the URL for our user agent."""

    robots: Robots


class PoliteClient:
    """GETs that respect robots.txt and each host's one-at-a-time rule and delay, for every replica together."""

    def __init__(self, settings: Settings, coordination: Coordination, http: httpx.AsyncClient) -> None:
        self.settings = settings
        self.coordination = coordination
        self.http = http
        self.agent = settings.fetch_user_agent

    async def try_get(
        self, url: str, *, max_bytes: int, headers: dict[str, str] | None = None
    ) -> Download | Busy | Refused:
        """GET `url` now if its host is free; robots.txt (cached, else fetched under the same lease) first."""
        host = host_of(url)
        timeout_s = self.settings.fetch_timeout_s
        wait_ms = await self.coordination.acquire_host(host, int(timeout_s * 1000) + 1000)
        if wait_ms:
            return Busy(wait_ms)
        deadline = time.monotonic() + timeout_s
        delay_s = self.settings.fetch_host_delay_s
        requested = False
        try:
            robots = await self.coordination.robots(origin_of(url))
            if robots is None:
                requested = True
                robots = await self._fetch_robots(url, deadline)
            if not robots.allows(url, self.agent):
                return Refused(robots)
            delay_s = max(delay_s, min(robots.crawl_delay(self.agent) or 0.0, MAX_CRAWL_DELAY_S))
            if requested and delay_s:
                await asyncio.sleep(min(delay_s, max(0.0, deadline - time.monotonic())))
            requested = True
            remaining = max(0.1, deadline - time.monotonic())
            return await download(
                self.http, url, max_bytes=max_bytes, timeout_s=remaining, headers=headers,
                max_redirects=self.settings.fetch_max_redirects, hop_delay_s=delay_s,
            )
        finally:
            await self.coordination.hold_host(host, int(delay_s * 1000) if requested else 0)

    async def get(
        self, url: str, *, max_bytes: int, budget_s: float, headers: dict[str, str] | None = None
    ) -> Download | Busy | Refused:
        """`try_get`, waiting for the host up to `budget_s`."""
        deadline = time.monotonic() + budget_s
        while True:
            answer = await self.try_get(url, max_bytes=max_bytes, headers=headers)
            if not isinstance(answer, Busy):
                return answer
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return answer
            await asyncio.sleep(min(answer.wait_ms / 1000, remaining))

    async def _fetch_robots(self, url: str, deadline: float) -> Robots:
        """GET /robots.txt (RFC 9309: 4xx = no rules, 5xx or unreachable = nothing allowed for a while)."""
        origin = origin_of(url)
        answer = await download(
            self.http, origin + "/robots.txt", max_bytes=MAX_ROBOTS_BYTES * 2,
            timeout_s=max(0.1, deadline - time.monotonic()), hop_delay_s=self.settings.fetch_host_delay_s,
        )
        status = answer.status if answer.error is None else None
        robots = Robots.from_response(status, answer.body)
        ttl = self.settings.fetch_robots_ttl_s if robots.rule != "disallow_all" else ROBOTS_RETRY_TTL_S
        await self.coordination.store_robots(origin, robots, ttl)
        return robots

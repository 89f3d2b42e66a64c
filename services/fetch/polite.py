"""A polite GET: robots.txt obeyed, one request per host at a time across replicas, a delay between requests.

`try_get` never waits for a host: a busy host comes back as `Busy` with the time until it is free (the page stage
defers the job by that much instead of holding its batch). `get` waits for the host, within a time budget (the
poller).

Redirects: a hop on the same host (the lease's key: host and port) is followed under the lease that host already
gave us, after the politeness delay and with robots.txt checked for the hop's URL (its own origin's robots.txt
when the scheme changes). A hop to another host is not followed here: it comes back as a `Download` with
`redirect_to`, and the caller asks for that host's turn like for any other URL — the page stage hands the new URL
back to the discovered stream as a job of its own, the poller calls `try_get` again. So every request, on every
host, is made under that host's lease, after its delay and with its robots.txt, whichever replica makes it.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field, replace
from urllib.parse import urlsplit

import httpx

from services.fetch.addresses import AddressGuard
from services.fetch.client import Download, get_once, redirect_target
from services.fetch.coordination import Coordination
from services.fetch.robots import MAX_ROBOTS_BYTES, Robots
from services.fetch.urls import host_of, origin_of
from shared.settings import Settings

# A robots.txt Crawl-delay above this is taken as this (a site asking for an hour between pages is not polled).
MAX_CRAWL_DELAY_S = 300.0
# How long a robots.txt that could not be fetched (5xx, unreachable) blocks the site before the next try.
ROBOTS_RETRY_TTL_S = 300
# RFC 9309 §2.3.1.2: follow at least five redirects for robots.txt; past that it counts as unavailable (4xx).
MAX_ROBOTS_REDIRECTS = 5


@dataclass(frozen=True, slots=True)
class Busy:
    """Another request to the host is running, or its politeness delay has not passed."""

    wait_ms: int


@dataclass(frozen=True, slots=True)
class Refused:
    """robots.txt disallows the URL (or the redirect hop `url`) for our user agent."""

    robots: Robots
    url: str = ""


@dataclass
class _Turn:
    """One lease on one host: its deadline, the delay owed after each request, what it has asked so far."""

    host: str
    deadline: float
    delay_s: float
    requested: bool = False
    robots: dict[str, Robots] = field(default_factory=dict)

    def fits(self) -> bool:
        """Whether the delay owed before the next request still leaves time for it before the deadline."""
        return not self.requested or time.monotonic() + self.delay_s < self.deadline

    async def pace(self) -> None:
        """Wait the politeness delay when this turn has already sent a request to the host."""
        if self.requested and self.delay_s:
            await asyncio.sleep(self.delay_s)


class PoliteClient:
    """GETs that respect robots.txt and each host's one-at-a-time rule and delay, for every replica together."""

    def __init__(
        self, settings: Settings, coordination: Coordination, http: httpx.AsyncClient, guard: AddressGuard
    ) -> None:
        self.settings = settings
        self.coordination = coordination
        self.http = http
        self.guard = guard
        self.agent = settings.fetch_user_agent

    def _lease_ms(self) -> int:
        return int(self.settings.fetch_timeout_s * 1000) + 1000

    async def try_get(
        self, url: str, *, max_bytes: int, headers: dict[str, str] | None = None, redirects: int = 0
    ) -> Download | Busy | Refused:
        """GET `url` now if its host is free (robots.txt first: cached, else fetched under the same lease).

        `redirects` is how many hops led to `url` already (they count towards NEWSFLOW_FETCH_MAX_REDIRECTS).
        """
        blocked = self.guard.refuse_literal(url)
        if blocked is not None:  # nothing to ask the host's lease for: no request will be made
            return Download(url, url, error="blocked_address", detail=str(blocked), redirects=redirects)
        host = host_of(url)
        wait_ms = await self.coordination.acquire_host(host, self._lease_ms())
        if wait_ms:
            return Busy(wait_ms)
        timeout_s = self.settings.fetch_timeout_s
        turn = _Turn(host, time.monotonic() + timeout_s, self.settings.fetch_host_delay_s)
        try:
            async with asyncio.timeout(timeout_s):
                return await self._follow(turn, url, max_bytes=max_bytes, headers=headers, redirects=redirects)
        except TimeoutError:
            return Download(url, url, error="timeout", detail=f"no complete answer within {timeout_s:g}s",
                            redirects=redirects)
        finally:
            await self.coordination.hold_host(host, int(turn.delay_s * 1000) if turn.requested else 0)

    async def _follow(
        self, turn: _Turn, url: str, *, max_bytes: int, headers: dict[str, str] | None, redirects: int
    ) -> Download | Busy | Refused:
        """The requests of one turn: `url`, then each redirect hop that stays on the turn's host."""
        current, hops = url, redirects
        previous: Download | None = None  # the redirect that led to `current`
        while True:
            robots = await self._robots(turn, current)
            if isinstance(robots, Download):  # the address guard refused the host
                return replace(robots, url=url, final_url=current, redirects=hops)
            if not robots.allows(current, self.agent):
                return Refused(robots, current)
            turn.delay_s = max(turn.delay_s, min(robots.crawl_delay(self.agent) or 0.0, MAX_CRAWL_DELAY_S))
            if not turn.fits():
                # The delay owed (robots.txt was just fetched, and its Crawl-delay is long) leaves no time for the
                # request before the deadline: it waits for the host's next turn, without counting as a failed try.
                if previous is not None:
                    return replace(previous, redirects=hops, redirect_to=current)
                return Busy(int(turn.delay_s * 1000))
            await turn.pace()
            answer = await get_once(self.http, url, current, max_bytes=max_bytes, headers=headers, redirects=hops)
            turn.requested = True
            target = redirect_target(answer)
            if target is None:
                return answer
            if urlsplit(target).scheme not in ("http", "https"):
                return replace(answer, error="invalid_url", detail=f"a redirect to {target[:200]}")
            if hops >= self.settings.fetch_max_redirects:
                return replace(answer, error="redirects",
                               detail=f"more than {self.settings.fetch_max_redirects} redirects")
            hops += 1
            if host_of(target) != turn.host or not turn.fits():
                # Another host's turn (or this host's next one, when its delay would run past the deadline).
                return replace(answer, redirects=hops, redirect_to=target)
            current, previous = target, answer

    async def get(
        self, url: str, *, max_bytes: int, budget_s: float, headers: dict[str, str] | None = None
    ) -> Download | Busy | Refused:
        """`try_get`, waiting for each host up to `budget_s` in all, redirects to other hosts followed in turn."""
        deadline = time.monotonic() + budget_s
        current, redirects = url, 0
        while True:
            answer = await self.try_get(current, max_bytes=max_bytes, headers=headers, redirects=redirects)
            if isinstance(answer, Download) and answer.redirect_to is not None:
                current, redirects = answer.redirect_to, answer.redirects
                continue
            if not isinstance(answer, Busy):
                return replace(answer, url=url) if isinstance(answer, Download) else answer
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return answer
            await asyncio.sleep(min(answer.wait_ms / 1000, remaining))

    async def _robots(self, turn: _Turn, url: str) -> Robots | Download:
        """The robots.txt verdict for `url`'s origin: this turn's, the shared cache's, or fetched now."""
        origin = origin_of(url)
        robots = turn.robots.get(origin) or await self.coordination.robots(origin)
        if robots is None:
            fetched = await self._fetch_robots(turn, origin)
            if isinstance(fetched, Download):
                return fetched
            robots = fetched
        turn.robots[origin] = robots
        return robots

    async def _fetch_robots(self, turn: _Turn, origin: str) -> Robots | Download:
        """GET /robots.txt (RFC 9309: 4xx = no rules, 5xx or unreachable = nothing allowed for a while).

        Its redirects are followed (RFC 9309 asks for five, across hosts too): on the turn's host after its delay,
        on another host under that host's lease. A host the address guard refuses comes back as that `Download`.
        """
        first = origin + "/robots.txt"
        current = first
        answer: Download | None = None
        for _ in range(MAX_ROBOTS_REDIRECTS + 1):
            if host_of(current) == turn.host:
                await turn.pace()
                answer = await get_once(self.http, first, current, max_bytes=MAX_ROBOTS_BYTES * 2)
                turn.requested = True
            else:
                answer = await self._get_on_other_host(current, turn.deadline, max_bytes=MAX_ROBOTS_BYTES * 2)
            if answer.error == "blocked_address":
                return answer
            target = redirect_target(answer)
            if target is None or urlsplit(target).scheme not in ("http", "https"):
                break
            current = target
        else:
            answer = None  # too many redirects: unavailable, as a 4xx is
        status = 404 if answer is None else answer.status if answer.error is None else None
        robots = Robots.from_response(status, answer.body if answer is not None else b"")
        ttl = self.settings.fetch_robots_ttl_s if robots.rule != "disallow_all" else ROBOTS_RETRY_TTL_S
        await self.coordination.store_robots(origin, robots, ttl)
        return robots

    async def _get_on_other_host(self, url: str, deadline: float, *, max_bytes: int) -> Download:
        """One request to a host other than the turn's: under that host's lease, waiting for it until `deadline`."""
        host = host_of(url)
        while wait_ms := await self.coordination.acquire_host(host, self._lease_ms()):
            if time.monotonic() + wait_ms / 1000 >= deadline:
                raise TimeoutError  # the turn's timeout: tried again later, nothing cached
            await asyncio.sleep(wait_ms / 1000)
        try:
            return await get_once(self.http, url, url, max_bytes=max_bytes)
        finally:
            await self.coordination.hold_host(host, int(self.settings.fetch_host_delay_s * 1000))

"""The address guard on real connections: the fetch stage against local sites it must refuse, and a rebinding name.

127.0.0.1 and 127.0.0.2 are both loopback, so the guard refuses both by default. To see a refusal *after* an allowed
request (a redirect, a name whose DNS answer changes), some tests use a policy that takes 127.0.0.1 for a public
address and refuses 127.0.0.2, and a resolver that answers for made-up names (`*.test`) — the guard itself, the
transport and the connections are the real ones.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime

import pytest
import redis.asyncio as aioredis

from services.fetch.addresses import AddressGuard, IPAddress, resolve_host
from services.fetch.downloads import FetchOutcome, PageFetcher
from shared.events import FetchJob
from shared.observability import sources as state
from tests.httpsite import Site
from tests.integration.test_fetch_pages import settings_for
from tests.warcfiles import article_html

pytestmark = pytest.mark.integration

Fetcher = Callable[..., Awaitable[PageFetcher]]


def job(url: str) -> FetchJob:
    return FetchJob(url=url, source_id="s1", source_url="http://feeds.test/feed.xml", discovered_at=datetime.now(UTC))


def only_second_loopback_refused(address: IPAddress) -> str | None:
    return "loopback" if address == ipaddress.ip_address("127.0.0.2") else None


class Names:
    """A resolver for made-up names; each name's answers in turn (the last one repeats), real DNS for the rest."""

    def __init__(self, answers: dict[str, list[list[str]]]) -> None:
        self.answers = answers
        self.asked: list[str] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.asked.append(host)
        if host not in self.answers:
            return await resolve_host(host, port)
        turns = self.answers[host]
        return turns.pop(0) if len(turns) > 1 else turns[0]


@pytest.fixture
async def make_fetcher(redis_url: str, key_prefix: str) -> AsyncIterator[Fetcher]:
    client = aioredis.Redis.from_url(redis_url)
    made: list[PageFetcher] = []

    async def make(guard: AddressGuard | None = None) -> PageFetcher:
        # fetch_allow_private False: the default the stage runs with.
        fetcher = PageFetcher(settings_for(redis_url, key_prefix, fetch_allow_private=False), guard)
        await fetcher.start(client)
        made.append(fetcher)
        return fetcher

    yield make
    for fetcher in made:
        await fetcher.close()
    await client.aclose()


async def commit(fetcher: PageFetcher, redis_url: str, outcome: FetchOutcome) -> None:
    """What the delivery policy does with an outcome: its writes in one MULTI/EXEC."""
    client = aioredis.Redis.from_url(redis_url)
    try:
        async with client.pipeline(transaction=True) as pipe:
            fetcher.write(pipe, outcome)
            await pipe.execute()
    finally:
        await client.aclose()


async def test_loopback_by_address_and_by_name_is_refused_and_recorded_on_the_source(
    make_fetcher: Fetcher, site: Site, redis_url: str, key_prefix: str
) -> None:
    site.add("/page.html", article_html("Local"))
    fetcher = await make_fetcher()
    literal = await fetcher.fetch_one(job(site.url("/page.html")))
    assert literal.outcome == "failed" and literal.reason == "blocked_address: 127.0.0.1 (loopback)"
    # A DNS name that resolves to 127.0.0.1 is refused where it is resolved, at connect time.
    named = await fetcher.fetch_one(job(site.url("/page.html").replace("127.0.0.1", "localhost")))
    assert named.outcome == "failed" and (named.reason or "").startswith("blocked_address: localhost -> ")
    assert "(loopback)" in (named.reason or "")
    assert site.requests == []  # not even robots.txt
    await commit(fetcher, redis_url, named)
    client = aioredis.Redis.from_url(redis_url)
    try:
        source = await client.hgetall(f"{key_prefix}:fetch:source:s1")
        assert source[state.PAGES_FAILED.encode()] == b"1"
        assert source[state.LAST_PAGE_ERROR.encode()].startswith(b"blocked_address: localhost")
        assert await client.xlen(f"{key_prefix}:dlq") == 0 and await client.xlen(f"{key_prefix}:raw") == 0
    finally:
        await client.aclose()


async def test_allowed_names_connect_to_the_checked_address_and_mixed_answers_are_refused(
    make_fetcher: Fetcher, site: Site
) -> None:
    site.add("/page.html", article_html("Allowed"))
    names = Names({"news.test": [["127.0.0.1"]], "mixed.test": [["127.0.0.1", "127.0.0.2"]]})
    fetcher = await make_fetcher(AddressGuard(policy=only_second_loopback_refused, resolve=names))
    fetched = await fetcher.fetch_one(job(f"http://news.test:{site.port}/page.html"))
    # news.test exists only in the guard's resolver: the connection went to the address it checked.
    assert fetched.outcome == "fetched" and fetched.raw is not None and "<h1>Allowed</h1>" in (fetched.raw.html or "")
    assert {r.headers["host"] for r in site.requests} == {f"news.test:{site.port}"}
    seen = len(site.requests)
    mixed = await fetcher.fetch_one(job(f"http://mixed.test:{site.port}/page.html"))
    assert mixed.outcome == "failed" and mixed.reason == "blocked_address: mixed.test -> 127.0.0.2 (loopback)"
    assert len(site.requests) == seen


async def test_redirects_to_refused_addresses_are_never_followed(
    make_fetcher: Fetcher, site: Site, other_site: Site
) -> None:
    other_site.add("/inside.html", article_html("Inside"))
    site.add("/to-address", redirect_to=other_site.url("/inside.html"))
    site.add("/to-name", redirect_to=f"http://intranet.test:{other_site.port}/inside.html")
    names = Names({"intranet.test": [["127.0.0.2"]]})
    fetcher = await make_fetcher(AddressGuard(policy=only_second_loopback_refused, resolve=names))
    for path, expected in (("/to-address", "blocked_address: 127.0.0.2 (loopback)"),
                           ("/to-name", "blocked_address: intranet.test -> 127.0.0.2 (loopback)")):
        moved = await fetcher.fetch_one(job(site.url(path)))
        # Another host: handed back as that host's own job, which the guard then refuses.
        assert moved.outcome == "redirected" and moved.redirect is not None
        assert moved.redirect.requested_url == site.url(path) and moved.redirect.redirects == 1
        refused = await fetcher.fetch_one(moved.redirect)
        assert refused.outcome == "failed" and refused.reason == expected
        await asyncio.sleep(0.3)  # 127.0.0.1's politeness delay (0.1 s) before the next redirect
    assert other_site.requests == []


async def test_a_name_rebound_to_a_refused_address_between_connections_is_refused(
    make_fetcher: Fetcher, site: Site
) -> None:
    # Every answer closes its connection, so each request resolves the name again: the first two answers are
    # the allowed address, the third the refused one (a DNS server rebinding the name mid-crawl).
    close = {"Connection": "close"}
    site.add("/robots.txt", "User-agent: *\nAllow: /\n", content_type="text/plain", headers=close)
    site.add("/hop", redirect_to="/landing.html", headers=close)
    site.add("/landing.html", article_html("Landing"), headers=close)
    names = Names({"flip.test": [["127.0.0.1"], ["127.0.0.1"], ["127.0.0.2"]]})
    fetcher = await make_fetcher(AddressGuard(policy=only_second_loopback_refused, resolve=names))
    outcome = await fetcher.fetch_one(job(f"http://flip.test:{site.port}/hop"))
    assert outcome.outcome == "failed" and outcome.reason == "blocked_address: flip.test -> 127.0.0.2 (loopback)"
    assert outcome.final_url == f"http://flip.test:{site.port}/landing.html"
    assert [r.path for r in site.requests] == ["/robots.txt", "/hop"]
    assert names.asked == ["flip.test"] * 3

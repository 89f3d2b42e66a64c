"""One batch of page jobs through `PageFetcher` (in this process), against the local site and a real Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
import redis.asyncio as aioredis

from services.fetch.client import Download
from services.fetch.downloads import FetchOutcome, PageFetcher
from services.fetch.polite import Refused
from shared.errors import ConfigurationError
from shared.events import FetchJob
from shared.settings import Settings
from tests.httpsite import Site
from tests.warcfiles import article_html

pytestmark = pytest.mark.integration


def settings_for(redis_url: str, key_prefix: str, **overrides: object) -> Settings:
    values: dict[str, object] = dict(
        redis_url=redis_url, key_prefix=key_prefix, fetch_host_delay_s=0.1, fetch_timeout_s=1.0,
        fetch_retry_base_s=5.0, fetch_retries=1, fetch_max_redirects=2, consumer="test",
        fetch_allow_private=True,  # the site is on 127.0.0.1
    )
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def job(site: Site, path: str, attempt: int = 0) -> FetchJob:
    return FetchJob(url=site.url(path), source_id="s1", source_url=site.url("/feed.xml"),
                    discovered_at=datetime.now(UTC), attempt=attempt)


@pytest.fixture
async def fetcher(redis_url: str, key_prefix: str) -> AsyncIterator[PageFetcher]:
    client = aioredis.Redis.from_url(redis_url)
    page_fetcher = PageFetcher(settings_for(redis_url, key_prefix))
    await page_fetcher.start(client)
    yield page_fetcher
    await page_fetcher.close()
    await client.aclose()


async def one(fetcher: PageFetcher, site: Site, path: str, attempt: int = 0) -> FetchOutcome:
    return await fetcher.fetch_one(job(site, path, attempt))


async def test_slow_pages_time_out_then_fail_when_retries_are_used(fetcher: PageFetcher, site: Site) -> None:
    site.add("/slow.html", article_html("Slow"), delay_s=3)
    first = await one(fetcher, site, "/slow.html")
    assert first.outcome == "retry" and (first.reason or "").startswith("timeout")
    assert first.retry_at is not None and (first.retry_at - datetime.now(UTC)).total_seconds() > 2
    await asyncio.sleep(0.3)  # the host's politeness delay (0.1 s) after the timed-out request
    last = await one(fetcher, site, "/slow.html", attempt=1)  # NEWSFLOW_FETCH_RETRIES=1: that was the last try
    assert last.outcome == "failed" and (last.reason or "").startswith("timeout")


async def test_size_limits_redirect_limits_and_retry_after(
    redis_url: str, key_prefix: str, site: Site
) -> None:
    client = aioredis.Redis.from_url(redis_url)
    small = PageFetcher(settings_for(redis_url, key_prefix, max_article_bytes=5_000))
    await small.start(client)
    try:
        site.add("/big.html", article_html("Big", paragraphs=200))
        big = await one(small, site, "/big.html")
        assert big.outcome == "failed" and (big.reason or "").startswith("too_large: Content-Length")
        await asyncio.sleep(0.3)
        site.add("/r1", redirect_to=site.url("/r2"))
        site.add("/r2", redirect_to=site.url("/r3"))
        site.add("/r3", redirect_to=site.url("/r4"))
        looped = await one(small, site, "/r1")
        assert looped.outcome == "failed" and (looped.reason or "").startswith("redirects")
        assert len(site.hits("/r3")) == 1 and site.hits("/r4") == []  # two redirects followed, not a third
        await asyncio.sleep(0.3)
        site.add("/busy.html", "slow down", status=429, content_type="text/plain", headers={"Retry-After": "120"})
        later = await one(small, site, "/busy.html")
        assert later.outcome == "retry" and later.status == 429
        assert later.retry_at is not None and (later.retry_at - datetime.now(UTC)).total_seconds() > 100
    finally:
        await small.close()
        await client.aclose()


async def test_robots_unreachable_means_nothing_is_fetched_for_now(fetcher: PageFetcher, site: Site) -> None:
    site.add("/robots.txt", "down", status=503, content_type="text/plain")
    site.add("/page.html", article_html("Page"))
    outcome = await one(fetcher, site, "/page.html")
    # Not skipped for good: tried again once the "nothing allowed" verdict (cached 300 s) has expired.
    assert outcome.outcome == "retry" and outcome.reason == "robots_unavailable"
    assert outcome.retry_at is not None and (outcome.retry_at - datetime.now(UTC)).total_seconds() >= 299
    await asyncio.sleep(0.3)
    last = await one(fetcher, site, "/page.html", attempt=1)  # NEWSFLOW_FETCH_RETRIES=1: that was the last try
    assert last.outcome == "failed" and last.reason == "robots_unavailable"
    assert site.hits("/page.html") == [] and len(site.hits("/robots.txt")) == 1


async def test_crawl_delay_keeps_the_host_closed(
    fetcher: PageFetcher, site: Site, redis_url: str, key_prefix: str
) -> None:
    site.add("/robots.txt", "User-agent: *\nCrawl-delay: 2\n", content_type="text/plain")
    site.add("/page.html", article_html("Page"))
    # robots.txt asks for 2 s between requests, more than the 1 s this page may take: the page is not squeezed in
    # early, it waits for the host's next turn (without using up a try).
    first = await one(fetcher, site, "/page.html")
    assert first.outcome == "deferred" and first.reason == "host_busy"
    assert first.retry_at is not None and (first.retry_at - datetime.now(UTC)).total_seconds() > 1.5
    client = aioredis.Redis.from_url(redis_url)
    try:
        ttl = await client.pttl(f"{key_prefix}:fetch:host:127.0.0.1:{site.port}")
        assert ttl > 1500  # the site asked for 2 s, more than NEWSFLOW_FETCH_HOST_DELAY_S
        again = await one(fetcher, site, "/page.html")
        assert again.outcome == "deferred" and again.reason == "host_busy"
        await asyncio.sleep(ttl / 1000 + 0.05)
        assert (await one(fetcher, site, "/page.html")).outcome == "fetched"
        assert await client.pttl(f"{key_prefix}:fetch:host:127.0.0.1:{site.port}") > 1500
    finally:
        await client.aclose()
    [robots], [page] = site.hits("/robots.txt"), site.hits("/page.html")
    assert page.at - robots.done >= 1.9


async def test_a_batch_sends_one_request_per_host_and_queues_the_rest_behind_it(
    fetcher: PageFetcher, site: Site
) -> None:
    for name in ("a", "b", "c"):
        site.add(f"/{name}.html", article_html(name))
    outcomes = await fetcher.process([job(site, "/a.html"), job(site, "/b.html"), job(site, "/c.html")])
    assert [o.outcome for o in outcomes if isinstance(o, FetchOutcome)] == ["fetched", "deferred", "deferred"]
    b, c = outcomes[1], outcomes[2]
    assert isinstance(b, FetchOutcome) and isinstance(c, FetchOutcome)
    assert b.retry_at is not None and c.retry_at is not None and c.retry_at > b.retry_at
    assert len(site.requests) == 2  # robots.txt (404: no rules) and the one page


def test_a_timeout_longer_than_the_claim_idle_time_is_refused(redis_url: str, key_prefix: str) -> None:
    with pytest.raises(ConfigurationError, match="FETCH_TIMEOUT_S"):
        PageFetcher(settings_for(redis_url, key_prefix, fetch_timeout_s=40, claim_idle_ms=30_000))


async def test_a_feed_redirected_to_another_host_is_read_in_that_hosts_turn(
    fetcher: PageFetcher, site: Site, other_site: Site, redis_url: str, key_prefix: str
) -> None:
    other_site.add("/robots.txt", "User-agent: *\nDisallow: /closed/\n", content_type="text/plain")
    other_site.add("/feed.xml", "<rss version='2.0'><channel><title>t</title></channel></rss>",
                   content_type="application/rss+xml")
    site.add("/feed.xml", redirect_to=other_site.url("/feed.xml"))
    site.add("/closed.xml", redirect_to=other_site.url("/closed/feed.xml"))
    answer = await fetcher.client.get(site.url("/feed.xml"), max_bytes=100_000, budget_s=5)
    assert isinstance(answer, Download) and answer.ok and answer.redirects == 1
    assert answer.url == site.url("/feed.xml") and answer.final_url == other_site.url("/feed.xml")
    assert [r.path for r in other_site.requests] == ["/robots.txt", "/feed.xml"]  # its robots.txt first
    client = aioredis.Redis.from_url(redis_url)
    try:  # the hop was made under 127.0.0.2's own lease, which now holds it for the politeness delay
        assert await client.pttl(f"{key_prefix}:fetch:host:127.0.0.2:{other_site.port}") > 0
    finally:
        await client.aclose()
    refused = await fetcher.client.get(site.url("/closed.xml"), max_bytes=100_000, budget_s=5)
    assert isinstance(refused, Refused) and refused.url == other_site.url("/closed/feed.xml")
    assert other_site.hits("/closed/feed.xml") == []

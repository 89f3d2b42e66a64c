"""The fetch stage as a real process against a local web site: feeds, sitemaps, robots, redirects, failures.

Every request goes to tests/httpsite.py on 127.0.0.1 (as `127.0.0.1` and as `localhost`: two hosts for
politeness); nothing leaves the machine.
"""

from __future__ import annotations

import gzip
import itertools
import subprocess
import sys
from collections.abc import Callable
from email.utils import formatdate
from typing import Any

import orjson
import pytest
import redis

from tests.conftest import ROOT, ServiceProcess, wait_for
from tests.httpsite import Request, Site
from tests.warcfiles import article_html

pytestmark = pytest.mark.integration

FAST = {
    "NEWSFLOW_FETCH_HOST_DELAY_S": "0.2",
    "NEWSFLOW_FETCH_TIMEOUT_S": "2",
    "NEWSFLOW_FETCH_RETRY_BASE_S": "0.3",
    "NEWSFLOW_FETCH_RETRIES": "1",
    "NEWSFLOW_FETCH_TICK_S": "0.2",
    "NEWSFLOW_HTTP_PORT": "0",
    # The site is on 127.0.0.1, which the fetch stage refuses by default.
    "NEWSFLOW_FETCH_ALLOW_PRIVATE": "true",
}


def rss(site: Site, items: list[tuple[str, str]]) -> str:
    """An RSS 2.0 feed linking to `items` (path or URL, title), paths on the site."""
    entries = "".join(
        f"<item><title>{title}</title><link>{path if '://' in path else site.url(path)}</link>"
        f"<pubDate>Wed, 01 May 2024 10:00:00 GMT</pubDate></item>"
        for path, title in items
    )
    return f'<?xml version="1.0"?><rss version="2.0"><channel><title>Local news</title>{entries}</channel></rss>'


def assert_polite(requests: list[Request]) -> None:
    """Requests to one host never overlap, and at least the politeness delay (0.2 s) separates them."""
    hits = sorted(requests, key=lambda r: r.at)
    for before, after in itertools.pairwise(hits):
        assert after.at >= before.done + 0.15, (before.path, after.path)


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "newsflow.cli", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=60)


def raw_entries(client: redis.Redis, prefix: str) -> dict[str, tuple[dict[str, Any], str]]:
    """url -> (raw article, origin) on the raw stream."""
    found = {}
    for _, fields in client.xrange(f"{prefix}:raw"):
        article = orjson.loads(fields[b"data"])
        found[article["url"]] = (article, fields[b"origin"].decode())
    return found


def source_state(env: dict[str, str]) -> dict[str, dict[str, Any]]:
    listing = cli(env, "sources", "list", "--json")
    assert listing.returncode == 0, listing.stderr
    return {row["url"]: row for row in map(orjson.loads, listing.stdout.splitlines())}


@pytest.fixture
def fetch_env(service_env: dict[str, str]) -> dict[str, str]:
    return {**service_env, **FAST}


def test_feeds_and_sitemaps_become_raw_articles_once_each(
    site: Site, fetch_env: dict[str, str], start_service: Callable[..., ServiceProcess], key_prefix: str,
    redis_url: str,
) -> None:
    client = redis.Redis.from_url(redis_url)
    site.add("/robots.txt", "User-agent: *\nDisallow: /private/\n", content_type="text/plain")
    stories = {"/news/a.html": "Alpha", "/news/b.html?utm_source=rss&id=7": "Beta", "/private/c.html": "Secret",
               "/gone.html": "Gone", "/flaky.html": "Flaky", "/moved.html": "Moved", "/notes.txt": "Notes",
               "/logo.jpg": "Logo"}
    for path, title in stories.items():
        site.add(path.split("?")[0], article_html(title))
    site.add("/flaky.html", article_html("Flaky"), fail_times=1)  # 503 once, then fine
    site.routes.pop("/gone.html")  # 404
    site.add("/moved.html", redirect_to=site.url("/news/final.html"))
    site.add("/news/final.html", article_html("Final"))
    site.add("/notes.txt", "plain notes", content_type="text/plain")
    site.add("/feed.xml", rss(site, list(stories.items())), content_type="application/rss+xml", etag='"v1"')
    # A sitemap index whose child is a gzip file with Google News entries (one repeats a feed item).
    urlset = (
        '<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9" '
        'xmlns:news="http://www.google.com/schemas/sitemap-news/0.9">'
        f"<url><loc>{site.url('/news/s1.html')}</loc><news:news><news:title>From the sitemap</news:title>"
        "<news:publication_date>2024-05-02T08:00:00Z</news:publication_date></news:news></url>"
        f"<url><loc>{site.url('/news/a.html')}</loc></url></urlset>"
    )
    site.add("/news/s1.html", article_html("Sitemap story"))
    site.add("/sitemap-news.xml.gz", gzip.compress(urlset.encode()), content_type="application/gzip",
             last_modified=formatdate(usegmt=True))
    site.add("/sitemap.xml", '<?xml version="1.0"?><sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
             f"<sitemap><loc>{site.url('/sitemap-news.xml.gz')}</loc></sitemap></sitemapindex>",
             content_type="application/xml")

    for url in (site.url("/feed.xml"), site.url("/sitemap.xml")):
        added = cli(fetch_env, "sources", "add", url, "--interval", "1")
        assert added.returncode == 0 and "added" in added.stderr, added.stderr
    again = cli(fetch_env, "sources", "add", site.url("/feed.xml"))
    assert "already registered" in again.stderr
    fetch = start_service("fetch", fetch_env)

    expected = {site.url("/news/a.html"), site.url("/news/b.html?id=7"), site.url("/flaky.html"),
                site.url("/news/final.html"), site.url("/news/s1.html")}
    entries = wait_for(lambda: (e := raw_entries(client, key_prefix)) and expected <= set(e) and e, timeout=90,
                       what="every fetchable page on the raw stream")
    feed_url = site.url("/feed.xml")
    alpha, origin = entries[site.url("/news/a.html")]
    # Listed by both sources, queued by whichever poll came first, fetched once.
    assert origin in (feed_url, site.url("/sitemap.xml")) and alpha["metadata"]["fetch"]["source_url"] == origin
    assert alpha["fetched_at"] and "<h1>Alpha</h1>" in alpha["html"]
    beta, origin = entries[site.url("/news/b.html?id=7")]
    assert origin == feed_url and beta["published_at"] == "2024-05-01T10:00:00+00:00"
    moved, _ = entries[site.url("/news/final.html")]
    assert moved["metadata"]["fetch"]["requested_url"] == site.url("/moved.html")
    s1, origin = entries[site.url("/news/s1.html")]
    assert origin == site.url("/sitemap.xml") and s1["published_at"] == "2024-05-02T08:00:00Z"
    assert s1["metadata"]["feed"]["title"] == "From the sitemap"

    def settled() -> dict[str, dict[str, Any]] | None:
        state = source_state(fetch_env)[feed_url]["state"]
        # b, flaky, moved (and a, unless the sitemap queued it) fetched; gone (404) failed; private (robots.txt)
        # and notes (not HTML) skipped.
        return state if state and state["pages_fetched"] >= 3 and state["pages_failed"] == 1 \
            and state["pages_skipped"] == 2 and state["polls"] >= 2 else None

    feed_state = wait_for(settled, timeout=60, what="the feed's pages settled and a second poll")
    assert feed_state["kind"] == "feed" and not feed_state["failing"]
    assert feed_state["last_page_error"] == "http_404" and feed_state["last_page_error_url"] == site.url("/gone.html")
    # Each page once, the image never (not a page), the private one never (robots.txt).
    for path in ("/news/a.html", "/news/b.html?id=7", "/news/final.html", "/news/s1.html"):
        assert len(site.hits(path)) == 1, path
    assert site.hits("/logo.jpg") == [] and site.hits("/private/c.html") == []
    assert len(site.hits("/flaky.html")) == 2  # the 503, then the retry
    # Conditional GETs: the feed's ETag and the sitemap's Last-Modified came back, and 304 was answered.
    feed_hits = site.hits("/feed.xml")
    assert feed_hits[0].status == 200 and all(h.headers.get("if-none-match") == '"v1"' for h in feed_hits[1:])
    assert {h.status for h in feed_hits[1:]} == {304}
    wait_for(lambda: len(site.hits("/sitemap-news.xml.gz")) >= 2, timeout=30, what="a second sitemap poll")
    assert site.hits("/sitemap-news.xml.gz")[1].status == 304
    assert_polite(site.requests)
    assert client.zcard(f"{key_prefix}:fetch:seen") == 8  # 7 from the feed (not the image) + the sitemap's new one
    assert fetch.stop() == 0
    assert '"article.fetched"' in fetch.output()


def test_a_failing_feed_is_recorded_on_its_source_and_in_status(
    site: Site, fetch_env: dict[str, str], start_service: Callable[..., ServiceProcess],
) -> None:
    site.add("/broken.xml", "oops", status=500, content_type="text/plain")
    site.add("/notafeed.xml", "<html><body>hello</body></html>", content_type="text/html")
    for path in ("/broken.xml", "/notafeed.xml"):
        assert cli(fetch_env, "sources", "add", site.url(path), "--interval", "60").returncode == 0
    start_service("fetch", fetch_env)

    def failing() -> dict[str, dict[str, Any]] | None:
        states = {url: row["state"] for url, row in source_state(fetch_env).items()}
        done = all(s and s["consecutive_failures"] >= 2 for s in states.values())
        return states if done else None

    states = wait_for(failing, timeout=60, what="both sources failing twice (backoff below the 60 s interval)")
    assert states[site.url("/broken.xml")]["last_error"] == "http_500"
    assert states[site.url("/notafeed.xml")]["last_error"].startswith("not_a_feed")
    status = cli(fetch_env, "status", "--json")
    document = orjson.loads(status.stdout)
    failing_urls = {s["url"] for s in document["sources"] if s["failing"]}
    assert failing_urls == {site.url("/broken.xml"), site.url("/notafeed.xml")}
    table = cli(fetch_env, "sources", "list")
    assert "http_500" in table.stdout and "in a row" in table.stdout
    removed = cli(fetch_env, "sources", "remove", site.url("/broken.xml"))
    assert removed.returncode == 0 and "removed" in removed.stderr
    assert site.url("/broken.xml") not in source_state(fetch_env)
    assert cli(fetch_env, "sources", "remove", "nope").returncode == 2


def test_two_replicas_fetch_each_url_once_and_take_turns_per_host(
    site: Site, fetch_env: dict[str, str], start_service: Callable[..., ServiceProcess], key_prefix: str,
    redis_url: str,
) -> None:
    client = redis.Redis.from_url(redis_url)
    paths = [f"/n/{i}.html" for i in range(12)]
    for i, path in enumerate(paths):
        site.add(path, article_html(f"Story {i}"))
    # The same server as two hosts: 127.0.0.1 and localhost each get their own politeness lease.
    on_a = [(site.url(p), f"Story {i}") for i, p in enumerate(paths[:6])]
    on_b = [(site.url(p).replace("127.0.0.1", "localhost"), f"Story {i}") for i, p in enumerate(paths[6:], 6)]
    site.add("/feed-a.xml", rss(site, on_a), content_type="application/rss+xml")
    site.add("/feed-b.xml", rss(site, on_b), content_type="application/rss+xml")
    site.add("/feed-both.xml", rss(site, on_a[3:] + on_b[:3]), content_type="application/rss+xml")  # overlaps
    for path in ("/feed-a.xml", "/feed-b.xml", "/feed-both.xml"):
        assert cli(fetch_env, "sources", "add", site.url(path), "--interval", "1").returncode == 0
    start_service("fetch", fetch_env)
    start_service("fetch", fetch_env)
    wait_for(lambda: len(raw_entries(client, key_prefix)) >= 12, timeout=90, what="12 pages fetched")
    wait_for(lambda: all(len(site.hits(p)) >= 3 for p in ("/feed-a.xml", "/feed-b.xml")), timeout=30,
             what="a few polls by either replica")
    assert len(raw_entries(client, key_prefix)) == 12
    for path in paths:
        assert len(site.hits(path)) == 1, path
    for host in ("127.0.0.1", "localhost"):
        assert_polite([r for r in site.requests if r.headers.get("host", "").startswith(host)])


def test_private_addresses_are_refused_by_default(
    site: Site, fetch_env: dict[str, str], start_service: Callable[..., ServiceProcess], key_prefix: str,
    redis_url: str,
) -> None:
    env = {k: v for k, v in fetch_env.items() if k != "NEWSFLOW_FETCH_ALLOW_PRIVATE"}  # the default: refuse
    site.add("/feed.xml", rss(site, [("/a.html", "A")]), content_type="application/rss+xml")
    for url in ("ftp://news.example/feed.xml", "file:///etc/passwd", "news.example/feed.xml"):
        refused = cli(env, "sources", "add", url)
        assert refused.returncode == 2 and "not an http(s) URL" in refused.stderr, refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    # An address written out gets a note (the stage that polls it may allow it); a name is not resolved by the
    # CLI. The fetch stage refuses both: the address before any connection, the name once it resolves.
    noted = cli(env, "sources", "add", site.url("/feed.xml"), "--interval", "60")
    assert noted.returncode == 0 and "127.0.0.1 (loopback) is not a public address" in noted.stderr, noted.stderr
    named = site.url("/feed.xml").replace("127.0.0.1", "localhost")
    assert cli(env, "sources", "add", named, "--interval", "60").returncode == 0
    start_service("fetch", env)

    def refused() -> dict[str, dict[str, Any]] | None:
        states = {url: row["state"] for url, row in source_state(env).items()}
        return states if all(s and s["consecutive_failures"] >= 1 for s in states.values()) else None

    states = wait_for(refused, timeout=30, what="both polls refused")
    assert states[site.url("/feed.xml")]["last_error"] == "blocked_address: 127.0.0.1 (loopback)"
    by_name = states[named]["last_error"]
    assert by_name.startswith("blocked_address: localhost -> ") and "(loopback)" in by_name
    assert all(s["failing"] for s in states.values())
    assert site.requests == []
    client = redis.Redis.from_url(redis_url)
    assert client.xlen(f"{key_prefix}:dlq") == 0


def test_a_redirect_to_another_host_waits_for_that_hosts_turn_and_obeys_its_robots(
    site: Site, other_site: Site, fetch_env: dict[str, str], start_service: Callable[..., ServiceProcess],
    key_prefix: str, redis_url: str,
) -> None:
    """127.0.0.1 redirects to 127.0.0.2, whose robots.txt disallows /private/ and asks for 1 s between requests
    (five times NEWSFLOW_FETCH_HOST_DELAY_S): each hop is fetched in 127.0.0.2's own turn, two replicas running."""
    client = redis.Redis.from_url(redis_url)
    other_site.add("/robots.txt", "User-agent: *\nDisallow: /private/\nCrawl-delay: 1\n", content_type="text/plain")
    items = []
    for i in range(3):
        site.add(f"/go/{i}", redirect_to=other_site.url(f"/story/{i}.html"))
        other_site.add(f"/story/{i}.html", article_html(f"Moved story {i}"))
        items.append((f"/go/{i}", f"Moved {i}"))
    site.add("/go/secret", redirect_to=other_site.url("/private/secret.html"))
    other_site.add("/private/secret.html", article_html("Secret"))
    items.append(("/go/secret", "Secret"))
    for i in range(3):  # pages the feed lists on 127.0.0.2 directly, competing for its turns
        other_site.add(f"/direct/{i}.html", article_html(f"Direct story {i}"))
        items.append((other_site.url(f"/direct/{i}.html"), f"Direct {i}"))
    site.add("/feed.xml", rss(site, items), content_type="application/rss+xml")
    feed = site.url("/feed.xml")
    assert cli(fetch_env, "sources", "add", feed, "--interval", "1").returncode == 0
    start_service("fetch", fetch_env)
    start_service("fetch", fetch_env)

    moved = {other_site.url(f"/story/{i}.html"): site.url(f"/go/{i}") for i in range(3)}
    direct = {other_site.url(f"/direct/{i}.html") for i in range(3)}
    entries = wait_for(lambda: (e := raw_entries(client, key_prefix)) and set(moved) | direct <= set(e) and e,
                       timeout=90, what="the redirected and the direct pages on the raw stream")
    for final, listed in moved.items():
        article, origin = entries[final]
        assert origin == feed and article["url"] == final  # http, as the server redirected: no https upgrade
        assert article["metadata"]["fetch"]["requested_url"] == listed
        assert article["metadata"]["fetch"]["final_url"] == final
    wait_for(lambda: (s := source_state(fetch_env)[feed]["state"]) and s["pages_skipped"] >= 1, timeout=30,
             what="the disallowed hop counted as skipped")
    # 127.0.0.2's robots.txt came first, its disallowed page never, and its Crawl-delay held between every two of
    # its requests — redirect hops included — whichever replica made them.
    hits = sorted(other_site.requests, key=lambda r: r.at)
    assert hits[0].path == "/robots.txt" and len(other_site.hits("/robots.txt")) == 1
    assert other_site.hits("/private/secret.html") == []
    for before, after in itertools.pairwise(hits):
        assert after.at >= before.done + 0.95, (before.path, after.path, round(after.at - before.done, 3))
    assert_polite(site.requests)
    for path in [f"/story/{i}.html" for i in range(3)] + [f"/direct/{i}.html" for i in range(3)]:
        assert len(other_site.hits(path)) == 1, path
    # The hop's target joined the seen set: a feed listing it later does not fetch it again.
    assert client.zscore(f"{key_prefix}:fetch:seen", other_site.url("/story/0.html")) is not None

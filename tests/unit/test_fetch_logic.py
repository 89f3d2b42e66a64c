"""The fetch stage's pure logic: URL normalisation, feeds and sitemaps, robots.txt, backoff, ordering."""

from __future__ import annotations

import gzip

import pytest

from services.fetch.documents import DocumentError, Link, parse_document
from services.fetch.poller import newest_first, poll_backoff_s
from services.fetch.robots import Robots
from services.fetch.urls import host_of, normalise_source_url, normalise_url, origin_of
from shared.settings import Settings

LIMIT = 10_000_000


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("HTTPS://News.Example.COM:443/a/./b/../story.html#comments", "https://news.example.com/a/story.html"),
        ("https://news.example/story?utm_source=rss&utm_medium=x&id=7&b=1", "https://news.example/story?b=1&id=7"),
        ("http://127.0.0.1:8123/n/1.html?fbclid=abc", "http://127.0.0.1:8123/n/1.html"),
        ("/relative/page.html", "https://news.example/relative/page.html"),
        ("mailto:desk@news.example", None),
        ("javascript:void(0)", None),
        ("https://news.example/photo.jpg", None),
        ("https://news.example/report.pdf", None),
        ("", None),
    ],
)
def test_urls_are_normalised_so_one_page_has_one_spelling(url: str, expected: str | None) -> None:
    assert normalise_url(url, base="https://news.example/section/") == expected


def test_hosts_origins_and_source_urls() -> None:
    assert host_of("http://LOCALHOST:8080/x") == "localhost:8080"
    assert origin_of("https://news.example/a/b?c") == "https://news.example"
    assert normalise_source_url(" HTTPS://News.Example/feeds/all.rss#x ") == "https://news.example/feeds/all.rss"
    assert normalise_source_url("https://n.example/news-sitemap.xml.gz") == "https://n.example/news-sitemap.xml.gz"
    with pytest.raises(ValueError, match="not an http"):
        normalise_source_url("ftp://n.example/feed")


RSS = b"""<?xml version="1.0"?><rss version="2.0"><channel><title>Wire</title>
<item><title>First</title><link>https://news.example/1?utm_campaign=x</link>
<pubDate>Wed, 01 May 2024 10:00:00 GMT</pubDate></item>
<item><title>Relative</title><link>/2</link></item>
<item><title>Dup</title><link>https://news.example/1</link></item>
<item><title>No link</title></item>
</channel></rss>"""

ATOM = b"""<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom"><title>A</title>
<entry><title>Atom story</title><link rel="enclosure" href="https://news.example/a.mp3"/>
<link rel="alternate" href="https://news.example/atom-story"/><updated>2024-05-03T09:00:00Z</updated></entry>
</feed>"""

RDF = b"""<?xml version="1.0"?><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"
xmlns="http://purl.org/rss/1.0/"><channel rdf:about="https://news.example/"><title>R</title></channel>
<item rdf:about="https://news.example/rdf-story"><title>RDF story</title><link>https://news.example/rdf-story</link>
</item></rdf:RDF>"""

INDEX = b"""<?xml version="1.0"?><sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
<sitemap><loc>https://news.example/sitemap-news.xml.gz</loc></sitemap><sitemap><loc>/sitemap-2.xml</loc></sitemap>
</sitemapindex>"""

URLSET = b"""<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"
xmlns:news="http://www.google.com/schemas/sitemap-news/0.9">
<url><loc>https://news.example/s/1</loc><lastmod>2024-05-02</lastmod></url>
<url><loc>https://news.example/s/2</loc><news:news><news:title>Two</news:title>
<news:publication_date>2024-05-02T08:00:00Z</news:publication_date></news:news></url>
<url><loc>https://news.example/s/cover.png</loc></url></urlset>"""


def test_rss_atom_and_rdf_feeds_list_their_entries() -> None:
    feed = parse_document(RSS, "https://news.example/rss", limit=LIMIT)
    assert feed.kind == "feed" and feed.title == "Wire"
    assert [link.url for link in feed.links] == ["https://news.example/1", "https://news.example/2"]
    assert feed.links[0].title == "First" and feed.links[0].published_at == "2024-05-01T10:00:00+00:00"
    atom = parse_document(ATOM, "https://news.example/atom", limit=LIMIT)
    assert [link.url for link in atom.links] == ["https://news.example/atom-story"]
    assert atom.links[0].modified == "2024-05-03T09:00:00+00:00"
    rdf = parse_document(RDF, "https://news.example/rdf", limit=LIMIT)
    assert [link.url for link in rdf.links] == ["https://news.example/rdf-story"]


def test_sitemaps_index_urlset_gzip_and_text() -> None:
    index = parse_document(INDEX, "https://news.example/sitemap.xml", limit=LIMIT)
    assert index.kind == "sitemap_index"
    assert index.sitemaps == ["https://news.example/sitemap-news.xml.gz", "https://news.example/sitemap-2.xml"]
    urlset = parse_document(gzip.compress(URLSET), "https://news.example/sitemap-news.xml.gz", limit=LIMIT)
    assert [link.url for link in urlset.links] == ["https://news.example/s/1", "https://news.example/s/2"]
    two = urlset.links[1]
    assert (two.title, two.published_at, two.modified) == ("Two", "2024-05-02T08:00:00Z", "2024-05-02T08:00:00Z")
    text = parse_document(b"https://news.example/t/1\nhttps://news.example/t/2\n\n", "https://news.example/s.txt",
                          limit=LIMIT)
    assert [link.url for link in text.links] == ["https://news.example/t/1", "https://news.example/t/2"]


def test_what_is_neither_is_refused_and_a_gzip_bomb_stays_small() -> None:
    with pytest.raises(DocumentError):
        parse_document(b"<html><body>a web page</body></html>", "https://news.example/", limit=LIMIT)
    with pytest.raises(DocumentError, match="not a sitemap"):
        parse_document(b'<?xml version="1.0"?><urlset-ish/>', "https://news.example/", limit=LIMIT)
    bomb = gzip.compress(b"<urlset>" + b" " * 5_000_000 + b"</urlset>")
    with pytest.raises(DocumentError, match="inflates past"):
        parse_document(bomb, "https://news.example/s.xml.gz", limit=1_000_000)
    # An entity-expansion document does not expand (no entities, no DTDs).
    lol = (b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]>'
           b'<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"><url><loc>https://n.example/&b;</loc></url>'
           b"</urlset>")
    links = parse_document(lol, "https://n.example/", limit=LIMIT).links
    assert all("aaaaaaaaaa" not in link.url for link in links)


def test_robots_rules_and_the_rfc_answers_for_missing_ones() -> None:
    rules = Robots.from_response(200, b"User-agent: *\nDisallow: /private/\nCrawl-delay: 2\n")
    assert rules.allows("https://n.example/news/1", "newsflow-fetch/0.1")
    assert not rules.allows("https://n.example/private/1", "newsflow-fetch/0.1")
    assert rules.crawl_delay("newsflow-fetch/0.1") == 2.0
    just_us = Robots.from_response(200, b"User-agent: newsflow-fetch\nDisallow: /\n\nUser-agent: *\nAllow: /\n")
    assert not just_us.allows("https://n.example/a", "newsflow-fetch/0.1")
    assert Robots.from_response(404, b"").allows("https://n.example/anything", "x")
    assert not Robots.from_response(503, b"").allows("https://n.example/anything", "x")
    assert not Robots.from_response(None, b"").allows("https://n.example/anything", "x")
    assert Robots.from_json(rules.to_json()) == rules


def test_failed_polls_back_off_up_to_the_interval_and_links_come_newest_first() -> None:
    settings = Settings(_env_file=None, fetch_retry_base_s=10)  # type: ignore[call-arg]
    assert [poll_backoff_s(settings, 300, n) for n in (1, 2, 3, 4)] == [10, 40, 160, 300]
    links = [Link("u1", modified="2024-05-01"), Link("u2"), Link("u3", modified="2024-05-03"), Link("u4")]
    assert [link.url for link in newest_first(links)] == ["u3", "u1", "u2", "u4"]

"""Feeds and sitemaps as lists of article URLs: RSS 0.9x/1.0/2.0 and Atom (feedparser), sitemap indexes and
urlsets (Google News extensions included), gzip-compressed sitemaps and plain-text ones.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from time import struct_time
from typing import Literal
from urllib.parse import urljoin, urlsplit

from lxml import etree

from services.fetch.urls import normalise_url

GZIP_MAGIC = b"\x1f\x8b"
SITEMAP_NS = "http://www.sitemaps.org/schemas/sitemap/0.9"
NEWS_NS = "http://www.google.com/schemas/sitemap-news/0.9"

DocumentKind = Literal["feed", "sitemap", "sitemap_index"]


class DocumentError(ValueError):
    """The body is neither a feed nor a sitemap (or is damaged beyond reading)."""


@dataclass(frozen=True, slots=True)
class Link:
    """An article URL a document lists, with what the document says about it."""

    url: str
    title: str | None = None
    published_at: str | None = None
    # The document's own date for the entry (lastmod, updated): newest first when a poll must choose.
    modified: str | None = None


@dataclass(frozen=True, slots=True)
class Document:
    """What one feed or sitemap lists: articles, and (an index) more sitemaps."""

    kind: DocumentKind
    links: list[Link] = field(default_factory=list)
    sitemaps: list[str] = field(default_factory=list)
    title: str | None = None


def gunzip(body: bytes, *, limit: int) -> bytes:
    """A `.xml.gz` sitemap's content, refusing to inflate past `limit` bytes (a zip bomb stays small)."""
    try:
        data = zlib.decompressobj(31).decompress(body, limit + 1)
    except zlib.error as exc:
        raise DocumentError(f"corrupt gzip: {exc}") from exc
    if len(data) > limit:
        raise DocumentError(f"the document inflates past {limit:,} bytes")
    return data


def parse_document(body: bytes, url: str, *, limit: int) -> Document:
    """A feed or a sitemap, told apart by its root element; relative links resolve against `url`."""
    if body.startswith(GZIP_MAGIC):
        body = gunzip(body, limit=limit)
    head = body[:2048].lstrip().lower()
    if b"<urlset" in head or b"<sitemapindex" in head:
        return parse_sitemap(body, url)
    if head.startswith((b"http://", b"https://")):
        return parse_text_sitemap(body, url)
    return parse_feed(body, url)


def _xml_root(body: bytes) -> etree._Element:
    # No entities, no network, no DTDs: a sitemap is data from the internet.
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, recover=True, huge_tree=False)
    try:
        root = etree.fromstring(body, parser=parser)
    except etree.XMLSyntaxError as exc:
        raise DocumentError(f"not XML: {exc}") from exc
    if root is None:
        raise DocumentError("not XML: empty document")
    return root


def _local(tag: object) -> str:
    return str(tag).rpartition("}")[2] if isinstance(tag, str) else ""


def _child_text(element: etree._Element, name: str, namespace: str | None = None) -> str | None:
    for child in element:
        if _local(child.tag) == name and (namespace is None or str(child.tag).startswith("{" + namespace)):
            text = (child.text or "").strip()
            return text or None
    return None


def parse_sitemap(body: bytes, url: str) -> Document:
    """A sitemap index (its child sitemaps) or a urlset (its pages, with news:title / publication_date)."""
    root = _xml_root(body)
    kind = _local(root.tag)
    if kind == "sitemapindex":
        sitemaps = []
        for entry in root:
            loc = _child_text(entry, "loc") if _local(entry.tag) == "sitemap" else None
            absolute = normalise_sitemap_url(loc, url) if loc else None
            if absolute:
                sitemaps.append(absolute)
        return Document("sitemap_index", sitemaps=list(dict.fromkeys(sitemaps)))
    if kind != "urlset":
        raise DocumentError(f"an XML document with root <{kind}> is not a sitemap")
    links = []
    for entry in root:
        if _local(entry.tag) != "url":
            continue
        loc = _child_text(entry, "loc")
        page = normalise_url(loc, url) if loc else None
        if page is None:
            continue
        news = next((c for c in entry if _local(c.tag) == "news"), None)
        title = _child_text(news, "title") if news is not None else None
        published = _child_text(news, "publication_date") if news is not None else None
        modified = _child_text(entry, "lastmod") or published
        links.append(Link(page, title=title, published_at=published, modified=modified))
    return Document("sitemap", links=_unique(links))


def normalise_sitemap_url(loc: str, base: str) -> str | None:
    """A child sitemap's URL (normalised like a page, but `.xml.gz` is what it is, not a download)."""
    absolute = urljoin(base, loc.strip())
    return absolute if urlsplit(absolute).scheme in ("http", "https") else None


def parse_text_sitemap(body: bytes, url: str) -> Document:
    """One URL per line (the sitemap protocol's text form)."""
    links = [normalise_url(line.strip(), url) for line in body.decode("utf-8", "replace").splitlines()]
    return Document("sitemap", links=_unique([Link(link) for link in links if link]))


def _iso(moment: struct_time | None) -> str | None:
    if moment is None:
        return None
    return datetime(*moment[:6], tzinfo=UTC).isoformat()


def parse_feed(body: bytes, url: str) -> Document:
    """RSS or Atom through feedparser: each entry's link (Atom: rel=alternate), title and dates."""
    import feedparser  # deferred: ~100 ms of imports, needed only by the fetch stage

    parsed = feedparser.parse(body, response_headers={"content-location": url})
    version = parsed.get("version") or ""
    if not version and not parsed.entries:
        problem = parsed.get("bozo_exception")
        raise DocumentError(f"neither a feed nor a sitemap{f': {problem}' if problem else ''}")
    links = []
    for entry in parsed.entries:
        href = entry.get("link")
        for candidate in entry.get("links", []):
            if candidate.get("rel", "alternate") == "alternate" and candidate.get("href"):
                href = candidate["href"]
                break
        page = normalise_url(href, url) if href else None
        if page is None:
            continue
        published = _iso(entry.get("published_parsed")) or entry.get("published")
        modified = _iso(entry.get("updated_parsed")) or published
        links.append(Link(page, title=entry.get("title") or None, published_at=published, modified=modified))
    return Document("feed", links=_unique(links), title=parsed.feed.get("title") or None)


def _unique(links: list[Link]) -> list[Link]:
    seen: dict[str, Link] = {}
    for link in links:
        seen.setdefault(link.url, link)
    return list(seen.values())


"""URL normalisation for the seen-URL set: one spelling per page, so a page listed twice is fetched once."""

from __future__ import annotations

import posixpath
from urllib.parse import urljoin, urlsplit, urlunsplit

from courlan import normalize_url
from courlan.filters import extension_filter

MAX_URL_LENGTH = 4096


def _dot_segments(path: str) -> str:
    """RFC 3986 §5.2.4: `/a/./b/../c` -> `/a/c` (courlan leaves them)."""
    if "/." not in path:
        return path
    resolved = posixpath.normpath(path)
    if path.endswith("/") and not resolved.endswith("/"):
        resolved += "/"
    return resolved if resolved.startswith("/") else "/" + resolved


def normalise_url(url: str, base: str | None = None) -> str | None:
    """The canonical spelling of an http(s) page URL, or None when it is not one worth fetching.

    Relative links resolve against `base`; courlan lower-cases scheme and host, drops default ports and
    tracking parameters (utm_*, fbclid, …) and sorts the query; the fragment goes (it never reaches the server)
    and dot segments resolve. Links to images, archives, media and documents are not pages.
    """
    text = url.strip()
    if not text or len(text) > MAX_URL_LENGTH:
        return None
    if base:
        text = urljoin(base, text)
    parts = urlsplit(text)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    try:
        normalised = normalize_url(urlunsplit(parts._replace(fragment="")))
    except ValueError:
        return None
    parts = urlsplit(normalised)
    normalised = urlunsplit(parts._replace(path=_dot_segments(parts.path or "/"), fragment=""))
    if not extension_filter(normalised):
        return None
    return normalised


def host_of(url: str) -> str:
    """The politeness key: host and port as the URL names them (`news.example`, `127.0.0.1:8080`)."""
    return urlsplit(url).netloc.lower()


def origin_of(url: str) -> str:
    """`scheme://host[:port]`: where robots.txt lives for this URL."""
    parts = urlsplit(url)
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}"


def normalise_source_url(url: str) -> str:
    """A feed or sitemap URL as registered: http(s) with a host, scheme and host lower-case, no fragment.

    Not `normalise_url`: `.xml.gz` and `.rss` are exactly what a source may be, and its query is kept as given.
    """
    text = url.strip()
    parts = urlsplit(text)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{url!r} is not an http(s) URL")
    if len(text) > MAX_URL_LENGTH:
        raise ValueError(f"the URL is longer than {MAX_URL_LENGTH} characters")
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), parts.path or "/", parts.query, ""))

"""Raw-article validation and identity: what ingest accepts, the stable article id, the content hash."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from datetime import datetime
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import orjson
from pydantic import ValidationError

from shared.errors import Rejected
from shared.events import IngestedArticle, IngestSection, RawArticle

# Query parameters that identify a campaign or a click, not a page.
TRACKING_PARAMS = re.compile(
    r"^(utm_\w+|fbclid|gclid|dclid|msclkid|mc_cid|mc_eid|igshid|ref|ref_src|cmpid|ocid)$", re.I
)
# C0/C1 control characters other than tab, newline and carriage return: never text, and PostgreSQL rejects NUL.
CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
# Above this share of control characters the "text" is binary data, not an article.
MAX_CONTROL_SHARE = 0.01
WHITESPACE = re.compile(r"\s+")


def parse_raw_payload(payload: bytes, *, max_bytes: int) -> RawArticle:
    """Decode and validate one raw payload; `Rejected` with a specific reason when it cannot be an article."""
    if len(payload) > max_bytes:
        raise Rejected("too_large", f"payload is {len(payload):,} bytes; the limit is {max_bytes:,}")
    try:
        payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Rejected("invalid_utf8", f"payload is not valid UTF-8 at byte {exc.start}") from exc
    try:
        data = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise Rejected("invalid_json", f"payload is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise Rejected("invalid_shape", f"expected a JSON object, got {type(data).__name__}")
    return validate_raw_article(data)


def validate_raw_article(data: dict[str, Any]) -> RawArticle:
    """Validate a decoded raw article (the same rules for CLI, HTTP and XADD producers)."""
    version = data.pop("schema_version", 1)
    if version != 1:
        raise Rejected("unknown_schema_version", f"schema_version {version!r} is not supported (expected 1)")
    unknown = sorted(set(data) - set(RawArticle.model_fields))
    if unknown:
        raise Rejected("invalid_shape", f"unknown field(s) {', '.join(map(repr, unknown))}; a raw article has "
                       f"{', '.join(RawArticle.model_fields)}")
    has_text, has_html = data.get("text") is not None, data.get("html") is not None
    if has_text and has_html:
        raise Rejected("both_text_and_html", "give exactly one of 'text' or 'html', not both")
    if not has_text and not has_html:
        raise Rejected("no_text_or_html", "one of 'text' or 'html' is required")
    try:
        raw = RawArticle.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or '<root>'}: {e['msg']}" for e in exc.errors()[:10])
        raise Rejected("invalid_shape", problems) from exc
    content = raw.text if raw.text is not None else raw.html
    assert content is not None
    if not content.strip():
        raise Rejected("empty_content", "the article's text/html is empty or whitespace only")
    controls = len(CONTROL_CHARS.findall(content))
    if controls > MAX_CONTROL_SHARE * len(content):
        raise Rejected("binary_content", f"{controls:,} control characters in {len(content):,}: binary data, not text")
    return raw


def _spelling(url: str | None, *, keep_scheme: bool) -> str | None:
    """Lower-case scheme and host, no fragment, default port, tracking parameters or trailing slash."""
    if not url or not url.strip():
        return None
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        return None
    host = parts.hostname.lower()
    defaults = ({"http": 80, "https": 443}[scheme],) if keep_scheme else (80, 443)
    if parts.port and parts.port not in defaults:
        host = f"{host}:{parts.port}"
    query = urlencode(
        sorted((k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not TRACKING_PARAMS.match(k))
    )
    path = parts.path.rstrip("/") or "/"
    return urlunsplit((scheme if keep_scheme else "https", host, path, query, ""))


def canonical_url(url: str | None) -> str | None:
    """The article id's key: `_spelling` with every scheme https, so a page's http and https URLs are one article."""
    return _spelling(url, keep_scheme=False)


def record_url(url: str | None) -> str | None:
    """The URL the record keeps: the same spelling with the URL's own scheme (an http-only site stays reachable)."""
    return _spelling(url, keep_scheme=True)


def normalised_content(content: str) -> str:
    """Content as compared for identity: NFC, whitespace collapsed, case folded."""
    return WHITESPACE.sub(" ", unicodedata.normalize("NFC", content)).strip().casefold()


def content_hash(content: str) -> str:
    """SHA-256 of the normalised content."""
    return hashlib.sha256(normalised_content(content).encode()).hexdigest()


def article_id(url: str | None, digest: str) -> str:
    """Stable id: from the canonical URL when there is one, else from the content, so re-pushes update one record."""
    key = f"url:{url}" if url else f"content:{digest}"
    return hashlib.sha256(key.encode()).hexdigest()[:24]


def ingest_article(raw: RawArticle, *, origin: str, received_at: datetime) -> IngestedArticle:
    """Identity, origin and the cleaned-of-control-characters content of one valid raw article."""
    kind: Literal["text", "html"] = "text" if raw.text is not None else "html"
    content = CONTROL_CHARS.sub("", raw.text if raw.text is not None else raw.html or "")
    url = record_url(raw.url)
    digest = content_hash(content)
    return IngestedArticle(
        id=article_id(canonical_url(raw.url), digest),
        ingest=IngestSection(
            external_id=raw.id,
            url=url or (raw.url.strip() if raw.url else None),
            origin=origin,
            received_at=received_at,
            content_hash=digest,
            kind=kind,
            content=content,
            title=raw.title,
            source=raw.source,
            published_at=raw.published_at,
            fetched_at=raw.fetched_at,
            updated_at=raw.updated_at,
            metadata=raw.metadata,
        ),
    )

"""An HTTP response body as an HTML page: is it HTML, undo its transfer/content encodings, decode its charset.

Shared by the fetch stage (pages it downloads) and `newsflow push FILE.warc` (responses a crawler archived), so a
page reads the same whichever way it arrived. The charset comes from the HTTP header, then the page's own
`<meta>`, then detection — the order browsers use (WHATWG), with their aliases (ISO-8859-1 means Windows-1252).
"""

from __future__ import annotations

import codecs
import re
import zlib
from dataclasses import dataclass
from typing import Literal

HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
# How far into a page its <meta charset> may be (the HTML spec's prescan reads 1024 bytes; pages stray further).
META_PRESCAN_BYTES = 4096
DETECT_BYTES = 200_000
META_CHARSET = re.compile(rb"""<meta[^>]{0,300}?charset\s*=\s*["']?\s*([a-zA-Z0-9_.:-]{1,40})""", re.I)
HTML_START = re.compile(rb"^\s*(?:<!--.*?-->\s*)*<(?:!doctype\s+html|html|head|body)[\s>]", re.I | re.S)
BOMS = ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be"))
# WHATWG encoding labels that do not mean what Python's codec of the same name does.
ALIASES = {
    "iso-8859-1": "cp1252", "iso8859-1": "cp1252", "latin1": "cp1252", "latin-1": "cp1252", "l1": "cp1252",
    "us-ascii": "cp1252", "ascii": "cp1252", "iso-8859-9": "cp1254", "tis-620": "cp874", "x-sjis": "shift_jis",
    "gb2312": "gb18030", "gbk": "gb18030", "x-user-defined": "cp1252", "utf8": "utf-8",
}

CharsetSource = Literal["bom", "http", "meta", "utf-8", "detected", "fallback"]


class BodyError(ValueError):
    """The body cannot be turned back into the bytes the server meant (bad chunking, corrupt gzip, too big)."""


@dataclass(frozen=True, slots=True)
class DecodedPage:
    """An HTML page as text, and how its charset was decided."""

    html: str
    encoding: str
    charset_from: CharsetSource


def media_type(content_type: str | None) -> str | None:
    """`text/html; charset=utf-8` -> `text/html` (None when absent)."""
    if not content_type:
        return None
    return content_type.split(";", 1)[0].strip().lower() or None


def header_charset(content_type: str | None) -> str | None:
    """The `charset=` parameter of a Content-Type header."""
    if not content_type:
        return None
    for parameter in content_type.split(";")[1:]:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip("\"'"):
            return value.strip().strip("\"'")
    return None


def looks_like_html(content_type: str | None, body: bytes) -> bool:
    """HTML by its declared type; with no type (or a generic one), by how the body starts."""
    declared = media_type(content_type)
    if declared in HTML_TYPES:
        return True
    if declared not in (None, "application/octet-stream", "text/plain"):
        return False
    head = body[:1024].removeprefix(codecs.BOM_UTF8)
    return bool(HTML_START.match(head))


def codec_for(label: str | None) -> str | None:
    """A Python codec for an encoding label, or None when the label names none."""
    if not label:
        return None
    name = ALIASES.get(label.strip().lower(), label.strip().lower())
    try:
        return codecs.lookup(name).name
    except LookupError:
        return None


def dechunk(body: bytes, *, limit: int) -> bytes:
    """Undo `Transfer-Encoding: chunked` (RFC 9112 §7.1); a body cut short keeps the chunks it has."""
    out = bytearray()
    position = 0
    while position < len(body):
        line_end = body.find(b"\r\n", position)
        if line_end < 0:
            break
        size_text = body[position:line_end].split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError as exc:
            raise BodyError(f"bad chunk size {size_text[:20]!r}") from exc
        if size == 0:
            break
        start = line_end + 2
        out += body[start : start + size]
        if len(out) > limit:
            raise BodyError(f"body is larger than {limit:,} bytes")
        position = start + size + 2
    return bytes(out)


def decompress(body: bytes, encoding: str, *, limit: int) -> bytes:
    """Undo a `Content-Encoding` (gzip, deflate, br), refusing to inflate past `limit` bytes."""
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding in ("gzip", "x-gzip", "deflate"):
        # wbits 47 reads a gzip or zlib header; raw deflate (what some servers send as "deflate") needs -15.
        attempts = (47,) if encoding != "deflate" else (47, -15)
        for wbits in attempts:
            try:
                data = zlib.decompressobj(wbits).decompress(body, limit + 1)
            except zlib.error as exc:
                if wbits == attempts[-1]:
                    raise BodyError(f"corrupt {encoding} body: {exc}") from exc
                continue
            if len(data) > limit:
                raise BodyError(f"body inflates past {limit:,} bytes")
            return data
    if encoding == "br":
        import brotli

        try:
            data = brotli.decompress(body)
        except brotli.error as exc:
            raise BodyError(f"corrupt br body: {exc}") from exc
        if len(data) > limit:
            raise BodyError(f"body inflates past {limit:,} bytes")
        return bytes(data)
    raise BodyError(f"unsupported content encoding {encoding!r}")


def http_body(
    body: bytes, *, transfer_encoding: str | None, content_encoding: str | None, limit: int
) -> bytes:
    """The entity as the server meant it: chunking and compression undone (as archived in a WARC, say)."""
    if transfer_encoding and "chunked" in transfer_encoding.lower():
        body = dechunk(body, limit=limit)
    for encoding in reversed([e for e in (content_encoding or "").split(",") if e.strip()]):
        body = decompress(body, encoding, limit=limit)
    return body


def decode_html(body: bytes, content_type: str | None = None) -> DecodedPage:
    """The page as text: BOM, then the HTTP charset, then `<meta charset>`, then UTF-8, then detection."""
    for bom, encoding in BOMS:
        if body.startswith(bom):
            return DecodedPage(body[len(bom) :].decode(encoding, errors="replace"), encoding, "bom")
    declared = codec_for(header_charset(content_type))
    if declared is not None:
        return DecodedPage(body.decode(declared, errors="replace"), declared, "http")
    match = META_CHARSET.search(body[:META_PRESCAN_BYTES])
    meta = codec_for(match.group(1).decode("ascii", "replace")) if match else None
    # A page that says UTF-16 in ASCII cannot be UTF-16 (the spec says: read it as UTF-8).
    if meta is not None and not meta.startswith("utf-16"):
        return DecodedPage(body.decode(meta, errors="replace"), meta, "meta")
    try:
        return DecodedPage(body.decode("utf-8"), "utf-8", "utf-8")
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes  # deferred: only pages that declare nothing and are not UTF-8

    best = from_bytes(body[:DETECT_BYTES]).best()
    detected = codec_for(best.encoding) if best is not None else None
    if detected is not None:
        return DecodedPage(body.decode(detected, errors="replace"), detected, "detected")
    return DecodedPage(body.decode("cp1252", errors="replace"), "cp1252", "fallback")

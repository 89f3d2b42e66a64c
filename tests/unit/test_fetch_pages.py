"""An HTTP body as an HTML page: type, transfer/content encodings, charset."""

from __future__ import annotations

import gzip
import zlib

import brotli
import pytest

from services.fetch.pages import BodyError, decode_html, header_charset, http_body, looks_like_html


def test_html_by_declared_type_or_by_its_first_tag() -> None:
    assert looks_like_html("text/html; charset=utf-8", b"anything")
    assert looks_like_html("application/xhtml+xml", b"<html/>")
    assert not looks_like_html("image/jpeg", b"<html>")
    assert not looks_like_html("application/rss+xml", b"<rss>")
    assert looks_like_html(None, b"  <!-- served by x -->\n<!DOCTYPE html><html>")
    assert looks_like_html("application/octet-stream", b"<html lang=en>")
    assert not looks_like_html(None, b"%PDF-1.7")


def test_every_content_encoding_is_undone_within_the_limit() -> None:
    page = b"<html><body>" + b"<p>words</p>" * 100 + b"</body></html>"
    assert http_body(gzip.compress(page), transfer_encoding=None, content_encoding="gzip", limit=10**6) == page
    assert http_body(zlib.compress(page), transfer_encoding=None, content_encoding="deflate", limit=10**6) == page
    raw_deflate = zlib.compressobj(wbits=-15)
    deflated = raw_deflate.compress(page) + raw_deflate.flush()
    assert http_body(deflated, transfer_encoding=None, content_encoding="deflate", limit=10**6) == page
    assert http_body(brotli.compress(page), transfer_encoding=None, content_encoding="br", limit=10**6) == page
    with pytest.raises(BodyError, match="inflates past"):
        http_body(gzip.compress(b"0" * 100_000), transfer_encoding=None, content_encoding="gzip", limit=1000)
    with pytest.raises(BodyError, match="corrupt"):
        http_body(b"not gzip at all", transfer_encoding=None, content_encoding="gzip", limit=1000)
    with pytest.raises(BodyError, match="unsupported"):
        http_body(page, transfer_encoding=None, content_encoding="zstd", limit=10**6)


def test_chunked_bodies_are_joined() -> None:
    chunked = b"5\r\nHello\r\n7;ext=1\r\n, world\r\n0\r\n\r\n"
    assert http_body(chunked, transfer_encoding="chunked", content_encoding=None, limit=100) == b"Hello, world"
    with pytest.raises(BodyError, match="chunk size"):
        http_body(b"zz\r\nHello\r\n", transfer_encoding="chunked", content_encoding=None, limit=100)


def test_charset_order_bom_header_meta_utf8_detection() -> None:
    assert header_charset('text/html; charset="Shift_JIS"') == "Shift_JIS"
    japanese = "日本語のニュース"
    assert decode_html(japanese.encode("shift_jis"), "text/html; charset=Shift_JIS").html == japanese
    meta = '<meta http-equiv="Content-Type" content="text/html; charset=koi8-r"><p>Привет</p>'
    page = decode_html(meta.encode("koi8-r"))
    assert "Привет" in page.html and page.charset_from == "meta"
    # A page claiming UTF-16 in ASCII bytes cannot be UTF-16.
    assert decode_html(b'<meta charset="utf-16"><p>plain</p>').charset_from == "utf-8"
    assert decode_html("<p>naïve</p>".encode()).charset_from == "utf-8"
    # An unknown label falls through to what the bytes say.
    assert decode_html("<p>naïve</p>".encode(), "text/html; charset=x-nonsense").charset_from == "utf-8"

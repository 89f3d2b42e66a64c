"""Raw-article validation, canonical URLs and stable ids."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from services.ingest.validate import (
    article_id,
    canonical_url,
    content_hash,
    ingest_article,
    parse_raw_payload,
    record_url,
    validate_raw_article,
)
from shared.errors import Rejected

LIMIT = 100_000
NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def reason_for(payload: bytes) -> str:
    with pytest.raises(Rejected) as info:
        parse_raw_payload(payload, max_bytes=LIMIT)
    return info.value.reason


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"not json", "invalid_json"),
        (b"[1, 2]", "invalid_shape"),
        (b'"a string"', "invalid_shape"),
        (b'{"text": "a", "html": "<p>b</p>"}', "both_text_and_html"),
        (b'{"title": "no body"}', "no_text_or_html"),
        (b'{"text": ""}', "empty_content"),
        (b'{"text": "   \\n\\t  "}', "empty_content"),
        (b'{"text": 42}', "invalid_shape"),
        (b'{"text": "x", "colour": "blue"}', "invalid_shape"),
        (b'{"text": "x", "metadata": []}', "invalid_shape"),
        (b'{"text": "x", "schema_version": 7}', "unknown_schema_version"),
        (b'{"text": "\xff\xfe broken"}', "invalid_utf8"),
        (orjson.dumps({"text": "\x00\x01\x02\x03" * 50}), "binary_content"),
        (orjson.dumps({"text": "x" * (LIMIT + 1)}), "too_large"),
    ],
)
def test_bad_payloads_are_rejected_with_a_specific_reason(payload: bytes, reason: str) -> None:
    assert reason_for(payload) == reason


def test_a_valid_text_article_is_accepted() -> None:
    raw = parse_raw_payload(b'{"id": "a1", "text": "Some news.", "url": "https://x.com/a"}', max_bytes=LIMIT)
    assert raw.id == "a1"
    assert raw.text == "Some news."


def test_a_stray_nul_is_removed_not_fatal() -> None:
    raw = validate_raw_article({"text": "An article " + "with words " * 30 + "\x00 and a stray NUL."})
    article = ingest_article(raw, origin="test", received_at=NOW)
    assert "\x00" not in article.ingest.content


def test_canonical_url_drops_tracking_fragment_and_case() -> None:
    assert canonical_url("HTTP://WWW.Example.com:443/News/Story/?utm_source=x&b=2&a=1#top") == (
        "https://www.example.com/News/Story?a=1&b=2"
    )
    assert canonical_url("not a url") is None
    assert canonical_url("ftp://example.com/file") is None


def test_the_record_keeps_the_urls_own_scheme_while_the_id_ignores_it() -> None:
    assert record_url("HTTP://WWW.Example.com:80/News/Story/?utm_source=x&b=2&a=1#top") == (
        "http://www.example.com/News/Story?a=1&b=2"
    )
    assert record_url("http://example.com:443/x") == "http://example.com:443/x"
    assert record_url("https://example.com:443/x") == "https://example.com/x"
    plain = ingest_article(validate_raw_article({"text": "Body.", "url": "http://only-http.example/a"}),
                           origin="a", received_at=NOW)
    secure = ingest_article(validate_raw_article({"text": "Body.", "url": "https://only-http.example/a"}),
                            origin="a", received_at=NOW)
    # A site that serves only http keeps its http URL on the record; both spellings are one article.
    assert plain.ingest.url == "http://only-http.example/a" and secure.ingest.url == "https://only-http.example/a"
    assert plain.id == secure.id


def test_article_id_is_stable_for_the_same_url_and_for_the_same_content() -> None:
    first = ingest_article(validate_raw_article({"text": "Body one.", "url": "https://x.com/a?utm_medium=m"}),
                           origin="a", received_at=NOW)
    second = ingest_article(validate_raw_article({"text": "Body two, edited.", "url": "https://x.com/a"}),
                            origin="b", received_at=NOW)
    assert first.id == second.id  # same canonical URL -> same record, updated
    third = ingest_article(validate_raw_article({"text": "Same   words\n here."}), origin="a", received_at=NOW)
    fourth = ingest_article(validate_raw_article({"text": "same words here."}), origin="b", received_at=NOW)
    assert third.id == fourth.id  # no URL: normalised content decides
    assert third.id != first.id


def test_ingested_article_carries_origin_hash_and_hints() -> None:
    raw = validate_raw_article({"id": "c-7", "html": "<p>Hi</p>", "title": "T", "source": "Wire",
                                "published_at": "2024-01-01", "fetched_at": "2024-05-01T10:00:00Z",
                                "metadata": {"k": 1}})
    article = ingest_article(raw, origin="http", received_at=NOW)
    assert article.ingest.fetched_at is not None
    assert article.ingest.fetched_at.isoformat() == "2024-05-01T10:00:00+00:00"
    with pytest.raises(Rejected, match="fetched_at"):
        validate_raw_article({"text": "x", "fetched_at": "last tuesday"})
    assert article.ingest.kind == "html"
    assert article.ingest.external_id == "c-7"
    assert article.ingest.origin == "http"
    assert article.ingest.content_hash == content_hash("<p>Hi</p>")
    assert article.ingest.title == "T" and article.ingest.metadata == {"k": 1}
    assert article.id == article_id(None, article.ingest.content_hash)

"""Bad input, end to end: each kind ends stored or dead-lettered with a specific reason; no service exits; the valid
article pushed right after each one is stored."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime

import orjson
import pytest
import redis
from faststream.redis.parser.binary import BinaryMessageFormatV1

from services.ingest.validate import ingest_article, parse_raw_payload
from shared.events import DeadLetter
from shared.storage import open_storage
from shared.streams import STAGES
from shared.transport.delivery import StreamEntry
from tests.conftest import ServiceProcess, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

WORDS = "The regional council approved the new transport budget after a long debate on Tuesday evening. "


def good(n: int) -> bytes:
    return orjson.dumps({"id": f"good-{n}", "url": f"https://news.example.org/story/{n}",
                         "text": f"Council story number {n}\n\n" + WORDS * 6 + f"Reference {n}."})


def enveloped(body: bytes) -> bytes:
    """What a FastStream publisher writes to `__data__`."""
    return asyncio.run(BinaryMessageFormatV1.encode(message=body, reply_to=None, headers={}, correlation_id="c"))


NESTED = "<html><body>" + "<div>" * 10_000 + "<p>deep</p>" + "</div>" * 10_000 + "</body></html>"
# kind -> (stream fields, the outcomes that are acceptable: DLQ reasons, or "stored")
CASES: dict[str, tuple[dict[str, bytes], set[str]]] = {
    "invalid_json": ({"data": b"{'not': json}"}, {"invalid_json"}),
    "truncated_json": ({"data": b'{"text": "cut'}, {"invalid_json"}),
    "json_array": ({"data": b'[{"text": "a"}]'}, {"invalid_shape"}),
    "json_string": ({"data": b'"just a string"'}, {"invalid_shape"}),
    "json_number": ({"data": b"42"}, {"invalid_shape"}),
    "json_null": ({"data": b"null"}, {"invalid_shape"}),
    "wrong_type_text": ({"data": b'{"text": 12345}'}, {"invalid_shape"}),
    "wrong_type_metadata": ({"data": b'{"text": "words here", "metadata": "x"}'}, {"invalid_shape"}),
    "unknown_field": ({"data": b'{"text": "words", "colour": "red"}'}, {"invalid_shape"}),
    "id_too_long": ({"data": orjson.dumps({"id": "i" * 600, "text": "x"})}, {"invalid_shape"}),
    "both_text_and_html": ({"data": b'{"text": "a", "html": "<p>b</p>"}'}, {"both_text_and_html"}),
    "neither": ({"data": b'{"title": "only a title"}'}, {"no_text_or_html"}),
    "null_text": ({"data": b'{"text": null}'}, {"no_text_or_html"}),
    "empty_text": ({"data": b'{"text": ""}'}, {"empty_content"}),
    "whitespace_only": ({"data": b'{"text": " \\n\\t \\r\\n "}'}, {"empty_content"}),
    "unknown_schema_version": ({"data": b'{"schema_version": 3, "text": "words"}'}, {"unknown_schema_version"}),
    "body_20mb": ({"data": orjson.dumps({"text": "word " * 4_000_000})}, {"too_large"}),
    "binary_bytes": ({"data": bytes(range(256)) * 4}, {"invalid_utf8"}),
    "invalid_utf8_in_json": ({"data": b'{"text": "caf\xe9 \xff\xfe"}'}, {"invalid_utf8"}),
    "nul_bytes": ({"data": orjson.dumps({"text": "\x00" * 500})}, {"binary_content"}),
    "control_flood_html": ({"data": orjson.dumps({"html": "<p>" + "\x01\x02" * 300 + "</p>"})}, {"binary_content"}),
    "nested_html_10000": ({"data": orjson.dumps({"html": NESTED})}, {"no_article_text", "too_short", "not_an_article"}),
    "only_scripts_styles": (
        {"data": orjson.dumps({"html": "<html><head><style>p{}</style></head><body>"
                               + "<script>var a = 1;</script>" * 50 + "</body></html>"})},
        {"no_article_text", "too_short", "not_an_article"},
    ),
    "only_links": (
        {"data": orjson.dumps({"html": "<html><body><ul>" + "".join(
            f'<li><a href="/p/{i}">Link number {i}</a></li>' for i in range(80)) + "</ul></body></html>"})},
        {"no_article_text", "too_short", "not_an_article"},
    ),
    "page_404": (
        {"data": orjson.dumps({"html": "<html><head><title>404 Not Found</title></head><body><h1>404 Not Found"
                               "</h1><p>The page you requested could not be found.</p></body></html>"})},
        {"error_page"},
    ),
    "empty_html": ({"data": b'{"html": "<html><body></body></html>"}'}, {"no_article_text", "too_short",
                                                                         "not_an_article"}),
    "too_short_text": ({"data": b'{"text": "Hi there."}'}, {"too_short", "no_article_text"}),
    "zero_width_and_rtl": (
        {"data": orjson.dumps({"text": "Zero\u200bwidth\u200d story\n\n\u202e" + WORDS * 5 + "\u2066end\u2069"})},
        {"stored"},
    ),
    "single_4mb_line": ({"data": orjson.dumps({"text": WORDS * 42_000})}, {"stored", "too_large"}),
    "outside_producer_event": ({"event": b"click", "user_id": b"42", "ts": b"1700000000"}, {"invalid_shape"}),
    "outside_producer_plain_fields": ({"text": b"From redis-cli with plain fields. " + WORDS.encode() * 5,
                                       "url": b"https://plain.example.com/a"}, {"stored"}),
    "data_empty_object": ({"data": b"{}"}, {"no_text_or_html"}),
    "faststream_envelope_garbage": ({"__data__": enveloped(b"not json at all")}, {"invalid_json"}),
    "lone_surrogate": ({"data": b'{"text": "bad \\ud800 surrogate"}'}, {"invalid_json", "stored", "too_short"}),
    "mojibake": ({"data": orjson.dumps({"text": "Caf\u00c3\u00a9 owners say \u00e2\u20ac\u0153yes\u00e2\u20ac\u009d. "
                                        + WORDS * 5})}, {"stored"}),
}


def test_every_kind_of_bad_input_is_stored_or_dead_lettered_and_nothing_crashes(
    start_service: Callable[..., ServiceProcess], service_env: dict[str, str]
) -> None:
    services = {stage: start_service(stage) for stage in STAGES}
    client = redis.Redis.from_url(service_env["NEWSFLOW_REDIS_URL"])
    prefix = service_env["NEWSFLOW_KEY_PREFIX"]
    bad_ids: dict[str, str] = {}
    for n, (kind, (fields, _)) in enumerate(CASES.items()):
        bad_ids[client.xadd(f"{prefix}:raw", fields).decode()] = kind  # type: ignore[arg-type]
        client.xadd(f"{prefix}:raw", {"data": good(n), "origin": "test"})
    # A stage-internal poison message: an event of an unknown schema version straight onto clean's input.
    client.xadd(f"{prefix}:ingested", {"data": b'{"schema_version": 2, "id": "x"}'})
    client.xadd(f"{prefix}:enriched", {"data": b'{"schema_version": 1, "id": "half an event"}'})

    async def stored() -> dict[str, str]:
        async with open_storage(service_env["NEWSFLOW_STORAGE_URL"]) as storage:
            await storage.migrate()
            return {r.id: r.external_id or "" async for r in storage.iter_export()}

    goods = {f"good-{n}" for n in range(len(CASES))}
    wait_for(lambda: goods <= set(asyncio.run(stored()).values()), timeout=240, interval=1,
             what="every valid article stored")
    expected_letters = 2 + sum(1 for _, ok in CASES.values() if "stored" not in ok)
    wait_for(lambda: client.xlen(f"{prefix}:dlq") >= expected_letters, timeout=60, what="dead letters")
    letters = [DeadLetter.model_validate_json(f[b"data"]) for _, f in client.xrange(f"{prefix}:dlq")]
    at_ingest = {d.msg_id: d.reason for d in letters if d.stage == "ingest"}
    downstream = {d.article_id: d.reason for d in letters if d.stage != "ingest" and d.article_id}
    stored_ids = asyncio.run(stored())
    for msg_id, kind in bad_ids.items():
        acceptable = CASES[kind][1]
        if msg_id in at_ingest:
            outcome = at_ingest[msg_id]
        else:  # ingest accepted it: follow its article id downstream
            fields = {k.encode(): v for k, v in CASES[kind][0].items()}
            raw = parse_raw_payload(StreamEntry("", fields).payload, max_bytes=10**9)
            article_id = ingest_article(raw, origin="t", received_at=datetime.now(UTC)).id
            outcome = downstream.get(article_id) or ("stored" if article_id in stored_ids else "lost")
        assert outcome in acceptable, f"{kind}: got {outcome}, expected one of {acceptable}"
    reasons = {(d.stage, d.reason) for d in letters}
    assert ("clean", "unknown_schema_version") in reasons
    assert ("publish", "invalid_event") in reasons
    for service in services.values():
        assert service.process is not None and service.process.poll() is None, service.output()[-2000:]
    for service in services.values():
        assert service.stop() == 0

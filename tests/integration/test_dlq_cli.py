"""`newsflow dlq` against real Redis: list, show, replay (back onto the stage's input), purge with confirmation."""

from __future__ import annotations

import orjson
import pytest
import redis
from typer.testing import CliRunner

from newsflow.cli import app
from shared.streams import names
from tests.conftest import wait_for

pytestmark = pytest.mark.integration


def run(*args: str, input: str | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), input=input)
    return result.exit_code, result.output


def test_dead_letters_can_be_listed_shown_replayed_and_purged(cli_redis: redis.Redis, start_service) -> None:  # type: ignore[no-untyped-def]
    streams = names()
    client = cli_redis
    client.xadd(streams.raw, {"data": b'{"text": "a", "html": "<p>b</p>"}', "origin": "test"})
    client.xadd(streams.raw, {"data": b"{broken json"})
    client.xadd(streams.raw, {"data": b'{"title": "no body"}'})
    ingest = start_service("ingest")
    wait_for(lambda: client.xlen(streams.dlq) == 3, timeout=30, what="three dead letters")
    ingest.stop()

    code, out = run("dlq", "list", "--json")
    assert code == 0
    rows = [orjson.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert [r["reason"] for r in rows] == ["both_text_and_html", "invalid_json", "no_text_or_html"]
    assert rows[0]["stage"] == "ingest" and rows[0]["origin"] == "test"
    assert "payload" not in rows[1] and rows[1]["payload_bytes"] == len("{broken json")  # headers only

    code, out = run("dlq", "list", "--reason", "invalid_json", "--json")
    assert code == 0 and out.count('"invalid_json"') == 1

    code, out = run("dlq", "show", rows[1]["id"], "--json")
    shown = orjson.loads(out)
    assert code == 0 and shown["error"].startswith("payload is not JSON")
    assert shown["payload"] == "{broken json" and shown["payload_truncated"] is False
    assert run("dlq", "show", "0-1")[0] == 2

    before = client.xlen(streams.raw)
    code, out = run("dlq", "replay", "--reason", "no_text_or_html")
    assert code == 0 and "replayed 1 entry" in out
    assert client.xlen(streams.raw) == before + 1
    [(_, fields)] = client.xrevrange(streams.raw, count=1)
    assert fields[b"data"] == b'{"title": "no body"}'  # the original payload, byte for byte
    assert client.xlen(streams.dlq) == 2  # removed once re-queued

    code, out = run("dlq", "replay", rows[0]["id"], "9-9")
    assert code == 2 and "no DLQ entry 9-9" in out and "nothing replayed" in out
    assert client.xlen(streams.dlq) == 2  # all named ids must be there, or none is replayed
    code, out = run("dlq", "replay", rows[0]["id"])
    assert code == 0 and "replayed 1 entry" in out

    code, _ = run("dlq", "purge", input="n\n")
    assert code != 0 and client.xlen(streams.dlq) == 1  # declined: nothing deleted
    code, out = run("dlq", "purge", input="y\n")
    assert code == 0 and "purged 1" in out and client.xlen(streams.dlq) == 0

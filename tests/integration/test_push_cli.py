"""`newsflow push`: files, directories and stdin onto the raw stream; unreadable inputs listed, exit status 1."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
import redis
from typer.testing import CliRunner

from shared.cli import app
from shared.settings import get_settings
from shared.streams import names

pytestmark = pytest.mark.integration


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch, redis_url: str, key_prefix: str) -> Iterator[redis.Redis]:
    monkeypatch.setenv("NEWSFLOW_REDIS_URL", redis_url)
    monkeypatch.setenv("NEWSFLOW_KEY_PREFIX", key_prefix)
    get_settings.cache_clear()
    yield redis.Redis.from_url(redis_url)
    get_settings.cache_clear()


def test_push_queues_what_it_can_read_and_lists_the_rest(client: redis.Redis, tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "story.txt").write_text("Some story text")
    (tmp_path / "in" / "batch.jsonl").write_text('{"id": "j1", "html": "<p>x</p>"}\n{oops\n')
    result = CliRunner().invoke(app, ["push", str(tmp_path / "in"), str(tmp_path / "missing.txt")])
    assert result.exit_code == 1
    assert "queued 2 article(s)" in result.output
    assert "could not read" in result.output and "missing.txt" in result.output and "batch.jsonl:2" in result.output
    entries = client.xrange(names().raw)
    assert [orjson.loads(f[b"data"]).get("id") for _, f in entries] == ["j1", "story"]
    assert {f[b"origin"] for _, f in entries} == {b"cli"}


def test_push_reads_stdin(client: redis.Redis) -> None:
    result = CliRunner().invoke(
        app, ["push", "-"], input='{"id": "s1", "text": "from a pipe"}\n{"id": "s2", "text": "b"}\n'
    )
    assert result.exit_code == 0 and "queued 2 article(s)" in result.output
    assert [orjson.loads(f[b"data"])["id"] for _, f in client.xrange(names().raw)] == ["s1", "s2"]

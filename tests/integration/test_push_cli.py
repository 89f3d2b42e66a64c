"""`newsflow push`: files, directories and stdin onto the raw stream; unreadable inputs listed, exit status 1."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
import redis
from typer.testing import CliRunner

from newsflow.cli import app
from shared.streams import names

pytestmark = pytest.mark.integration


def test_push_queues_what_it_can_read_and_lists_the_rest(cli_redis: redis.Redis, tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "story.txt").write_text("Some story text")
    (tmp_path / "in" / "batch.jsonl").write_text('{"id": "j1", "html": "<p>x</p>"}\n{oops\n')
    refused = CliRunner().invoke(app, ["push", str(tmp_path / "in"), str(tmp_path / "missing.txt")])
    assert refused.exit_code == 2 and "no such file or directory" in refused.output and "missing.txt" in refused.output
    assert cli_redis.xlen(names().raw) == 0  # a path that is not there: nothing is pushed
    result = CliRunner().invoke(app, ["push", str(tmp_path / "in")])
    assert result.exit_code == 1
    assert "queued 2 article(s)" in result.output
    assert "could not read" in result.output and "batch.jsonl:2" in result.output
    entries = cli_redis.xrange(names().raw)
    assert [orjson.loads(f[b"data"]).get("id") for _, f in entries] == ["j1", "story"]
    assert {f[b"origin"] for _, f in entries} == {b"cli"}


def test_push_reads_stdin(cli_redis: redis.Redis) -> None:
    result = CliRunner().invoke(
        app, ["push", "-"], input='{"id": "s1", "text": "from a pipe"}\n{"id": "s2", "text": "b"}\n'
    )
    assert result.exit_code == 0 and "queued 2 article(s)" in result.output
    assert [orjson.loads(f[b"data"])["id"] for _, f in cli_redis.xrange(names().raw)] == ["s1", "s2"]

"""`newsflow trim`: acknowledged entries go, pending and unread ones stay."""

from __future__ import annotations

import pytest
import redis
from typer.testing import CliRunner

from newsflow.cli import app
from shared.streams import names

pytestmark = pytest.mark.integration


def test_trim_keeps_what_a_group_still_needs(cli_redis: redis.Redis) -> None:
    streams = names()
    ids = [cli_redis.xadd(streams.ingested, {"data": b"{}"}) for _ in range(5)]
    cli_redis.xgroup_create(streams.ingested, "clean", id="0")
    read = cli_redis.xreadgroup("clean", "c", {streams.ingested: ">"}, count=3)
    cli_redis.xack(streams.ingested, "clean", *[mid for mid, _ in read[0][1]][:2])  # 3rd pending, 4th-5th unread
    result = CliRunner().invoke(app, ["trim"])
    assert result.exit_code == 0
    assert f"{streams.ingested}: trimmed 2 acknowledged entries" in result.output
    assert [mid for mid, _ in cli_redis.xrange(streams.ingested)] == ids[2:]
    assert f"{streams.raw}: trimmed 0" in result.output  # no group reads it yet: nothing is safe to drop

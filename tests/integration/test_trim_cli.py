"""`newsflow trim`: acknowledged entries go, pending and unread ones stay."""

from __future__ import annotations

from collections.abc import Iterator

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


def test_trim_keeps_what_a_group_still_needs(client: redis.Redis) -> None:
    streams = names()
    ids = [client.xadd(streams.ingested, {"data": b"{}"}) for _ in range(5)]
    client.xgroup_create(streams.ingested, "clean", id="0")
    read = client.xreadgroup("clean", "c", {streams.ingested: ">"}, count=3)
    client.xack(streams.ingested, "clean", *[mid for mid, _ in read[0][1]][:2])  # 3rd pending, 4th-5th unread
    result = CliRunner().invoke(app, ["trim"])
    assert result.exit_code == 0
    assert f"{streams.ingested}: trimmed 2 acknowledged entries" in result.output
    assert [mid for mid, _ in client.xrange(streams.ingested)] == ids[2:]
    assert f"{streams.raw}: trimmed 0" in result.output  # no group reads it yet: nothing is safe to drop

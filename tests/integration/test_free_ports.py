"""Servers the tests start on a free port: a port taken between the pick and the bind is detected and replaced.

On this shared machine a port found free may be bound by another process before the server binds it; the test
would then talk to that process. Here the first port handed out is one a foreign listener holds, as in that race.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import redis

from tests import servers
from tests.conftest import ServiceProcess
from tests.integration.test_api import api_env, start_api
from tests.servers import PortTaken, RedisServer, on_free_port

pytestmark = pytest.mark.integration


@pytest.fixture
def taken_port(monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    """A port a foreign listener holds, handed out as the first 'free' port (then real free ones)."""
    foreign = socket.socket()
    foreign.bind(("127.0.0.1", 0))
    foreign.listen()
    port = int(foreign.getsockname()[1])
    handed = iter([port])
    real = servers.free_port
    monkeypatch.setattr(servers, "free_port", lambda: next(handed, None) or real())
    try:
        yield port
    finally:
        foreign.close()


def test_a_stage_whose_port_was_taken_is_started_on_another(
    taken_port: int, start_service: Callable[..., ServiceProcess]
) -> None:
    service = start_service("ingest", http=True)
    assert service.base_url != f"http://127.0.0.1:{taken_port}"
    assert httpx.get(f"{service.base_url}/healthz").json()["stage"] == "ingest"


def test_the_api_whose_port_was_taken_is_started_on_another(taken_port: int, tmp_path: Path) -> None:
    api = start_api(api_env(f"sqlite:///{tmp_path}/api.db"))
    try:
        assert api.base_url != f"http://127.0.0.1:{taken_port}"
        assert httpx.get(f"{api.base_url}/healthz").json() == {"status": "ok", "service": "api"}
    finally:
        api.stop()


def test_a_test_redis_server_whose_port_was_taken_is_started_on_another(taken_port: int, tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis")
    try:
        server.start()
        assert server.port != taken_port
        assert redis.Redis.from_url(server.url).info("server")["process_id"] == server.process.pid  # type: ignore[union-attr]
        server.stop()
        server.start()  # a restart keeps its port
        assert redis.Redis.from_url(server.url).ping()
    finally:
        server.stop(kill=True)


def test_on_free_port_gives_up_after_its_attempts() -> None:
    tried: list[int] = []

    def never_binds(port: int) -> None:
        tried.append(port)
        raise PortTaken(f"port {port}")

    with pytest.raises(PortTaken):
        on_free_port(never_binds, attempts=3)
    assert len(tried) == 3 and len(set(tried)) == 3

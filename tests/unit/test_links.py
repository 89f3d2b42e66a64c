"""Every connection newsflow holds to Redis and PostgreSQL carries the dead-link timeouts (shared/links.py)."""

from __future__ import annotations

import socket

import pytest
from pydantic import ValidationError

from shared.links import (
    SUBSCRIBER_ERROR_PAUSE_S,
    keepalive_schedule,
    libpq_link_options,
    redis_link_options,
    rejoin_bound_s,
    tcp_options,
)
from shared.settings import Settings
from shared.storage import open_storage
from shared.storage.postgres import PostgresStorage
from shared.transport.broker import make_broker, make_redis
from shared.transport.delivery import retry_delay_s

linux_only = pytest.mark.skipif(not hasattr(socket, "TCP_USER_TIMEOUT"), reason="TCP_USER_TIMEOUT is Linux's")


@pytest.mark.parametrize("link_timeout_s", [3.0, 8.0, 10.0, 30.0, 120.0])
def test_keepalive_finds_an_idle_dead_link_within_the_link_timeout(link_timeout_s: float) -> None:
    idle, interval, probes = keepalive_schedule(link_timeout_s)
    assert idle >= 1 and interval >= 1 and probes >= 1
    assert idle + interval * probes <= max(link_timeout_s, 4)


@linux_only
def test_unacknowledged_data_drops_the_connection_after_the_link_timeout() -> None:
    options = tcp_options(7.5)
    assert options[socket.TCP_USER_TIMEOUT] == 7500
    assert options[socket.TCP_KEEPIDLE] == 3 and options[socket.TCP_KEEPCNT] == 3


@linux_only
def test_the_options_are_ones_a_socket_accepts() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        for option, value in tcp_options(10).items():
            sock.setsockopt(socket.IPPROTO_TCP, option, value)
            assert sock.getsockopt(socket.IPPROTO_TCP, option) == value


def test_both_redis_clients_of_a_stage_carry_the_link_timeout() -> None:
    settings = Settings(link_timeout_s=6)
    wanted = redis_link_options(6)
    assert wanted["socket_timeout"] == 6 and wanted["socket_keepalive"] is True
    policy = make_redis(settings).connection_pool.connection_kwargs
    assert {key: policy[key] for key in wanted} == wanted
    # The subscribers' client: FastStream builds its pool from these options (shared/transport/broker.py).
    subscribers = make_broker(settings).config.connection._options
    assert {key: subscribers[key] for key in wanted} == wanted


def test_postgres_connections_carry_the_link_timeout_unless_the_url_sets_its_own() -> None:
    storage = open_storage("postgresql://u@db.example/news", link_timeout_s=6)
    assert isinstance(storage, PostgresStorage)
    assert storage.link_options == libpq_link_options(6)
    assert storage.link_options["tcp_user_timeout"] == 6000
    own = PostgresStorage("postgresql://u@db.example/news?keepalives_idle=60&tcp_user_timeout=0", link_timeout_s=6)
    assert "keepalives_idle" not in own.link_options and "tcp_user_timeout" not in own.link_options
    assert own.link_options["keepalives_count"] == 3


def test_a_read_blocking_longer_than_the_link_timeout_is_refused() -> None:
    with pytest.raises(ValidationError, match="NEWSFLOW_LINK_TIMEOUT_S"):
        Settings(poll_ms=10_000, link_timeout_s=10)
    assert Settings(poll_ms=2_000, link_timeout_s=10).link_timeout_s == 10


def test_retries_wait_at_most_the_cap_however_long_the_outage() -> None:
    delays = [retry_delay_s(attempt, 10.0) for attempt in range(1, 200)]
    assert max(delays) <= 10.0
    assert min(delays[20:]) >= 5.0  # jittered down to half the cap at most: no retry storm either
    assert retry_delay_s(1, 10.0) <= 0.4


def test_the_rejoin_bound_adds_up_what_a_replica_may_wait_for() -> None:
    settings = Settings()
    assert rejoin_bound_s(settings.link_timeout_s, settings.retry_max_s) == 2 * 10 + 10 + SUBSCRIBER_ERROR_PAUSE_S

"""A connection whose socket went away under the client is replaced at the next command, on uvloop as on asyncio.

What a dead link leaves behind once TCP_USER_TIMEOUT or keepalive dropped it (shared/links.py): a pooled connection
whose transport is closed. Here the transport is closed by hand; the next command must succeed, not raise uvloop's
RuntimeError ("the handler is closed"), which neither redis-py's retry nor the stages took for a lost connection.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
import uvloop
from redis.asyncio import Redis

from shared.settings import Settings
from shared.transport.broker import make_broker, make_redis

pytestmark = pytest.mark.integration


def close_pooled_transports(client: Redis) -> int:
    """Close the socket of every idle connection in the client's pool, behind redis-py's back."""
    closed = 0
    for connection in client.connection_pool._available_connections:  # type: ignore[attr-defined]
        writer = connection._writer
        if writer is not None:
            writer.transport.close()
            closed += 1
    return closed


async def policy_client(settings: Settings) -> Redis:
    return make_redis(settings)


async def subscriber_client(settings: Settings) -> Redis:
    return await make_broker(settings).connect()


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
@pytest.mark.parametrize("client_of", [policy_client, subscriber_client], ids=["policy", "subscribers"])
def test_a_command_after_the_socket_went_away_succeeds_on_a_new_connection(
    redis_url: str, key_prefix: str, loop: str, client_of: Callable[[Settings], Awaitable[Redis]]
) -> None:
    async def scenario() -> object:
        client = await client_of(Settings(redis_url=redis_url))
        try:
            assert await client.set(f"{key_prefix}:lost", b"1")
            assert close_pooled_transports(client) == 1
            await asyncio.sleep(0.05)  # the loop sees the transport closed
            return await client.get(f"{key_prefix}:lost")
        finally:
            await client.aclose()

    run = uvloop.run if loop == "uvloop" else asyncio.run
    assert run(scenario()) == b"1"

"""The broker factory and the plain Redis client the delivery policy writes through.

FastStream 0.7.8's stream subscriber treats NOGROUP (the stream or the group is gone: Redis restarted empty, a key
deleted, XGROUP DESTROY) as terminal: it stops consuming and asks the application to exit, which exits with
status 0 — so `restart: on-failure` never brings the service back, and nothing is consumed again. Any other
error reply (READONLY on a replica, MISCONF, OOM) ends its read task, and its supervisor restarts the task at
once, in a loop with no pause. So the subscribers read through a client of ours (`GroupKeepingRedis`): a lost
group is created again at id 0 (what was added meanwhile is read), logged once as `group_recreated` and counted
in /metrics; a refusal that passes (`redis_refuses_for_now`) is waited out with backoff; a state that no retry
can fix (the key holds another type, the ACL forbids the stream) stops the service with a failure recorded, and
`newsflow serve` exits non-zero for it.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Iterable
from typing import Any, cast

from faststream.redis import RedisBroker
from faststream.redis.configs.state import ConnectionState, RedisConnectionState
from redis.asyncio import Redis
from redis.asyncio.connection import (
    AbstractConnection,
    Connection,
    ConnectionPool,
    SSLConnection,
    UnixDomainSocketConnection,
    parse_url,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from shared.errors import redis_group_missing, redis_refuses_for_now
from shared.links import redis_link_options
from shared.observability.logging import get_logger
from shared.observability.metrics import record_group_recreated, record_transient_failure
from shared.settings import Settings
from shared.streams import ensure_group

MAX_READ_BACKOFF_S = 10.0

log = get_logger("newsflow.broker")


class _ClosedTransportIsLost(AbstractConnection):
    """A connection whose socket went away under redis-py is made anew before the next command is sent on it.

    When the kernel drops a connection (TCP_USER_TIMEOUT or keepalive on a dead link, a reset) the event loop
    closes its transport, and redis-py does not notice until it writes: on uvloop (`newsflow serve` installs it)
    that write raised RuntimeError("unable to perform operation on <TCPTransport closed=True ...>; the handler is
    closed"), which is no ConnectionError — after a host's link came back its subscribers logged "Message fetch
    error" and paused 5 s, and a stage took it for a bug in the step (not transient). Nothing of the command has
    gone out then, so connecting first and sending it is safe for any command.
    """

    async def send_packed_command(self, command: bytes | str | Iterable[bytes], check_health: bool = True) -> None:
        writer = self._writer
        if writer is not None and writer.transport.is_closing():
            await self.disconnect(nowait=True)
            await self.connect()  # type: ignore[no-untyped-call]
        try:
            await super().send_packed_command(command, check_health)
        except RuntimeError as exc:  # closed between the check and the write
            if "handler is closed" not in str(exc):
                raise
            raise RedisConnectionError(f"Connection lost: {exc}") from exc


class TcpConnection(_ClosedTransportIsLost, Connection):
    pass


class TlsConnection(_ClosedTransportIsLost, SSLConnection):
    pass


class UnixConnection(_ClosedTransportIsLost, UnixDomainSocketConnection):
    pass


LOSS_AWARE: dict[type[AbstractConnection], type[AbstractConnection]] = {
    Connection: TcpConnection,
    SSLConnection: TlsConnection,
    UnixDomainSocketConnection: UnixConnection,
}


def loss_aware(options: dict[str, Any]) -> dict[str, Any]:
    """Connection-pool options (a parsed URL's) with the connection class made `_ClosedTransportIsLost`."""
    given = options.get("connection_class", Connection)
    return {**options, "connection_class": LOSS_AWARE.get(given, given)}


def make_redis(settings: Settings) -> Redis:
    """An asyncio Redis client (bytes in, bytes out) for pipelines, groups and admin."""
    # A dead link is dropped within NEWSFLOW_LINK_TIMEOUT_S and the next command connects anew (shared/links.py).
    return Redis.from_url(
        settings.redis_url,
        decode_responses=False,
        health_check_interval=30,
        connection_class=loss_aware(dict(parse_url(settings.redis_url)))["connection_class"],
        **redis_link_options(settings.link_timeout_s),
    )


async def recreate_group(redis: Redis, stream: str, group: str, *, error: str, step: str) -> bool:
    """Create `group` on `stream` again at id 0 after it was found gone; True (logged, counted) when this call did.

    Another replica may have recreated it first (BUSYGROUP): then nothing is logged here, so one loss is one event.
    """
    created = await ensure_group(redis, stream, group)
    if created:
        log.error("group_recreated", stream=stream, group=group, step=step, error=error,
                  hint="the stream or its consumer group was gone (Redis restarted empty, or a key was deleted); "
                       "read again from id 0")
        record_group_recreated(stream, group)
    return created


class GroupKeepingRedis(Redis):
    """The client FastStream's subscribers read through: see the module docstring for what each reply leads to."""

    broker: NewsflowBroker | None = None
    _refusals = 0

    async def xreadgroup(
        self, groupname: Any, consumername: Any, streams: Any, *args: Any, **kwargs: Any
    ) -> Any:
        try:
            reply = await super().xreadgroup(groupname, consumername, streams, *args, **kwargs)
        except ResponseError as exc:
            return await self._after_refusal(exc, _text(groupname), [_text(s) for s in streams])
        self._refusals = 0
        return reply

    async def _after_refusal(self, exc: ResponseError, group: str, streams: list[str]) -> list[Any]:
        """What a refused read leads to; an empty reply means 'nothing read', and the subscriber reads again."""
        if redis_group_missing(exc):
            try:
                for stream in streams:
                    await recreate_group(self, stream, group, error=str(exc), step="read")
            except ResponseError as fatal:
                await self._fail("group_recreate_failed", fatal, group, streams)
            return []
        if redis_refuses_for_now(exc):
            self._refusals += 1
            record_transient_failure(group, "read", exc)
            delay = min(MAX_READ_BACKOFF_S, 0.2 * 2**self._refusals) * (0.5 + random.random() / 2)
            log.warning("dependency.unavailable", stage=group, step="read", attempt=self._refusals,
                        retry_in_s=round(delay, 2), error=f"{type(exc).__name__}: {exc}")
            await asyncio.sleep(delay)
            return []
        await self._fail("stream_unreadable", exc, group, streams)
        return []

    async def _fail(self, event: str, exc: ResponseError, group: str, streams: list[str]) -> None:
        if self.broker is not None:
            self.broker.fail(event, stage=group, streams=streams, error=f"{type(exc).__name__}: {exc}")
        # The application is stopping; do not spin on the same refusal meanwhile.
        await asyncio.sleep(1)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class _GroupKeepingState(RedisConnectionState):
    """FastStream's connection state, building our client instead of a plain one."""

    __slots__ = ("_broker",)

    def __init__(self, options: dict[str, Any], broker: NewsflowBroker) -> None:
        super().__init__(options)
        self._broker = broker

    async def connect(self) -> Redis:
        pool = ConnectionPool(**loss_aware(self._options))
        client = cast(GroupKeepingRedis, GroupKeepingRedis.from_pool(pool))
        client.broker = self._broker
        self._client = client
        self._connected = True
        return client


class NewsflowBroker(RedisBroker):
    """A RedisBroker whose subscribers survive a lost group, and which records why it had to stop the service."""

    failure: str | None = None

    def _make_connection_state(
        self, connection_options: dict[str, Any], kwargs: dict[str, Any]
    ) -> ConnectionState[Any]:
        return _GroupKeepingState(connection_options, self)

    def fail(self, event: str, **facts: Any) -> None:
        """Stop the service because of a state no retry can fix; `newsflow serve` then exits non-zero."""
        if self.failure is None:
            self.failure = event
            log.error(event, **facts, hint="the service stops so that its supervisor restarts it and it is seen")
        app = self.context.get("app")
        if app is not None:
            app.exit()


def make_broker(settings: Settings) -> NewsflowBroker:
    """A FastStream Redis broker; its per-message 'Received/Processed' lines are DEBUG, the canonical line is ours."""
    return NewsflowBroker(
        settings.redis_url,
        graceful_timeout=settings.shutdown_timeout_s,
        log_level=logging.DEBUG,
        logger=logging.getLogger("newsflow.broker"),
        # The subscribers' reads too: without a reply timeout a read sent into a dead link waits on TCP.
        **redis_link_options(settings.link_timeout_s),
    )

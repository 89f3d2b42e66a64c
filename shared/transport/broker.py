"""The broker factory and the plain Redis client the delivery policy writes through."""

from __future__ import annotations

import logging

from faststream.redis import RedisBroker
from redis.asyncio import Redis

from shared.settings import Settings


def make_redis(settings: Settings) -> Redis:
    """An asyncio Redis client (bytes in, bytes out) for pipelines, groups and admin."""
    return Redis.from_url(
        settings.redis_url,
        decode_responses=False,
        health_check_interval=30,
        socket_connect_timeout=5,
        socket_keepalive=True,
    )


def make_broker(settings: Settings) -> RedisBroker:
    """A FastStream Redis broker; its per-message 'Received/Processed' lines are DEBUG, the canonical line is ours."""
    return RedisBroker(
        settings.redis_url,
        graceful_timeout=settings.shutdown_timeout_s,
        log_level=logging.DEBUG,
        logger=logging.getLogger("newsflow.broker"),
        socket_connect_timeout=5,
    )

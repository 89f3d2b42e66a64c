"""The two kinds of failure the delivery policy tells apart."""

from __future__ import annotations

import re

from redis.exceptions import (
    BusyLoadingError,
    ClusterDownError,
    OutOfMemoryError,
    ReadOnlyError,
    ResponseError,
    TryAgainError,
)


class Rejected(Exception):
    """A permanent failure for this input: dead-letter it at once with `reason`.

    `reason` is a short snake_case code operators filter on (`too_large`, `no_article_text`, ...);
    the message says what exactly was wrong.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class TransientError(Exception):
    """A dependency (Redis, storage) is unavailable: retry later, never dead-letter on the first try."""


class ConfigurationError(RuntimeError):
    """The settings ask for something unsafe or impossible; the service refuses to start (exit status 2).

    `event` is the log event naming the refusal (e.g. `http_ingest.refused`).
    """

    def __init__(self, message: str, *, event: str = "configuration.refused") -> None:
        super().__init__(message)
        self.event = event


# Redis replies that mean "not now" rather than "never": memory full (maxmemory with noeviction), a read-only
# replica (a failover, or an operator's REPLICAOF), a failed snapshot refusing writes (MISCONF), a dataset still
# loading, a script or failover in the way, a blocked read released by a role change. The same command succeeds
# once the condition passes, so the delivery policy retries it with backoff and acknowledges nothing meanwhile.
# redis-py raises a class of its own for some; the others keep their code as the message's first word.
_REDIS_TRANSIENT_CODES = frozenset({"MISCONF", "NOREPLICAS", "BUSY", "UNBLOCKED"})


# redis-py rewrites an error raised in a pipeline: `Command # 3 (EVALSHA …) of pipeline caused error: ('MISCONF …',)`.
_PIPELINE_ERROR = re.compile(r"^Command # \d+ \(.*?\) of pipeline caused error: \(?['\"]?", re.DOTALL)


def redis_error_code(exc: BaseException) -> str | None:
    """The code a Redis error reply starts with (`MISCONF`, `NOGROUP`, …), also when raised from a pipeline."""
    if not isinstance(exc, ResponseError):
        return None
    message = _PIPELINE_ERROR.sub("", str(exc), count=1)
    return message.split(" ", 1)[0] or None


def redis_refuses_for_now(exc: BaseException) -> bool:
    """True for a Redis error reply that a later retry can get past (OOM, READONLY, MISCONF, LOADING, …)."""
    if isinstance(exc, OutOfMemoryError | ReadOnlyError | BusyLoadingError | TryAgainError | ClusterDownError):
        return True
    return redis_error_code(exc) in _REDIS_TRANSIENT_CODES


def redis_group_missing(exc: BaseException) -> bool:
    """True for NOGROUP: the stream or its consumer group is gone (Redis restarted empty, a key deleted)."""
    return redis_error_code(exc) == "NOGROUP"

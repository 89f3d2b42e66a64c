"""Which failures the delivery policy retries in place (and never dead-letters at once), and which it does not."""

from __future__ import annotations

import pytest
from redis._parsers.base import BaseParser
from redis.exceptions import ConnectionError as RedisConnectionError

from shared.errors import TransientError, redis_group_missing, redis_refuses_for_now
from shared.transport.delivery import is_transient


def reply(error_line: str) -> Exception:
    """The exception redis-py raises for an error reply, exactly as its parser builds it."""
    return BaseParser.parse_error(error_line)  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    "line",
    [
        "OOM command not allowed when used memory > 'maxmemory'.",
        "READONLY You can't write against a read only replica.",
        "MISCONF Redis is configured to save RDB snapshots, but it's currently unable to persist to disk.",
        "LOADING Redis is loading the dataset in memory",
        "BUSY Redis is busy running a script.",
        "NOREPLICAS Not enough good replicas to write.",
        "UNBLOCKED force unblock from blocking operation, instance state changed (master -> replica?)",
        "TRYAGAIN Multiple keys request during rehashing of slot",
        "CLUSTERDOWN The cluster is down",
        "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.",
    ],
)
def test_redis_refusals_that_pass_are_transient(line: str) -> None:
    error = reply(line)
    assert redis_refuses_for_now(error) and is_transient(error)


@pytest.mark.parametrize(
    "line",
    [
        "WRONGTYPE Operation against a key holding the wrong kind of value",
        "NOPERM this user has no permissions to access one of the keys used as arguments",
        "ERR syntax error",
        "NOGROUP No such key 'newsflow:raw' or consumer group 'ingest' in XREADGROUP with GROUP option",
    ],
)
def test_other_redis_errors_are_not(line: str) -> None:
    error = reply(line)
    assert not redis_refuses_for_now(error) and not is_transient(error)


def test_nogroup_is_told_apart() -> None:
    assert redis_group_missing(reply("NOGROUP No such key 'newsflow:raw' or consumer group 'ingest'"))
    assert not redis_group_missing(reply("WRONGTYPE Operation against a key holding the wrong kind of value"))


def test_outages_stay_transient() -> None:
    assert is_transient(TransientError("storage is down"))
    assert is_transient(RedisConnectionError("Connection refused"))
    assert not is_transient(ValueError("a bug on this input"))


def test_a_refusal_raised_from_a_pipeline_is_recognised() -> None:
    # redis-py rewrites the message of an error raised inside a pipeline (enrich's index runs its scripts in one).
    for line in ("MISCONF Redis is configured to save RDB snapshots", "NOREPLICAS Not enough good replicas"):
        error = reply(line)
        error.args = (f"Command # 3 (EVALSHA abc 4 k1 k2) of pipeline caused error: {error.args!r}",)
        assert redis_refuses_for_now(error), str(error)
    nogroup = reply("NOGROUP No such key 'newsflow:raw' or consumer group 'ingest'")
    nogroup.args = (f"Command # 1 (XPENDING newsflow:raw ingest) of pipeline caused error: {nogroup.args!r}",)
    assert redis_group_missing(nogroup)

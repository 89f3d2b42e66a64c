"""Dead-link detection for the TCP connections newsflow holds to Redis and PostgreSQL, and the rejoin bound.

A link that goes away without a FIN or RST (a partition, a pulled cable, a host powered off) leaves both ends
believing in the connection. A reply the server sends into it is retransmitted by the server with a backoff that
doubles for as long as the cut lasts (up to 2 minutes between tries); a client with no timeout of its own waits
for that next retransmission after the link is back — later the longer the cut (tests/e2e/test_dead_link.py: a
PostgreSQL request whose reply was lost in a 30 s cut went through 24 s after the link's return). libpq has no
such timeout and probes an idle connection after 2 hours; redis-py only has one from version 8 (5 s) and newsflow
allows 5.2. psycopg's pool, having lost connections, reconnects with a backoff that also doubles (up to 5 min).
So a replica of a host cut off came back late, or not within 300 s on a loaded machine (tests/e2e/test_multihost.py).

Every connection therefore gets the same `NEWSFLOW_LINK_TIMEOUT_S` (L): TCP_USER_TIMEOUT (data sent and not
acknowledged for L, or keepalive probes unanswered: the connection is dropped), keepalive probes that find an
idle dead link within about L, and on Redis a reply timeout of L (no newsflow command blocks long: XREADGROUP
blocks NEWSFLOW_POLL_MS). A dropped connection is made anew on the next attempt; see `rejoin_bound_s` for the sum.
"""

from __future__ import annotations

import socket
from typing import Any

# How long one connection attempt may take (a SYN into a dead link is retried by the kernel at 1, 3, 7 s...).
CONNECT_TIMEOUT_S = 5.0
# FastStream 0.7.8's subscriber pauses this long after a failed read (CONSUME_ERROR_BACKOFF_SECONDS, not settable).
SUBSCRIBER_ERROR_PAUSE_S = 5.0
DEFAULT_LINK_TIMEOUT_S = 10.0
KEEPALIVE_PROBES = 3


def keepalive_schedule(link_timeout_s: float) -> tuple[int, int, int]:
    """(idle s, interval s, probes): an idle link whose probes go unanswered is dropped about `link_timeout_s` on."""
    idle = max(1, int(link_timeout_s // 2))
    interval = max(1, int((link_timeout_s - idle) // KEEPALIVE_PROBES))
    return idle, interval, KEEPALIVE_PROBES


def tcp_options(link_timeout_s: float) -> dict[int, int]:
    """setsockopt(IPPROTO_TCP, ...) options for one connection (Linux names; others use what their OS has)."""
    idle, interval, probes = keepalive_schedule(link_timeout_s)
    wanted = {
        # macOS calls TCP_KEEPIDLE TCP_KEEPALIVE.
        getattr(socket, "TCP_KEEPIDLE", getattr(socket, "TCP_KEEPALIVE", None)): idle,
        getattr(socket, "TCP_KEEPINTVL", None): interval,
        getattr(socket, "TCP_KEEPCNT", None): probes,
        # Linux: unacknowledged data (and unanswered keepalive probes) for this long drops the connection.
        getattr(socket, "TCP_USER_TIMEOUT", None): int(link_timeout_s * 1000),
    }
    return {option: value for option, value in wanted.items() if option is not None}


def redis_link_options(link_timeout_s: float) -> dict[str, Any]:
    """redis-py connection options: keepalive, TCP_USER_TIMEOUT, a reply timeout, a bounded connect."""
    return {
        "socket_timeout": link_timeout_s,
        "socket_connect_timeout": min(CONNECT_TIMEOUT_S, link_timeout_s),
        "socket_keepalive": True,
        "socket_keepalive_options": tcp_options(link_timeout_s),
    }


def libpq_link_options(link_timeout_s: float) -> dict[str, Any]:
    """libpq connection parameters with the same meaning (a URL's own `keepalives*`/`tcp_user_timeout` win)."""
    idle, interval, probes = keepalive_schedule(link_timeout_s)
    return {
        "keepalives": 1,
        "keepalives_idle": idle,
        "keepalives_interval": interval,
        "keepalives_count": probes,
        "tcp_user_timeout": int(link_timeout_s * 1000),
    }


def rejoin_bound_s(link_timeout_s: float, retry_max_s: float) -> float:
    """Worst case from a link's return until a replica reads and commits again, whatever the partition's length.

    A connection still open from before the partition answers or is dropped within L (TCP_USER_TIMEOUT, the
    reply timeout); the step in hand retries within NEWSFLOW_RETRY_MAX_S; a new connection, or psycopg's pool
    reconnecting (its attempts capped at L apart), takes up to L more; a subscriber whose read failed pauses 5 s.
    """
    return 2 * link_timeout_s + retry_max_s + SUBSCRIBER_ERROR_PAUSE_S

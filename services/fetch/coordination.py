"""What fetch replicas share in Redis: the seen-URL set, host leases, the poll schedule, delayed jobs, caches.

Each step that two replicas could race on is one Lua script, so it is atomic on the server:
- a URL is queued at most once: ZADD NX into the seen set and XADD onto the discovered stream together;
- a host serves one request at a time: a lease (SET NX PX) held while the request runs, then kept for the
  politeness delay, so the next request to that host, from any replica, starts only after it;
- a source is polled by one replica per interval: whoever can SET NX its poll key polls it, and the key then
  lives until the next poll is due;
- retries and busy-host pages wait in a sorted set by due time and go back onto the discovered stream when due.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
from redis.asyncio import Redis

from services.fetch.robots import Robots
from shared.events import FetchJob
from shared.observability import sources as state
from shared.streams import StreamNames

QUEUE_NEW = """
local queued = 0
for i = 2, #ARGV, 2 do
  if redis.call('ZADD', KEYS[1], 'NX', ARGV[1], ARGV[i]) == 1 then
    redis.call('XADD', KEYS[2], '*', 'data', ARGV[i + 1])
    queued = queued + 1
  end
end
return queued
"""
# 0: the lease is ours; otherwise how many ms until it may be free.
ACQUIRE = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 0 end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 1 then return 1 end
return ttl
"""
# Keep (or drop, for 0 ms) a lease we hold; never touch another replica's.
HOLD_IF_OURS = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if tonumber(ARGV[2]) <= 0 then redis.call('DEL', KEYS[1]) else redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) end
return 1
"""
RELEASE_DUE = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
for _, job in ipairs(due) do
  redis.call('XADD', KEYS[2], '*', 'data', job)
  redis.call('ZREM', KEYS[1], job)
end
return #due
"""
QUEUE_CHUNK = 200


def iso(moment: datetime) -> str:
    """UTC ISO 8601, seconds precision (what the source state shows)."""
    return moment.astimezone(UTC).isoformat(timespec="seconds")


class Coordination:
    """The fetch stage's shared state, for one replica (its own lease token)."""

    def __init__(self, redis: Redis, streams: StreamNames, consumer: str) -> None:
        self.redis = redis
        self.streams = streams
        self.token = f"{consumer}-{secrets.token_hex(4)}"
        self._queue = redis.register_script(QUEUE_NEW)
        self._acquire = redis.register_script(ACQUIRE)
        self._hold = redis.register_script(HOLD_IF_OURS)
        self._release_due = redis.register_script(RELEASE_DUE)

    # -- discovered URLs -----------------------------------------------------------------------------------

    async def queue_new(self, jobs: Sequence[FetchJob], now_ms: int) -> int:
        """Queue the jobs whose URL was never seen (or not within the retention); how many were new."""
        queued = 0
        for start in range(0, len(jobs), QUEUE_CHUNK):
            args: list[Any] = [now_ms]
            for job in jobs[start : start + QUEUE_CHUNK]:
                args += [job.url, job.to_json()]
            queued += int(await self._queue(keys=[self.streams.fetch_seen, self.streams.discovered], args=args))
        return queued

    async def forget_seen(self, before_ms: int) -> int:
        """Drop URLs first seen before `before_ms`: a feed listing one again gets it fetched again."""
        return int(await self.redis.zremrangebyscore(self.streams.fetch_seen, "-inf", f"({before_ms}"))

    async def release_due(self, now_ms: int, limit: int = 500) -> int:
        """Move delayed jobs that are due back onto the discovered stream."""
        keys = [self.streams.fetch_delayed, self.streams.discovered]
        return int(await self._release_due(keys=keys, args=[now_ms, limit]))

    # -- leases --------------------------------------------------------------------------------------------

    async def acquire_host(self, host: str, lease_ms: int) -> int:
        """0 when this replica may send a request to `host` now; else the ms until it may try again."""
        return int(await self._acquire(keys=[self.streams.fetch_host(host)], args=[self.token, max(1, lease_ms)]))

    async def hold_host(self, host: str, delay_ms: int) -> None:
        """After a request: keep `host` closed to everyone for the politeness delay (0: open it now)."""
        await self._hold(keys=[self.streams.fetch_host(host)], args=[self.token, delay_ms])

    async def claim_poll(self, source_id: str, lease_ms: int) -> bool:
        """True when the source is due and this replica is the one to poll it."""
        key = self.streams.fetch_poll(source_id)
        return bool(await self.redis.set(key, self.token, nx=True, px=max(1, lease_ms)))

    async def schedule_poll(self, source_id: str, in_ms: int) -> None:
        """The next poll of a source this replica just polled is due in `in_ms`."""
        await self._hold(keys=[self.streams.fetch_poll(source_id)], args=[self.token, max(1, in_ms)])

    # -- caches --------------------------------------------------------------------------------------------

    async def robots(self, origin: str) -> Robots | None:
        """The cached robots.txt verdict for an origin, if fresh."""
        cached = await self.redis.get(self.streams.fetch_robots(origin))
        return Robots.from_json(cached.encode() if isinstance(cached, str) else cached) if cached else None

    async def store_robots(self, origin: str, robots: Robots, ttl_s: int) -> None:
        """Cache a verdict for every replica."""
        await self.redis.set(self.streams.fetch_robots(origin), robots.to_json(), ex=max(1, ttl_s))

    async def validators(self, url: str) -> dict[str, str]:
        """ETag / Last-Modified of the last 200 for a feed or sitemap URL."""
        cached = await self.redis.hget(self.streams.fetch_validators, url)
        return dict(orjson.loads(cached)) if cached else {}

    async def store_validators(self, url: str, etag: str | None, last_modified: str | None) -> None:
        """Remember them for the next conditional GET (or forget them when the server sent none)."""
        values = {k: v for k, v in (("etag", etag), ("last_modified", last_modified)) if v}
        if values:
            await self.redis.hset(self.streams.fetch_validators, url, orjson.dumps(values))
        else:
            await self.redis.hdel(self.streams.fetch_validators, url)

    # -- per-source state (shared/observability/sources.py reads it) -------------------------------------

    async def record_poll(
        self,
        source_id: str,
        url: str,
        *,
        kind: str | None,
        outcome: str,
        error: str | None,
        queued: int,
        at: datetime,
        next_poll_at: datetime,
    ) -> None:
        """One poll's result, atomically (replicas update the same counters)."""
        key = self.streams.fetch_source(source_id)
        fields: dict[str, str] = {
            state.URL: url,
            state.LAST_POLL: outcome,
            state.LAST_POLL_AT: iso(at),
            state.NEXT_POLL_AT: iso(next_poll_at),
        }
        if kind:
            fields[state.KIND] = kind
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.sadd(self.streams.fetch_sources, source_id)
            pipe.hset(key, mapping=fields)  # type: ignore[arg-type]
            pipe.hincrby(key, state.POLLS, 1)
            pipe.hincrby(key, state.URLS_QUEUED, queued)
            if error is None:
                pipe.hset(key, state.CONSECUTIVE_FAILURES, 0)
            else:
                pipe.hincrby(key, state.POLLS_FAILED, 1)
                pipe.hincrby(key, state.CONSECUTIVE_FAILURES, 1)
                pipe.hset(key, mapping={state.LAST_ERROR: error, state.LAST_ERROR_AT: iso(at)})
            await pipe.execute()

    async def consecutive_failures(self, source_id: str) -> int:
        """How many polls in a row have failed."""
        value = await self.redis.hget(self.streams.fetch_source(source_id), state.CONSECUTIVE_FAILURES)
        return int(value or 0)

    async def forget_source(self, source_id: str, url: str) -> None:
        """A removed source: its state, schedule and validators go."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.srem(self.streams.fetch_sources, source_id)
            pipe.delete(self.streams.fetch_source(source_id), self.streams.fetch_poll(source_id))
            pipe.hdel(self.streams.fetch_validators, url)
            await pipe.execute()

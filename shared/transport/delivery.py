"""Delivery policy, written once for every stage: decode, process, stamp, commit, dead-letter, retry, claim.

Redis Streams give the pieces; FastStream 0.7 does not assemble them (on streams `nack`/`reject` send nothing,
groups are created at `$`, there is no dead-letter queue). So every service hands its batches to a `Stage`:

- each entry is decoded on its own, so one poison message never sinks its batch;
- outputs are XADDed to the next stream and the inputs XACKed in ONE atomic step (a Lua script), so an entry is
  acknowledged exactly when its output is durable (publish commits storage first, then does the same) — and only
  while this consumer still holds it: a replica cut off or stalled past the claim idle time has had its entries
  claimed by another, and its late commit writes nothing for them (no duplicate downstream, no ack of an entry
  another replica is working on);
- permanent failures (`Rejected`, a bug on this input) go to the DLQ with stage, reason, error, traceback and the
  original payload, and are acknowledged;
- transient failures (Redis or storage down; Redis refusing writes for now: OOM, READONLY, MISCONF, LOADING) are
  retried with backoff while the service runs; the entries stay pending, and a sweep (XPENDING + XCLAIM) hands
  entries idle past `claim_idle_ms` — a dead or cut-off consumer's, or this consumer's own that a failed batch left
  behind — to this consumer, dead-lettering those delivered more than `max_deliveries` times;
- while a batch is in hand its entries' idle time is reset every third of `claim_idle_ms` (XCLAIM JUSTID to the
  holder itself, if still its own), so a slow batch on a live replica is never claimed from under it — only a
  replica that stopped reaching Redis (dead, cut off, stalled) loses its entries;
- a group found gone (NOGROUP: Redis restarted empty, a key deleted) is created again at id 0 (`recreate_group`).
"""

from __future__ import annotations

import asyncio
import gc
import random
import signal
import time
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, Protocol, Self, TypeVar, cast

import orjson
from faststream.redis import StreamSub
from faststream.redis.message import FAKE_CONSUMER, RedisBatchStreamMessage
from faststream.redis.parser.binary import BinaryMessageFormatV1
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.typing import EncodableT, KeyT
from structlog.contextvars import bound_contextvars

from shared.errors import Rejected, TransientError, redis_group_missing, redis_refuses_for_now
from shared.events import DeadLetter, Event, Stamp
from shared.observability.health import RoutesFactory, serve_http
from shared.observability.logging import get_logger
from shared.observability.metrics import (
    record_batch,
    record_dlq_trimmed,
    record_outcomes,
    record_transient_failure,
)
from shared.settings import Settings
from shared.streams import StreamNames, ensure_group, group_of, names, trim_acknowledged
from shared.transport import dlq
from shared.transport.broker import make_redis, recreate_group

In = TypeVar("In")
ClaimedEntry = tuple[bytes, dict[bytes, bytes] | None]


class Serialised(Protocol):
    """Anything a stage writes to a stream: it knows its wire form."""

    def to_json(self) -> bytes: ...


class Output(Serialised, Protocol):
    """What a stage hands on: an id to log and a lineage to stamp (an article event, or fetch's outcome)."""

    @property
    def id(self) -> str: ...

    @property
    def trace(self) -> list[Stamp]: ...

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self: ...


Out = TypeVar("Out", bound=Output)
# How a stage writes one output inside the commit; default: XADD {"data": JSON} to its next stream. The pipeline
# only records the commands: the commit runs them in its script, for the entries this consumer still holds.
Writer = Callable[[Pipeline, Serialised], None]
# One Redis command as recorded from a pipeline: its name, then its arguments.
Command = tuple[EncodableT, ...]

# The commit, atomic: for each entry still pending for this consumer, its writes and then one XACK for all of them.
# An entry another consumer claimed meanwhile (this one was cut off or stalled past the claim idle time) or that
# is no longer pending (acknowledged by whoever holds it) gets nothing written; the script returns those as
# id/holder pairs (holder "" when acknowledged). XPENDING on one id is a lookup in the group's pending list, so
# a batch of 32 costs well under a millisecond of Redis time. An entry without an id (TestRedisBroker) is written.
# KEYS[1]: the input stream, then every key the writes touch. ARGV: group, consumer, then per entry: its id, its
# number of writes, and per write its argument count and arguments.
FENCED_COMMIT = """
local stream, group, consumer = KEYS[1], ARGV[1], ARGV[2]
local entries, skipped, held, i = {}, {}, {}, 3
while i <= #ARGV do
  local id, writes = ARGV[i], tonumber(ARGV[i + 1])
  local entry = {id = id, first = i + 2, writes = writes, ours = true}
  i = i + 2
  for _ = 1, writes do i = i + 1 + tonumber(ARGV[i]) end
  if id ~= '' then
    local row = redis.call('XPENDING', stream, group, id, id, 1)[1]
    entry.ours = row ~= nil and row[2] == consumer
    if entry.ours then
      held[#held + 1] = id
    else
      skipped[#skipped + 1] = id
      skipped[#skipped + 1] = row and row[2] or ''
    end
  end
  entries[#entries + 1] = entry
end
for _, entry in ipairs(entries) do
  if entry.ours then
    local j = entry.first
    for _ = 1, entry.writes do
      local n = tonumber(ARGV[j])
      redis.call(unpack(ARGV, j + 1, j + n))
      j = j + 1 + n
    end
  end
end
if #held > 0 then redis.call('XACK', stream, group, unpack(held)) end
return skipped
"""

# Renewal of the entries a batch holds: the ones still pending for this consumer get their idle time reset (XCLAIM
# to itself with JUSTID: no delivery is counted); one taken by another consumer is left alone.
# KEYS[1]: the input stream. ARGV: group, consumer, then the ids. Returns how many were renewed.
RENEW_HELD = """
local stream, group, consumer = KEYS[1], ARGV[1], ARGV[2]
local claim = {'XCLAIM', stream, group, consumer, 0}
for i = 3, #ARGV do
  local row = redis.call('XPENDING', stream, group, ARGV[i], ARGV[i], 1)[1]
  if row ~= nil and row[2] == consumer then claim[#claim + 1] = ARGV[i] end
end
if #claim == 5 then return 0 end
claim[#claim + 1] = 'JUSTID'
return #redis.call(unpack(claim))
"""

TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    TransientError,
    RedisConnectionError,
    RedisTimeoutError,
    ConnectionError,
)
# How often a stage with a `check` probes its sink (publish: storage) while it runs.
CHECK_INTERVAL_S = 5.0


def is_transient(exc: BaseException) -> bool:
    """A failure that passes by itself (a dependency down or refusing for now): retry, never dead-letter at once."""
    return isinstance(exc, TRANSIENT_ERRORS) or redis_refuses_for_now(exc)


def retry_delay_s(attempt: int, retry_max_s: float) -> float:
    """The pause before retry `attempt` (1, 2, ...): 0.2 s doubling, at most `retry_max_s`, jittered down to half.

    The cap is what a step waits at worst once its dependency is back (it was 30 s: a replica whose link came
    back could sit that long on the batch in hand before reading again).
    """
    return min(retry_max_s, 0.2 * 2.0**attempt) * (0.5 + random.random() / 2)


TRACEBACK_LINES = 12

log = get_logger("newsflow.delivery")


@dataclass(frozen=True, slots=True)
class StreamEntry:
    """One stream entry as read: its id, raw fields and how many times it has been delivered."""

    msg_id: str
    fields: dict[bytes, bytes]
    deliveries: int = 1

    @property
    def payload(self) -> bytes:
        """The message body, whatever the producer's convention.

        `data` (our own producers and `redis-cli XADD s '*' data '{...}'`) is the body as is; FastStream's own
        publishes use a binary envelope in `__data__`; several plain fields (`XADD s '*' text … url …`) are
        taken as one JSON object of strings.
        """
        if b"data" in self.fields:
            return self.fields[b"data"]
        if b"__data__" in self.fields:
            body, _headers = BinaryMessageFormatV1.parse(self.fields[b"__data__"])
            return body
        plain = {k.decode("utf-8", "replace"): v.decode("utf-8", "replace") for k, v in self.fields.items()}
        return orjson.dumps(plain)

    def field(self, name: str) -> str | None:
        """An envelope field beside `data` (e.g. `origin`), decoded."""
        value = self.fields.get(name.encode())
        return value.decode("utf-8", "replace") if value is not None else None


async def keep_raw_entries(msg: Any, original_parser: Callable[[Any], Awaitable[Any]]) -> RedisBatchStreamMessage:
    """Subscriber parser that skips FastStream's body decoding: the policy decodes each entry itself."""
    # Only FastStream's own publishes (and its TestRedisBroker) carry a correlation id, in the envelope headers.
    first: dict[bytes, bytes] = next(iter(msg.get("data") or []), {})
    headers = BinaryMessageFormatV1.parse(first[b"__data__"])[1] if b"__data__" in first else {}
    correlation_id = str(headers.get("correlation_id", ""))
    return RedisBatchStreamMessage(
        raw_message=msg,
        body=b"",
        headers=headers,
        batch_headers=[],
        path={},
        reply_to="",
        content_type=None,
        message_id=correlation_id,
        correlation_id=correlation_id,
        consumer=FAKE_CONSUMER,  # acknowledgement is the policy's own XACK, never FastStream's
        group=None,
    )


def entries_of(msg: RedisBatchStreamMessage) -> list[StreamEntry]:
    """The entries of a batch as delivered by XREADGROUP."""
    ids = msg.raw_message.get("message_ids") or []
    data = msg.raw_message.get("data") or []
    # TestRedisBroker delivers without stream ids; keep the entries so wiring tests see them processed.
    return [
        StreamEntry(msg_id=(ids[i].decode() if i < len(ids) else ""), fields=fields) for i, fields in enumerate(data)
    ]


def decode_event(model: type[In]) -> Callable[[StreamEntry], In]:
    """A decoder for events written by an upstream stage: one model, schema version checked."""

    def decode(entry: StreamEntry) -> In:
        try:
            raw = orjson.loads(entry.payload)
        except orjson.JSONDecodeError as exc:
            raise Rejected("invalid_json", f"payload is not JSON: {exc}") from exc
        if not isinstance(raw, dict):
            raise Rejected("invalid_event", f"expected a JSON object, got {type(raw).__name__}")
        version = raw.get("schema_version")
        if version != 1:
            raise Rejected("unknown_schema_version", f"schema_version {version!r} is not supported (expected 1)")
        try:
            return model.model_validate(raw)  # type: ignore[attr-defined, no-any-return]
        except ValueError as exc:
            raise Rejected("invalid_event", _short(str(exc))) from exc

    return decode


def _short(text: str, limit: int = 2000) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def _traceback_summary(exc: BaseException) -> str:
    # Bounded like the error, so a DLQ entry's header stays small whatever the exception carried.
    return _short("".join(traceback.format_exception(exc)[-TRACEBACK_LINES:]), 4000)


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class BatchResult(Generic[Out]):
    """What one pass over a batch produced."""

    outputs: list[tuple[StreamEntry, Out]] = field(default_factory=list)
    dead: list[tuple[StreamEntry, DeadLetter]] = field(default_factory=list)


class Stage(Generic[In, Out]):
    """One pipeline stage's consumption policy; its service supplies decode / process / (optional) sink."""

    def __init__(
        self,
        name: str,
        settings: Settings,
        *,
        decode: Callable[[StreamEntry], In],
        process: Callable[[list[In]], Awaitable[list[Out | Rejected]]],
        sink: Callable[[list[Out]], Awaitable[Sequence[Event]]] | None = None,
        sink_name: str = "sink",
        prepare: Callable[[], Awaitable[Any]] | None = None,
        check: Callable[[], Awaitable[Any]] | None = None,
        describe: Callable[[Out], dict[str, Any]] | None = None,
        on_start: Callable[[Redis], Awaitable[None]] | None = None,
        http_routes: RoutesFactory | None = None,
        write: Writer | None = None,
    ) -> None:
        """`sink` durably writes outputs before they are committed (publish: storage, named by `sink_name`).

        `prepare` readies the sink (publish: migrate storage): no batch is processed before it succeeded, and a
        transient failure is retried in the background while the service reports not ready. `check` probes the
        sink every `CHECK_INTERVAL_S` while the service runs: a failure is logged once and makes it not ready.
        """
        self.name = name
        self.settings = settings
        self.streams: StreamNames = names(settings)
        self.input_stream = self.streams.input_of(name)
        self.output_stream = self.streams.output_of(name)
        self.group = group_of(name)
        self.consumer = settings.consumer
        self.decode = decode
        self.process = process
        self.sink = sink
        self.sink_name = sink_name
        self.prepare = prepare
        self.check = check
        self.describe = describe
        self.on_start = on_start
        self.http_routes = http_routes
        self.write = write
        self._redis: Redis | None = None
        self._fenced_commit: AsyncScript | None = None
        self._renew_held: AsyncScript | None = None
        self._stopping = asyncio.Event()
        self._prepared = asyncio.Event()
        if prepare is None:
            self._prepared.set()
        # Ids of the entries a batch of this process is working on: recovery and the sweep leave them alone.
        self._in_flight: set[str] = set()
        # step -> the transient error it is retrying now (what /readyz reports); a fatal error of `prepare`.
        self._failing: dict[str, str] = {}
        self._fatal: BaseException | None = None
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def redis(self) -> Redis:
        """The client the policy writes through (connected in `lifespan`)."""
        if self._redis is None:
            self._redis = make_redis(self.settings)
            self._fenced_commit = self._renew_held = None
        return self._redis

    def subscription(self) -> StreamSub[Any]:
        """The batch subscription for this stage's input stream and group."""
        return StreamSub(
            self.input_stream,
            group=self.group,
            consumer=self.consumer,
            batch=True,
            max_records=self.settings.batch_size,
            polling_interval=self.settings.poll_ms,
        )

    @asynccontextmanager
    async def lifespan(self) -> AsyncIterator[None]:
        """Create the group at id 0 before FastStream starts reading; run the claimer and trimmer beside it."""
        await self._retrying("ensure_group", lambda: ensure_group(self.redis, self.input_stream, self.group))
        if self.on_start is not None:
            await self.on_start(self.redis)
        # Before HTTP: a refusal (a database newsflow cannot use) is then the service's one line and exit status 2.
        try:
            prepared = await self._prepare_once()
        except BaseException:
            await self.redis.aclose()
            self._redis = None
            raise
        http = await serve_http(self, self.http_routes)  # /healthz, /readyz, /metrics (+ the service's routes)
        started = False
        try:
            if not prepared:
                self._tasks.append(asyncio.create_task(self._prepare_until_done()))
            # Models and modules are loaded: move them out of the collector's reach, so full collections stop
            # re-scanning them (measured in enrich: gen-2 passes over spaCy's objects cost ~5 ms per article).
            gc.collect()
            gc.freeze()
            log.info(
                "stage.started", stage=self.name, stream=self.input_stream, group=self.group, consumer=self.consumer
            )
            started = True
            self._tasks += [
                asyncio.create_task(self._recover_then_claim()),
                asyncio.create_task(self._every(self.settings.trim_interval_s, self.trim_input)),
            ]
            if self.check is not None:
                self._tasks.append(asyncio.create_task(self._every(CHECK_INTERVAL_S, self._check_sink)))
            yield
        finally:
            self._stopping.set()
            for task in self._tasks:
                task.cancel()
            for task in self._tasks:
                with suppress(asyncio.CancelledError):
                    await task
            self._tasks = []
            if http is not None:
                await http.stop()
            await self.redis.aclose()
            self._redis = None
            if started:
                log.info("stage.stopped", stage=self.name, consumer=self.consumer)
        if self._fatal is not None:
            raise self._fatal

    def unready_reason(self) -> str | None:
        """Why this stage cannot store and acknowledge right now (its readiness), or None."""
        if not self._prepared.is_set():
            return f"{self.sink_name}: not prepared yet: {self._failing.get('prepare', 'starting')}"
        for step, error in self._failing.items():
            where = "redis" if step in ("commit", "ensure_group") else self.sink_name
            return f"{where}: {error}"
        return None

    async def _prepare_once(self) -> bool:
        """Run `prepare` once: True when done; False when its dependency is down (then retried in the background)."""
        if self.prepare is None:
            return True
        try:
            await self.prepare()
        except TRANSIENT_ERRORS as exc:
            self._note_failure("prepare", exc, attempt=1, delay=0.0)
            return False
        self._prepared.set()
        return True

    async def _prepare_until_done(self) -> None:
        prepare = self.prepare
        assert prepare is not None
        try:
            await self._retrying("prepare", prepare, first_attempt=2)
        except TRANSIENT_ERRORS:
            return  # stopping
        except Exception as exc:
            # E.g. the database came back and is not one newsflow can use: stop the process with that error.
            self._fatal = exc
            log.error("stage.prepare_failed", stage=self.name, error=f"{type(exc).__name__}: {exc}")
            signal.raise_signal(signal.SIGTERM)
            return
        self._prepared.set()
        log.info("stage.prepared", stage=self.name, sink=self.sink_name)

    async def _check_sink(self) -> None:
        """Probe the sink; log once when it goes away and once when it is back."""
        assert self.check is not None
        try:
            await self.check()
        except TRANSIENT_ERRORS as exc:
            if "check" not in self._failing:
                log.error(f"{self.sink_name}.unavailable", stage=self.name, error=f"{type(exc).__name__}: {exc}")
            self._failing["check"] = f"{type(exc).__name__}: {exc}"
            return
        if self._failing.pop("check", None) is not None:
            log.info(f"{self.sink_name}.available", stage=self.name)

    async def _until_prepared(self) -> bool:
        """Wait until `prepare` succeeded (True) or the service is stopping (False)."""
        if self._prepared.is_set():
            return True
        waits = [asyncio.create_task(self._prepared.wait()), asyncio.create_task(self._stopping.wait())]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in waits:
                task.cancel()
        return self._prepared.is_set()

    async def _recover_then_claim(self) -> None:
        if not await self._until_prepared():
            return
        try:
            await self.recover_own_pending()
        except Exception as exc:
            if not is_transient(exc):
                raise
            log.warning("dependency.unavailable", stage=self.name, step="recover_own_pending", error=str(exc))
        await self._every(self.settings.claim_interval_ms / 1000, self.claim_once)

    async def begin_shutdown(self) -> None:
        """Stop retrying transient failures: what is in hand stays pending for another consumer."""
        self._stopping.set()

    async def handle(self, msg: RedisBatchStreamMessage) -> None:
        """Subscriber body: run the policy over one delivered batch."""
        entries = entries_of(msg)
        # Every line logged while this batch is in hand (library warnings included) names its stage and batch.
        with bound_contextvars(stage=self.name, batch_id=entries[0].msg_id if entries else None):
            await self.run(entries)

    async def run(self, entries: Sequence[StreamEntry]) -> None:
        """Decode, process, stamp, commit and acknowledge one batch (see the module docstring)."""
        entries = [entry for entry in entries if not entry.msg_id or entry.msg_id not in self._in_flight]
        if not entries:
            return
        ids = [e.msg_id for e in entries if e.msg_id]
        self._in_flight |= set(ids)
        # Renewed while it waits for the sink to be prepared too: nobody else can store it meanwhile either.
        renewing = asyncio.create_task(self._renew_while_held(ids)) if ids else None
        try:
            if not await self._until_prepared():
                return  # stopping before the sink was ever ready: the batch stays pending for the next consumer
            await self._run(entries)
        finally:
            self._in_flight -= set(ids)
            if renewing is not None:
                renewing.cancel()
                with suppress(asyncio.CancelledError):
                    await renewing

    async def _renew_while_held(self, ids: list[str]) -> None:
        """Keep this batch's entries from looking idle to other replicas' claimers while this one works on them."""
        interval_s = self.settings.claim_idle_ms / 3000
        give_up = time.monotonic() + self.settings.max_hold_ms / 1000
        while True:
            await asyncio.sleep(interval_s)
            if time.monotonic() >= give_up:
                # Hung, or waiting on something that stays down: stop hiding it. The entries go idle, `status`
                # reports them pending past the claim time, and a live replica may claim them (the commit fence
                # keeps this one from writing them twice should it finish after all).
                log.error("batch.held_too_long", stage=self.name, entries=len(ids),
                          held_ms=self.settings.max_hold_ms)
                return
            redis = self.redis
            if self._renew_held is None:
                self._renew_held = redis.register_script(RENEW_HELD)
            try:
                await self._renew_held(keys=[self.input_stream], args=[self.group, self.consumer, *ids])
            except Exception as exc:  # cut off, or refused: the entries go idle, and are taken from it
                if not (is_transient(exc) or isinstance(exc, RedisError)):
                    raise
                log.debug("entries.renew_failed", stage=self.name, error=f"{type(exc).__name__}: {exc}")

    async def _run(self, entries: Sequence[StreamEntry]) -> None:
        started = _now()
        t0 = time.perf_counter()
        result: BatchResult[Out] = BatchResult()
        decoded: list[tuple[StreamEntry, In]] = []
        for entry in entries:
            try:
                decoded.append((entry, self.decode(entry)))
            except Rejected as rej:
                result.dead.append((entry, self._dead_letter(entry, rej.reason, rej.message)))
            except Exception as exc:
                result.dead.append((entry, self._dead_letter(entry, "invalid_event", str(exc), exc)))

        await self._process_isolating(decoded, result)
        position = {id(entry): i for i, entry in enumerate(entries)}
        result.dead.sort(key=lambda pair: position[id(pair[0])])  # the DLQ keeps the input's order
        logic_ms = (time.perf_counter() - t0) * 1000
        stamp = Stamp(
            stage=self.name,
            version=self.settings.service_version,
            worker=self.consumer,
            started_at=started,
            finished_at=_now(),
            # A batch is processed together; each article carries its share of the batch's logic time.
            duration_ms=round(logic_ms / max(len(entries), 1), 3),
        )
        stamped = [(e, out.model_copy(update={"trace": [*out.trace, stamp]})) for e, out in result.outputs]
        events: Sequence[Serialised] = [out for _, out in stamped]
        held: Sequence[StreamEntry] = entries
        if self.sink is not None and stamped:
            events, stamped, unsettled = await self._sink_isolating(stamped, result)
            held = [entry for entry in entries if id(entry) not in unsettled]
            result.dead.sort(key=lambda pair: position[id(pair[0])])
        writes = self._writes_by_entry(held, stamped, events, result.dead)
        skipped = await self._retrying("commit", lambda: self._commit(writes))
        if skipped:
            stamped = [(e, out) for e, out in stamped if e.msg_id not in skipped]
            result.dead = [(e, letter) for e, letter in result.dead if e.msg_id not in skipped]
        if result.dead:
            await self._retain_dead_letters()
        total_ms = (time.perf_counter() - t0) * 1000
        self._log_outcomes(stamped, result.dead, stamp, total_ms, len(entries))
        record_batch(
            self.name,
            size=len(entries),
            processed=len(stamped),
            per_article_s=stamp.duration_ms / 1000,
            batch_s=total_ms / 1000,
        )

    async def _sink_isolating(
        self, stamped: list[tuple[StreamEntry, Out]], result: BatchResult[Out]
    ) -> tuple[list[Event], list[tuple[StreamEntry, Out]], set[int]]:
        """Sink the batch; if the sink refuses it, sink article by article so only the refused one is set apart.

        Returns (the sink's events, the outputs it took, the entries left unsettled). An output the sink refuses
        as `Rejected` (publish: the database refuses this row) is dead-lettered with the sink's reason; one that
        fails otherwise (a bug, an error nobody classified) is left pending, unacknowledged, for redelivery and,
        past `max_deliveries`, the DLQ. Transient failures are retried (see `_retrying`), never split.
        """
        sink = self.sink
        assert sink is not None
        outs = [out for _, out in stamped]
        try:
            return list(await self._retrying(self.sink_name, lambda: sink(outs))), stamped, set()
        except TRANSIENT_ERRORS:
            raise
        except Exception as exc:
            if len(stamped) == 1:
                entry, out = stamped[0]
                if isinstance(exc, Rejected):
                    result.dead.append((entry, self._dead_letter(entry, exc.reason, exc.message, article_id=out.id)))
                else:
                    log.error("sink.failed", stage=self.name, msg_id=entry.msg_id, article_id=out.id,
                              error=f"{type(exc).__name__}: {exc}", traceback=_traceback_summary(exc),
                              action="left pending: redelivered after the claim idle time")
                    return [], [], {id(entry)}
                return [], [], set()
        events: list[Event] = []
        taken: list[tuple[StreamEntry, Out]] = []
        unsettled: set[int] = set()
        for pair in stamped:
            some, took, left = await self._sink_isolating([pair], result)
            events += some
            taken += took
            unsettled |= left
        return events, taken, unsettled

    async def _process_isolating(self, decoded: list[tuple[StreamEntry, In]], result: BatchResult[Out]) -> None:
        """Process the batch; if it raises, retry item by item so only the poison item is dead-lettered."""
        if not decoded:
            return
        items = [item for _, item in decoded]
        try:
            outcomes = await self._retrying("process", lambda: self.process(items))
        except Exception as exc:
            if is_transient(exc):
                raise
            if len(decoded) > 1:
                for pair in decoded:
                    await self._process_isolating([pair], result)
                return
            entry, item = decoded[0]
            if isinstance(exc, Rejected):
                letter = self._dead_letter(entry, exc.reason, exc.message, article_id=_article_id(item))
            else:
                letter = self._dead_letter(
                    entry, "processing_error", f"{type(exc).__name__}: {exc}", exc, _article_id(item)
                )
            result.dead.append((entry, letter))
            return
        for (entry, item), outcome in zip(decoded, outcomes, strict=True):
            if isinstance(outcome, Rejected):
                letter = self._dead_letter(entry, outcome.reason, outcome.message, article_id=_article_id(item))
                result.dead.append((entry, letter))
            else:
                result.outputs.append((entry, outcome))

    def _writes_by_entry(
        self,
        entries: Sequence[StreamEntry],
        stamped: Sequence[tuple[StreamEntry, Out]],
        events: Sequence[Serialised],
        dead: Sequence[tuple[StreamEntry, DeadLetter]],
    ) -> list[tuple[StreamEntry, list[Command]]]:
        """Each input entry with the commands that write what it produced: outputs (or the sink's events), letters."""
        writes: dict[int, list[Command]] = {id(entry): [] for entry in entries}
        recorder = self.redis.pipeline(transaction=False)  # records the commands; never executed
        if self.sink is None:
            owners = [entry for entry, _ in stamped]
        else:
            # The sink's events (publish: one per stored record) belong to the entry that carried that article.
            by_article: dict[str, StreamEntry] = {}
            for entry, out in stamped:
                by_article.setdefault(out.id, entry)
            owners = [by_article.get(str(getattr(event, "id", "")), entries[0]) for event in events]
        for owner, event in zip(owners, events, strict=True):
            if self.write is not None:
                self.write(recorder, event)
            else:
                recorder.xadd(self.output_stream, {"data": event.to_json()})
            writes[id(owner)].extend(args for args, _options in recorder.command_stack)
            recorder.command_stack.clear()
        for entry, letter in dead:
            writes[id(entry)].extend(dlq.write_commands(self.streams, letter, entry.payload, entry.field("origin")))
        return [(entry, writes[id(entry)]) for entry in entries]

    async def _commit(self, writes: Sequence[tuple[StreamEntry, Sequence[Command]]]) -> dict[str, str]:
        """Write each entry's outputs and dead letters and XACK it, atomically, for the entries this consumer holds.

        Returns the entries it no longer holds, each with its holder ("" when it is acknowledged already): nothing
        of theirs was written, and they are not acknowledged by this consumer (see FENCED_COMMIT).
        """
        keys: dict[KeyT, None] = {self.input_stream: None}
        args: list[EncodableT] = [self.group, self.consumer]
        for entry, commands in writes:
            args += [entry.msg_id, len(commands)]
            for command in commands:
                keys[cast(KeyT, command[1])] = None
                args += [len(command), *command]
        redis = self.redis  # (re)connecting forgets the script object: register it on this client
        if self._fenced_commit is None:
            self._fenced_commit = redis.register_script(FENCED_COMMIT)
        try:
            reply = cast(list[bytes], await self._fenced_commit(keys=list(keys), args=args))
        except ResponseError as exc:
            if not redis_group_missing(exc):
                raise  # refused before anything was written (OOM, READONLY, NOPERM, …): retried, or left pending
            await self._commit_without_group(writes, exc)
            return {}
        skipped = {reply[i].decode(): reply[i + 1].decode() for i in range(0, len(reply), 2)}
        if skipped:
            holders = sorted({holder for holder in skipped.values() if holder})
            log.warning(
                "commit.skipped_entries_held_elsewhere",
                stage=self.name,
                consumer=self.consumer,
                count=len(skipped),
                claimed_by=holders,
                acknowledged_already=sum(1 for holder in skipped.values() if not holder),
                msg_ids=sorted(skipped)[:10],
            )
        return skipped

    async def _commit_without_group(
        self, writes: Sequence[tuple[StreamEntry, Sequence[Command]]], exc: Exception
    ) -> None:
        """The group went while this batch was in hand (Redis restarted empty, the key deleted, XGROUP DESTROY).

        Its pending list went with it, so no other consumer holds these entries and there is nothing to
        acknowledge: write what they produced, unfenced, rather than lose it (after an empty restart these outputs
        are the only copy left), and create the group again at id 0. Entries the stream still has are read again
        from there; every stage is idempotent on the article id.
        """
        await recreate_group(self.redis, self.input_stream, self.group, error=str(exc), step="commit")
        async with self.redis.pipeline(transaction=True) as pipe:
            for _entry, commands in writes:
                for command in commands:
                    pipe.execute_command(*command)
            await pipe.execute()

    async def _retain_dead_letters(self) -> None:
        """Hold the DLQ at NEWSFLOW_DLQ_MAXLEN after a commit added to it (a failure here never undoes the commit)."""
        try:
            dropped = await dlq.enforce_retention(self.redis, self.streams, self.settings.dlq_maxlen)
        except (RedisError, OSError) as exc:
            log.warning("dlq.retention_failed", stage=self.name, error=f"{type(exc).__name__}: {exc}")
            return
        if dropped:
            record_dlq_trimmed(self.name, dropped)
            log.warning("dlq.trimmed", stage=self.name, dropped=dropped, maxlen=self.settings.dlq_maxlen)

    async def _retrying(self, what: str, call: Callable[[], Awaitable[Any]], *, first_attempt: int = 1) -> Any:
        """Await `call`, retrying transient failures with capped exponential backoff while the service runs.

        While a step keeps failing, `unready_reason` names it (and /readyz answers 503).
        """
        attempt = first_attempt - 1
        while True:
            try:
                value = await call()
            except Exception as exc:
                if not is_transient(exc):
                    raise
                attempt += 1
                record_transient_failure(self.name, what, exc)
                if self._stopping.is_set():
                    raise
                delay = retry_delay_s(attempt, self.settings.retry_max_s)
                self._note_failure(what, exc, attempt=attempt, delay=delay)
                with suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), timeout=delay)
                continue
            self._failing.pop(what, None)
            return value

    def _note_failure(self, what: str, exc: BaseException, *, attempt: int, delay: float) -> None:
        self._failing[what] = f"{type(exc).__name__}: {exc}"
        log.warning(
            "dependency.unavailable",
            stage=self.name,
            step=what,
            attempt=attempt,
            retry_in_s=round(delay, 2),
            error=f"{type(exc).__name__}: {exc}",
        )

    def _dead_letter(
        self,
        entry: StreamEntry,
        reason: str,
        error: str,
        exc: BaseException | None = None,
        article_id: str | None = None,
    ) -> DeadLetter:
        return DeadLetter(
            stage=self.name,
            reason=reason,
            error=_short(error),
            traceback=_traceback_summary(exc) if exc is not None else None,
            deliveries=entry.deliveries,
            failed_at=_now(),
            stream=self.input_stream,
            msg_id=entry.msg_id,
            article_id=article_id,
        )

    def _log_outcomes(
        self,
        stamped: Sequence[tuple[StreamEntry, Out]],
        dead: Sequence[tuple[StreamEntry, DeadLetter]],
        stamp: Stamp,
        total_ms: float,
        batch: int,
    ) -> None:
        event = f"article.{self.name}ed" if not self.name.endswith("e") else f"article.{self.name}d"
        for entry, out in stamped:
            facts = self.describe(out) if self.describe else {}
            log.info(
                event,
                article_id=out.id,
                stage=self.name,
                msg_id=entry.msg_id,
                duration_ms=stamp.duration_ms,
                batch=batch,
                **facts,
            )
        for entry, letter in dead:
            log.warning(
                "article.dead_lettered",
                stage=self.name,
                msg_id=entry.msg_id,
                reason=letter.reason,
                error=letter.error,
                article_id=letter.article_id,
                deliveries=letter.deliveries,
            )
        record_outcomes(self.name, processed=len(stamped), dead_letter_reasons=[letter.reason for _, letter in dead])
        log.debug(
            "batch.committed",
            stage=self.name,
            size=batch,
            ok=len(stamped),
            dead=len(dead),
            duration_ms=round(total_ms, 2),
        )

    async def _every(self, interval_s: float, job: Callable[[], Awaitable[Any]]) -> None:
        while not self._stopping.is_set():
            try:
                await asyncio.wait_for(self._stopping.wait(), timeout=interval_s)
                return
            except TimeoutError:
                pass
            try:
                await job()
            except Exception as exc:
                step = getattr(job, "__name__", "job")
                if redis_group_missing(exc):
                    # Not recreated here: the subscriber's next read does it, or the commit of the batch in hand
                    # (which then still writes that batch's outputs, see _commit_without_group).
                    log.warning("group.missing", stage=self.name, step=step, error=str(exc))
                elif is_transient(exc):
                    log.warning("dependency.unavailable", stage=self.name, step=step,
                                error=f"{type(exc).__name__}: {exc}")
                else:
                    log.exception("background_job.failed", stage=self.name, job=step)

    async def claim_once(self) -> int:
        """The sweep: claim entries idle past `claim_idle_ms` and process them again (a new delivery, counted).

        Other consumers' (they died or hung), and this consumer's own that no batch is working on any more (a
        batch failed after reading them, a commit Redis refused): without this, those stayed pending for as
        long as the process lived. XPENDING with IDLE, then XCLAIM — not XAUTOCLAIM, which would also "claim"
        this process's in-flight entries from itself (a slow batch) and count a delivery that never happened.
        """
        claimed_total = 0
        start = "-"
        while not self._stopping.is_set():
            rows = await self.redis.xpending_range(
                self.input_stream,
                self.group,
                min=start,
                max="+",
                count=self.settings.batch_size,
                idle=self.settings.claim_idle_ms,
            )
            if not rows:
                break
            start = "(" + cast(bytes, rows[-1]["message_id"]).decode()
            idle = {
                cast(bytes, row["message_id"]): (int(row["times_delivered"]), _text(row["consumer"]) == self.consumer)
                for row in rows
                if _text(row["consumer"]) != self.consumer or _text(row["message_id"]) not in self._in_flight
            }
            if idle:
                claimed = cast(
                    list[ClaimedEntry],
                    await self.redis.xclaim(
                        self.input_stream,
                        self.group,
                        self.consumer,
                        min_idle_time=self.settings.claim_idle_ms,
                        message_ids=list(idle),
                    ),
                )
                own = sum(1 for mid, _ in claimed if idle.get(mid, (0, False))[1])
                claimed_total += await self._process_claimed(
                    claimed, {mid: times for mid, (times, _) in idle.items()}, own=own
                )
            if len(rows) < self.settings.batch_size:
                break
        await self._remove_dead_consumers()
        return claimed_total

    async def recover_own_pending(self) -> int:
        """At start: entries this consumer name read in a previous life and never acknowledged."""
        recovered = 0
        while not self._stopping.is_set():
            reply = await self.redis.xreadgroup(
                self.group, self.consumer, {self.input_stream: "0"}, count=self.settings.batch_size
            )
            own = [
                (mid, fields)
                for _, rows in cast(list[tuple[bytes, list[ClaimedEntry]]], reply)
                for mid, fields in rows
                if mid.decode() not in self._in_flight  # a batch of this process holds it: not a previous life's
            ]
            if not own:
                break
            rows = await self.redis.xpending_range(
                self.input_stream,
                self.group,
                min=own[0][0],
                max=own[-1][0],
                count=len(own) * 2,
                consumername=self.consumer,
            )
            counts = {cast(bytes, r["message_id"]): int(r["times_delivered"]) - 1 for r in rows}
            recovered += await self._process_claimed(own, counts)
        return recovered

    async def _process_claimed(
        self, claimed: Sequence[ClaimedEntry], delivered: dict[bytes, int], *, own: int = 0
    ) -> int:
        """Process claimed entries (`delivered` = deliveries before this one); entries deleted meanwhile are acked.

        `own`: how many were this consumer's own (left behind by a failed batch), for the log line.
        """
        gone = [mid for mid, fields in claimed if not fields]
        if gone:
            await self.redis.xack(self.input_stream, self.group, *gone)
        entries = [
            StreamEntry(msg_id=mid.decode(), fields=fields, deliveries=delivered.get(mid, 0) + 1)
            for mid, fields in claimed
            if fields
        ]
        if not entries:
            return 0
        log.info(
            "entries.claimed",
            stage=self.name,
            count=len(entries),
            own=own,
            max_deliveries_seen=max(e.deliveries for e in entries),
        )
        await self._dead_letter_exhausted(entries)
        await self.run([e for e in entries if e.deliveries <= self.settings.max_deliveries])
        return len(entries)

    async def _dead_letter_exhausted(self, entries: Sequence[StreamEntry]) -> None:
        exhausted = [e for e in entries if e.deliveries > self.settings.max_deliveries]
        if not exhausted:
            return
        dead = [
            (
                e,
                self._dead_letter(
                    e,
                    "max_deliveries_exceeded",
                    f"delivered {e.deliveries} times without being acknowledged "
                    f"(limit {self.settings.max_deliveries}): the stage crashed or hung on it",
                ),
            )
            for e in exhausted
        ]
        skipped = await self._commit(self._writes_by_entry(exhausted, [], [], dead))
        dead = [(e, letter) for e, letter in dead if e.msg_id not in skipped]
        if dead:
            await self._retain_dead_letters()
        now = _now()
        stamp = Stamp(stage=self.name, version="", worker=self.consumer, started_at=now, finished_at=now, duration_ms=0)
        self._log_outcomes([], dead, stamp, 0, len(exhausted))

    async def _remove_dead_consumers(self) -> None:
        """Forget consumers that hold nothing and have been silent a long time (replicas that went away)."""
        for info in await self.redis.xinfo_consumers(self.input_stream, self.group):
            name = info["name"].decode() if isinstance(info["name"], bytes) else info["name"]
            if name == self.consumer or info["pending"] or info["idle"] < self.settings.dead_consumer_idle_ms:
                continue
            await self.redis.xgroup_delconsumer(self.input_stream, self.group, name)
            log.info("consumer.removed", stage=self.name, consumer=name, idle_ms=info["idle"])

    async def trim_input(self) -> int:
        """Trim this stage's input below what every group has acknowledged."""
        return await trim_acknowledged(self.redis, self.input_stream)


def per_article(step: Callable[[In], Out]) -> Callable[[list[In]], Awaitable[list[Out | Rejected]]]:
    """Batch `process` from a pure one-article step; its `Rejected` becomes that article's outcome."""

    async def process(items: list[In]) -> list[Out | Rejected]:
        outcomes: list[Out | Rejected] = []
        for item in items:
            # The article's id is the correlation id of whatever the step logs.
            with bound_contextvars(article_id=_article_id(item)):
                try:
                    outcomes.append(step(item))
                except Rejected as rej:
                    outcomes.append(rej)
            await asyncio.sleep(0)  # the batch's renewal (and health checks) run between articles
        return outcomes

    return process


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _article_id(item: object) -> str | None:
    return getattr(item, "id", None) if isinstance(getattr(item, "id", None), str) else None

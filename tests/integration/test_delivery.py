"""The delivery policy against real Redis: groups at 0, ack-after-write, DLQ, isolation, retries, claims, trimming."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import orjson
import pytest
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from services.ingest.validate import ingest_article, validate_raw_article
from shared.errors import Rejected, TransientError
from shared.events import CleanedArticle, CleanSection, DeadLetter, IngestedArticle
from shared.settings import Settings
from shared.streams import ensure_group, safe_trim_id, trim_acknowledged
from shared.transport.delivery import Stage, StreamEntry, decode_event, per_article

pytestmark = pytest.mark.integration


def ingested(text: str) -> IngestedArticle:
    return ingest_article(validate_raw_article({"text": text}), origin="test", received_at=datetime.now(UTC))


def cleaned(article: IngestedArticle) -> CleanedArticle:
    if "poison" in article.ingest.content:
        raise ValueError("a bug on this input")
    if "reject" in article.ingest.content:
        raise Rejected("too_short", "not enough words")
    return CleanedArticle(
        id=article.id,
        ingest=article.ingest,
        trace=article.trace,
        clean=CleanSection(title="t", body=article.ingest.content, extractor="test"),
    )


@pytest.fixture
def settings(redis_url: str, key_prefix: str) -> Settings:
    return Settings(
        redis_url=redis_url,
        key_prefix=key_prefix,
        consumer="tester",
        claim_idle_ms=200,
        max_deliveries=3,
        batch_size=10,
    )


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()


def make_stage(settings: Settings, process=None) -> Stage[IngestedArticle, CleanedArticle]:  # type: ignore[no-untyped-def]
    return Stage("clean", settings, decode=decode_event(IngestedArticle), process=process or per_article(cleaned))


async def add(redis: Redis, stream: str, payload: bytes) -> str:
    return (await redis.xadd(stream, {"data": payload})).decode()


async def read_as(redis: Redis, stage: Stage, consumer: str) -> list[StreamEntry]:  # type: ignore[type-arg]
    reply = await redis.xreadgroup(stage.group, consumer, {stage.input_stream: ">"}, count=100)
    return [StreamEntry(mid.decode(), fields) for _, entries in reply for mid, fields in entries]


async def dlq(redis: Redis, stage: Stage) -> list[tuple[DeadLetter, bytes]]:  # type: ignore[type-arg]
    rows = await redis.xrange(stage.streams.dlq)
    payloads = [await redis.get(stage.streams.dlq_payload(f[b"payload_key"].decode())) for _, f in rows]
    letters = [DeadLetter.model_validate_json(f[b"data"]) for _, f in rows]
    return list(zip(letters, payloads, strict=True))


async def test_group_at_zero_sees_entries_pushed_before_it(redis: Redis, settings: Settings) -> None:
    stage = make_stage(settings)
    await add(redis, stage.input_stream, ingested("early article").to_json())
    assert await ensure_group(redis, stage.input_stream, stage.group) is True
    assert await ensure_group(redis, stage.input_stream, stage.group) is False
    assert len(await read_as(redis, stage, "c1")) == 1


async def test_outputs_written_and_inputs_acked_dead_letters_isolated(redis: Redis, settings: Settings) -> None:
    stage = make_stage(settings)
    await ensure_group(redis, stage.input_stream, stage.group)
    good = ingested("a good article")
    await add(redis, stage.input_stream, good.to_json())
    await add(redis, stage.input_stream, ingested("poison pill").to_json())
    await add(redis, stage.input_stream, ingested("please reject me").to_json())
    await add(redis, stage.input_stream, b"{not json")
    await add(redis, stage.input_stream, orjson.dumps({**orjson.loads(good.to_json()), "schema_version": 9}))
    entries = await read_as(redis, stage, "tester")
    await stage.run(entries)

    out = await redis.xrange(stage.output_stream)
    assert len(out) == 1
    result = CleanedArticle.model_validate_json(out[0][1][b"data"])
    assert result.id == good.id
    assert [s.stage for s in result.trace] == ["clean"]
    assert (await redis.xpending(stage.input_stream, stage.group))["pending"] == 0
    letters = await dlq(redis, stage)
    assert [letter.reason for letter, _ in letters] == [
        "processing_error",
        "too_short",
        "invalid_json",
        "unknown_schema_version",
    ]
    poison, payload = letters[0]
    assert "a bug on this input" in poison.error and "ValueError" in (poison.traceback or "")
    assert b"poison pill" in payload  # the original payload, for replay
    assert letters[2][1] == b"{not json"
    await stage.redis.aclose()


async def test_transient_failure_is_retried_until_it_succeeds(redis: Redis, settings: Settings) -> None:
    calls = 0
    step = per_article(cleaned)

    async def flaky(items: list[IngestedArticle]) -> list[CleanedArticle | Rejected]:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise TransientError("storage is down")
        return await step(items)

    stage = make_stage(settings, flaky)
    await ensure_group(redis, stage.input_stream, stage.group)
    await add(redis, stage.input_stream, ingested("retry me").to_json())
    await stage.run(await read_as(redis, stage, "tester"))
    assert calls == 3
    assert await redis.xlen(stage.output_stream) == 1
    assert await redis.xlen(stage.streams.dlq) == 0
    await stage.redis.aclose()


async def test_transient_failure_at_shutdown_leaves_the_entry_pending(redis: Redis, settings: Settings) -> None:
    async def down(items: list[IngestedArticle]) -> list[CleanedArticle | Rejected]:
        raise TransientError("storage is down")

    stage = make_stage(settings, down)
    await ensure_group(redis, stage.input_stream, stage.group)
    await add(redis, stage.input_stream, ingested("stays pending").to_json())
    entries = await read_as(redis, stage, "tester")
    await stage.begin_shutdown()
    with pytest.raises(TransientError):
        await stage.run(entries)
    assert (await redis.xpending(stage.input_stream, stage.group))["pending"] == 1
    assert await redis.xlen(stage.streams.dlq) == 0
    await stage.redis.aclose()


async def test_claimer_takes_over_a_dead_consumers_entries_and_dead_letters_exhausted_ones(
    redis: Redis, settings: Settings
) -> None:
    stage = make_stage(settings)
    await ensure_group(redis, stage.input_stream, stage.group)
    await add(redis, stage.input_stream, ingested("held by a dead consumer").to_json())
    hopeless = await add(redis, stage.input_stream, ingested("crashes every worker").to_json())
    await read_as(redis, stage, "dead-worker")  # delivered once, never acked
    for _ in range(3):  # the hopeless entry has been delivered (and crashed a worker) three more times
        await redis.xclaim(stage.input_stream, stage.group, "dead-worker", 0, [hopeless])
    await asyncio.sleep(0.3)
    assert await stage.claim_once() == 2
    assert await redis.xlen(stage.output_stream) == 1
    letters = await dlq(redis, stage)
    assert [(letter.reason, letter.msg_id, letter.deliveries) for letter, _ in letters] == [
        ("max_deliveries_exceeded", hopeless, 5)
    ]
    assert (await redis.xpending(stage.input_stream, stage.group))["pending"] == 0
    await stage.redis.aclose()


async def test_dead_consumers_are_removed_once_they_hold_nothing(redis: Redis, settings: Settings) -> None:
    stage = make_stage(settings.model_copy(update={"dead_consumer_idle_ms": 1000}))
    await ensure_group(redis, stage.input_stream, stage.group)
    await add(redis, stage.input_stream, ingested("one").to_json())
    await read_as(redis, stage, "gone-replica")
    await asyncio.sleep(1.1)
    await stage.claim_once()  # claims its entry, then forgets the empty, silent consumer
    consumers = {c["name"] for c in await redis.xinfo_consumers(stage.input_stream, stage.group)}
    assert b"gone-replica" not in consumers
    await stage.redis.aclose()


async def test_trim_removes_only_what_every_group_acknowledged(redis: Redis, settings: Settings) -> None:
    stage = make_stage(settings)
    stream = stage.input_stream
    ids = [await add(redis, stream, b"{}") for _ in range(6)]
    assert await trim_acknowledged(redis, stream) == 0  # no group: nothing is known to be read
    await ensure_group(redis, stream, "fast")
    await ensure_group(redis, stream, "slow")
    fast = await redis.xreadgroup("fast", "f", {stream: ">"})
    await redis.xack(stream, "fast", *[mid for mid, _ in fast[0][1]])
    slow = await redis.xreadgroup("slow", "s", {stream: ">"}, count=4)
    await redis.xack(stream, "slow", *[mid for mid, _ in slow[0][1]][:2])  # 3rd and 4th still pending
    assert await safe_trim_id(redis, stream) == ids[2]
    assert await trim_acknowledged(redis, stream) == 2
    remaining = [mid.decode() for mid, _ in await redis.xrange(stream)]
    assert remaining == ids[2:]  # pending and unread entries survive


async def test_claimer_never_claims_its_own_in_flight_entries(redis: Redis, settings: Settings) -> None:
    release = asyncio.Event()
    step = per_article(cleaned)

    async def slow(items: list[IngestedArticle]) -> list[CleanedArticle | Rejected]:
        await release.wait()
        return await step(items)

    stage = make_stage(settings, slow)
    await ensure_group(redis, stage.input_stream, stage.group)
    await add(redis, stage.input_stream, ingested("a slow batch in hand").to_json())
    batch = asyncio.create_task(stage.run(await read_as(redis, stage, stage.consumer)))  # (slowly) working on it
    await asyncio.sleep(0.3)
    assert await stage.claim_once() == 0
    [row] = await redis.xpending_range(stage.input_stream, stage.group, "-", "+", 10)
    assert row["times_delivered"] == 1  # no phantom delivery counted
    release.set()
    await batch
    assert (await redis.xpending(stage.input_stream, stage.group))["pending"] == 0
    await stage.redis.aclose()


async def test_sweep_retries_what_a_failed_batch_left_pending_then_dead_letters_it(
    redis: Redis, settings: Settings
) -> None:
    # A live consumer whose batch failed (here: a commit Redis refused, its output key holding another type) holds
    # its entries; the sweep retries them after the claim idle time, counting each try as a delivery, and
    # dead-letters them past the cap. Before, they stayed pending for as long as the process lived.
    stage = make_stage(settings)
    await ensure_group(redis, stage.input_stream, stage.group)
    await add(redis, stage.input_stream, ingested("its commit is refused").to_json())
    entries = await read_as(redis, stage, stage.consumer)
    await redis.set(stage.output_stream, "not a stream")  # XADD to the output: WRONGTYPE, nothing acknowledged
    with pytest.raises(ResponseError, match="WRONGTYPE"):
        await stage.run(entries)
    for delivery in (2, 3):
        await asyncio.sleep(0.25)
        with pytest.raises(ResponseError, match="WRONGTYPE"):
            await stage.claim_once()
        [row] = await redis.xpending_range(stage.input_stream, stage.group, "-", "+", 10)
        assert (row["times_delivered"], row["consumer"]) == (delivery, stage.consumer.encode())
    assert await redis.xlen(stage.streams.dlq) == 0
    await asyncio.sleep(0.25)
    assert await stage.claim_once() == 1  # the 4th delivery is past the cap of 3
    [(letter, payload)] = await dlq(redis, stage)
    assert (letter.reason, letter.deliveries) == ("max_deliveries_exceeded", 4) and b"refused" in payload
    assert (await redis.xpending(stage.input_stream, stage.group))["pending"] == 0
    await stage.redis.aclose()



async def test_a_commit_after_the_group_went_writes_its_outputs_and_recreates_the_group(
    redis: Redis, settings: Settings
) -> None:
    stage = make_stage(settings)
    stream = stage.input_stream
    await ensure_group(redis, stream, stage.group)
    await add(redis, stream, ingested("in hand when the group went").to_json())
    entries = await read_as(redis, stage, stage.consumer)
    await redis.xgroup_destroy(stream, stage.group)  # an operator, or Redis restarted empty
    await stage.run(entries)  # nobody else can hold it now: its output is written, not dropped
    assert await redis.xlen(stage.output_stream) == 1
    [group] = await redis.xinfo_groups(stream)
    assert (group["name"], group["last-delivered-id"]) == (stage.group.encode(), b"0-0")  # again at id 0
    await stage.redis.aclose()


async def test_the_subscribers_client_recreates_a_lost_group(
    redis: Redis, settings: Settings, redis_url: str
) -> None:
    from shared.observability.metrics import GROUPS_RECREATED
    from shared.transport.broker import GroupKeepingRedis

    stream = f"{settings.key_prefix}:raw"
    client = GroupKeepingRedis.from_url(redis_url)
    await ensure_group(redis, stream, "ingest")
    await add(redis, stream, b"{}")
    assert len((await client.xreadgroup("ingest", "c", {stream: ">"}, count=10))[0][1]) == 1
    await redis.xgroup_destroy(stream, "ingest")
    await add(redis, stream, b"{}")  # pushed while no group exists
    before = GROUPS_RECREATED.labels(stream, "ingest")._value.get()
    assert await client.xreadgroup("ingest", "c", {stream: ">"}, count=10) == []  # NOGROUP: recreated at 0
    assert GROUPS_RECREATED.labels(stream, "ingest")._value.get() == before + 1
    [(_, rows)] = await client.xreadgroup("ingest", "c", {stream: ">"}, count=10)
    assert len(rows) == 2  # everything still in the stream is read again (each stage is idempotent)
    await client.aclose()


async def test_a_trim_racing_an_acknowledgement_trims_only_what_is_safe(redis: Redis, settings: Settings) -> None:
    stream = f"{settings.key_prefix}:raced"
    ids = [await add(redis, stream, b"{}") for _ in range(4)]
    await ensure_group(redis, stream, "g")
    rows = await redis.xreadgroup("g", "c", {stream: ">"}, count=2)

    class AcksBetween(Redis):
        """XINFO GROUPS answers 'two pending'; the stage acknowledges them before the trimmer's XPENDING."""

        async def xinfo_groups(self, name: str) -> list[dict[str, object]]:  # type: ignore[override]
            groups = await super().xinfo_groups(name)
            await self.xack(stream, "g", *[mid for mid, _ in rows[0][1]])
            return groups  # type: ignore[no-any-return]

    racing = AcksBetween.from_url(settings.redis_url)
    assert await trim_acknowledged(racing, stream) == 2  # was: AttributeError on the empty XPENDING summary
    assert [mid.decode() for mid, _ in await redis.xrange(stream)] == ids[2:]
    await racing.aclose()


async def test_a_restarted_consumer_recovers_what_it_held_before(redis: Redis, settings: Settings) -> None:
    stage = make_stage(settings)
    await ensure_group(redis, stage.input_stream, stage.group)
    await add(redis, stage.input_stream, ingested("read before a crash").to_json())
    await read_as(redis, stage, stage.consumer)  # the previous life of the same consumer name
    assert await stage.recover_own_pending() == 1
    assert await redis.xlen(stage.output_stream) == 1
    assert (await redis.xpending(stage.input_stream, stage.group))["pending"] == 0
    await stage.redis.aclose()


async def test_the_article_id_is_the_log_context_while_its_step_runs(redis: Redis, settings: Settings) -> None:
    from structlog.contextvars import get_contextvars

    seen: list[dict[str, object]] = []

    def step(article: IngestedArticle) -> CleanedArticle:
        seen.append(get_contextvars())
        return cleaned(article)

    stage = make_stage(settings, per_article(step))
    article = ingested("context please")
    await stage.run([StreamEntry("", {b"data": article.to_json()})])
    assert seen[0]["article_id"] == article.id
    assert "article_id" not in get_contextvars()  # unbound afterwards
    await stage.redis.aclose()


async def test_a_late_commit_after_a_takeover_writes_nothing(redis: Redis, settings: Settings) -> None:
    """A replica cut off (or stalled) past the claim idle time must not write what another replica took over."""
    held_by_a = make_stage(settings.model_copy(update={"consumer": "a"}))
    b = make_stage(settings.model_copy(update={"consumer": "b"}))
    await ensure_group(redis, b.input_stream, b.group)
    articles = [ingested(f"article number {n} of the batch") for n in range(3)]
    for article in articles:
        await add(redis, b.input_stream, article.to_json())
    in_hand = await read_as(redis, held_by_a, "a")  # a reads its batch, then loses its link
    await asyncio.sleep(0.3)
    assert await b.claim_once() == 3  # b takes the idle entries over and commits them
    await held_by_a.run(in_hand)  # the link is back: a's commit arrives late
    out = [CleanedArticle.model_validate_json(f[b"data"]) for _, f in await redis.xrange(b.output_stream)]
    assert sorted(a.id for a in out) == sorted(a.id for a in articles)  # each once, not twice
    assert {a.trace[-1].worker for a in out} == {"b"}
    assert (await redis.xpending(b.input_stream, b.group))["pending"] == 0
    for stage in (held_by_a, b):
        await stage.redis.aclose()


async def test_a_commit_writes_the_entries_still_held_and_leaves_the_taken_ones(
    redis: Redis, settings: Settings
) -> None:
    """Part of a batch claimed away: the rest commits (written and acked), the claimed part stays with its claimer."""
    written: list[str] = []

    async def sink(outs: list[CleanedArticle]) -> list[CleanedArticle]:
        written.extend(o.id for o in outs)  # storage: idempotent on the id, so a second upsert is harmless
        return outs

    a = Stage("clean", settings.model_copy(update={"consumer": "a"}), decode=decode_event(IngestedArticle),
              process=per_article(cleaned), sink=sink)
    await ensure_group(redis, a.input_stream, a.group)
    ids = [await add(redis, a.input_stream, ingested(f"article {n} here").to_json()) for n in range(3)]
    await add(redis, a.input_stream, b"{not json")
    in_hand = await read_as(redis, a, "a")
    await redis.xclaim(a.input_stream, a.group, "b", 0, [ids[1], in_hand[-1].msg_id])  # b's claimer took two
    await a.run(in_hand)
    out = [CleanedArticle.model_validate_json(f[b"data"]) for _, f in await redis.xrange(a.output_stream)]
    assert len(out) == 2 and len(written) == 3  # the sink ran for all; only what a still held was written
    assert await redis.xlen(a.streams.dlq) == 0  # the bad entry is b's to dead-letter now
    pending = await redis.xpending_range(a.input_stream, a.group, "-", "+", 10)
    assert sorted(r["message_id"].decode() for r in pending) == sorted([ids[1], in_hand[-1].msg_id])
    assert {r["consumer"] for r in pending} == {b"b"}
    await a.redis.aclose()


async def test_a_slow_batch_on_a_live_replica_is_not_claimed_from_under_it(redis: Redis, settings: Settings) -> None:
    """The holder renews its entries while it works, so only a replica that stopped answering loses them."""
    step = per_article(cleaned)

    async def slow(items: list[IngestedArticle]) -> list[CleanedArticle | Rejected]:
        await asyncio.sleep(1.0)  # five times the claim idle time
        return await step(items)

    a = Stage("clean", settings.model_copy(update={"consumer": "a"}), decode=decode_event(IngestedArticle),
              process=slow)
    b = make_stage(settings.model_copy(update={"consumer": "b"}))
    await ensure_group(redis, a.input_stream, a.group)
    for n in range(3):
        await add(redis, a.input_stream, ingested(f"slow article {n}").to_json())
    working = asyncio.create_task(a.run(await read_as(redis, a, "a")))
    claimed = 0
    while not working.done():
        claimed += await b.claim_once()
        await asyncio.sleep(0.05)
    await working
    assert claimed == 0
    out = [CleanedArticle.model_validate_json(f[b"data"]) for _, f in await redis.xrange(a.output_stream)]
    assert len(out) == 3 and {o.trace[-1].worker for o in out} == {"a"}
    rows = await redis.xpending_range(a.input_stream, a.group, "-", "+", 10)
    assert rows == []
    for stage in (a, b):
        await stage.redis.aclose()


async def test_a_batch_held_past_the_hold_limit_is_no_longer_renewed(redis: Redis, settings: Settings) -> None:
    """A hung handler keeps its entries only for NEWSFLOW_MAX_HOLD_MS; then a live replica may claim them."""
    release = asyncio.Event()
    step = per_article(cleaned)

    async def hung(items: list[IngestedArticle]) -> list[CleanedArticle | Rejected]:
        await release.wait()  # an await that never returns on its own (a dependency that never answers)
        return await step(items)

    a = Stage("clean", settings.model_copy(update={"consumer": "a", "max_hold_ms": 1_000}),
              decode=decode_event(IngestedArticle), process=hung)
    b = make_stage(settings.model_copy(update={"consumer": "b"}))
    await ensure_group(redis, a.input_stream, a.group)
    for n in range(3):
        await add(redis, a.input_stream, ingested(f"hung article {n}").to_json())
    working = asyncio.create_task(a.run(await read_as(redis, a, "a")))
    claimed, deadline = 0, time.monotonic() + 10
    while claimed < 3 and time.monotonic() < deadline:
        claimed += await b.claim_once()
        await asyncio.sleep(0.05)
    assert claimed == 3  # taken once the holder stopped renewing, about a second in, and done by b
    release.set()
    await working  # the hung holder finishes late: the fence keeps it from writing them a second time
    out = [CleanedArticle.model_validate_json(f[b"data"]) for _, f in await redis.xrange(a.output_stream)]
    assert len(out) == 3 and {o.trace[-1].worker for o in out} == {"b"}
    assert await redis.xpending_range(a.input_stream, a.group, "-", "+", 10) == []
    for stage in (a, b):
        await stage.redis.aclose()

"""The delivery policy around a sink (publish: storage), against real Redis: refused rows, bugs, outages, start-up."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from redis.asyncio import Redis

from services.ingest.validate import ingest_article, validate_raw_article
from shared.errors import Rejected, TransientError
from shared.events import CleanedArticle, CleanSection, DeadLetter, IngestedArticle
from shared.settings import Settings
from shared.streams import ensure_group
from shared.transport.delivery import Stage, StreamEntry, decode_event, per_article

pytestmark = pytest.mark.integration


def ingested(text: str) -> IngestedArticle:
    return ingest_article(validate_raw_article({"text": text}), origin="test", received_at=datetime.now(UTC))


def cleaned(article: IngestedArticle) -> CleanedArticle:
    return CleanedArticle(id=article.id, ingest=article.ingest, trace=article.trace,
                          clean=CleanSection(title="t", body=article.ingest.content, extractor="test"))


@pytest.fixture
def settings(redis_url: str, key_prefix: str) -> Settings:
    return Settings(redis_url=redis_url, key_prefix=key_prefix, consumer="tester", claim_idle_ms=200,
                    max_deliveries=3, batch_size=10, http_port=0)


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()


class Store:
    """A sink like publish's: takes a batch at once; refuses it when it holds an article the "database" refuses."""

    def __init__(self, *, refuse: str = "", crash: str = "", down_for: int = 0) -> None:
        self.refuse, self.crash, self.down_for = refuse, crash, down_for
        self.calls: list[int] = []
        self.stored: list[str] = []

    async def __call__(self, outs: list[CleanedArticle]) -> list[CleanedArticle]:
        self.calls.append(len(outs))
        if self.down_for > 0:
            self.down_for -= 1
            raise TransientError("storage unavailable: connection refused")
        if any(self.refuse and self.refuse in o.clean.body for o in outs):
            raise Rejected("storage_rejected", "PostgreSQL refused it (54000 ProgramLimitExceeded): too long")
        if any(self.crash and self.crash in o.clean.body for o in outs):
            raise RuntimeError("an error nobody classified")
        self.stored += [o.id for o in outs]
        return outs


def stage_with(settings: Settings, store: Store, **hooks: object) -> Stage[IngestedArticle, CleanedArticle]:
    return Stage("clean", settings, decode=decode_event(IngestedArticle), process=per_article(cleaned), sink=store,
                 sink_name="storage", **hooks)  # type: ignore[arg-type]


async def fill(redis: Redis, stage: Stage[IngestedArticle, CleanedArticle], texts: list[str]) -> list[StreamEntry]:
    await ensure_group(redis, stage.input_stream, stage.group)
    for text in texts:
        await redis.xadd(stage.input_stream, {"data": ingested(text).to_json()})
    reply = await redis.xreadgroup(stage.group, "tester", {stage.input_stream: ">"}, count=100)
    return [StreamEntry(mid.decode(), fields) for _, rows in reply for mid, fields in rows]


async def test_a_row_the_sink_refuses_goes_to_the_dlq_alone_and_the_rest_is_stored(
    redis: Redis, settings: Settings
) -> None:
    store = Store(refuse="oversized")
    stage = stage_with(settings, store)
    texts = [f"article number {n} is fine" for n in range(5)]
    texts.insert(2, "an oversized article")
    await stage.run(await fill(redis, stage, texts))
    assert store.calls == [6, 1, 1, 1, 1, 1, 1], "the refused batch is retried article by article"
    assert len(store.stored) == 5
    assert await redis.xlen(stage.output_stream) == 5
    [(_, fields)] = await redis.xrange(stage.streams.dlq)
    letter = DeadLetter.model_validate_json(fields[b"data"])
    assert (letter.reason, letter.article_id) == ("storage_rejected", ingested("an oversized article").id)
    assert "54000" in letter.error
    assert (await redis.xpending(stage.input_stream, stage.group))["pending"] == 0
    await stage.redis.aclose()


async def test_an_article_the_sink_fails_on_unclassified_stays_pending_alone(redis: Redis, settings: Settings) -> None:
    store = Store(crash="strange")
    stage = stage_with(settings, store)
    entries = await fill(redis, stage, ["one fine article", "a strange article", "another fine article"])
    await stage.run(entries)
    assert len(store.stored) == 2 and await redis.xlen(stage.output_stream) == 2
    assert await redis.xlen(stage.streams.dlq) == 0, "not the article's proven fault: redelivered, not dead-lettered"
    pending = await redis.xpending_range(stage.input_stream, stage.group, "-", "+", 10)
    assert [row["message_id"].decode() for row in pending] == [entries[1].msg_id]
    await stage.redis.aclose()


async def test_an_outage_is_retried_whole_and_reported_as_not_ready_meanwhile(redis: Redis, settings: Settings) -> None:
    store = Store(down_for=3)
    stage = stage_with(settings, store)
    entries = await fill(redis, stage, ["first article text", "second article text"])
    reasons: list[str | None] = []

    async def watch() -> None:
        while True:
            reasons.append(stage.unready_reason())
            await asyncio.sleep(0.05)

    watcher = asyncio.create_task(watch())
    await stage.run(entries)
    watcher.cancel()
    assert store.calls == [2, 2, 2, 2], "never split: an outage is nobody's article"
    assert any(r and r.startswith("storage: TransientError") for r in reasons)
    assert stage.unready_reason() is None
    assert await redis.xlen(stage.output_stream) == 2 and await redis.xlen(stage.streams.dlq) == 0
    await stage.redis.aclose()


async def test_batches_wait_for_prepare_which_retries_in_the_background(redis: Redis, settings: Settings) -> None:
    attempts = 0

    async def migrate() -> None:
        nonlocal attempts
        attempts += 1
        if attempts < 3:
            raise TransientError("postgresql unavailable: connection refused")

    store = Store()
    stage = stage_with(settings, store, prepare=migrate)
    await fill(redis, stage, ["waiting article"])  # read before a restart: this consumer's own pending entry
    async with stage.lifespan():
        assert attempts == 1
        assert (stage.unready_reason() or "").startswith("storage: not prepared yet: TransientError")
        assert store.calls == [], "nothing is processed before prepare succeeded"
        for _ in range(200):
            if store.stored:
                break
            await asyncio.sleep(0.05)
        assert attempts == 3 and store.stored == [ingested("waiting article").id]
        assert stage.unready_reason() is None
    assert (await redis.xpending(stage.input_stream, stage.group))["pending"] == 0


async def test_a_stage_stopping_before_it_was_prepared_leaves_its_batch_pending(
    redis: Redis, settings: Settings
) -> None:
    async def never() -> None:
        raise TransientError("postgresql unavailable: connection refused")

    store = Store()
    stage = stage_with(settings, store, prepare=never)
    entries = await fill(redis, stage, ["article in hand"])
    async with stage.lifespan():
        running = asyncio.create_task(stage.run(entries))
        await asyncio.sleep(0.3)
        await stage.begin_shutdown()
        await asyncio.wait_for(running, timeout=5)
    assert store.calls == []
    assert (await redis.xpending(stage.input_stream, stage.group))["pending"] == 1


async def test_a_failing_check_makes_the_stage_not_ready_until_it_passes(
    redis: Redis, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shared.transport.delivery as delivery

    monkeypatch.setattr(delivery, "CHECK_INTERVAL_S", 0.05)
    healthy = False

    async def check() -> None:
        if not healthy:
            raise TransientError("sqlite /data/news.db: the database file was removed under the process")

    stage = stage_with(settings, Store(), check=check)
    await ensure_group(redis, stage.input_stream, stage.group)
    async with stage.lifespan():
        for _ in range(100):
            if stage.unready_reason():
                break
            await asyncio.sleep(0.05)
        assert "the database file was removed" in (stage.unready_reason() or "")
        healthy = True
        for _ in range(100):
            if stage.unready_reason() is None:
                break
            await asyncio.sleep(0.05)
        assert stage.unready_reason() is None

"""`python -m tools bench --scale`: what an article costs as the corpus grows (1k, 10k, 100k stored articles).

At each size the store (SQLite, and PostgreSQL when given) and the near-duplicate index hold that many articles
of the synthetic corpus (`tools/bench/corpus.py`, ~10 % near-duplicates), bulk-loaded, and the bench measures:

- per stage, per article: ingest and clean logic, enrich's NLP (CPU time in this process, one core), enrich's
  near-duplicate step (new articles through `check_and_add_many`, batches of 32, wall time and the Redis
  server's CPU time), publish's upsert (new records into the store, batches of 32);
- near-duplicate lookup latency of one article (p50/p95), full-text search latency (p50/p95 over queries of
  rare, common and mixed words, phrases and names), `newsflow status` time, Redis memory per article;
- a much-copied story: the near-duplicate step's cost for one more copy with 100 and with 5,000 copies already
  in the index (the case whose cost used to grow with the copies).

Everything runs against a bench-owned redis-server and temporary SQLite files; PostgreSQL in a private schema
dropped afterwards. The index is bulk-loaded with synthetic MinHash signatures (random values; a near-copy's
signature shares ~80 % of its original's values) except for the last 500 articles before each size, which get
their real signatures: the measured articles' originals are among those, so their lookups find real matches.
"""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import psutil
import redis
from redis.asyncio import Redis

from services.enrich.dedup import NearDuplicateIndex
from shared.events import DeadLetter
from shared.settings import Settings
from shared.storage import open_storage
from shared.streams import StreamNames, names
from shared.transport import dlq
from tools.bench.corpus import NEAR_DUPLICATE_LOOKBACK, SyntheticCorpus, article_id
from tools.bench.pipeline import (
    _busy_cpu_seconds,
    _create_groups,
    _percentile,
    private_redis,
    targets_and_failures,
)

DEFAULT_LEVELS = (1_000, 10_000, 100_000)
TARGET_GROWTH = 1.5  # every per-article cost at the largest size, as a multiple of the smallest
TARGET_SEARCH_P95_MS = 100.0  # PostgreSQL, at the largest size
BATCH = 32
LOAD_BATCH = 500
DLQ_SHARE = 0.01  # the DLQ holds this share of the stored articles (payload ~3 kB each) when status is timed
SIGNATURE_KEEP = 0.82  # share of an original's MinHash values a synthetic near-copy keeps

Progress = Callable[[str], None]


@dataclass
class ScaleOptions:
    """What `--scale` runs."""

    levels: tuple[int, ...] = DEFAULT_LEVELS
    postgres_url: str | None = None
    probes: int = 256  # new articles per near-duplicate and upsert measurement
    queries: int = 60
    stage_sample: int = 48  # articles through ingest, clean and enrich's NLP per size
    hot_copies: tuple[int, ...] = (100, 5_000)
    hot_probes: int = 100


@dataclass
class LevelResult:
    """Everything measured with `stored` articles in the store and the index."""

    stored: int
    stage_ms: dict[str, float] = field(default_factory=dict)  # per article
    upsert_ms: dict[str, float] = field(default_factory=dict)  # per article, by backend
    # CPU per article: this process (the client and, for SQLite, the engine) plus PostgreSQL's backends serving it
    upsert_cpu_ms: dict[str, float] = field(default_factory=dict)
    search_p50_ms: dict[str, float] = field(default_factory=dict)
    search_p95_ms: dict[str, float] = field(default_factory=dict)
    dedup_p50_ms: float = 0.0
    dedup_p95_ms: float = 0.0
    dedup_redis_cpu_ms: float = 0.0  # per article, the Redis server's CPU
    dedup_cpu_ms: float = 0.0  # per article in batches of 32: this process's CPU plus the Redis server's
    dedup_script_us: float = 0.0  # mean time of one Lua script call in Redis (adding an article)
    index_bytes_per_article: float = 0.0
    published_bytes_per_article: float = 0.0
    status_ms: float = 0.0
    load_s: dict[str, float] = field(default_factory=dict)


@dataclass
class HotResult:
    """One more copy of a story that already has `copies` near-copies in the index."""

    copies: int
    p50_ms: float
    p95_ms: float
    redis_cpu_ms: float
    script_us: float  # mean time of one Lua script call in Redis
    listed: float  # near-duplicates listed per probe, mean


@dataclass
class ScaleReport:
    """A `--scale` run."""

    levels: list[LevelResult] = field(default_factory=list)
    hot: list[HotResult] = field(default_factory=list)
    cpus: int = os.cpu_count() or 1
    machine_busy_cores: float | None = None
    own_busy_cores: float | None = None
    seconds: float = 0.0
    failures: dict[str, str] = field(default_factory=dict)

    def per_article_costs(self, level: LevelResult) -> dict[str, float]:
        """Every per-article cost at one size, by name (the figures the growth target is about)."""
        costs = {f"stage:{name}": ms for name, ms in level.stage_ms.items()}
        costs |= {f"upsert:{backend}": ms for backend, ms in level.upsert_ms.items()}
        costs |= {f"upsert_cpu:{backend}": ms for backend, ms in level.upsert_cpu_ms.items()}
        if level.dedup_cpu_ms:
            costs["dedup_cpu"] = level.dedup_cpu_ms
        costs["dedup_lookup_p95"] = level.dedup_p95_ms
        costs["dedup_redis_cpu"] = level.dedup_redis_cpu_ms
        costs["index_bytes"] = level.index_bytes_per_article
        costs["published_stream_bytes"] = level.published_bytes_per_article
        return costs

    def growth(self) -> dict[str, float]:
        """Each per-article cost at the largest size over the smallest."""
        if len(self.levels) < 2:
            return {}
        first, last = self.per_article_costs(self.levels[0]), self.per_article_costs(self.levels[-1])
        return {name: last[name] / first[name] for name in first if name in last and first[name] > 0}

    def targets(self) -> dict[str, dict[str, Any]]:
        """Growth ≤ 1.5× for each per-article cost; PostgreSQL search p95 ≤ 100 ms at the largest size."""
        targets = {
            f"growth[{name}]": {"value": round(value, 3), "limit": TARGET_GROWTH, "met": value <= TARGET_GROWTH}
            for name, value in self.growth().items()
        }
        if self.levels and "postgresql" in self.levels[-1].search_p95_ms:
            p95 = self.levels[-1].search_p95_ms["postgresql"]
            targets[f"search_p95_ms[postgresql@{self.levels[-1].stored}]"] = {
                "value": round(p95, 1),
                "limit": TARGET_SEARCH_P95_MS,
                "met": p95 <= TARGET_SEARCH_P95_MS,
            }
        if len(self.hot) >= 2:
            ratio = self.hot[-1].redis_cpu_ms / self.hot[0].redis_cpu_ms if self.hot[0].redis_cpu_ms else 0.0
            targets[f"hot_story_redis_cpu[{self.hot[-1].copies}/{self.hot[0].copies}]"] = {
                "value": round(ratio, 3),
                "limit": TARGET_GROWTH,
                "met": ratio <= TARGET_GROWTH,
            }
        return targets

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready report."""
        data = asdict(self)
        data["growth"] = {name: round(value, 3) for name, value in self.growth().items()}
        data["targets"] = self.targets()
        return data


# --------------------------------------------------------------------------------------------------- measuring


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


class _RedisCpu:
    """CPU seconds the Redis server spent between `start()` and `stop()` (INFO cpu: microsecond resolution), and
    the mean time of its Lua script calls meanwhile (INFO commandstats)."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self._start = 0.0
        self._scripts = (0, 0)
        self.script_us = 0.0  # mean per EVALSHA in the last start..stop

    def _cpu(self) -> float:
        info = self.client.info("cpu")
        return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])

    def _script_calls(self) -> tuple[int, int]:
        stats = self.client.info("commandstats").get("cmdstat_evalsha", {})
        return int(stats.get("calls", 0)), int(stats.get("usec", 0))

    def start(self) -> None:
        self._start, self._scripts = self._cpu(), self._script_calls()

    def stop(self) -> float:
        cpu = self._cpu() - self._start
        calls, usec = self._script_calls()
        calls, usec = calls - self._scripts[0], usec - self._scripts[1]
        self.script_us = usec / calls if calls else 0.0
        return cpu


def synthetic_signature(corpus: SyntheticCorpus, number: int, num_perm: int) -> np.ndarray[Any, Any]:
    """A MinHash-like signature for article `number`: random for a story, mostly its original's for a copy."""
    original = corpus.original_of(number)
    base = np.random.default_rng(original if original is not None else number).integers(
        0, 2**32, size=num_perm, dtype=np.uint64
    )
    if original is None:
        return base
    rng = np.random.default_rng(10**9 + number)
    changed = rng.random(num_perm) > SIGNATURE_KEEP
    base[changed] = rng.integers(0, 2**32, size=int(changed.sum()), dtype=np.uint64)
    return base


async def load_index(
    index: NearDuplicateIndex, corpus: SyntheticCorpus, numbers: range, real_from: int, base_seq: int
) -> None:
    """Bulk-load articles `numbers` (synthetic signatures below `real_from`, real ones from it on)."""
    for start in range(numbers.start, numbers.stop, LOAD_BATCH):
        part = range(start, min(start + LOAD_BATCH, numbers.stop))
        entries = []
        for number in part:
            if number >= real_from:
                body = corpus.article(number).body
                signature = index.signer.sign(body)
            else:
                signature = synthetic_signature(corpus, number, index.signer.num_perm)
            entries.append((article_id(corpus.tag, number), signature, f"content-{number}"))
        await index.load(entries, first_seq=base_seq + part.start)


async def measure_dedup(
    index: NearDuplicateIndex, bodies: Sequence[tuple[str, str, str]], redis_cpu: _RedisCpu
) -> tuple[list[float], float, int]:
    """(wall seconds of each article's `check_and_add`, Redis CPU seconds per article, near-duplicates listed)."""
    latencies: list[float] = []
    listed = 0
    redis_cpu.start()
    for item in bodies:
        started = time.perf_counter()
        near, _ = await index.check_and_add(*item)
        latencies.append(time.perf_counter() - started)
        listed += len(near)
    return latencies, redis_cpu.stop() / max(1, len(bodies)), listed


def search_queries(corpus: SyntheticCorpus, count: int, stored: int) -> list[str]:
    """Queries a reader types: a rare word, a common one, two words, a phrase from an article, a name."""
    rng = random.Random(f"queries:{count}")
    queries: list[str] = []
    vocabulary = corpus.vocabulary
    while len(queries) < count:
        kind = len(queries) % 5
        if kind == 0:
            queries.append(vocabulary[rng.randrange(2_000, len(vocabulary))])
        elif kind == 1:
            queries.append(vocabulary[rng.randrange(50, 600)])
        elif kind == 2:
            queries.append(f"{vocabulary[rng.randrange(50, 600)]} {vocabulary[rng.randrange(600, 6_000)]}")
        elif kind == 3:
            words = corpus.article(rng.randrange(stored)).body.split()
            start = rng.randrange(len(words) - 3)
            queries.append(" ".join(w.strip('.,;:!?“”"‘’()') for w in words[start : start + 3]))
        else:
            queries.append(corpus.entity_pool[rng.randrange(200)][0])
    return queries


def _postgres_backend_cpu(postgres_url: str | None) -> float:
    """CPU seconds of the PostgreSQL backends serving this process's connections (0 when not on this machine)."""
    if not postgres_url:
        return 0.0
    import psycopg

    me = psutil.Process()
    ports = [c.laddr.port for c in me.net_connections(kind="tcp") if c.raddr and c.status == "ESTABLISHED"]
    if not ports:
        return 0.0
    with psycopg.connect(postgres_url, autocommit=True, connect_timeout=5) as admin:
        pids = [row[0] for row in admin.execute(
            "SELECT pid FROM pg_stat_activity WHERE client_port = ANY(%s) AND pid <> pg_backend_pid()", (ports,)
        )]
    total = 0.0
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
        except psutil.Error:  # a server on another machine, or a backend that just ended
            continue
        total += times.user + times.system
    return total


async def measure_storage(
    url: str, corpus: SyntheticCorpus, probes: range, queries: Sequence[str], postgres_url: str | None = None
) -> tuple[float, float, float, float]:
    """(upsert ms per article in batches of 32 of new records, its CPU ms, search p50 ms, search p95 ms).

    The CPU figure is this process's (client, and SQLite's engine) plus, for PostgreSQL on this machine, the CPU
    of the backends serving the storage's connections: what the article cost, whatever else the machine ran.
    """
    records = [corpus.record(number) for number in probes]
    async with open_storage(url) as storage:
        await storage.upsert_articles(records[:1])  # the pool's connections are open before the clock starts
        records = records[1:]
        started, cpu, backend = time.perf_counter(), time.process_time(), _postgres_backend_cpu(postgres_url)
        for start in range(0, len(records), BATCH):
            await storage.upsert_articles(records[start : start + BATCH])
        upsert = (time.perf_counter() - started) / len(records)
        upsert_cpu = (time.process_time() - cpu + _postgres_backend_cpu(postgres_url) - backend) / len(records)
        for query in queries:  # warm: a running API has its pages cached
            await storage.search(query)
        latencies = []
        for query in queries:
            started = time.perf_counter()
            await storage.search(query)
            latencies.append(time.perf_counter() - started)
    return _ms(upsert), _ms(upsert_cpu), _ms(_percentile(latencies, 50)), _ms(_percentile(latencies, 95))


def measure_stages(corpus: SyntheticCorpus, numbers: range, enricher: Any) -> dict[str, float]:
    """CPU ms per article of ingest's and clean's logic and of enrich's NLP (`enrich_batch`), in this process."""
    from services.clean.article import clean_article
    from services.ingest.validate import ingest_article, validate_raw_article
    from shared.events import CleanedArticle

    raws = [corpus.raw(number) for number in numbers]
    started = time.process_time()
    ingested = [
        ingest_article(validate_raw_article(raw), origin="bench", received_at=datetime.now(UTC)) for raw in raws
    ]
    ingest_s = time.process_time() - started
    started = time.process_time()
    cleaned = [CleanedArticle(id=a.id, ingest=a.ingest, trace=a.trace, clean=clean_article(a.ingest)) for a in ingested]
    clean_s = time.process_time() - started
    started = time.process_time()
    for start in range(0, len(cleaned), BATCH):
        enricher.enrich_batch(cleaned[start : start + BATCH])
    enrich_s = time.process_time() - started
    count = len(raws)
    return {"ingest": _ms(ingest_s / count), "clean": _ms(clean_s / count), "enrich_nlp": _ms(enrich_s / count)}


def load_streams(client: redis.Redis, streams: StreamNames, start: int, stop: int, now_ms: int) -> None:
    """Published events for articles start..stop-1 and their DLQ share, with ids spread over the past 30 days."""
    span = 30 * 86_400_000
    with client.pipeline(transaction=False) as pipe:
        for number in range(start, stop):
            moment = now_ms - 120_000 - span + span * number // 1_000_000  # oldest first, all before the last minute
            event = {
                "id": article_id("scale", number),
                "url": f"https://x.example/{number}",
                "title": "t",
                "revision": 1,
                "stored_at": "2026-01-01T00:00:00+00:00",
            }
            pipe.xadd(streams.published, {"data": orjson.dumps(event)}, id=f"{moment}-{number}")
            if number % int(1 / DLQ_SHARE) == 0:
                letter = DeadLetter(
                    stage="clean",
                    reason="too_short",
                    error="body has 3 words",
                    deliveries=1,
                    failed_at=datetime.fromtimestamp(moment / 1000, UTC),
                    stream=streams.ingested,
                    msg_id=f"{moment}-0",
                    article_id=article_id("scale", number),
                )
                payload = orjson.dumps({"text": " ".join(["word"] * 600)})  # a raw article of ~3 kB
                token = dlq.new_token()
                pipe.set(streams.dlq_payload(token), payload)
                fields = dlq.entry_fields(letter, token, len(payload), None)
                pipe.xadd(streams.dlq, fields, id=f"{moment}-{number}")  # type: ignore[arg-type]
            if len(pipe) >= 2_000:
                pipe.execute()
        pipe.execute()


async def measure_status(redis_url: str, streams: StreamNames, repeats: int = 5) -> float:
    """Median ms of one `newsflow status` snapshot."""
    from shared.observability.status import collect_status

    client = Redis.from_url(redis_url)
    try:
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            await collect_status(client, streams, stuck_after_s=60)
            times.append(time.perf_counter() - started)
    finally:
        await client.aclose()
    return _ms(statistics.median(times))


def memory_of(client: redis.Redis, keys: Sequence[str]) -> int:
    """Bytes Redis holds for `keys` (MEMORY USAGE, every element counted)."""
    return sum(int(client.memory_usage(key, samples=0) or 0) for key in keys)


# --------------------------------------------------------------------------------------------------- the run


def run_scale(settings: Settings, options: ScaleOptions, progress: Progress = lambda _: None) -> ScaleReport:
    """Load, measure, load more, measure again; everything removed afterwards."""
    return asyncio.run(_run_scale(settings, options, progress))


async def _run_scale(settings: Settings, options: ScaleOptions, progress: Progress) -> ScaleReport:
    from services.enrich.enricher import Enricher

    report = ScaleReport()
    started, machine_started = time.perf_counter(), _busy_cpu_seconds()
    own_started = psutil.Process().cpu_times()
    corpus = SyntheticCorpus()
    enricher = Enricher(settings)
    levels = sorted(set(options.levels))
    with tempfile.TemporaryDirectory(prefix="newsflow-scale-") as tmp:
        workdir = Path(tmp)
        schema = None
        backends = {"sqlite": f"sqlite:///{workdir / 'scale.db'}"}
        if options.postgres_url:
            schema, backends["postgresql"] = _private_schema(options.postgres_url)
        try:
            with private_redis(workdir / "redis") as redis_url:
                await _measure_levels(
                    report, settings, options, corpus, enricher, levels, backends, redis_url, progress
                )
                await _measure_hot(report, settings, options, corpus, redis_url, progress)
        finally:
            if schema and options.postgres_url:
                _drop_schema(options.postgres_url, schema)
    report.seconds = round(time.perf_counter() - started, 1)
    own = psutil.Process().cpu_times()
    if report.seconds:
        report.machine_busy_cores = round((_busy_cpu_seconds() - machine_started) / report.seconds, 2)
        report.own_busy_cores = round(
            (own.user + own.system - own_started.user - own_started.system) / report.seconds, 2
        )
    return report


async def _measure_levels(
    report: ScaleReport,
    settings: Settings,
    options: ScaleOptions,
    corpus: SyntheticCorpus,
    enricher: Any,
    levels: Sequence[int],
    backends: dict[str, str],
    redis_url: str,
    progress: Progress,
) -> None:
    from tools.bench.corpus import bulk_load

    scale_settings = settings.model_copy(update={"key_prefix": "scale", "dedup_horizon_articles": 0})
    streams = names(scale_settings)
    sync = redis.Redis.from_url(redis_url)
    client = Redis.from_url(redis_url)
    redis_cpu = _RedisCpu(sync)
    index = NearDuplicateIndex(client, scale_settings)
    _create_groups(sync, streams)
    index_keys = [index.key(name) for name in ("clock", "seen", "docs", "content")] + index.band_keys
    seconds, micros = sync.time()
    now_ms = int(seconds) * 1000 + int(micros) // 1000
    base_seq = now_ms - 10 * max(levels) - 10_000_000  # bulk-loaded articles sort before the measured ones
    loaded = 0  # articles 0..loaded-1 are in the store and the index
    # Warm-up, untimed: scripts loaded, connections open, numpy and the signer's first calls made.
    warm = NearDuplicateIndex(client, scale_settings.model_copy(update={"key_prefix": "scale-warm"}))
    await measure_dedup(warm, [(f"w{n}", corpus.copy_body(1, n), "") for n in range(24)], redis_cpu)
    try:
        for level in levels:
            result = LevelResult(stored=level)
            fresh = range(loaded, level)
            progress(f"scale: loading articles {fresh.start:,}..{level - 1:,} into {', '.join(backends)} and Redis")
            for backend, url in backends.items():
                began = time.perf_counter()
                await bulk_load(url, corpus.records(fresh.start, len(fresh)), batch_size=LOAD_BATCH)
                if backend == "postgresql":
                    _analyze(url)  # as autovacuum would soon after a bulk load (the planner sizes tiers from it)
                result.load_s[backend] = round(time.perf_counter() - began, 1)
            began = time.perf_counter()
            await load_index(index, corpus, fresh, max(fresh.start, level - NEAR_DUPLICATE_LOOKBACK), base_seq)
            result.load_s["index"] = round(time.perf_counter() - began, 1)
            load_streams(sync, streams, fresh.start, level, now_ms)

            progress(f"scale: measuring at {level:,} stored articles")
            probes = range(level, level + options.probes)
            sample = range(level, level + options.stage_sample)
            result.stage_ms = measure_stages(corpus, sample, enricher)
            index_bytes = memory_of(sync, index_keys)
            result.index_bytes_per_article = round(index_bytes / level, 1)
            result.published_bytes_per_article = round(memory_of(sync, [streams.published]) / level, 1)
            items = [(article_id(corpus.tag, n), corpus.article(n).body, f"content-{n}") for n in probes]
            half = len(items) // 2
            latencies, cpu_per_article, _ = await measure_dedup(index, items[:half], redis_cpu)
            result.dedup_script_us = round(redis_cpu.script_us, 1)
            result.dedup_p50_ms = _ms(_percentile(latencies, 50))
            result.dedup_p95_ms = _ms(_percentile(latencies, 95))
            # Batches of 32 as the service sends them: wall time per article is the step's cost in enrich.
            redis_cpu.start()
            began, own_cpu = time.perf_counter(), time.process_time()
            for start in range(half, len(items), BATCH):
                await index.check_and_add_many(items[start : start + BATCH])
            batched = (time.perf_counter() - began) / (len(items) - half)
            own_cpu = time.process_time() - own_cpu
            batched_redis_cpu = redis_cpu.stop()
            result.dedup_cpu_ms = _ms((own_cpu + batched_redis_cpu) / (len(items) - half))
            result.dedup_redis_cpu_ms = _ms((batched_redis_cpu + cpu_per_article * half) / len(items))
            result.stage_ms["enrich_dedup"] = _ms(batched)
            queries = search_queries(corpus, options.queries, level)
            for backend, url in backends.items():
                admin = options.postgres_url if backend == "postgresql" else None
                upsert, upsert_cpu, p50, p95 = await measure_storage(url, corpus, probes, queries, admin)
                result.upsert_ms[backend] = upsert
                result.upsert_cpu_ms[backend] = upsert_cpu
                result.search_p50_ms[backend], result.search_p95_ms[backend] = p50, p95
            result.stage_ms["publish"] = result.upsert_ms["sqlite"]
            result.status_ms = await measure_status(redis_url, streams)
            report.levels.append(result)
            loaded = level + options.probes
    finally:
        sync.close()
        await client.aclose()


async def _measure_hot(
    report: ScaleReport,
    settings: Settings,
    options: ScaleOptions,
    corpus: SyntheticCorpus,
    redis_url: str,
    progress: Progress,
) -> None:
    """A story already copied `copies` times: what one more copy costs the near-duplicate step."""
    client = Redis.from_url(redis_url)
    sync = redis.Redis.from_url(redis_url)
    try:
        redis_cpu = _RedisCpu(sync)
        for copies in sorted(options.hot_copies):
            progress(f"scale: a story with {copies:,} near-copies in the index")
            index = NearDuplicateIndex(client, settings.model_copy(update={"key_prefix": f"hot{copies}"}))
            story = 3  # an original story of the corpus
            loaded = [(f"hot-{copies}-{k}", corpus.copy_body(story, k), f"hot-{k}") for k in range(copies)]
            for start in range(0, len(loaded), BATCH):
                await index.check_and_add_many(loaded[start : start + BATCH])
            probes = [
                (f"probe-{copies}-{k}", corpus.copy_body(story, copies + k), f"probe-{k}")
                for k in range(options.hot_probes)
            ]
            latencies, cpu, listed = await measure_dedup(index, probes, redis_cpu)
            report.hot.append(
                HotResult(
                    copies,
                    _ms(_percentile(latencies, 50)),
                    _ms(_percentile(latencies, 95)),
                    _ms(cpu),
                    round(redis_cpu.script_us, 1),
                    round(listed / len(probes), 1),
                )
            )
            keys = [key async for key in client.scan_iter(match=f"hot{copies}:*", count=1000)]
            if keys:
                await client.unlink(*keys)
    finally:
        sync.close()
        await client.aclose()


def _analyze(url: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        conn.execute("VACUUM ANALYZE")


def _private_schema(postgres_url: str) -> tuple[str, str]:
    import psycopg

    schema = f"nf_scale_{os.getpid()}_{int(time.time())}"
    with psycopg.connect(postgres_url, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    separator = "&" if "?" in postgres_url else "?"
    return schema, f"{postgres_url}{separator}options=-csearch_path%3D{schema}"


def _drop_schema(postgres_url: str, schema: str) -> None:
    import psycopg

    with psycopg.connect(postgres_url, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


# --------------------------------------------------------------------------------------------------- report


def render_scale(report: ScaleReport) -> str:
    """The report as markdown tables."""
    sizes = [f"{level.stored:,}" for level in report.levels]
    header = "| | " + " | ".join(sizes) + " | largest / smallest |"
    rule = "|---|" + "---:|" * (len(sizes) + 1)
    growth = report.growth()
    lines = [
        f"{report.cpus} CPUs; {report.seconds:.0f} s; busy cores: machine {report.machine_busy_cores}, "
        f"this run {report.own_busy_cores}.",
        "",
        "Per article (ms unless marked), with N articles stored:",
        "",
        header,
        rule,
    ]

    def row(label: str, values: Sequence[float | None], key: str | None, unit: str = "") -> None:
        cells = " | ".join(f"{v:,.3f}{unit}" if v is not None else "–" for v in values)
        ratio = f"{growth[key]:.2f}×" if key and key in growth else "–"
        lines.append(f"| {label} | {cells} | {ratio} |")

    stage_names = list(dict.fromkeys(name for level in report.levels for name in level.stage_ms))
    for name in stage_names:
        row(f"stage: {name}", [level.stage_ms.get(name) for level in report.levels], f"stage:{name}")
    backends = list(dict.fromkeys(b for level in report.levels for b in level.upsert_ms))
    for backend in backends:
        row(
            f"upsert ({backend}, batches of 32)",
            [lv.upsert_ms.get(backend) for lv in report.levels],
            f"upsert:{backend}",
        )
        row(
            f"upsert ({backend}): CPU, client + server",
            [lv.upsert_cpu_ms.get(backend) for lv in report.levels],
            f"upsert_cpu:{backend}",
        )
    row("near-duplicate lookup p50 (one article)", [lv.dedup_p50_ms for lv in report.levels], None)
    row("near-duplicate lookup p95 (one article)", [lv.dedup_p95_ms for lv in report.levels], "dedup_lookup_p95")
    row("near-duplicate: Redis CPU", [lv.dedup_redis_cpu_ms for lv in report.levels], "dedup_redis_cpu")
    row("near-duplicate step: CPU, enrich + Redis", [lv.dedup_cpu_ms for lv in report.levels], "dedup_cpu")
    row("near-duplicate: one Lua script call", [lv.dedup_script_us / 1000 for lv in report.levels], None)
    row("Redis: index bytes", [lv.index_bytes_per_article for lv in report.levels], "index_bytes", " B")
    row(
        "Redis: published stream bytes",
        [lv.published_bytes_per_article for lv in report.levels],
        "published_stream_bytes",
        " B",
    )
    lines += ["", "Per query / per snapshot (ms):", "", header, rule]
    for backend in backends:
        row(f"search p50 ({backend})", [lv.search_p50_ms.get(backend) for lv in report.levels], None)
        row(f"search p95 ({backend})", [lv.search_p95_ms.get(backend) for lv in report.levels], None)
    row("`status` (DLQ holds 1 % of N)", [lv.status_ms for lv in report.levels], None)
    lines += [
        "",
        "Bulk load (s): "
        + "; ".join(f"{lv.stored:,}: " + ", ".join(f"{k} {v}" for k, v in lv.load_s.items()) for lv in report.levels),
    ]
    if report.hot:
        lines += [
            "",
            "One more copy of a story already in the index this many times (near-duplicate step, one article):",
            "",
            "| copies in the index | p50 ms | p95 ms | Redis CPU ms | Lua script µs (mean) | near-duplicates listed |",
            "|---:|---:|---:|---:|---:|---:|",
        ]
        lines += [
            f"| {h.copies:,} | {h.p50_ms:.3f} | {h.p95_ms:.3f} | {h.redis_cpu_ms:.3f} | {h.script_us:.0f} "
            f"| {h.listed:.0f} |"
            for h in report.hot
        ]
    lines += targets_and_failures(report.targets(), report.failures)
    return "\n".join(lines) + "\n"

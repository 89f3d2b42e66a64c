"""`python -m tools bench --scale`: what an article costs as the corpus grows (1k, 10k, 100k stored articles).

Each size gets its own store (a SQLite file, and a PostgreSQL schema when given) and its own near-duplicate
index and streams (a Redis key prefix), bulk-loaded with that many articles of the synthetic corpus
(`tools/bench/corpus.py`, ~10 % near-duplicates). Once all are loaded, every size is measured once per round,
rounds interleaved (ascending, then descending order), each round putting the same number of new articles through
every size; a figure is the median over rounds, a CPU time the least. So the largest size is compared with the
smallest under the machine's load of the same minutes, not of a quarter-hour earlier (the load average at each
round is in the report). Measured:

- per stage, per article: ingest and clean logic, enrich's NLP (CPU time in this process, one core), enrich's
  near-duplicate step (new articles through `check_and_add_many`, batches of 32, wall time and the Redis
  server's CPU time), publish's upsert (new records into the store, batches of 32);
- near-duplicate lookup latency of one article (p50/p95), full-text search latency (p50/p95 over queries of
  rare, common and mixed words, phrases and names), `newsflow status` time, Redis memory per article;
- a much-copied story: the near-duplicate step's cost for one more copy with 100 and with 5,000 copies already
  in the index (the case whose cost used to grow with the copies).

Everything runs against a bench-owned redis-server and temporary SQLite files; PostgreSQL in private schemas
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
from dataclasses import asdict, dataclass, field, fields
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
    probes: int = 128  # new articles per size and round, through the near-duplicate step and upserted
    rounds: int = 3  # every size measured once per round, after all are loaded
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
    rounds: list[LevelResult] = field(default_factory=list)  # this size's figures in each round, in round order


# Figures that are CPU time: noise from other work on the machine only ever adds to them, so the least is kept.
CPU_FIELDS = frozenset({"upsert_cpu_ms", "dedup_cpu_ms", "dedup_redis_cpu_ms"})
CPU_STAGES = frozenset({"ingest", "clean", "enrich_nlp"})
ONCE_FIELDS = frozenset({"stored", "load_s", "rounds", "index_bytes_per_article", "published_bytes_per_article"})


def _combine(values: Sequence[float], cpu: bool) -> float:
    return min(values) if cpu else round(statistics.median(values), 3)


def combine_rounds(stored: int, rounds: Sequence[LevelResult]) -> LevelResult:
    """One size's figures over its rounds: the median of each, the least of each CPU time."""
    result = LevelResult(stored=stored, rounds=list(rounds))
    for spec in fields(LevelResult):
        if spec.name in ONCE_FIELDS:
            continue
        values = [getattr(measured, spec.name) for measured in rounds]
        if isinstance(values[0], dict):
            combined = {
                key: _combine(
                    [v[key] for v in values if key in v],
                    spec.name in CPU_FIELDS or (spec.name == "stage_ms" and key in CPU_STAGES),
                )
                for key in values[0]
            }
            setattr(result, spec.name, combined)
        else:
            setattr(result, spec.name, _combine(values, spec.name in CPU_FIELDS))
    return result


@dataclass
class ScaleRound:
    """The conditions one round of measurements ran in."""

    number: int
    order: list[int]  # sizes, in the order measured
    load_avg: tuple[float, float, float]  # 1, 5 and 15 minute load averages as the round started
    machine_busy_cores: float = 0.0  # during the round
    seconds: float = 0.0


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
    rounds: list[ScaleRound] = field(default_factory=list)
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
        """Each per-article cost at the largest size over the smallest (their figures combined over rounds)."""
        if len(self.levels) < 2:
            return {}
        return self._ratios(self.levels[0], self.levels[-1])

    def round_growth(self) -> dict[str, list[float]]:
        """Each per-article cost at the largest size over the smallest, within each round."""
        if len(self.levels) < 2:
            return {}
        per_round: dict[str, list[float]] = {}
        for first, last in zip(self.levels[0].rounds, self.levels[-1].rounds, strict=True):
            for name, ratio in self._ratios(first, last).items():
                per_round.setdefault(name, []).append(ratio)
        return per_round

    def _ratios(self, first: LevelResult, last: LevelResult) -> dict[str, float]:
        smallest, largest = self.per_article_costs(first), self.per_article_costs(last)
        return {name: largest[name] / smallest[name] for name in smallest if name in largest and smallest[name] > 0}

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
        data["round_growth"] = {name: [round(v, 3) for v in values] for name, values in self.round_growth().items()}
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
    """Load every size, then measure them all in interleaved rounds; everything removed afterwards."""
    return asyncio.run(_run_scale(settings, options, progress))


async def _run_scale(settings: Settings, options: ScaleOptions, progress: Progress) -> ScaleReport:
    from services.enrich.enricher import Enricher

    report = ScaleReport()
    started, machine_started = time.perf_counter(), _busy_cpu_seconds()
    own_started = psutil.Process().cpu_times()
    corpus = SyntheticCorpus()
    enricher = Enricher(settings)
    sizes = sorted(set(options.levels))
    schemas: list[str] = []
    with tempfile.TemporaryDirectory(prefix="newsflow-scale-") as tmp:
        workdir = Path(tmp)
        try:
            with private_redis(workdir / "redis") as redis_url:
                levels = []
                for size in sizes:
                    # Each size keeps its own store and index, so all can be measured side by side later.
                    backends = {"sqlite": f"sqlite:///{workdir / f'scale-{size}.db'}"}
                    if options.postgres_url:
                        schema, backends["postgresql"] = _private_schema(options.postgres_url, f"{size}")
                        schemas.append(schema)
                    levels.append(_Level(size, backends, settings, redis_url))
                await _measure_levels(report, options, corpus, enricher, levels, redis_url, progress)
                await _measure_hot(report, settings, options, corpus, redis_url, progress)
        finally:
            for schema in schemas:
                _drop_schema(options.postgres_url or "", schema)
    report.seconds = round(time.perf_counter() - started, 1)
    own = psutil.Process().cpu_times()
    if report.seconds:
        report.machine_busy_cores = round((_busy_cpu_seconds() - machine_started) / report.seconds, 2)
        report.own_busy_cores = round(
            (own.user + own.system - own_started.user - own_started.system) / report.seconds, 2
        )
    return report


class _Level:
    """One size's own stores (a SQLite file, a PostgreSQL schema) and its own Redis keys (index and streams)."""

    def __init__(self, stored: int, backends: dict[str, str], settings: Settings, redis_url: str) -> None:
        self.stored = stored
        self.backends = backends
        self.settings = settings.model_copy(update={"key_prefix": f"scale{stored}", "dedup_horizon_articles": 0})
        self.streams = names(self.settings)
        self.client = Redis.from_url(redis_url)
        self.index = NearDuplicateIndex(self.client, self.settings)
        self.index_keys = [self.index.key(name) for name in ("clock", "seen", "docs", "content")]
        self.index_keys += self.index.band_keys
        self.load_s: dict[str, float] = {}
        self.index_bytes = self.published_bytes = 0.0  # Redis bytes per article, as loaded
        self.rounds: list[LevelResult] = []


def round_orders(sizes: Sequence[int], rounds: int) -> list[list[int]]:
    """The order sizes are measured in, each round: ascending, then descending, and so on (drift cancels out)."""
    ascending = sorted(sizes)
    return [ascending if number % 2 == 0 else ascending[::-1] for number in range(rounds)]


def load_average() -> tuple[float, float, float]:
    """The machine's 1, 5 and 15 minute load averages."""
    one, five, fifteen = os.getloadavg()
    return round(one, 2), round(five, 2), round(fifteen, 2)


async def _measure_levels(
    report: ScaleReport,
    options: ScaleOptions,
    corpus: SyntheticCorpus,
    enricher: Any,
    levels: Sequence[_Level],
    redis_url: str,
    progress: Progress,
) -> None:
    sync = redis.Redis.from_url(redis_url)
    redis_cpu = _RedisCpu(sync)
    seconds, micros = sync.time()
    now_ms = int(seconds) * 1000 + int(micros) // 1000
    base_seq = now_ms - 10 * max(level.stored for level in levels) - 10_000_000  # loaded sort before measured
    try:
        for level in levels:
            await _load_level(level, corpus, sync, base_seq, now_ms, progress)
        # Warm-up, untimed: scripts loaded, connections open, numpy and the signer's first calls made.
        warm = NearDuplicateIndex(levels[0].client, levels[0].settings.model_copy(update={"key_prefix": "warm"}))
        await measure_dedup(warm, [(f"w{n}", corpus.copy_body(1, n), "") for n in range(24)], redis_cpu)
        measure_stages(corpus, range(options.stage_sample), enricher)  # the NLP's first batch costs more
        by_size = {level.stored: level for level in levels}
        for number, order in enumerate(round_orders(list(by_size), options.rounds)):
            conditions = ScaleRound(number=number + 1, order=order, load_avg=load_average())
            progress(f"scale: round {number + 1} of {options.rounds} ({order}), load average {conditions.load_avg}")
            began, busy = time.perf_counter(), _busy_cpu_seconds()
            for size in order:
                level = by_size[size]
                first = level.stored + number * options.probes  # fresh articles each round
                level.rounds.append(
                    await _measure_round(
                        level, options, corpus, enricher, range(first, first + options.probes), redis_cpu, redis_url
                    )
                )
            conditions.seconds = round(time.perf_counter() - began, 1)
            conditions.machine_busy_cores = round((_busy_cpu_seconds() - busy) / conditions.seconds, 2)
            report.rounds.append(conditions)
        for level in levels:
            result = combine_rounds(level.stored, level.rounds)
            result.load_s = level.load_s
            result.index_bytes_per_article = level.index_bytes
            result.published_bytes_per_article = level.published_bytes
            report.levels.append(result)
    finally:
        sync.close()
        for level in levels:
            await level.client.aclose()


async def _load_level(
    level: _Level, corpus: SyntheticCorpus, sync: redis.Redis, base_seq: int, now_ms: int, progress: Progress
) -> None:
    """Bulk-load articles 0..stored-1 into the level's stores, its index and its streams; Redis bytes measured."""
    from tools.bench.corpus import bulk_load

    size = level.stored
    progress(f"scale: loading {size:,} articles into {', '.join(level.backends)} and Redis")
    for backend, url in level.backends.items():
        began = time.perf_counter()
        await bulk_load(url, corpus.records(0, size), batch_size=LOAD_BATCH)
        if backend == "postgresql":
            _analyze(url)  # as autovacuum would soon after a bulk load (the planner sizes tiers from it)
        level.load_s[backend] = round(time.perf_counter() - began, 1)
    began = time.perf_counter()
    await load_index(level.index, corpus, range(size), max(0, size - NEAR_DUPLICATE_LOOKBACK), base_seq)
    level.load_s["index"] = round(time.perf_counter() - began, 1)
    _create_groups(sync, level.streams)
    load_streams(sync, level.streams, 0, size, now_ms)
    # Redis bytes per article as loaded (the rounds' probes then add the same few articles to every size)
    level.index_bytes = round(memory_of(sync, level.index_keys) / size, 1)
    level.published_bytes = round(memory_of(sync, [level.streams.published]) / size, 1)


async def _measure_round(
    level: _Level,
    options: ScaleOptions,
    corpus: SyntheticCorpus,
    enricher: Any,
    probes: range,
    redis_cpu: _RedisCpu,
    redis_url: str,
) -> LevelResult:
    """One level measured once: `probes` are new articles, added to its index and stores."""
    result = LevelResult(stored=level.stored)
    result.stage_ms = measure_stages(corpus, range(level.stored, level.stored + options.stage_sample), enricher)
    items = [(article_id(corpus.tag, n), corpus.article(n).body, f"content-{n}") for n in probes]
    half = len(items) // 2
    latencies, cpu_per_article, _ = await measure_dedup(level.index, items[:half], redis_cpu)
    result.dedup_script_us = round(redis_cpu.script_us, 1)
    result.dedup_p50_ms = _ms(_percentile(latencies, 50))
    result.dedup_p95_ms = _ms(_percentile(latencies, 95))
    # Batches of 32 as the service sends them: wall time per article is the step's cost in enrich.
    redis_cpu.start()
    began, own_cpu = time.perf_counter(), time.process_time()
    for start in range(half, len(items), BATCH):
        await level.index.check_and_add_many(items[start : start + BATCH])
    batched = (time.perf_counter() - began) / (len(items) - half)
    own_cpu = time.process_time() - own_cpu
    batched_redis_cpu = redis_cpu.stop()
    result.dedup_cpu_ms = _ms((own_cpu + batched_redis_cpu) / (len(items) - half))
    result.dedup_redis_cpu_ms = _ms((batched_redis_cpu + cpu_per_article * half) / len(items))
    result.stage_ms["enrich_dedup"] = _ms(batched)
    queries = search_queries(corpus, options.queries, level.stored)
    for backend, url in level.backends.items():
        admin = options.postgres_url if backend == "postgresql" else None
        upsert, upsert_cpu, p50, p95 = await measure_storage(url, corpus, probes, queries, admin)
        result.upsert_ms[backend] = upsert
        result.upsert_cpu_ms[backend] = upsert_cpu
        result.search_p50_ms[backend], result.search_p95_ms[backend] = p50, p95
    result.stage_ms["publish"] = result.upsert_ms["sqlite"]
    result.status_ms = await measure_status(redis_url, level.streams)
    return result


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


def _private_schema(postgres_url: str, suffix: str) -> tuple[str, str]:
    import psycopg

    schema = f"nf_scale_{os.getpid()}_{int(time.time())}_{suffix}"
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
    header = "| | " + " | ".join(sizes) + " | largest / smallest | in each round |"
    rule = "|---|" + "---:|" * (len(sizes) + 2)
    growth, round_growth = report.growth(), report.round_growth()
    lines = [
        f"{report.cpus} CPUs; {report.seconds:.0f} s; busy cores: machine {report.machine_busy_cores}, "
        f"this run {report.own_busy_cores}.",
        "",
        "Every size is loaded first, into its own store and index; then all are measured in each round, in the",
        "order shown (new articles each time, the same number for every size). A figure is the median over the",
        "rounds; a CPU time the least (other work on the machine only adds to it).",
        "",
        "| round | order | load average (1 / 5 / 15 min) at start | machine busy cores | s |",
        "|---:|---|---|---:|---:|",
    ]
    lines += [
        f"| {r.number} | {', '.join(f'{size:,}' for size in r.order)} | {' / '.join(f'{v:.2f}' for v in r.load_avg)} "
        f"| {r.machine_busy_cores:.2f} | {r.seconds:.0f} |"
        for r in report.rounds
    ]
    lines += ["", "Per article (ms unless marked), with N articles stored:", "", header, rule]

    def row(label: str, values: Sequence[float | None], key: str | None, unit: str = "") -> None:
        cells = " | ".join(f"{v:,.3f}{unit}" if v is not None else "–" for v in values)
        ratio = f"{growth[key]:.2f}×" if key and key in growth else "–"
        each = ", ".join(f"{v:.2f}×" for v in round_growth[key]) if key and key in round_growth else "–"
        lines.append(f"| {label} | {cells} | {ratio} | {each} |")

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

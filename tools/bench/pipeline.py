"""`newsflow bench`: the deployed pipeline's throughput, overhead, latency and memory against same-run baselines."""

from __future__ import annotations

import asyncio
import html
import multiprocessing
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime
from hashlib import sha256
from pathlib import Path
from typing import Any, cast

import orjson
import psutil
import redis
from redis.typing import EncodableT, FieldT

from newsflow.localstack import free_port, redis_answers, redis_server_binary
from shared.settings import Settings
from shared.streams import STAGES, StreamNames

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_SOURCES = ROOT / "tests" / "fixtures"
CORPUS_SEED = 8
WORDS_PER_ARTICLE = 500
# Share of words swapped for another word of the same shape: enough to make recombined articles distinct for
# near-duplicate detection (as distinct real articles are), little enough to stay readable English for the NLP.
WORD_SWAP_RATE = 0.15
MIN_SENTENCE_WORDS = 6
MAX_SENTENCE_WORDS = 60

# Issue 8's targets on the 2-core reference machine.
TARGET_OVERHEAD_MS = 0.25
TARGET_SCALE_OUT_RATIO = 1.6
TARGET_P99_MS = 500.0
TARGET_RSS_MB = {"enrich": 400.0, "default": 150.0}

Progress = Callable[[str], None]

_SENTENCE_END = re.compile(r"(?:(?<=[.!?])|(?<=[.!?][”\"’)]))\s+(?=[“\"‘(]?[A-Z])")
_PARAGRAPH_TAG = re.compile(r"<p\b[^>]*>(.*?)</p>", re.IGNORECASE | re.DOTALL)
_ANY_TAG = re.compile(r"<[^>]+>")
_WORD = re.compile(r"^[A-Za-z][a-z]{3,}$")
# Some fixture pages are German; English function words keep the corpus English (the enrich models are).
_ENGLISH_FUNCTION_WORDS = frozenset(
    "the a an of to in and is are was were for on that with by as at from has have".split()
)


# --------------------------------------------------------------------------------------------------- corpus


def _texts_under(root: Path) -> list[str]:
    """Article text from the fixtures: `.txt` files as they are, `.html` pages' <p> paragraphs."""
    texts: list[str] = []
    for path in sorted(root.rglob("*")):
        if path.suffix == ".txt" and path.is_file():
            texts.append(path.read_text(encoding="utf-8", errors="replace"))
        elif path.suffix in (".html", ".htm") and path.is_file():
            page = path.read_text(encoding="utf-8", errors="replace")
            paragraphs = (html.unescape(_ANY_TAG.sub("", p)) for p in _PARAGRAPH_TAG.findall(page))
            texts.append("\n\n".join(" ".join(p.split()) for p in paragraphs))
    return texts


def _is_english(words: Sequence[str]) -> bool:
    hits = sum(w.lower() in _ENGLISH_FUNCTION_WORDS for w in words)
    return hits >= 2 and hits / len(words) >= 0.12


def sentence_pool(root: Path = DEFAULT_SOURCES) -> list[str]:
    """Distinct prose sentences from the fixtures, sorted (so the pool never depends on file-system order)."""
    sentences: set[str] = set()
    for text in _texts_under(root):
        for paragraph in re.split(r"\n\s*\n", text):
            flat = " ".join(paragraph.split())
            for sentence in _SENTENCE_END.split(flat):
                words = sentence.split()
                # Prose only: chrome lines ("Loading Now", "Post Comment") and headings end without punctuation.
                prose = sentence.rstrip('”"’)').endswith((".", "!", "?"))
                if prose and MIN_SENTENCE_WORDS <= len(words) <= MAX_SENTENCE_WORDS and _is_english(words):
                    sentences.add(sentence)
    if not sentences:
        raise ValueError(f"no prose sentences under {root}: the corpus needs at least one article text")
    return sorted(sentences)


def _vary(sentence: str, rng: random.Random, vocabulary: dict[bool, list[str]]) -> str:
    """Swap some words for others of the same shape (capitalised or not), keeping punctuation in place."""
    out = []
    for token in sentence.split(" "):
        core = token.strip('.,;:!?“”"‘’()')
        if _WORD.match(core) and rng.random() < WORD_SWAP_RATE:
            token = token.replace(core, rng.choice(vocabulary[core[0].isupper()]), 1)
        out.append(token)
    return " ".join(out)


def build_corpus(
    count: int, *, seed: int = CORPUS_SEED, tag: str = "bench", sources: Path = DEFAULT_SOURCES
) -> list[dict[str, Any]]:
    """`count` distinct ~500-word raw articles (title line + paragraphs), deterministic for a seed and sources."""
    pool = sentence_pool(sources)
    words = sorted({w.strip('.,;:!?“”"‘’()') for s in pool for w in s.split()})
    vocabulary = {
        True: [w for w in words if _WORD.match(w) and w[0].isupper()] or ["Report"],
        False: [w for w in words if _WORD.match(w) and w[0].islower()] or ["report"],
    }
    rng = random.Random(f"{seed}:{tag}")
    articles = []
    for number in range(count):
        sentences: list[str] = []
        total = 0
        while total < WORDS_PER_ARTICLE:
            sentence = _vary(rng.choice(pool), rng, vocabulary)
            sentences.append(sentence)
            total += len(sentence.split())
        paragraphs = [" ".join(sentences[i : i + 3]) for i in range(0, len(sentences), 3)]
        title = " ".join(sentences[0].split()[: rng.randint(6, 10)]).rstrip('.,;:“”"‘’')
        articles.append(
            {
                "id": f"{tag}-{number:05d}",
                "url": f"https://bench.newsflow.example/{tag}/{number:05d}",
                "source": "Newsflow Bench",
                "text": f"{title}\n\n" + "\n\n".join(paragraphs) + "\n",
            }
        )
    return articles


def corpus_fingerprint(articles: Sequence[dict[str, Any]]) -> str:
    """Short hash of the corpus, so two reports can tell whether they measured the same articles."""
    digest = sha256()
    for article in articles:
        digest.update(orjson.dumps(article))
    return digest.hexdigest()[:12]


# --------------------------------------------------------------------------------------------------- redis


@contextmanager
def private_redis(workdir: Path) -> Iterator[str]:
    """A bench-owned redis-server on a free port (AOF everysec, as deployed); yields its URL, removed after."""
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    workdir.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        [
            redis_server_binary(),
            *("--port", str(port), "--bind", "127.0.0.1", "--dir", str(workdir)),
            *("--appendonly", "yes", "--appendfsync", "everysec", "--save", ""),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while not redis_answers(url):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the bench redis-server did not start")
            time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _create_groups(client: redis.Redis, streams: StreamNames) -> None:
    for stage in STAGES:
        try:
            client.xgroup_create(streams.input_of(stage), stage, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise


def push_corpus(client: redis.Redis, streams: StreamNames, articles: Sequence[dict[str, Any]]) -> None:
    """XADD the corpus to the raw stream as `enqueue_raw` does (data + origin, pipelined)."""
    with client.pipeline(transaction=False) as pipe:
        for article in articles:
            pipe.xadd(streams.raw, {"data": orjson.dumps(article), "origin": "bench"})
        pipe.execute()


def _wait_for_outputs(
    client: redis.Redis, streams: StreamNames, count: int, timeout_s: float, poll_s: float = 0.01
) -> tuple[int, int]:
    """Poll until `count` entries are published or dead-lettered; returns (published, dead)."""
    deadline = time.monotonic() + timeout_s
    while True:
        with client.pipeline(transaction=False) as pipe:
            pipe.xlen(streams.published)
            pipe.xlen(streams.dlq)
            published, dead = (int(n) for n in pipe.execute())
        if published + dead >= count:
            return published, dead
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {published} published and {dead} dead-lettered of {count} in {timeout_s:.0f}s")
        time.sleep(poll_s)


# --------------------------------------------------------------------------------------------------- results


@dataclass
class Throughput:
    """One configuration's run over the corpus: articles/s from the first push to the last output."""

    name: str
    articles: int
    seconds: float
    published: int
    dead: int = 0
    # Average busy cores on the whole machine during the run, and how many of them were this run's processes:
    # the difference is other work sharing the machine, which the ratios cannot correct for.
    machine_cores: float | None = None
    own_cores: float | None = None
    # Every round's rate; the fields above are the best round's (as `timeit` keeps the best: the least disturbed).
    round_rates: list[float] = field(default_factory=list)

    @property
    def rate(self) -> float:
        """Articles per second."""
        return self.published / self.seconds if self.seconds > 0 else 0.0

    @property
    def per_cpu_second(self) -> float | None:
        """Articles per CPU-second of this run's own processes: efficiency, robust to a shared machine."""
        if not self.own_cores or self.seconds <= 0:
            return None
        return self.published / (self.own_cores * self.seconds)


@dataclass
class StageCost:
    """Per article, one stage: logic (trace stamps), transport overhead (batch commits), batch sizes."""

    stage: str
    logic_ms: float
    overhead_ms: float | None
    batches: int
    mean_batch: float | None


@dataclass
class Latency:
    """Push→stored latency of paced pushes, and the stage-to-stage hand-off times seen meanwhile."""

    target_rate: float
    achieved_rate: float
    articles: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    handoff_p50_ms: dict[str, float] = field(default_factory=dict)


@dataclass
class BenchReport:
    """Everything one `newsflow bench` run measured."""

    articles: int
    corpus: str
    sentence_pool: int
    batch_size: int
    poll_ms: int
    cpus: int
    rounds: int = 1
    runs: dict[str, Throughput] = field(default_factory=dict)
    stages: dict[str, list[StageCost]] = field(default_factory=dict)
    latency: Latency | None = None
    peak_rss_mb: dict[str, dict[str, float]] = field(default_factory=dict)
    storage_upserts_per_s: dict[str, float] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)

    def ratio(self, numerator: str, denominator: str) -> float | None:
        """Rate of one run over another's, when both ran."""
        top, bottom = self.runs.get(numerator), self.runs.get(denominator)
        if top is None or bottom is None or bottom.rate == 0:
            return None
        return top.rate / bottom.rate

    def ratios(self) -> dict[str, float]:
        """Every deployed run against the in-process and passthrough baselines."""
        out: dict[str, float] = {}
        for name in self.runs:
            if name.startswith("pipeline"):
                for base in ("inprocess", "passthrough"):
                    value = self.ratio(name, base)
                    if value is not None:
                        out[f"{name}/{base}"] = float(f"{value:.3g}")
                top, bottom = self.runs[name].per_cpu_second, self.runs.get("inprocess")
                if top is not None and bottom is not None and bottom.per_cpu_second:
                    out[f"{name}/inprocess per CPU-s"] = round(top / bottom.per_cpu_second, 3)
        return out

    def targets(self) -> dict[str, dict[str, Any]]:
        """Issue 8's targets: measured value, limit, and whether it is met (only those measured)."""
        out: dict[str, dict[str, Any]] = {}
        for run, costs in self.stages.items():
            overheads = [c.overhead_ms for c in costs if c.overhead_ms is not None and c.stage != "publish"]
            if overheads:
                worst = max(overheads)
                out[f"transport_overhead_ms[{run}]"] = _target(worst, TARGET_OVERHEAD_MS, worst <= TARGET_OVERHEAD_MS)
        scale_runs = sorted(n for n in self.runs if n.startswith("pipeline-") and n != "pipeline-1")
        for name in scale_runs:
            value = self.ratio(name, "inprocess")
            if value is not None:
                out[f"{name}/inprocess"] = _target(value, TARGET_SCALE_OUT_RATIO, value >= TARGET_SCALE_OUT_RATIO)
        if self.latency is not None:
            p99 = self.latency.p99_ms
            out["p99_ms"] = _target(p99, TARGET_P99_MS, p99 <= TARGET_P99_MS)
        for run, services in self.peak_rss_mb.items():
            for service, mb in services.items():
                limit = TARGET_RSS_MB.get(service.split("-")[0], TARGET_RSS_MB["default"])
                out[f"rss_mb[{run}:{service}]"] = _target(mb, limit, mb <= limit)
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready report (`--json`)."""
        data = asdict(self)
        for name, run in self.runs.items():
            data["runs"][name]["rate"] = round(run.rate, 2)
            efficiency = run.per_cpu_second
            data["runs"][name]["per_cpu_second"] = round(efficiency, 2) if efficiency is not None else None
        data["ratios"] = self.ratios()
        data["targets"] = self.targets()
        return data


def best_of(rounds: Sequence[Throughput]) -> Throughput:
    """The fastest round, remembering every round's rate."""
    best = max(rounds, key=lambda run: run.rate)
    best.round_rates = [round(run.rate, 2) for run in rounds]
    return best


def _cores(value: float | None) -> str:
    return f"{value:.2f}" if value is not None else "–"


def _target(value: float, limit: float, met: bool) -> dict[str, Any]:
    return {"value": round(value, 3), "limit": limit, "met": met}


def _percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty sample."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def _busy_cpu_seconds() -> float:
    times = psutil.cpu_times()
    return float(sum(times) - times.idle - getattr(times, "iowait", 0.0))


def _cpu_seconds(pids: Sequence[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


class CpuMeter:
    """Busy cores on the machine vs this run's own processes, averaged from `start` to `stop`."""

    def __init__(self, pids: Sequence[int]) -> None:
        self.pids = list(pids)
        self._wall = time.perf_counter()
        self._machine = _busy_cpu_seconds()
        self._own = _cpu_seconds(self.pids)

    def stop(self, run: Throughput) -> Throughput:
        """Fill the run's `machine_cores` and `own_cores`."""
        wall = time.perf_counter() - self._wall
        if wall > 0:
            run.machine_cores = round((_busy_cpu_seconds() - self._machine) / wall, 2)
            run.own_cores = round((_cpu_seconds(self.pids) - self._own) / wall, 2)
        return run


def _redis_pid(client: redis.Redis) -> int:
    return int(client.info("server")["process_id"])


# --------------------------------------------------------------------------------------------------- passthrough

# The identity stages take a few ms for one corpus; they move it this many times over, so the rate is not noise.
PASSTHROUGH_ROUNDS = 10


def _passthrough_stage(
    url: str,
    prefix: str,
    stage: str,
    count: int,
    batch_size: int,
    poll_ms: int,
    ready: Any,
    release: Any,
) -> None:
    """One identity stage: batched XREADGROUP, then XADD every entry onward and XACK them in one MULTI/EXEC."""
    client = redis.Redis.from_url(url)
    client.ping()
    streams = StreamNames(prefix)
    source, target = streams.input_of(stage), streams.output_of(stage)
    ready.put(stage)
    done = 0
    while done < count:
        reply = cast(
            list[tuple[bytes, list[tuple[bytes, dict[FieldT, EncodableT]]]]],
            client.xreadgroup(stage, f"{stage}-passthrough", {source: ">"}, count=batch_size, block=poll_ms),
        )
        if not reply:
            continue
        entries = reply[0][1]
        with client.pipeline(transaction=True) as pipe:
            for _, fields in entries:
                pipe.xadd(target, fields)
            pipe.xack(source, stage, *[entry_id for entry_id, _ in entries])
            pipe.execute()
        done += len(entries)
    client.close()
    release.wait(60)  # alive until the parent has read this process's CPU time


def run_passthrough(
    url: str, articles: Sequence[dict[str, Any]], settings: Settings, timeout_s: float, tag: str = ""
) -> Throughput:
    """The transport ceiling: four identity stages as four processes over the same Redis, same batch size."""
    streams = StreamNames(f"bench-passthrough-{os.getpid()}{tag}")
    client = redis.Redis.from_url(url)
    _create_groups(client, streams)
    context = multiprocessing.get_context("spawn")
    ready, release = context.Queue(), context.Event()
    total = len(articles) * PASSTHROUGH_ROUNDS
    workers = [
        context.Process(
            target=_passthrough_stage,
            args=(url, streams.prefix, stage, total, settings.batch_size, settings.poll_ms, ready, release),
            daemon=True,
        )
        for stage in STAGES
    ]
    for worker in workers:
        worker.start()
    try:
        for _ in workers:
            ready.get(timeout=60)  # the clock starts at the first push, with every stage connected
        meter = CpuMeter([os.getpid(), _redis_pid(client), *(w.pid for w in workers if w.pid is not None)])
        started = time.perf_counter()
        for _ in range(PASSTHROUGH_ROUNDS):
            push_corpus(client, streams, articles)
        published, dead = _wait_for_outputs(client, streams, total, timeout_s, poll_s=0.002)
        run = meter.stop(Throughput("passthrough", total, time.perf_counter() - started, published, dead))
    finally:
        release.set()
        for worker in workers:
            worker.join(timeout=5)
            if worker.is_alive():
                worker.terminate()
        client.close()
    return run


# --------------------------------------------------------------------------------------------------- in-process


def run_inprocess(corpora: Sequence[Sequence[dict[str, Any]]], settings: Settings) -> Throughput:
    """The same stage logic in this process (`LocalPipeline`, one core), one round per corpus; models load untimed."""
    from newsflow.inputs import RawInput
    from newsflow.process import Failure, LocalPipeline

    pipeline = LocalPipeline(settings)  # freezes its loaded models out of the GC, as every service does
    rounds = []
    for articles in corpora:
        items = [RawInput(where=str(a["id"]), data=dict(a)) for a in articles]
        meter = CpuMeter([os.getpid()])
        started = time.perf_counter()
        results = list(pipeline.run(items, batch_size=settings.batch_size))
        seconds = time.perf_counter() - started
        failed = sum(isinstance(r, Failure) for r in results)
        rounds.append(meter.stop(Throughput("inprocess", len(articles), seconds, len(results) - failed, failed)))
    return best_of(rounds)


# --------------------------------------------------------------------------------------------------- deployed


class Service:
    """One stage as a process (`python -m newsflow.cli serve STAGE`): its batch log lines and peak memory."""

    def __init__(self, name: str, env: dict[str, str]) -> None:
        self.name = name
        self.stage = name.split("-")[0]
        self.batches: list[dict[str, Any]] = []
        self.tail: list[str] = []
        self.peak_rss = 0
        self._started = threading.Event()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "newsflow.cli", "serve", self.stage],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        threading.Thread(target=self._read_output, daemon=True).start()

    def _read_output(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if b'"batch.committed"' in line:
                self.batches.append(orjson.loads(line))
                continue
            if b'"stage.started"' in line:
                self._started.set()
            elif b'"article.' in line and b'"level":"info"' in line:
                continue  # one canonical line per article: too many to keep, nothing to learn here
            self.tail = [*self.tail[-30:], line.decode("utf-8", "replace").rstrip()]

    def wait_started(self, timeout_s: float) -> None:
        """Block until the stage logged `stage.started` (its group exists, its models are loaded)."""
        deadline = time.monotonic() + timeout_s
        while not self._started.wait(0.2):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not start:\n" + "\n".join(self.tail))

    def sample_rss(self) -> None:
        """Remember the highest resident set size seen (and the kernel's own high-water mark on Linux)."""
        try:
            self.peak_rss = max(self.peak_rss, psutil.Process(self.process.pid).memory_info().rss)
        except psutil.Error:
            return
        status = Path(f"/proc/{self.process.pid}/status")
        try:
            for line in status.read_text().splitlines():
                if line.startswith("VmHWM:"):
                    self.peak_rss = max(self.peak_rss, int(line.split()[1]) * 1024)
        except OSError:
            pass

    def stop(self, timeout_s: float) -> None:
        """SIGTERM (finish the batch in hand), SIGKILL if it does not exit in time."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@contextmanager
def deployed_pipeline(
    url: str, prefix: str, storage_url: str, data_dir: Path, settings: Settings, enrich_replicas: int
) -> Iterator[list[Service]]:
    """The four services (enrich replicated) on a private prefix and storage, DEBUG logs for batch timings."""
    env = dict(os.environ)
    env.update(
        {
            "NEWSFLOW_REDIS_URL": url,
            "NEWSFLOW_KEY_PREFIX": prefix,
            "NEWSFLOW_STORAGE_URL": storage_url,
            "NEWSFLOW_DATA_DIR": str(data_dir),
            "NEWSFLOW_LOG_FORMAT": "json",
            "NEWSFLOW_LOG_LEVEL": "DEBUG",
            "NEWSFLOW_HTTP_PORT": "0",  # no HTTP: the bench must not collide with a stack running beside it
            "NEWSFLOW_BATCH_SIZE": str(settings.batch_size),
            "NEWSFLOW_POLL_MS": str(settings.poll_ms),
        }
    )
    names = ["ingest", "clean"]
    names += [f"enrich-{i}" for i in range(1, enrich_replicas + 1)] if enrich_replicas > 1 else ["enrich"]
    names += ["publish"]
    services = [Service(name, env) for name in names]
    stop_sampling = threading.Event()

    def sample() -> None:
        while not stop_sampling.wait(0.25):
            for service in services:
                service.sample_rss()

    sampler = threading.Thread(target=sample, daemon=True)
    try:
        for service in services:
            service.wait_started(timeout_s=180)
        sampler.start()
        yield services
    finally:
        stop_sampling.set()
        for service in services:
            service.sample_rss()
        for service in services:
            service.stop(settings.shutdown_timeout_s + 5)


def _records(storage_url: str) -> list[Any]:
    from shared.storage import open_storage

    async def read() -> list[Any]:
        storage = open_storage(storage_url)
        try:
            return [record async for record in storage.iter_export()]
        finally:
            await storage.close()

    return asyncio.run(read())


def stage_costs(records: Sequence[Any], services: Sequence[Service]) -> list[StageCost]:
    """Logic per article from the trace stamps; overhead = (batch total - logic) / size from `batch.committed`."""
    logic_sum: dict[str, float] = defaultdict(float)
    logic_count: dict[str, int] = defaultdict(int)
    for record in records:
        for stamp in record.trace:
            logic_sum[stamp.stage] += stamp.duration_ms
            logic_count[stamp.stage] += 1
    batch_total: dict[str, float] = defaultdict(float)
    batch_size: dict[str, int] = defaultdict(int)
    batch_count: dict[str, int] = defaultdict(int)
    for service in services:
        for line in service.batches:
            batch_total[service.stage] += float(line["duration_ms"])
            batch_size[service.stage] += int(line["size"])
            batch_count[service.stage] += 1
    costs = []
    for stage in STAGES:
        articles = logic_count[stage]
        logic = logic_sum[stage] / articles if articles else 0.0
        size = batch_size[stage]
        overhead = (batch_total[stage] - logic_sum[stage]) / size if size else None
        costs.append(
            StageCost(
                stage=stage,
                logic_ms=round(logic, 3),
                overhead_ms=round(overhead, 3) if overhead is not None else None,
                batches=batch_count[stage],
                mean_batch=round(size / batch_count[stage], 1) if batch_count[stage] else None,
            )
        )
    return costs


def handoffs(records: Sequence[Any]) -> dict[str, float]:
    """Median wait between one stage's finish and the next one's start (raw→ingest from the receipt time)."""
    waits: dict[str, list[float]] = defaultdict(list)
    for record in records:
        previous_stage, previous_end = "raw", record.received_at
        for stamp in record.trace:
            hop = f"{previous_stage}→{stamp.stage}"
            waits[hop].append((stamp.started_at - previous_end).total_seconds() * 1000)
            previous_stage, previous_end = stamp.stage, stamp.finished_at
    return {hop: round(statistics.median(values), 2) for hop, values in waits.items()}


def _published_at(client: redis.Redis, streams: StreamNames) -> dict[str, datetime]:
    stored: dict[str, datetime] = {}
    entries = cast(list[tuple[bytes, dict[bytes, bytes]]], client.xrange(streams.published))
    for _, fields in entries:
        event = orjson.loads(fields[b"data"])
        stored[event["id"]] = datetime.fromisoformat(event["stored_at"])
    return stored


def run_paced(
    client: redis.Redis,
    streams: StreamNames,
    storage_url: str,
    articles: Sequence[dict[str, Any]],
    rate: float,
    already: int,
    timeout_s: float,
) -> Latency:
    """Push one article every 1/rate s; latency = stored_at (published event) - received_at (raw XADD time)."""
    interval = 1.0 / rate
    started = time.perf_counter()
    for number, article in enumerate(articles):
        delay = started + number * interval - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        client.xadd(streams.raw, {"data": orjson.dumps(article), "origin": "bench"})
    pushed_in = time.perf_counter() - started
    _wait_for_outputs(client, streams, already + len(articles), timeout_s)
    paced_ids = {str(a["id"]) for a in articles}
    records = [r for r in _records(storage_url) if r.external_id in paced_ids]
    stored = _published_at(client, streams)
    latencies = [(stored[r.id] - r.received_at).total_seconds() * 1000 for r in records if r.id in stored]
    if not latencies:
        raise RuntimeError("no paced article reached storage")
    return Latency(
        target_rate=round(rate, 2),
        achieved_rate=round(len(articles) / pushed_in, 2) if pushed_in > 0 else 0.0,
        articles=len(latencies),
        p50_ms=round(_percentile(latencies, 50), 1),
        p95_ms=round(_percentile(latencies, 95), 1),
        p99_ms=round(_percentile(latencies, 99), 1),
        max_ms=round(max(latencies), 1),
        handoff_p50_ms=handoffs(records),
    )


# --------------------------------------------------------------------------------------------------- the run


@dataclass
class BenchOptions:
    """What to measure and how hard."""

    articles: int = 400
    rounds: int = 1
    replicas: tuple[int, ...] = (1, 2)
    passthrough: bool = True
    inprocess: bool = True
    latency: bool = True
    latency_fraction: float = 0.5
    latency_articles: int | None = None
    timeout_s: float = 900.0
    sources: Path = DEFAULT_SOURCES
    storage_rows: int = 2_048
    postgres_url: str | None = None


def run_bench(settings: Settings, options: BenchOptions, progress: Progress = lambda _: None) -> BenchReport:
    """Every configuration over the same corpus on one private Redis; a failing part is recorded, not fatal."""
    corpora = [
        build_corpus(options.articles, tag="bench" if number == 0 else f"bench{number + 1}", sources=options.sources)
        for number in range(options.rounds)
    ]
    articles = corpora[0]
    report = BenchReport(
        articles=len(articles),
        corpus=corpus_fingerprint(articles),
        sentence_pool=len(sentence_pool(options.sources)),
        batch_size=settings.batch_size,
        poll_ms=settings.poll_ms,
        cpus=os.cpu_count() or 1,
        rounds=options.rounds,
    )
    with tempfile.TemporaryDirectory(prefix="newsflow-bench-") as tmp:
        workdir = Path(tmp)
        with private_redis(workdir / "redis") as url:
            if options.passthrough:
                progress("passthrough: four identity stages over Redis")
                report.runs["passthrough"] = best_of(
                    [
                        run_passthrough(url, corpus, settings, options.timeout_s, f"r{n}")
                        for n, corpus in enumerate(corpora)
                    ]
                )
            if options.inprocess:
                progress("in-process: LocalPipeline in this process")
                report.runs["inprocess"] = run_inprocess(corpora, settings)
            for replicas in options.replicas:
                name = f"pipeline-{replicas}"
                progress(f"{name}: four services, {replicas} enrich replica(s)")
                try:
                    _run_deployed(url, workdir, name, replicas, corpora, settings, options, report, progress)
                except (RuntimeError, TimeoutError) as exc:
                    report.failures[name] = str(exc)[-4000:]
        if options.storage_rows:
            progress("storage: upsert throughput per backend")
            measure_storage(report, workdir, options)
    return report


def measure_storage(report: BenchReport, workdir: Path, options: BenchOptions) -> None:
    """Upsert rows/s (batches of 32 realistic records) on SQLite and, when given, PostgreSQL in a private schema."""
    from tools.bench.storage import measure_upsert_throughput

    report.storage_upserts_per_s["sqlite"] = round(
        asyncio.run(measure_upsert_throughput(f"sqlite:///{workdir / 'upserts.db'}", options.storage_rows)), 1
    )
    if not options.postgres_url:
        return
    import psycopg

    schema = f"nf_bench_{os.getpid()}_{int(time.time())}"
    try:
        with psycopg.connect(options.postgres_url, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
    except psycopg.Error as exc:
        report.failures["storage-postgresql"] = f"{type(exc).__name__}: {exc}"
        return
    separator = "&" if "?" in options.postgres_url else "?"
    try:
        url = f"{options.postgres_url}{separator}options=-csearch_path%3D{schema}"
        rate = asyncio.run(measure_upsert_throughput(url, options.storage_rows))
        report.storage_upserts_per_s["postgresql"] = round(rate, 1)
    finally:
        with psycopg.connect(options.postgres_url, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def _run_deployed(
    url: str,
    workdir: Path,
    name: str,
    replicas: int,
    corpora: Sequence[Sequence[dict[str, Any]]],
    settings: Settings,
    options: BenchOptions,
    report: BenchReport,
    progress: Progress,
) -> None:
    streams = StreamNames(f"bench-{name}")
    storage_url = f"sqlite:///{workdir / (name + '.db')}"
    client = redis.Redis.from_url(url)
    try:
        with deployed_pipeline(url, streams.prefix, storage_url, workdir / name, settings, replicas) as services:
            rounds: list[Throughput] = []
            # The streams keep every round's entries: each round waits for the running total.
            published_before, dead_before = 0, 0
            for articles in corpora:
                meter = CpuMeter([os.getpid(), _redis_pid(client), *(s.process.pid for s in services)])
                started = time.perf_counter()
                push_corpus(client, streams, articles)
                expected = published_before + dead_before + len(articles)
                published, dead = _wait_for_outputs(client, streams, expected, options.timeout_s)
                run = Throughput(
                    name, len(articles), time.perf_counter() - started, published - published_before, dead - dead_before
                )
                rounds.append(meter.stop(run))
                published_before, dead_before = published, dead
            report.runs[name] = best_of(rounds)
            report.stages[name] = stage_costs(_records(storage_url), services)
            last = replicas == max(options.replicas)
            if options.latency and last and report.runs[name].rate > 0:
                count = options.latency_articles or max(10, len(corpora[0]) // 2)
                paced = build_corpus(count, tag="paced", sources=options.sources)
                rate = report.runs[name].rate * options.latency_fraction
                progress(f"{name}: {count} paced pushes at {rate:.1f}/s")
                report.latency = run_paced(
                    client, streams, storage_url, paced, rate, published_before + dead_before, options.timeout_s
                )
        report.peak_rss_mb[name] = {s.name: round(s.peak_rss / 2**20, 1) for s in services}
    finally:
        client.close()


# --------------------------------------------------------------------------------------------------- output


def render_markdown(report: BenchReport) -> str:
    """The report as markdown tables (what `newsflow bench` prints and docs/performance.md holds)."""
    lines = [
        f"Corpus: {report.articles} articles of ~{WORDS_PER_ARTICLE} words (fingerprint `{report.corpus}`, "
        f"{report.sentence_pool} source sentences); batch size {report.batch_size}, poll {report.poll_ms} ms; "
        f"{report.cpus} CPUs; best of {report.rounds} round(s) per run.",
        "",
        "| run | articles/s | seconds | published | dead | busy cores: machine | busy cores: this run "
        "| articles per CPU-s | every round, articles/s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for throughput in report.runs.values():
        lines.append(
            f"| {throughput.name} | {throughput.rate:.1f} | {throughput.seconds:.2f} "
            f"| {throughput.published} | {throughput.dead} | {_cores(throughput.machine_cores)} "
            f"| {_cores(throughput.own_cores)} | {_cores(throughput.per_cpu_second)} "
            f"| {' / '.join(f'{rate:.1f}' for rate in throughput.round_rates)} |"
        )
    ratios = report.ratios()
    if ratios:
        lines += ["", "| ratio | value |", "|---|---:|"]
        lines += [f"| {name} | {value:.3g}× |" for name, value in ratios.items()]
    for run, costs in report.stages.items():
        lines += [
            "",
            f"Per stage, per article ({run}): logic from trace stamps; overhead = (batch total − logic) / size.",
            "",
            "| stage | logic ms | overhead ms | batches | mean batch |",
            "|---|---:|---:|---:|---:|",
        ]
        for cost in costs:
            overhead = f"{cost.overhead_ms:.3f}" if cost.overhead_ms is not None else "–"
            mean = f"{cost.mean_batch:.1f}" if cost.mean_batch is not None else "–"
            lines.append(f"| {cost.stage} | {cost.logic_ms:.3f} | {overhead} | {cost.batches} | {mean} |")
    if report.latency is not None:
        lat = report.latency
        lines += [
            "",
            f"Push→stored latency, {lat.articles} articles paced at {lat.achieved_rate:.1f}/s "
            f"(target {lat.target_rate:.1f}/s):",
            "",
            "| p50 ms | p95 ms | p99 ms | max ms |",
            "|---:|---:|---:|---:|",
            f"| {lat.p50_ms:.1f} | {lat.p95_ms:.1f} | {lat.p99_ms:.1f} | {lat.max_ms:.1f} |",
            "",
            "| hand-off (median) | ms |",
            "|---|---:|",
        ]
        lines += [f"| {hop} | {ms:.1f} |" for hop, ms in lat.handoff_p50_ms.items()]
    if report.peak_rss_mb:
        lines += ["", "| run | service | peak RSS MB |", "|---|---|---:|"]
        for run, services in report.peak_rss_mb.items():
            lines += [f"| {run} | {service} | {mb:.0f} |" for service, mb in services.items()]
    if report.storage_upserts_per_s:
        lines += ["", "| storage backend | upserts/s (batches of 32, ~500-word records) |", "|---|---:|"]
        lines += [f"| {backend} | {rate:,.0f} |" for backend, rate in report.storage_upserts_per_s.items()]
    lines += targets_and_failures(report.targets(), report.failures)
    return "\n".join(lines) + "\n"


def targets_and_failures(targets: dict[str, dict[str, Any]], failures: dict[str, str]) -> list[str]:
    """Markdown lines: the targets table, then each failure's error."""
    lines: list[str] = []
    if targets:
        lines += ["", "| target | measured | limit | met |", "|---|---:|---:|:-:|"]
        for name, target in targets.items():
            lines.append(f"| {name} | {target['value']} | {target['limit']} | {'yes' if target['met'] else 'NO'} |")
    for name, error in failures.items():
        lines += ["", f"**{name} failed:**", "", "```", error, "```"]
    return lines

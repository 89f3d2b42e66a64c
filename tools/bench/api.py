"""`python -m tools bench-api` (`make bench-api`): p50/p95 of the read API's search and facets over a large corpus.

The corpus is tools/bench/corpus.py's synthetic news (bulk-loaded through `upsert_articles`, so the rows and the
search index are publish's own); the API runs as `newsflow serve api` and is called over HTTP, one request at a
time, with a fixed mix of queries: words from the head, middle and tail of the vocabulary, entity names, phrases,
and filters with and without terms.
"""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from newsflow.localstack import free_port
from shared.storage import ArticleFilters, open_storage
from tools.bench.corpus import SyntheticCorpus, bulk_load

ROOT = Path(__file__).resolve().parents[2]
ENDPOINTS = {"/articles": "search", "/articles/facets": "facets"}
TARGETS_MS = {"postgres": 100.0, "sqlite": 250.0}
TOKEN = "bench-" + uuid.uuid4().hex


@dataclass
class Timings:
    """Request latencies of one endpoint on one backend, by query kind."""

    by_kind: dict[str, list[float]] = field(default_factory=dict)

    def add(self, kind: str, ms: float) -> None:
        self.by_kind.setdefault(kind, []).append(ms)

    @property
    def all(self) -> list[float]:
        return [ms for values in self.by_kind.values() for ms in values]


def percentile(values: list[float], share: float) -> float:
    """The `share` quantile (nearest rank) of `values`."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


def query_mix(corpus: SyntheticCorpus, seed: int = 5) -> list[tuple[str, dict[str, str]]]:
    """(kind, query parameters) for the searches and facets the benchmark times."""
    rng = random.Random(seed)
    vocabulary = corpus.vocabulary
    people = [name for name, label in corpus.entity_pool if label == "PERSON"]
    places = [name for name, label in corpus.entity_pool if label == "GPE"]
    mix: list[tuple[str, dict[str, str]]] = []
    mix += [("common word", {"q": vocabulary[rng.randrange(0, 50)]}) for _ in range(6)]
    mix += [("middle word", {"q": vocabulary[rng.randrange(200, 3000)]}) for _ in range(6)]
    mix += [("rare word", {"q": vocabulary[rng.randrange(10_000, len(vocabulary))]}) for _ in range(6)]
    mix += [("entity name", {"q": f'"{rng.choice(people[:300])}"'}) for _ in range(6)]
    mix += [("two words", {"q": f"{vocabulary[rng.randrange(0, 400)]} {vocabulary[rng.randrange(0, 3000)]}"})
            for _ in range(6)]
    mix += [("word + filters", {"q": vocabulary[rng.randrange(0, 1000)], "country": rng.choice(["US", "GB", "FR"]),
                                "published_since": "2026-04-01"}) for _ in range(6)]
    mix += [("filters only", {"entity": rng.choice(places[:40]), "category": "politics"}) for _ in range(6)]
    return mix


@contextmanager
def running_api(storage_url: str, *, timeout: float = 60.0) -> Iterator[str]:
    """`newsflow serve api` on a free port over `storage_url`; yields its base URL."""
    port = free_port()
    env = {**os.environ, "NEWSFLOW_STORAGE_URL": storage_url, "NEWSFLOW_HTTP_PORT": str(port),
           "NEWSFLOW_READ_TOKEN": TOKEN, "NEWSFLOW_OPERATOR_TOKEN": TOKEN + "-operator",
           "NEWSFLOW_LOG_LEVEL": "WARNING", "NEWSFLOW_STATUS_SAMPLE_S": "3600"}
    process = subprocess.Popen([sys.executable, "-m", "newsflow.cli", "serve", "api"], cwd=ROOT, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the API did not start")
            time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)


def measure(base: str, mix: list[tuple[str, dict[str, str]]], rounds: int) -> dict[str, Timings]:
    """Each query of the mix `rounds` times on /articles and /articles/facets (one warm-up pass untimed)."""
    results = {"search": Timings(), "facets": Timings()}
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60) as client:
        for path, name in ENDPOINTS.items():
            for _, params in mix:  # warm-up: page cache, plans
                client.get(path, params=params).raise_for_status()
            for _ in range(rounds):
                for kind, params in mix:
                    started = time.perf_counter()
                    client.get(path, params=params).raise_for_status()
                    results[name].add(kind, (time.perf_counter() - started) * 1000)
    return results


async def stored_count(url: str) -> int:
    storage = open_storage(url)
    try:
        await storage.migrate()
        return await storage.count(ArticleFilters())
    finally:
        await storage.close()


def load(url: str, corpus: SyntheticCorpus, articles: int, progress: Callable[[str], None]) -> float:
    """Fill the storage up to `articles` records (a reused database keeps what it has); seconds spent."""
    have = asyncio.run(stored_count(url))
    if have >= articles:
        progress(f"{have:,} articles already stored")
        return 0.0
    started = time.perf_counter()

    def report(written: int, seconds: float) -> None:
        if written % 10_000 < 500:
            progress(f"loaded {have + written:,} ({written / max(seconds, 1e-9):,.0f} rows/s)")

    asyncio.run(bulk_load(url, corpus.records(have, articles - have), progress=report))
    return time.perf_counter() - started


def analyse(url: str) -> None:
    """VACUUM ANALYZE the loaded tables, as autovacuum would soon after a bulk load: the planner's estimates size
    relevance tiers and facet samples, and the visibility map lets bitmap scans skip heap pages."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as connection:
        for table in ("articles", "article_entities", "article_countries", "entities"):
            connection.execute(f"VACUUM ANALYZE {table}".encode())


def bench_backend(name: str, url: str, corpus: SyntheticCorpus, articles: int, rounds: int,
                  progress: Callable[[str], None]) -> dict[str, Any]:
    """Load, serve and measure one backend."""
    load_s = load(url, corpus, articles, progress)
    if url.startswith("postgresql"):
        analyse(url)
    mix = query_mix(corpus)
    with running_api(url) as base:
        progress(f"{name}: measuring {len(mix)} queries x {rounds} rounds on each endpoint")
        timings = measure(base, mix, rounds)
    report: dict[str, Any] = {"backend": name, "articles": articles, "load_s": round(load_s, 1),
                              "target_p95_ms": TARGETS_MS[name]}
    for endpoint, found in timings.items():
        values = found.all
        report[endpoint] = {
            "requests": len(values),
            "p50_ms": round(statistics.median(values), 1),
            "p95_ms": round(percentile(values, 0.95), 1),
            "max_ms": round(max(values), 1),
            "p95_by_kind_ms": {kind: round(percentile(v, 0.95), 1) for kind, v in found.by_kind.items()},
        }
    return report


def render_markdown(reports: list[dict[str, Any]]) -> str:
    """The results as the README's table."""
    lines = [
        "| backend | articles | endpoint | p50 ms | p95 ms | max ms | target p95 |",
        "|---|---:|---|---:|---:|---:|---:|",
    ]
    for r in reports:
        for path, name in ENDPOINTS.items():
            e = r[name]
            verdict = "ok" if e["p95_ms"] <= r["target_p95_ms"] else "MISSED"
            lines.append(f"| {r['backend']} | {r['articles']:,} | `{path}` | {e['p50_ms']} | {e['p95_ms']} "
                         f"| {e['max_ms']} | ≤ {r['target_p95_ms']:.0f} ({verdict}) |")
    lines.append("")
    for r in reports:
        for path, name in ENDPOINTS.items():
            kinds = ", ".join(f"{kind} {ms}" for kind, ms in r[name]["p95_by_kind_ms"].items())
            lines.append(f"- {r['backend']} `{path}` p95 by query kind (ms): {kinds}")
    return "\n".join(lines) + "\n"

"""Enrich speed and memory: articles/s on one core and peak RSS (`python -m tools.bench.enrich`).

In process, the same run measures a baseline: spaCy's NER alone, as spaCy runs it (the model enrich loads, only
the NER pipe, `nlp.pipe` over the same titles and bodies in batches of the same size), so the logic's cost per
article reads as a ratio that holds across machines and loads; and enrich's own NER pass over those texts
(`Enricher.recognise`), so what the rest of the logic costs shows too. Rounds alternate between the three.

`--service` measures a real `newsflow serve enrich` process instead, as deployed (HTTP side on): the corpus goes
onto the cleaned stream of a bench-owned redis-server, and the report gives the process's peak RSS (the kernel's
high-water mark) and the logic per article from the enriched events' trace stamps. `--corpus bench` is the corpus
`make bench` pushes (its ingest and clean logic run here first), `--corpus categories` the one below.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import orjson
import redis

from services.enrich.enricher import MAX_NER_CHARS, NLP_CHUNK_ARTICLES, UNUSED_PIPES, Enricher, load_spacy
from shared.events import CleanedArticle, CleanSection, IngestSection
from shared.settings import Settings

DEFAULT_SOURCE = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "enrich" / "categories.json"


def synthetic_articles(source: Path, count: int, words: int) -> list[CleanedArticle]:
    """`count` distinct English articles of about `words` words, stitched from the paragraphs in `source`."""
    items = json.loads(source.read_text(encoding="utf-8"))
    paragraphs = [p for item in items for p in item["body"].split("\n\n")]
    articles: list[CleanedArticle] = []
    for n in range(count):
        chosen: list[str] = []
        index = n * 7
        while sum(len(p.split()) for p in chosen) < words:
            chosen.append(paragraphs[index % len(paragraphs)])
            index += 3
        body = "\n\n".join(chosen)
        articles.append(
            CleanedArticle(
                id=f"bench-{n}",
                ingest=IngestSection(
                    origin="bench", received_at=datetime.now(UTC), content_hash=str(n), kind="text", content=body
                ),
                clean=CleanSection(title=items[n % len(items)]["title"], body=body, extractor="bench"),
            )
        )
    return articles


def measure(enricher: Enricher, articles: Sequence[CleanedArticle], batch_size: int) -> tuple[float, float]:
    """(articles per wall-clock second, articles per CPU second of this process) for `enrich_batch`.

    The CPU-time rate is the per-core figure; it stays honest when other processes share the machine.
    """
    wall, cpu = time.perf_counter(), time.process_time()
    for start in range(0, len(articles), batch_size):
        enricher.enrich_batch(articles[start : start + batch_size])
    return len(articles) / (time.perf_counter() - wall), len(articles) / (time.process_time() - cpu)


def ner_texts(articles: Sequence[CleanedArticle]) -> list[str]:
    """The texts enrich gives the NER: each article's title and body (its first MAX_NER_CHARS characters)."""
    return [text for a in articles for text in (a.clean.title, a.clean.body[:MAX_NER_CHARS])]


def spacy_ner_alone(model: str) -> Callable[[Sequence[str]], None]:
    """spaCy's NER as spaCy runs it: a fresh load of the model enrich uses, only the NER pipe, `nlp.pipe`."""
    nlp = load_spacy(model)  # its own copy: enrich's runs the NER on other matrix ops
    without = [name for name in nlp.pipe_names if name not in UNUSED_PIPES and name != "ner"]

    def run(texts: Sequence[str]) -> None:
        with nlp.select_pipes(disable=without):
            for _ in nlp.pipe(texts, batch_size=2 * NLP_CHUNK_ARTICLES):
                pass

    return run


def cpu_ms_per_article(run: Callable[[], object], articles: int) -> float:
    """CPU milliseconds of this process per article for one call of `run`."""
    started = time.process_time()
    run()
    return (time.process_time() - started) * 1000 / articles


def bench_corpus(count: int) -> list[CleanedArticle]:
    """`make bench`'s raw corpus (tools.bench.pipeline) through ingest's and clean's logic, as enrich receives it."""
    from services.clean.article import clean_article
    from services.ingest.validate import ingest_article, validate_raw_article
    from tools.bench.pipeline import build_corpus

    cleaned = []
    for raw in build_corpus(count):
        ingested = ingest_article(validate_raw_article(dict(raw)), origin="bench", received_at=datetime.now(UTC))
        cleaned.append(
            CleanedArticle(
                id=ingested.id, ingest=ingested.ingest, trace=ingested.trace, clean=clean_article(ingested.ingest)
            )
        )
    return cleaned


def _high_water_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def measure_service(articles: Sequence[CleanedArticle], batch_size: int) -> dict[str, object]:
    """Peak RSS and logic ms per article of `newsflow serve enrich` (HTTP on) enriching `articles`."""
    from newsflow.localstack import free_port
    from tools.bench.pipeline import private_redis

    prefix = f"bench-enrich-{os.getpid()}"
    with (
        tempfile.TemporaryDirectory(prefix="newsflow-bench-enrich-") as workdir,
        private_redis(Path(workdir) / "redis") as url,
    ):
        client = redis.Redis.from_url(url)
        cleaned, enriched = f"{prefix}:cleaned", f"{prefix}:enriched"
        env = {
            **os.environ,
            "NEWSFLOW_REDIS_URL": url,
            "NEWSFLOW_KEY_PREFIX": prefix,
            "NEWSFLOW_LOG_FORMAT": "json",
            "NEWSFLOW_LOG_LEVEL": "WARNING",
            "NEWSFLOW_HTTP_PORT": str(free_port()),
            "NEWSFLOW_BATCH_SIZE": str(batch_size),
        }
        process = subprocess.Popen(
            [sys.executable, "-m", "newsflow.cli", "serve", "enrich"],
            cwd=Path(__file__).resolve().parents[2],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 180
            while not any(g["name"] == b"enrich" for g in _groups(client, cleaned)):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("enrich did not start")
                time.sleep(0.2)
            started_mb = _high_water_mb(process.pid)
            wall = time.perf_counter()
            with client.pipeline(transaction=False) as pipe:
                for article in articles:
                    pipe.xadd(cleaned, {"data": orjson.dumps(article.model_dump(mode="json"))})
                pipe.execute()
            while client.xlen(enriched) + client.xlen(f"{prefix}:dlq") < len(articles):
                if process.poll() is not None or time.monotonic() > deadline + 3600:
                    raise RuntimeError("enrich stopped before the corpus was through")
                time.sleep(0.05)
            seconds = time.perf_counter() - wall
            peak_mb = _high_water_mb(process.pid)
            entries: list[tuple[bytes, dict[bytes, bytes]]] = client.xrange(enriched)  # type: ignore[assignment]
            logic = [
                stamp["duration_ms"]
                for _, fields in entries
                for stamp in orjson.loads(fields[b"data"])["trace"]
                if stamp["stage"] == "enrich"
            ]
        finally:
            process.terminate()
            process.wait(timeout=60)
    return {
        "articles": len(articles),
        "enriched": len(logic),
        "articles_per_s": round(len(articles) / seconds, 1),
        "logic_ms_mean": round(statistics.fmean(logic), 1) if logic else None,
        "logic_ms_p50": round(statistics.median(logic), 1) if logic else None,
        "rss_mb_started": round(started_mb),
        "peak_rss_mb": round(peak_mb),
    }


def _groups(client: redis.Redis, stream: str) -> list[dict[str, object]]:
    try:
        return list(client.xinfo_groups(stream))
    except redis.ResponseError:
        return []


def main(argv: Sequence[str] | None = None) -> int:
    """Print a JSON line: articles/s, words per article, peak RSS in MB."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--articles", type=int, default=200)
    parser.add_argument("--words", type=int, default=500)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    parser.add_argument("--corpus", choices=("categories", "bench"), default="categories")
    parser.add_argument("--service", action="store_true", help="measure a `newsflow serve enrich` process")
    parser.add_argument("--rounds", type=int, default=2, help="in process: alternating rounds of each measurement")
    args = parser.parse_args(argv)
    if args.corpus == "bench":
        corpus = bench_corpus(args.articles)
    else:
        corpus = synthetic_articles(args.source, args.articles, args.words)
    if args.service:
        print(json.dumps({"corpus": args.corpus, **measure_service(corpus, args.batch_size)}))
        return 0
    load_started = time.perf_counter()
    enricher = Enricher(Settings())
    load_s = time.perf_counter() - load_started
    articles = corpus
    measure(enricher, articles[:10], args.batch_size)  # warm-up: lazy language models, caches
    wall_rate, cpu_rate = measure(enricher, articles, args.batch_size)
    # The high-water mark of enrich alone, before the baseline's copy of the model is loaded.
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    texts = ner_texts(articles)
    ner_alone = spacy_ner_alone(enricher.settings.spacy_model)
    ner_alone(texts[:20])  # warm-up
    logic_ms = [1000 / cpu_rate]
    alone_ms: list[float] = []
    pass_ms: list[float] = []
    for round_ in range(max(1, args.rounds)):
        alone_ms.append(cpu_ms_per_article(lambda: ner_alone(texts), len(articles)))
        pass_ms.append(
            cpu_ms_per_article(lambda: enricher.recognise(texts, batch_size=2 * NLP_CHUNK_ARTICLES), len(articles))
        )
        if round_:
            logic_ms.append(1000 / measure(enricher, articles, args.batch_size)[1])
    words = sum(len(a.clean.body.split()) for a in articles) / len(articles)
    logic, alone, own_pass = statistics.fmean(logic_ms), statistics.fmean(alone_ms), statistics.fmean(pass_ms)
    report = {
        "corpus": args.corpus,
        "articles_per_s": round(wall_rate, 1),
        "articles_per_cpu_s": round(cpu_rate, 1),
        "logic_cpu_ms": round(logic, 1),
        "spacy_ner_alone_cpu_ms": round(alone, 1),
        "logic_over_ner_alone": round(logic / alone, 2),
        "enrich_nlp_pass_cpu_ms": round(own_pass, 1),
        "rounds_ms": {
            "logic": [round(v, 1) for v in logic_ms],
            "spacy_ner_alone": [round(v, 1) for v in alone_ms],
            "enrich_nlp_pass": [round(v, 1) for v in pass_ms],
        },
        "words_per_article": round(words),
        "peak_rss_mb": round(peak_mb),
        "model_load_s": round(load_s, 2),
        "threads": os.environ.get("OMP_NUM_THREADS", "default"),
    }
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

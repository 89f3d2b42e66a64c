"""Enrich speed and memory: articles/s on one core and peak RSS (`python -m tools.bench.enrich`)."""

from __future__ import annotations

import argparse
import json
import os
import resource
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from services.enrich.enricher import Enricher
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


def main(argv: Sequence[str] | None = None) -> int:
    """Print a JSON line: articles/s, words per article, peak RSS in MB."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--articles", type=int, default=200)
    parser.add_argument("--words", type=int, default=500)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    args = parser.parse_args(argv)
    load_started = time.perf_counter()
    enricher = Enricher(Settings())
    load_s = time.perf_counter() - load_started
    articles = synthetic_articles(args.source, args.articles, args.words)
    measure(enricher, articles[:10], args.batch_size)  # warm-up: lazy language models, caches
    wall_rate, cpu_rate = measure(enricher, articles, args.batch_size)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    words = sum(len(a.clean.body.split()) for a in articles) / len(articles)
    report = {
        "articles_per_s": round(wall_rate, 1),
        "articles_per_cpu_s": round(cpu_rate, 1),
        "words_per_article": round(words),
        "peak_rss_mb": round(peak_mb),
        "model_load_s": round(load_s, 2),
        "threads": os.environ.get("OMP_NUM_THREADS", "default"),
    }
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

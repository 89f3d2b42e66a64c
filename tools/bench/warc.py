"""`python -m tools bench-warc`: WARC read speed (warcio vs FastWARC), push speed, and the pipeline's pace beside them.

A synthetic crawl (request + response per page, gzip per record, ~500-word news pages) is written with warcio,
then read by each library alone, by `newsflow.warc.read_warc` (FastWARC + HTTP decoding + charset + the raw
article), pushed onto a private Redis the way `newsflow push` does, and a sample run through the stages'
logic in this process (`LocalPipeline`, one core), so "records read per second" and "articles processed per
second" come from the same machine in the same run.
"""

from __future__ import annotations

import asyncio
import io
import random
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared.settings import Settings

WORDS = (
    "the minister said on tuesday that the government would announce new measures to support families and "
    "businesses after weeks of talks with unions regional leaders and opposition parties in the capital"
).split()


@dataclass(frozen=True, slots=True)
class Rate:
    """One measurement: what was counted, how many, in how many CPU- or wall-seconds."""

    what: str
    count: int
    seconds: float
    megabytes: float

    @property
    def per_second(self) -> float:
        return self.count / self.seconds if self.seconds else 0.0


def write_crawl(path: Path, pages: int, seed: int = 7) -> None:
    """A WARC of `pages` request/response pairs of ~500-word HTML pages, gzip per record (as crawlers write)."""
    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    rng = random.Random(seed)
    with path.open("wb") as f:
        writer = WARCWriter(f, gzip=True)
        for i in range(pages):
            url = f"https://news.example/{i // 50}/story-{i}.html"
            paragraphs = "".join(f"<p>{' '.join(rng.choices(WORDS, k=60))}.</p>" for _ in range(8))
            html = (f"<!doctype html><html><head><title>Story {i}</title></head><body><nav>Home News Sport</nav>"
                    f"<article><h1>Story {i}</h1>{paragraphs}</article><footer>© News</footer></body></html>")
            request = StatusAndHeaders("GET / HTTP/1.1", [("Host", "news.example")], is_http_request=True)
            writer.write_record(writer.create_warc_record(url, "request", payload=io.BytesIO(b""),
                                                          http_headers=request))
            headers = StatusAndHeaders("200 OK", [("Content-Type", "text/html; charset=utf-8")], protocol="HTTP/1.1")
            writer.write_record(writer.create_warc_record(url, "response", payload=io.BytesIO(html.encode()),
                                                          http_headers=headers))


def read_with_warcio(path: Path) -> Rate:
    """Every record, its HTTP headers and payload, with warcio (pure Python)."""
    from warcio.archiveiterator import ArchiveIterator

    count = size = 0
    started = time.process_time()
    with path.open("rb") as f:
        for record in ArchiveIterator(f):
            if record.http_headers is not None:
                record.http_headers.get_header("Content-Type")
            size += len(record.content_stream().read())
            count += 1
    return Rate("warcio: records read", count, time.process_time() - started, size / 1e6)


def read_with_fastwarc(path: Path) -> Rate:
    """Every record, its HTTP headers and payload, with FastWARC (native)."""
    from fastwarc import ArchiveIterator

    count = size = 0
    started = time.process_time()
    with path.open("rb") as f:
        for record in ArchiveIterator(f, parse_http=True):
            if record.http_headers is not None:
                record.http_headers.get("Content-Type")
            size += len(record.reader.read())
            count += 1
    return Rate("fastwarc: records read", count, time.process_time() - started, size / 1e6)


def read_with_newsflow(path: Path, max_bytes: int) -> Rate:
    """`read_warc`: FastWARC plus HTTP decoding, charset and the raw article for each HTML response."""
    from newsflow.warc import read_warc

    count = size = 0
    started = time.process_time()
    for item in read_warc(path, max_bytes=max_bytes):
        count += 1
        if item.article is not None:
            size += len(item.article["html"])
    return Rate("newsflow read_warc: records read", count, time.process_time() - started, size / 1e6)


def push_to_redis(path: Path, settings: Settings, workdir: Path) -> Rate:
    """`newsflow push FILE.warc.gz` against a private Redis (AOF everysec): records per wall-second."""
    from redis.asyncio import Redis

    from newsflow.warc import push_warc
    from shared.streams import names
    from shared.transport.producer import enqueue_raw
    from tools.bench.pipeline import private_redis

    with private_redis(workdir / "redis") as url:

        async def run() -> tuple[int, float]:
            redis = Redis.from_url(url)
            streams = names(settings)

            async def enqueue(articles: list[dict[str, Any]]) -> int:
                return len(await enqueue_raw(redis, streams, articles, origin="warc:bench"))

            started = time.perf_counter()
            state = await push_warc(path, enqueue, checkpoint=workdir / "checkpoint.json", resume=False,
                                    max_bytes=settings.max_article_bytes)
            seconds = time.perf_counter() - started
            await redis.aclose()
            return state.records, seconds

        records, seconds = asyncio.run(run())
    return Rate("newsflow push (to Redis): records", records, seconds, path.stat().st_size / 1e6)


def process_sample(path: Path, settings: Settings, sample: int) -> Rate:
    """The four stages' logic in this process on the crawl's first `sample` articles: articles per wall-second."""
    from newsflow.inputs import RawInput
    from newsflow.process import LocalPipeline
    from newsflow.warc import read_warc

    items: list[RawInput] = []
    for item in read_warc(path, max_bytes=settings.max_article_bytes):
        if item.article is not None:
            items.append(RawInput(f"{path}@{item.offset}", item.article))
        if len(items) >= sample:
            break
    pipeline = LocalPipeline(settings)
    list(pipeline.run(items[:8], batch_size=8))  # models load and warm up untimed
    started = time.perf_counter()
    done = list(pipeline.run(items, batch_size=settings.batch_size))
    return Rate("pipeline logic, one core: articles processed", len(done), time.perf_counter() - started, 0.0)


def run_warc_bench(settings: Settings, *, pages: int, sample: int, push: bool) -> tuple[list[Rate], float]:
    """Every measurement, in order, on one synthetic crawl of `pages` pages; and the file's size in MB."""
    with tempfile.TemporaryDirectory(prefix="newsflow-bench-warc-") as directory:
        workdir = Path(directory)
        path = workdir / "crawl.warc.gz"
        write_crawl(path, pages)
        file_mb = path.stat().st_size / 1e6
        rates = []
        for _ in range(2):  # alternate, keep the better pass of each (the machine is shared)
            rates.extend([read_with_warcio(path), read_with_fastwarc(path),
                          read_with_newsflow(path, settings.max_article_bytes)])
        best: dict[str, Rate] = {}
        for rate in rates:
            if rate.what not in best or rate.per_second > best[rate.what].per_second:
                best[rate.what] = rate
        results = list(best.values())
        if push:
            results.append(push_to_redis(path, settings, workdir))
        if sample:
            results.append(process_sample(path, settings, sample))
        return results, file_mb


def render(rates: list[Rate], file_mb: float) -> str:
    """A Markdown table of the measurements."""
    lines = [f"WARC bench: {file_mb:.1f} MB gzip file\n", "| measurement | count | per second | MB/s |",
             "|---|---:|---:|---:|"]
    for rate in rates:
        mb = f"{rate.megabytes / rate.seconds:,.0f}" if rate.megabytes and rate.seconds else ""
        lines.append(f"| {rate.what} | {rate.count:,} | {rate.per_second:,.0f} | {mb} |")
    return "\n".join(lines) + "\n"

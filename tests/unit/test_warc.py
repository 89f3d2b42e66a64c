"""Reading WARC files: HTML responses become raw articles, the rest is counted, damage is reported and skipped."""

from __future__ import annotations

import codecs
import gzip
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from newsflow import warc
from newsflow.inputs import InputError, RawInput, read_inputs
from newsflow.warc import CheckpointMismatch, WarcPush, push_warc, read_warc
from tests.warcfiles import WarcBuilder, article_html, damage, record_offsets, stories

MAX = 5_000_000


def sample(path: Path) -> Path:
    builder = WarcBuilder(path)
    builder.response("https://news.example/a", article_html("Alpha"))
    builder.response("https://news.example/logo.png", b"\x89PNG....", headers=[("Content-Type", "image/png")])
    builder.response("https://news.example/gone", article_html("Gone"), status="404 Not Found")
    builder.metadata("https://news.example/a")
    builder.response("https://news.example/b", article_html("Beta"), date="2024-05-02T08:30:00Z")
    return builder.close()


@pytest.mark.parametrize("name", ["crawl.warc.gz", "crawl.warc"])
def test_html_responses_become_raw_articles_and_the_rest_is_counted(tmp_path: Path, name: str) -> None:
    items = list(read_warc(sample(tmp_path / name), max_bytes=MAX))
    articles = [i.article for i in items if i.article is not None]
    assert [a["url"] for a in articles] == ["https://news.example/a", "https://news.example/b"]
    assert articles[0]["fetched_at"] == "2024-05-01T10:00:00+00:00"
    assert articles[1]["fetched_at"] == "2024-05-02T08:30:00+00:00"
    assert "<h1>Alpha</h1>" in articles[0]["html"]
    assert articles[0]["id"].startswith("urn:uuid:")
    assert articles[0]["metadata"]["warc"]["file"] == name
    skipped = sorted(i.skipped for i in items if i.skipped)
    assert skipped == ["http_4xx", "metadata", "not_html", "request", "request", "request", "request", "warcinfo"]
    assert not [i for i in items if i.problem]
    # Each item says where the next one starts: together they tile the file.
    assert [i.next_offset for i in items[:-1]] == [i.offset for i in items[1:]]
    assert items[-1].next_offset == (tmp_path / name).stat().st_size


def test_charset_from_the_header_then_the_meta_then_detection(tmp_path: Path) -> None:
    builder = WarcBuilder(tmp_path / "charsets.warc.gz")
    quoted = "<html><body><p>\u201cQuoted\u201d caf\u00e9</p></body></html>"
    # ISO-8859-1 in a header means Windows-1252, as browsers read it (0x93/0x94 are curly quotes there).
    builder.response("https://a.example/1", quoted.encode("cp1252"),
                     headers=[("Content-Type", "text/html; charset=ISO-8859-1")])
    cyrillic = "<html><head><meta charset=\"windows-1251\"></head><body><p>Новости дня: Москва</p></body></html>"
    builder.response("https://a.example/2", cyrillic.encode("cp1251"), headers=[("Content-Type", "text/html")])
    russian = "<html><body>" + "<p>Правительство объявило о новых мерах поддержки экономики и граждан.</p>" * 20
    builder.response("https://a.example/3", (russian + "</body></html>").encode("cp1251"),
                     headers=[("Content-Type", "text/html")])
    builder.response("https://a.example/4", codecs.BOM_UTF8 + "<html><body>Zoë</body></html>".encode(),
                     headers=[("Content-Type", "text/html")])
    items = [i.article for i in read_warc(builder.close(), max_bytes=MAX) if i.article]
    assert "\u201cQuoted\u201d café" in items[0]["html"]
    assert items[0]["metadata"]["charset"] == {"encoding": "cp1252", "from": "http"}
    assert "Новости дня" in items[1]["html"] and items[1]["metadata"]["charset"]["from"] == "meta"
    assert "Правительство" in items[2]["html"] and items[2]["metadata"]["charset"]["from"] == "detected"
    assert "Zoë" in items[3]["html"] and items[3]["metadata"]["charset"]["from"] == "bom"


def test_chunked_and_gzip_encoded_payloads_are_stored_as_received_and_decoded(tmp_path: Path) -> None:
    page = article_html("Encoded").encode()
    zipped = gzip.compress(page)
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (zipped[:100], zipped[100:])) + b"0\r\n\r\n"
    builder = WarcBuilder(tmp_path / "enc.warc.gz")
    builder.response("https://a.example/enc", chunked, headers=[
        ("Content-Type", "text/html; charset=utf-8"), ("Transfer-Encoding", "chunked"), ("Content-Encoding", "gzip"),
    ])
    (item,) = [i for i in read_warc(builder.close(), max_bytes=MAX) if i.article or i.problem]
    assert item.article is not None and "<h1>Encoded</h1>" in item.article["html"]


def test_a_corrupt_record_is_reported_and_the_rest_of_the_file_is_read(tmp_path: Path) -> None:
    path = stories(tmp_path / "damaged.warc.gz", 5)
    damage(path, 2, 40, b"\x00" * 40)  # inside the second response's gzip member
    items = list(read_warc(path, max_bytes=MAX))
    urls = [i.article["url"] for i in items if i.article]
    assert urls == ["https://a.example/0", "https://a.example/2", "https://a.example/3", "https://a.example/4"]
    (problem,) = [i for i in items if i.problem]
    assert "corrupt" in (problem.problem or "")


def test_a_garbled_header_in_an_uncompressed_file_is_skipped(tmp_path: Path) -> None:
    path = stories(tmp_path / "garbled.warc", 3)
    damage(path, 2, 0, b"GARBAGE!")
    items = list(read_warc(path, max_bytes=MAX))
    assert [i.article["url"] for i in items if i.article] == ["https://a.example/0", "https://a.example/2"]
    assert len([i for i in items if i.problem]) == 1


@pytest.mark.parametrize("name", ["cut.warc.gz", "cut.warc"])
def test_a_file_cut_inside_a_record_reports_that_record(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    builder = WarcBuilder(path)
    for i in range(3):
        builder.response(f"https://a.example/{i}", article_html(f"Story {i}", paragraphs=40), with_request=False)
    builder.close()
    offsets = record_offsets(path)
    size = path.stat().st_size
    path.write_bytes(path.read_bytes()[: offsets[3] + (size - offsets[3]) // 2])
    items = list(read_warc(path, max_bytes=MAX))
    assert [i.article["url"] for i in items if i.article] == ["https://a.example/0", "https://a.example/1"]
    (problem,) = [i for i in items if i.problem]
    assert problem.offset == offsets[3] and "cut short" in (problem.problem or "")
    assert problem.next_offset == path.stat().st_size


def test_crawler_truncated_and_oversized_records_are_skipped(tmp_path: Path) -> None:
    builder = WarcBuilder(tmp_path / "limits.warc.gz")
    builder.response("https://a.example/t", article_html("T"), warc_headers={"WARC-Truncated": "length"})
    builder.response("https://a.example/big", article_html("Big", paragraphs=400))
    builder.response("https://a.example/ok", article_html("Ok"))
    items = list(read_warc(builder.close(), max_bytes=20_000))
    assert [i.article["url"] for i in items if i.article] == ["https://a.example/ok"]
    assert {"truncated", "too_large"} <= {i.skipped for i in items}


def test_reading_streams_in_flat_memory(tmp_path: Path) -> None:
    builder = WarcBuilder(tmp_path / "big.warc.gz")
    for i in range(400):
        builder.response(f"https://a.example/{i}", article_html(f"Story {i}", paragraphs=300), with_request=False)
    path = builder.close()
    tracemalloc.start()
    try:
        count = sum(1 for item in read_warc(path, max_bytes=MAX) if item.article)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 400
    # ~11 MB of HTML went through; at any moment only about one page (~30 kB) is held.
    assert peak < 2_000_000


def test_push_and_process_read_warc_files_beside_the_other_inputs(tmp_path: Path) -> None:
    sample(tmp_path / "crawl.warc.gz")
    (tmp_path / "note.txt").write_text("plain text")
    results = list(read_inputs([tmp_path]))
    assert [type(r) for r in results] == [RawInput, RawInput, RawInput]
    assert results[0].where.startswith(str(tmp_path / "crawl.warc.gz") + "@")
    assert not [r for r in results if isinstance(r, InputError)]


class FlakyRedis:
    """An enqueue that takes `fail_after` chunks, then fails like a lost connection."""

    def __init__(self, fail_after: int | None = None) -> None:
        self.fail_after = fail_after
        self.queued: list[str] = []
        self.calls = 0

    async def __call__(self, articles: list[dict[str, Any]]) -> int:
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            raise ConnectionError("redis went away")
        self.queued.extend(a["url"] for a in articles)
        return len(articles)


async def test_resume_goes_on_after_the_last_acknowledged_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(warc, "CHUNK_ARTICLES", 3)
    builder = WarcBuilder(tmp_path / "many.warc.gz")
    for i in range(10):
        builder.response(f"https://a.example/{i}", article_html(f"Story {i}"))
    path = builder.close()
    checkpoint = tmp_path / "cp.json"
    first = FlakyRedis(fail_after=2)
    with pytest.raises(ConnectionError):
        await push_warc(path, first, checkpoint=checkpoint, resume=False, max_bytes=MAX)
    saved = WarcPush.load(checkpoint)
    assert first.queued == [f"https://a.example/{i}" for i in range(6)]
    assert saved.articles == 6 and not saved.complete
    second = FlakyRedis()
    state = await push_warc(path, second, checkpoint=checkpoint, resume=True, max_bytes=MAX)
    assert second.queued == [f"https://a.example/{i}" for i in range(6, 10)]
    assert state.complete and state.articles == 10 and state.started_offset == saved.offset
    again = FlakyRedis()
    state = await push_warc(path, again, checkpoint=checkpoint, resume=True, max_bytes=MAX)
    assert again.queued == [] and state.complete
    # Without --resume the file is pushed from the start again.
    fresh = FlakyRedis()
    await push_warc(path, fresh, checkpoint=checkpoint, resume=False, max_bytes=MAX)
    assert len(fresh.queued) == 10


async def test_a_checkpoint_of_another_file_is_refused(tmp_path: Path) -> None:
    one = sample(tmp_path / "one.warc.gz")
    other = WarcBuilder(tmp_path / "other.warc.gz")
    other.response("https://b.example/x", article_html("X"))
    other.close()
    checkpoint = tmp_path / "cp.json"
    await push_warc(one, FlakyRedis(), checkpoint=checkpoint, resume=False, max_bytes=MAX)
    with pytest.raises(CheckpointMismatch):
        await push_warc(tmp_path / "other.warc.gz", FlakyRedis(), checkpoint=checkpoint, resume=True, max_bytes=MAX)


def test_the_warc_bench_reads_every_record_with_each_reader() -> None:
    from shared.settings import Settings
    from tools.bench.warc import render, run_warc_bench

    rates, file_mb = run_warc_bench(Settings(_env_file=None), pages=20, sample=0, push=False)  # type: ignore[call-arg]
    assert {rate.what: rate.count for rate in rates} == {
        "warcio: records read": 40, "fastwarc: records read": 40, "newsflow read_warc: records read": 40,
    }
    assert "fastwarc" in render(rates, file_mb) and file_mb > 0

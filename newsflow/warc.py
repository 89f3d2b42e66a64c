"""`newsflow push FILE.warc[.gz]`: a WARC file's HTML responses as raw articles, streamed, resumable.

Every `response` record with an HTTP 2xx status and an HTML body becomes a raw article: url from
`WARC-Target-URI`, `fetched_at` from `WARC-Date`, the body decoded by `services.fetch.pages` (HTTP charset, then
the page's `<meta>`, then detection). Other records are counted by why they were skipped; a corrupt or cut-off
record is reported and the reader resynchronises on the next record boundary, so one bad record never stops the
file. The file is read with FastWARC, one record at a time (memory stays flat however large the file), and
pushed in chunks.

Resuming: a record is *acknowledged* once Redis has replied to the XADD of the chunk holding its article (for a
skipped record: once every record before it is acknowledged). After each chunk the checkpoint file records the
byte offset just past the last acknowledged record; `--resume` seeks there. A crash between a chunk's XADD and
its checkpoint re-pushes at most that chunk on resume, which the pipeline absorbs (the article id comes from
the URL, and publish upserts).
"""

from __future__ import annotations

import hashlib
import os
import time
import zlib
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from services.fetch.pages import BodyError, decode_html, http_body, looks_like_html

WARC_SUFFIXES = (".warc", ".warc.gz")
GZIP_MAGIC = b"\x1f\x8b\x08"
RECORD_MAGIC = b"WARC/1."
SCAN_CHUNK = 1 << 20
IDENTITY_BYTES = 64 * 1024
# A chunk of articles is XADDed (and then checkpointed) when it holds this many articles or bytes.
CHUNK_ARTICLES = 200
CHUNK_BYTES = 8_000_000
# Problems listed one by one; past this only counted (a damaged multi-GB file must not fill the memory).
PROBLEMS_KEPT = 20


def is_warc(path: Path | str) -> bool:
    """True for `.warc` and `.warc.gz` files."""
    return str(path).lower().endswith(WARC_SUFFIXES)


@dataclass(frozen=True, slots=True)
class WarcItem:
    """One record (or damaged stretch) of a WARC file: an article, a reason it was skipped, or a problem.

    `offset` is where it starts; `next_offset` where reading goes on after it (the checkpoint position).
    """

    offset: int
    next_offset: int
    article: dict[str, Any] | None = None
    skipped: str | None = None
    problem: str | None = None
    is_record: bool = True


@dataclass(frozen=True, slots=True)
class _Outcome:
    article: dict[str, Any] | None = None
    skipped: str | None = None
    problem: str | None = None
    # False when reading the record broke the stream (a corrupt gzip member): resynchronise after it.
    stream_intact: bool = True
    # False for a damaged stretch between records (no record could be read there).
    is_record: bool = True


def _strip_brackets(value: str | None) -> str | None:
    # WARC 1.0 writers (wget among them) put the URI in angle brackets.
    return value.strip().removeprefix("<").removesuffix(">") if value else value


def record_outcome(record: Any, *, name: str, max_bytes: int) -> _Outcome:
    """Classify one FastWARC record and, for an HTML response, read it into a raw article."""
    kind = str(record.record_type)
    if kind != "response":
        return _Outcome(skipped=kind)
    http = record.http_headers if record.is_http else None
    if http is None or http.status_code is None:
        if record.is_http or record.headers.get("Content-Length") is None:
            return _Outcome(problem="record cut short or unreadable: no complete WARC and HTTP headers")
        return _Outcome(skipped="not_http")  # a DNS lookup, say, which crawlers archive as a response too
    status = int(http.status_code)
    if not 200 <= status < 300:
        return _Outcome(skipped=f"http_{status // 100}xx")
    headers = record.headers
    if headers.get("WARC-Truncated"):
        # The crawler cut the payload (a length or time limit): what is there is not the whole page.
        return _Outcome(skipped="truncated")
    if record.content_length > max_bytes:
        return _Outcome(skipped="too_large")
    try:
        payload = record.reader.read()
    except OSError as exc:
        return _Outcome(problem=f"corrupt record: {exc}", stream_intact=False)
    if len(payload) < record.content_length:
        return _Outcome(problem=f"record cut short: {len(payload):,} of {record.content_length:,} payload bytes")
    content_type = http.get("Content-Type")
    try:
        body = http_body(
            payload,
            transfer_encoding=http.get("Transfer-Encoding"),
            content_encoding=http.get("Content-Encoding"),
            limit=max_bytes,
        )
    except BodyError as exc:
        return _Outcome(problem=f"unreadable HTTP body: {exc}")
    if not looks_like_html(content_type, body):
        return _Outcome(skipped="not_html")
    page = decode_html(body, content_type)
    record_id = _strip_brackets(headers.get("WARC-Record-ID"))
    article: dict[str, Any] = {
        "url": _strip_brackets(headers.get("WARC-Target-URI")),
        "html": page.html,
        "fetched_at": record.record_date.isoformat() if headers.get("WARC-Date") else None,
        "metadata": {
            "warc": {"file": name, "offset": record.stream_pos, "record_id": record_id, "status": status},
            "charset": {"encoding": page.encoding, "from": page.charset_from},
        },
    }
    if record_id:
        article["id"] = record_id
    return _Outcome(article=article)


def _is_record_start(f: BinaryIO, position: int, gzipped: bool) -> bool:
    f.seek(position)
    head = f.read(4096)
    if not gzipped:
        return head.startswith(RECORD_MAGIC)
    try:
        return zlib.decompressobj(31).decompress(head, 16).startswith(RECORD_MAGIC)
    except zlib.error:
        return False


def find_record_start(f: BinaryIO, start: int, gzipped: bool) -> int | None:
    """The first record boundary at or after `start` (a gzip member that opens with a WARC header), or None."""
    magic = GZIP_MAGIC if gzipped else RECORD_MAGIC
    position = start
    while True:
        f.seek(position)
        chunk = f.read(SCAN_CHUNK)
        if not chunk:
            return None
        index = chunk.find(magic)
        while index >= 0:
            candidate = position + index
            if _is_record_start(f, candidate, gzipped):
                return candidate
            index = chunk.find(magic, index + 1)
        if len(chunk) < SCAN_CHUNK:
            return None
        position += len(chunk) - len(magic) + 1


def _records_from(path: Path, start: int, *, max_bytes: int) -> Iterator[tuple[int, _Outcome, int | None]]:
    """(offset, outcome, explicit next offset or None) for every record from `start`, resynchronising on damage."""
    from fastwarc import ArchiveIterator  # deferred: `newsflow --help` should not load the native module

    size = path.stat().st_size
    with path.open("rb") as f:
        gzipped = f.read(2) == GZIP_MAGIC[:2]
        position = find_record_start(f, start, gzipped)
        resynced = False  # this pass began at a boundary found after damage
        while position is not None:
            f.seek(position)
            records = iter(ArchiveIterator(f, parse_http=True, auto_decode="none"))
            last, began, damage = position, False, None
            while True:
                try:
                    record = next(records)
                except StopIteration:
                    return
                except (OSError, ValueError) as exc:  # FastWARC's words for a corrupt member or header
                    damage = f"{type(exc).__name__}: {exc}"
                    break
                last, began = record.stream_pos, True
                outcome = record_outcome(record, name=path.name, max_bytes=max_bytes)
                if outcome.stream_intact:
                    yield last, outcome, None
                    continue
                # Reading the payload broke the stream: this record is the damage; go on at the next boundary.
                position = find_record_start(f, last + 1, gzipped)
                yield last, outcome, size if position is None else position
                break
            if damage is None:
                resynced = False
                continue
            # A restart that fails before its first record hit the damage already reported: one problem, not two.
            same_damage = resynced and not began
            position = find_record_start(f, last + 1, gzipped)
            if not same_damage:
                yield (
                    last + 1,
                    _Outcome(problem=f"corrupt data after byte {last:,}: {damage}", is_record=False),
                    size if position is None else position,
                )
            resynced = True


def read_warc(path: Path, start: int = 0, *, max_bytes: int) -> Iterator[WarcItem]:
    """Every record from byte `start` on (the first boundary at or after it), each with the offset after it."""
    size = path.stat().st_size
    held: tuple[int, _Outcome, int | None] | None = None
    for offset, outcome, explicit_next in _records_from(path, start, max_bytes=max_bytes):
        if held is not None:
            yield _item(held, offset)
        held = (offset, outcome, explicit_next)
    if held is not None:
        yield _item(held, size)


def _item(held: tuple[int, _Outcome, int | None], following: int) -> WarcItem:
    offset, outcome, explicit_next = held
    return WarcItem(
        offset=offset,
        next_offset=explicit_next if explicit_next is not None else following,
        article=outcome.article,
        skipped=outcome.skipped,
        problem=outcome.problem,
        is_record=outcome.is_record,
    )


# -- pushing with a checkpoint --------------------------------------------------------------------------------


class CheckpointMismatch(ValueError):
    """The checkpoint was written for another file (or a file that has since shrunk)."""


def file_identity(path: Path) -> str:
    """SHA-256 of the file's first 64 KiB: the same file after a copy or a rename, a different one otherwise."""
    with path.open("rb") as f:
        return hashlib.sha256(f.read(IDENTITY_BYTES)).hexdigest()


def default_checkpoint(path: Path, data_dir: Path) -> Path:
    """`DATA_DIR/checkpoints/NAME.<hash of the absolute path>.json`: beside the data, not beside the archive."""
    digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]
    return data_dir / "checkpoints" / f"{path.name}.{digest}.json"


@dataclass
class WarcPush:
    """What one push of a WARC file did; also the checkpoint's content."""

    file: str
    identity: str
    offset: int = 0
    size: int = 0
    records: int = 0
    articles: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    problem_count: int = 0
    problems: list[tuple[int, str]] = field(default_factory=list)
    complete: bool = False
    # This run: where it started, the totals before it, and how long it took.
    started_offset: int = 0
    records_before: int = 0
    articles_before: int = 0
    seconds: float = 0.0

    def save(self, path: Path) -> None:
        """Write atomically (temp file + rename), so a crash never leaves half a checkpoint."""
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(path.suffix + ".tmp")
        temporary.write_bytes(orjson.dumps(asdict(self), option=orjson.OPT_INDENT_2))
        os.replace(temporary, path)

    @classmethod
    def load(cls, path: Path) -> WarcPush:
        """A checkpoint written by `save`."""
        data = orjson.loads(path.read_bytes())
        data["problems"] = [tuple(p) for p in data.get("problems", [])]
        return cls(**data)


async def push_warc(
    path: Path,
    enqueue: Callable[[list[dict[str, Any]]], Awaitable[int]],
    *,
    checkpoint: Path,
    resume: bool,
    max_bytes: int,
    on_progress: Callable[[int, WarcPush], None] | None = None,
) -> WarcPush:
    """Push the file's articles through `enqueue` (which returns once Redis has them), checkpointing as it goes."""
    size = path.stat().st_size
    identity = file_identity(path)
    state = WarcPush(file=str(path.resolve()), identity=identity, size=size)
    if resume and checkpoint.exists():
        saved = WarcPush.load(checkpoint)
        if saved.identity != identity or saved.offset > size:
            raise CheckpointMismatch(
                f"checkpoint {checkpoint} was written for another file (its first 64 KiB or its size differ); "
                "remove it, or push without --resume to start over"
            )
        state = saved
        state.size, state.file, state.seconds = size, str(path.resolve()), 0.0
        state.started_offset, state.records_before, state.articles_before = state.offset, state.records, state.articles
        if state.complete and state.offset >= size:
            return state
        state.complete = False
    state.started_offset = state.offset
    started = time.perf_counter()
    skipped = Counter(state.skipped)
    chunk: list[dict[str, Any]] = []
    chunk_bytes = 0
    pending_offset = state.offset

    async def flush() -> None:
        nonlocal chunk, chunk_bytes
        if chunk:
            await enqueue(chunk)
            state.articles += len(chunk)
        chunk, chunk_bytes = [], 0
        state.offset = pending_offset
        state.skipped = dict(skipped)
        state.seconds = time.perf_counter() - started
        state.save(checkpoint)

    unflushed = 0
    for item in read_warc(path, state.offset, max_bytes=max_bytes):
        state.records += item.is_record
        if item.article is not None:
            chunk.append(item.article)
            chunk_bytes += len(item.article["html"])
        elif item.skipped is not None:
            skipped[item.skipped] += 1
        if item.problem is not None:
            state.problem_count += 1
            if len(state.problems) < PROBLEMS_KEPT:
                state.problems.append((item.offset, item.problem))
        pending_offset = item.next_offset
        unflushed += 1
        if len(chunk) >= CHUNK_ARTICLES or chunk_bytes >= CHUNK_BYTES or unflushed >= 10 * CHUNK_ARTICLES:
            await flush()
            unflushed = 0
        if on_progress is not None:
            on_progress(item.next_offset, state)
    pending_offset = max(pending_offset, size)
    state.complete = True
    await flush()
    return state

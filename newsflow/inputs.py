"""Reading raw articles from files, directories and stdin, as `newsflow push` and `newsflow process` take them.

A `.txt` file is `text`, `.html`/`.htm` is `html`, the file name stem is the client id; `.json` holds one raw
article object or a list of them; `.jsonl` one object per line; a `.warc`/`.warc.gz` file its HTML responses
(`newsflow.warc`).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from newsflow.warc import is_warc, read_warc

TEXT_SUFFIXES = {".txt": "text", ".text": "text", ".html": "html", ".htm": "html"}
JSON_SUFFIXES = {".json", ".jsonl", ".ndjson"}


@dataclass(frozen=True, slots=True)
class RawInput:
    """One raw article as read, and where it came from (`path` or `path:line`)."""

    where: str
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class InputError:
    """Something that could not be read, and why."""

    where: str
    error: str


def decode_text(data: bytes) -> str:
    """UTF-8 (with or without BOM), else Windows-1252: scraped text is never refused for its encoding here."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def expand_paths(paths: Iterable[str]) -> Iterator[Path | str]:
    """Files as given, directories recursively (sorted, supported suffixes only), `-` kept for stdin."""
    for name in paths:
        if name == "-":
            yield name
            continue
        path = Path(name)
        if path.is_dir():
            yield from sorted(
                p
                for p in path.rglob("*")
                if p.is_file()
                and (p.suffix.lower() in TEXT_SUFFIXES or p.suffix.lower() in JSON_SUFFIXES or is_warc(p))
            )
        else:
            yield path


def _json_records(where: str, text: str, *, lines: bool) -> Iterator[RawInput | InputError]:
    if lines:
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                item = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                yield InputError(f"{where}:{number}", f"invalid JSON: {exc}")
                continue
            if isinstance(item, dict):
                yield RawInput(f"{where}:{number}", item)
            else:
                yield InputError(f"{where}:{number}", f"expected a JSON object, got {type(item).__name__}")
        return
    try:
        doc = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        yield InputError(where, f"invalid JSON: {exc}")
        return
    items = doc if isinstance(doc, list) else [doc]
    for index, item in enumerate(items):
        label = where if len(items) == 1 else f"{where}[{index}]"
        if isinstance(item, dict):
            yield RawInput(label, item)
        else:
            yield InputError(label, f"expected a JSON object, got {type(item).__name__}")


def read_stdin() -> Iterator[RawInput | InputError]:
    """stdin: JSON lines / a JSON document when it starts with `{` or `[`, otherwise one plain-text article."""
    text = decode_text(sys.stdin.buffer.read())
    stripped = text.lstrip()
    if stripped.startswith(("{", "[")):
        lines = stripped.startswith("{") and "\n" in stripped.strip()
        yield from _json_records("<stdin>", text, lines=lines)
    elif stripped:
        yield RawInput("<stdin>", {"text": text})
    else:
        yield InputError("<stdin>", "stdin is empty")


def read_warc_inputs(path: Path, *, max_bytes: int) -> Iterator[RawInput | InputError]:
    """A WARC file's articles (`path@offset`) and its damaged records; skipped records yield nothing."""
    try:
        for item in read_warc(path, max_bytes=max_bytes):
            if item.article is not None:
                yield RawInput(f"{path}@{item.offset}", item.article)
            elif item.problem is not None:
                yield InputError(f"{path}@{item.offset}", item.problem)
    except OSError as exc:
        yield InputError(str(path), exc.strerror or str(exc))


def read_inputs(paths: Iterable[str | Path], *, max_bytes: int = 5_000_000) -> Iterator[RawInput | InputError]:
    """Every raw article under `paths`, in order, with an `InputError` for each thing that could not be read."""
    for path in expand_paths(str(p) for p in paths):
        if isinstance(path, str):
            yield from read_stdin()
            continue
        if is_warc(path):
            yield from read_warc_inputs(path, max_bytes=max_bytes)
            continue
        suffix = path.suffix.lower()
        if suffix not in TEXT_SUFFIXES and suffix not in JSON_SUFFIXES:
            yield InputError(
                str(path), f"unsupported file type {suffix or '(none)'!r}: use .txt, .html, .json, .jsonl or .warc[.gz]"
            )
            continue
        try:
            data = path.read_bytes()
        except OSError as exc:
            yield InputError(str(path), exc.strerror or str(exc))
            continue
        if suffix in TEXT_SUFFIXES:
            yield RawInput(str(path), {"id": path.stem, TEXT_SUFFIXES[suffix]: decode_text(data)})
        else:
            yield from _json_records(str(path), decode_text(data), lines=suffix != ".json")

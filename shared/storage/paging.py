"""Sorting, keyset cursors and field projection for paged article queries (pure; both backends use it)."""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from shared.events import ArticleRecord

SortKey = Literal["published_at", "received_at", "relevance"]
SORTS = ("relevance", "-published_at", "published_at", "-received_at", "received_at")
RECORD_FIELDS = tuple(ArticleRecord.model_fields)


@dataclass(frozen=True, slots=True)
class Sort:
    """An order: the key, and whether larger values come first; ties are broken by storage sequence alike."""

    key: SortKey
    descending: bool

    @classmethod
    def parse(cls, text: str) -> Sort:
        """`-published_at` (newest first), `published_at`, `-received_at`, `received_at`, `relevance`."""
        if text not in SORTS:
            raise ValueError(f"sort is one of {', '.join(SORTS)}")
        if text == "relevance":
            return cls("relevance", True)
        return cls(text.lstrip("-"), text.startswith("-"))  # type: ignore[arg-type]

    def __str__(self) -> str:
        return "relevance" if self.key == "relevance" else ("-" if self.descending else "") + self.key


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where the next page starts: the last item's sort key and storage sequence, and the query it belongs to.

    `watermark` is the highest storage sequence number when the first page was read: later pages leave out
    articles stored after it, so a pagination is one stable listing however many articles arrive meanwhile.
    """

    query: str
    key: Any
    seq: int
    watermark: int

    def encode(self) -> str:
        """URL-safe opaque text."""
        data = orjson.dumps({"q": self.query, "k": self.key, "s": self.seq, "w": self.watermark})
        return base64.urlsafe_b64encode(data).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str, query: str) -> Cursor:
        """The cursor in `text`; ValueError when it is malformed or was made for another query."""
        try:
            data = orjson.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
            cursor = cls(query=str(data["q"]), key=data["k"], seq=int(data["s"]), watermark=int(data["w"]))
        except (binascii.Error, orjson.JSONDecodeError, KeyError, TypeError, ValueError) as error:
            raise ValueError("cursor is not one this API returned") from error
        if cursor.query != query:
            raise ValueError("cursor belongs to another query (its filters or sort differ)")
        return cursor


def query_fingerprint(*parts: object) -> str:
    """A short hash of what a query asks (filters and sort), stored in its cursors."""
    return hashlib.sha256(orjson.dumps([str(part) for part in parts])).hexdigest()[:16]


def check_fields(fields: Iterable[str]) -> tuple[str, ...]:
    """The requested fields in order, without repeats; ValueError naming an unknown one."""
    chosen = tuple(dict.fromkeys(name.strip() for name in fields if name.strip()))
    unknown = [name for name in chosen if name not in RECORD_FIELDS]
    if unknown:
        raise ValueError(f"unknown field(s) {', '.join(unknown)}; fields are {', '.join(RECORD_FIELDS)}")
    return chosen


def project(
    record_json: str | bytes, fields: Sequence[str] | None, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The stored record (JSON) with only `fields` (every record field when None), then `extra` (score, ...)."""
    record: dict[str, Any] = orjson.loads(record_json)
    projected = record if fields is None else {name: record.get(name) for name in fields}
    if extra:
        projected.update(extra)
    return projected


# Relevance is ranked within tiers of about this many full-text matches, newest stored first: ranking every match
# of a word found in most of the corpus would cost a scoring pass over all of them for each page. A query matching
# fewer articles is one tier, ranked exactly.
RELEVANCE_TIER = 8_000


@dataclass(frozen=True, slots=True)
class Tiers:
    """Storage-sequence bands below the watermark, each holding about `RELEVANCE_TIER` matches."""

    watermark: int
    width: int

    @classmethod
    def for_matches(cls, watermark: int, matches: int, tier: int | None = None) -> Tiers:
        """One band for few matches; else bands narrow enough to hold about `tier` (default RELEVANCE_TIER) each."""
        tier = tier or RELEVANCE_TIER
        if matches <= tier:
            return cls(watermark, watermark + 1)
        return cls(watermark, max(1, -(-watermark * tier // matches)))

    def bounds(self, index: int) -> tuple[int, int] | None:
        """(low exclusive, high inclusive) sequence bounds of band `index`; None past the oldest."""
        high = self.watermark - index * self.width
        if high <= 0:
            return None
        return max(0, high - self.width), high


@dataclass(frozen=True, slots=True)
class SampleStep:
    """Facets over large match sets count every `every`-th stored article (by sequence) and scale up."""

    every: int

    @classmethod
    def for_matches(cls, matches: int, sample: int) -> SampleStep:
        """Every article up to twice `sample` matches; beyond, a step that keeps about `sample`."""
        return cls(1 if matches <= 2 * sample else -(-matches // sample))

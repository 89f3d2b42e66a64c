"""The storage interface both backends implement, and the record -> rows mapping they share."""

from __future__ import annotations

import bisect
import hashlib
import re
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

import orjson

from shared.errors import Rejected
from shared.events import ArticleRecord, SkippedRevision
from shared.storage.paging import Cursor, Sort, query_fingerprint
from shared.storage.sources import Source

# Snippet highlight markers: readable in JSON output, easy for the CLI to turn into bold text.
HIGHLIGHT_START = "«"
HIGHLIGHT_END = "»"

# Fields that differ between two pushes of the same article without the article changing: the receipt, download
# and version times and the lineage stamps are per-run facts, and storage's own notes (what it cut, what it skipped,
# which late revisions it refused) describe the storing, not the content.
_VOLATILE_FIELDS = frozenset(
    {"trace", "received_at", "fetched_at", "updated_at", "skipped", "dropped", "skipped_revisions"}
)
# What no database column may hold: NUL (PostgreSQL text and jsonb refuse it; SQLite's C strings end at it) and
# unpaired UTF-16 surrogates (not encodable as UTF-8 at all).
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
_UNSTORABLE_KINDS = {"\x00": "nul_characters"}
# A stored record remembers this many of the late revisions it refused, the latest last.
MAX_SKIPPED_REVISIONS = 20


@dataclass(frozen=True, slots=True)
class UpsertResult:
    """What happened to one record in an upsert batch."""

    id: str
    revision: int
    changed: bool
    stored_at: datetime
    # True when this record was an older revision than the one stored (or another in its batch): not written.
    stale: bool = False


@dataclass(frozen=True, slots=True)
class ArticleSummary:
    """One row of `list_articles`: the columns a listing shows, without body or JSON."""

    id: str
    title: str
    url: str | None
    source_domain: str | None
    language: str | None
    category: str | None
    published_at: datetime | None
    word_count: int | None
    revision: int
    updated_at: datetime
    content_type: str = "article"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready mapping (datetimes as ISO 8601)."""
        return {
            "id": self.id,
            "title": self.title,
            "url": self.url,
            "source_domain": self.source_domain,
            "language": self.language,
            "category": self.category,
            "published_at": self.published_at.isoformat() if self.published_at else None,
            "word_count": self.word_count,
            "revision": self.revision,
            "updated_at": self.updated_at.isoformat(),
            "content_type": self.content_type,
        }


@dataclass(frozen=True, slots=True)
class SearchHit:
    """A full-text match: higher `score` is more relevant; `snippet` marks matches with « »."""

    id: str
    title: str
    score: float
    snippet: str
    source_domain: str | None
    published_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready mapping (datetimes as ISO 8601)."""
        return {
            "id": self.id,
            "title": self.title,
            "score": self.score,
            "snippet": self.snippet,
            "source_domain": self.source_domain,
            "published_at": self.published_at.isoformat() if self.published_at else None,
        }


@dataclass(frozen=True, slots=True)
class ArticleFilters:
    """Query filters shared by list, count, export, the API's pages and facets; None means "any"."""

    source: str | None = None
    lang: str | None = None
    category: str | None = None
    entity: str | None = None
    country: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int | None = None
    # Full-text terms (web-search syntax: "a phrase", OR, -excluded), matched by the backend's own index.
    query: str | None = None
    # OntoNotes label of `entity` (or, alone, any entity with this label): PERSON, ORG, GPE, ...
    entity_label: str | None = None
    received_since: datetime | None = None
    received_until: datetime | None = None
    # True: only near-duplicates of an earlier article (or exact copies); False: leave them out.
    duplicates: bool | None = None
    content_type: str | None = None

    def normalised(self) -> ArticleFilters:
        """Canonical forms the SQL compares against (UTC datetimes, ISO country code)."""
        return ArticleFilters(
            source=self.source.strip().lower() if self.source else None,
            lang=self.lang.strip().lower() if self.lang else None,
            category=self.category.strip().lower() if self.category else None,
            entity=self.entity.strip().lower() if self.entity else None,
            country=country_code(self.country) if self.country else None,
            since=to_utc(self.since) if self.since else None,
            until=to_utc(self.until) if self.until else None,
            limit=self.limit,
            query=self.query.strip() if self.query and self.query.strip() else None,
            entity_label=self.entity_label.strip().upper() if self.entity_label else None,
            received_since=to_utc(self.received_since) if self.received_since else None,
            received_until=to_utc(self.received_until) if self.received_until else None,
            duplicates=self.duplicates,
            content_type=self.content_type.strip().lower() if self.content_type else None,
        )


@dataclass(frozen=True, slots=True)
class ArticlePage:
    """One page of a query: the items (projected records) and the cursor of the next page (None at the end)."""

    items: list[dict[str, Any]]
    next_cursor: str | None


PageRow = tuple[int, Any, float | None]  # a backend's page row: storage sequence, cursor key, score


@dataclass(frozen=True, slots=True)
class PageRequest:
    """One page as a backend reads it: filters normalised, the query's fingerprint, the cursor decoded and checked."""

    filters: ArticleFilters
    sort: Sort
    limit: int
    fields: Sequence[str] | None
    fingerprint: str
    after: Cursor | None

    def page(self, rows: Sequence[PageRow], items: list[dict[str, Any]], watermark: int) -> ArticlePage:
        """`items` (the first `limit` rows' records) and, when the backend found a row more, the next cursor."""
        if len(rows) <= self.limit:
            return ArticlePage(items, None)
        seq, key, _ = rows[self.limit - 1]
        return ArticlePage(items, Cursor(self.fingerprint, key, seq, watermark).encode())


@dataclass(frozen=True, slots=True)
class FacetCount:
    """One value of a facet and how many matching articles have it."""

    value: str
    count: int


@dataclass(frozen=True, slots=True)
class Facets:
    """Counts over every article matching a query: top values per dimension and a per-day histogram."""

    total: int
    sources: list[FacetCount]
    countries: list[FacetCount]
    categories: list[FacetCount]
    languages: list[FacetCount]
    content_types: list[FacetCount]
    # label -> its most frequent entities (by articles naming them)
    entities: dict[str, list[FacetCount]]
    # publication day (YYYY-MM-DD, UTC) -> articles, oldest day first
    days: list[FacetCount]
    # 1: every match counted; k: counted over every k-th stored match and multiplied by k (large match sets)
    sample_every: int = 1

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready mapping."""

        def counts(values: list[FacetCount]) -> list[dict[str, Any]]:
            return [{"value": c.value, "count": c.count} for c in values]

        return {
            "total": self.total,
            "sources": counts(self.sources),
            "countries": counts(self.countries),
            "categories": counts(self.categories),
            "languages": counts(self.languages),
            "content_types": counts(self.content_types),
            "entities": {label: counts(values) for label, values in self.entities.items()},
            "days": counts(self.days),
            "sampled": self.sample_every > 1,
            "sample_every": self.sample_every,
        }


@dataclass(frozen=True, slots=True)
class RecordRows:
    """One record split into the rows of every table it lives in."""

    source: ArticleRecord
    article: dict[str, Any]
    entities: list[tuple[str, str, int]] = field(default_factory=list)  # name, label, mention count
    mentions: list[tuple[str, str, int, str, int, int, str]] = field(default_factory=list)
    places: list[tuple[str, str | None, str | None, float | None, float | None, int]] = field(
        default_factory=list
    )
    countries: list[tuple[str, int]] = field(default_factory=list)  # code, rank
    keywords: list[tuple[str, int]] = field(default_factory=list)  # keyword, rank
    near_duplicates: list[tuple[str, float]] = field(default_factory=list)


def to_utc(moment: datetime) -> datetime:
    """An aware UTC datetime; naive input is taken to already be UTC."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def country_code(value: str) -> str:
    """ISO 3166-1 alpha-2 code for a code or a country name ("fr", "France" -> "FR")."""
    cleaned = value.strip()
    if len(cleaned) == 2:
        # "UK" is what people type; ISO 3166 (and the enrich stage) say GB.
        return "GB" if cleaned.upper() == "UK" else cleaned.upper()
    import pycountry  # deferred: the lookup tables cost ~50 ms to load and most filters are codes

    try:
        return str(pycountry.countries.lookup(cleaned).alpha_2)
    except LookupError:
        pass
    try:  # common names ("Russia", "Britain") are not official names; the fuzzy search knows them
        return str(pycountry.countries.search_fuzzy(cleaned)[0].alpha_2)
    except LookupError:
        return cleaned.upper()


def content_fingerprint(record: ArticleRecord) -> str:
    """Hash of everything a reader could notice; per-run fields are left out so a re-push matches."""
    content = record.model_dump(mode="json", exclude=set(_VOLATILE_FIELDS))
    return hashlib.sha256(orjson.dumps(content, option=orjson.OPT_SORT_KEYS)).hexdigest()


def revision_time(record: ArticleRecord) -> datetime:
    """When this revision was made: the producer's `updated_at` when it gave one, else its receipt time."""
    return to_utc(record.updated_at or record.received_at)


def skipped_revision(record: ArticleRecord, now: datetime) -> SkippedRevision:
    """The note a stored record keeps of an older revision that came too late."""
    return SkippedRevision(
        received_at=record.received_at, updated_at=record.updated_at, content_hash=record.content_hash, skipped_at=now
    )


def with_skipped_revisions(record_json: str | bytes, late: Sequence[SkippedRevision]) -> str:
    """A stored record's JSON with `late` appended to its skipped revisions (the last MAX_SKIPPED_REVISIONS kept)."""
    data = orjson.loads(record_json)
    notes = [*data.get("skipped_revisions", []), *(revision.model_dump(mode="json") for revision in late)]
    data["skipped_revisions"] = notes[-MAX_SKIPPED_REVISIONS:]
    return orjson.dumps(data).decode()


def storable(record: ArticleRecord) -> ArticleRecord:
    """`record` without the characters no database can hold (NUL, unpaired surrogates), counted in `dropped`.

    Entity mention offsets are moved with the text, so they still index the same words of the title and body.
    The check is one scan of the record's JSON (NUL is written as \\u0000); only a record that has them is rebuilt.
    """
    try:
        if b"\\u0000" not in record.__pydantic_serializer__.to_json(record):
            return record
    except ValueError:  # an unpaired surrogate cannot even be serialised
        pass
    data = record.model_dump()
    counts: dict[str, int] = {}
    removed = {name: [m.start() for m in _UNSTORABLE.finditer(data[name])] for name in ("title", "body")}

    def clean(value: Any) -> Any:
        if isinstance(value, str):
            if not _UNSTORABLE.search(value):
                return value
            for match in _UNSTORABLE.finditer(value):
                kind = _UNSTORABLE_KINDS.get(match.group(), "unpaired_surrogates")
                counts[kind] = counts.get(kind, 0) + 1
            return _UNSTORABLE.sub("", value)
        if isinstance(value, list):
            return [clean(item) for item in value]
        if isinstance(value, dict):
            return {clean(key): clean(item) for key, item in value.items()}
        return value

    data = {key: clean(value) for key, value in data.items()}
    for entity in data["entities"]:
        for mention in entity["mentions"]:
            gone = removed.get(mention["field"], [])
            mention["start"] -= bisect.bisect_left(gone, mention["start"])
            mention["end"] -= bisect.bisect_left(gone, mention["end"])
    dropped = dict(record.dropped)
    for kind, count in counts.items():
        dropped[kind] = dropped.get(kind, 0) + count
    data["dropped"] = dropped
    return ArticleRecord.model_validate(data)


def record_rows(record: ArticleRecord) -> RecordRows:
    """Split a record into article columns and child rows; Rejected for a record no backend could store."""
    try:
        return _record_rows(record)
    except (TypeError, ValueError) as exc:  # e.g. an integer past 64 bits: not even JSON can carry it
        raise Rejected("storage_rejected", f"cannot be stored: {type(exc).__name__}: {exc}") from exc


def _record_rows(record: ArticleRecord) -> RecordRows:
    article = {
        "id": record.id,
        "external_id": record.external_id,
        "url": record.url,
        "origin": record.origin,
        "title": record.title,
        "body": record.body,
        "authors": orjson.dumps(record.authors).decode(),
        "source_domain": record.source_domain,
        "source_name": record.source_name,
        "published_at": to_utc(record.published_at) if record.published_at else None,
        "language": record.language,
        "word_count": record.word_count,
        "reading_time_s": record.reading_time_s,
        "summary": record.summary,
        "sentiment": record.sentiment,
        "sentiment_label": record.sentiment_label,
        "category": record.category,
        "category_score": record.category_score,
        "duplicate_of": record.duplicate_of,
        "content_hash": record.content_hash,
        "received_at": to_utc(record.received_at),
        "revision_at": revision_time(record),
        "fingerprint": content_fingerprint(record),
        "record": record.model_dump_json(),
        "content_type": record.content_type,
    }
    rows = RecordRows(source=record, article=article)
    seen_entities: set[tuple[str, str]] = set()
    for entity in record.entities:
        key = (entity.name, entity.label)
        if key in seen_entities:  # the contract promises one entity per thing; tolerate a slip
            continue
        seen_entities.add(key)
        rows.entities.append((entity.name, entity.label, len(entity.mentions)))
        for mention in entity.mentions:
            rows.mentions.append(
                (entity.name, entity.label, len(rows.mentions), mention.field, mention.start, mention.end,
                 mention.text)
            )
    seen_places: set[str] = set()
    for place in record.places:
        if place.name in seen_places:
            continue
        seen_places.add(place.name)
        rows.places.append(
            (place.name, place.country_code, place.country, place.latitude, place.longitude, place.mentions)
        )
    # Countries: the enrich ranking first, then any place's country it did not list.
    codes = [code.upper() for code in record.countries]
    codes += [place.country_code.upper() for place in record.places if place.country_code]
    for code in dict.fromkeys(codes):
        rows.countries.append((code, len(rows.countries)))
    for keyword in dict.fromkeys(record.keywords):
        rows.keywords.append((keyword, len(rows.keywords)))
    seen_duplicates: set[str] = set()
    for duplicate in record.near_duplicates:
        if duplicate.id in seen_duplicates or duplicate.id == record.id:
            continue
        seen_duplicates.add(duplicate.id)
        rows.near_duplicates.append((duplicate.id, duplicate.similarity))
    return rows


def dedupe_newest(records: Sequence[ArticleRecord]) -> tuple[list[ArticleRecord], list[ArticleRecord]]:
    """(one record per id: its newest revision, the later one of a tie; the older revisions it beat).

    The first list is ordered by id, so concurrent writers lock rows in the same order.
    """
    newest: dict[str, ArticleRecord] = {}
    older: list[ArticleRecord] = []
    for record in records:
        current = newest.get(record.id)
        if current is None:
            newest[record.id] = record
        elif revision_time(record) >= revision_time(current):
            newest[record.id] = record
            older.append(current)
        else:
            older.append(record)
    return [newest[article_id] for article_id in sorted(newest)], older


SEARCH_FIELDS = ("id", "title", "source_domain", "published_at")


class Storage(ABC):
    """Async article storage; `open_storage(url)` picks the backend."""

    url: str

    @abstractmethod
    async def migrate(self, target: int | None = None) -> list[int]:
        """Apply pending schema migrations (up to `target`); return the versions applied."""

    @abstractmethod
    async def schema_version(self) -> int:
        """The highest applied migration version (0 for an empty database)."""

    @abstractmethod
    async def upsert_articles(self, records: Sequence[ArticleRecord]) -> list[UpsertResult]:
        """Insert or update a batch in one transaction; results follow the input order."""

    @abstractmethod
    async def get_article(self, article_id: str) -> ArticleRecord | None:
        """The full record as it was last published, or None."""

    @abstractmethod
    async def list_articles(self, filters: ArticleFilters | None = None) -> list[ArticleSummary]:
        """Summaries matching `filters`, newest publication first."""

    @abstractmethod
    async def count(self, filters: ArticleFilters | None = None) -> int:
        """How many articles match `filters` (its limit is ignored)."""

    async def search(self, query: str, limit: int = 20) -> list[SearchHit]:
        """Full-text search over title and body, most relevant first: the API's relevance pages (`query_articles`).

        Ranking every match of a common word was a scoring pass over most of the corpus (measured at 100,000
        articles: p95 2.4 s on PostgreSQL, 5.4 s on SQLite); relevance pages rank within tiers of matches, newest
        tier first, and exactly when the query matches fewer articles than a tier holds.
        """
        if not query.strip():
            return []
        page = await self.query_articles(
            ArticleFilters(query=query), sort=Sort("relevance", True), limit=limit, fields=SEARCH_FIELDS
        )
        return [
            SearchHit(
                id=item["id"],
                title=item["title"],
                score=float(item["score"] or 0.0),
                snippet=item["snippet"] or "",
                source_domain=item["source_domain"],
                published_at=datetime.fromisoformat(item["published_at"]) if item["published_at"] else None,
            )
            for item in page.items
        ]

    async def query_articles(
        self,
        filters: ArticleFilters,
        *,
        sort: Sort,
        limit: int,
        cursor: str | None = None,
        fields: Sequence[str] | None = None,
    ) -> ArticlePage:
        """One page of matching records (projected to `fields`), after `cursor`; ValueError for a foreign cursor."""
        f = filters.normalised()
        if sort.key == "relevance" and not f.query:
            raise ValueError("sort=relevance needs full-text terms (q)")
        fingerprint = query_fingerprint(replace(f, limit=None), sort)
        after = Cursor.decode(cursor, fingerprint) if cursor else None
        return await self._read_page(PageRequest(f, sort, limit, fields, fingerprint, after))

    @abstractmethod
    async def _read_page(self, request: PageRequest) -> ArticlePage:
        """The page `request` asks for, read with this backend's indexes (`query_articles` checked the request)."""

    @abstractmethod
    async def facets(self, filters: ArticleFilters, *, size: int = 10) -> Facets:
        """Counts by source, country, category, language, entity (per label) and publication day."""

    @abstractmethod
    async def near_duplicates(self, article_id: str, fields: Sequence[str] | None = None) -> list[dict[str, Any]]:
        """Stored articles this one duplicates and those duplicating it, each with `similarity`, most similar first."""

    @abstractmethod
    def iter_export(self, filters: ArticleFilters | None = None) -> AsyncIterator[ArticleRecord]:
        """Stream matching records in storage order without holding them all in memory."""

    @abstractmethod
    async def check(self) -> None:
        """Raise TransientError unless the database is there and answers (SQLite: still the file at its path)."""

    @abstractmethod
    async def close(self) -> None:
        """Release connections."""

    # -- sources: the feeds and sitemaps the fetch stage polls -------------------------------------

    @abstractmethod
    async def add_source(self, source: Source) -> tuple[Source, bool]:
        """Register `source`: (it, True) when new, (the row already registered for its URL, False) otherwise."""

    @abstractmethod
    async def list_sources(self) -> list[Source]:
        """Every registered source, oldest first."""

    @abstractmethod
    async def remove_source(self, key: str) -> Source | None:
        """Unregister the source with this id or URL; the removed row, or None when there was none."""

    async def upsert_article(self, record: ArticleRecord) -> UpsertResult:
        """Upsert a single record (a batch of one)."""
        (result,) = await self.upsert_articles([record])
        return result

    async def __aenter__(self) -> Storage:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

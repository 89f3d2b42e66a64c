"""The contract: every event on the wire and the stored record, as frozen pydantic models.

Each stage adds its own section (`ingest`, `clean`, `enrich`) and a `trace` stamp; none rewrites another's.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, get_args

import orjson
from pydantic import BaseModel, ConfigDict, Field, model_validator

SCHEMA_VERSION: Literal[1] = 1

# What clean found on the page. The news types (article .. liveblog) go on through enrich and publish; the rest
# name what a dead-lettered input was (an HTTP error page, a login wall with no story, nothing readable).
ContentType = Literal["article", "brief", "results", "listing", "liveblog", "error_page", "login_or_paywall", "empty"]
CONTENT_TYPES: tuple[str, ...] = get_args(ContentType)


class Event(BaseModel):
    """Base of every model on the wire: immutable, no unknown fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    def to_json(self) -> bytes:
        """Serialise with orjson (the wire format)."""
        return orjson.dumps(self.model_dump(mode="json"))


class RawArticle(Event):
    """What producers push (CLI, HTTP, XADD): exactly one of `text` / `html`."""

    id: str | None = Field(default=None, max_length=512, description="the client's own id")
    url: str | None = Field(default=None, max_length=4096)
    text: str | None = None
    html: str | None = None
    title: str | None = Field(default=None, max_length=2000)
    source: str | None = Field(default=None, max_length=500)
    published_at: str | None = Field(default=None, max_length=100)
    fetched_at: datetime | None = Field(default=None, description="when the page was downloaded (a crawl's time)")
    updated_at: datetime | None = Field(
        default=None,
        description="when this version was last changed at its source; of two revisions of one article the one with "
        "the later updated_at (else the later receipt) is kept",
    )
    metadata: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _exactly_one_body(self) -> RawArticle:
        if (self.text is None) == (self.html is None):
            raise ValueError("exactly one of 'text' or 'html' is required")
        return self


class FetchJob(Event):
    """A page to download (on the discovered stream): found in a registered feed or sitemap, queued once."""

    schema_version: Literal[1] = SCHEMA_VERSION
    url: str = Field(max_length=4096, description="normalised; a redirect's target as the server gave it")
    source_id: str
    source_url: str = Field(description="the feed or sitemap it was found in; the article's origin")
    discovered_at: datetime
    # Downloads tried so far (a failed one comes back through the delayed set with attempt + 1).
    attempt: int = Field(default=0, ge=0)
    # A redirect to another host comes back as a job of its own for that host's turn: the URL the feed listed
    # (the one in the seen set) and the hops that led here.
    requested_url: str | None = Field(default=None, max_length=4096, description="set on a redirect's job")
    redirects: int = Field(default=0, ge=0)
    title: str | None = Field(default=None, max_length=2000, description="as the feed or news sitemap gave it")
    published_at: str | None = Field(default=None, max_length=100)


class Stamp(Event):
    """One stage's entry in an article's lineage."""

    stage: str
    version: str
    worker: str
    started_at: datetime
    finished_at: datetime
    duration_ms: float


class IngestSection(Event):
    """Added by ingest: identity, origin and the validated raw content."""

    external_id: str | None = None
    url: str | None = None
    origin: str
    received_at: datetime
    content_hash: str
    kind: Literal["text", "html"]
    content: str
    title: str | None = None
    source: str | None = None
    published_at: str | None = None
    fetched_at: datetime | None = None
    updated_at: datetime | None = Field(default=None, description="the producer's own version time, if it gave one")
    metadata: dict[str, Any] = Field(default_factory=dict)


class CleanSection(Event):
    """Added by clean: the article as a reader sees it, and its metadata."""

    title: str
    body: str
    authors: list[str] = Field(default_factory=list)
    source_domain: str | None = None
    source_name: str | None = None
    url: str | None = None
    published_at: datetime | None = None
    language_declared: str | None = None
    extractor: str
    dropped: dict[str, int] = Field(default_factory=dict, description="removed lines by kind")
    word_count: int | None = Field(
        default=None, description="body words; in scripts written without spaces, characters-equivalent"
    )
    content_type: ContentType = Field(
        default="article",
        description="article, brief (a short item), results (scores, tables, lists of figures), listing (an index or "
        "section page), liveblog; error_page, login_or_paywall and empty are dead-lettered",
    )


class Mention(Event):
    """One occurrence of an entity; offsets index `field` of the record."""

    text: str
    start: int
    end: int
    field: Literal["title", "body"]


class Entity(Event):
    """One real-world thing named in the article (OntoNotes label)."""

    name: str
    label: str
    mentions: list[Mention]


class Place(Event):
    """A GPE/LOC entity resolved to a country."""

    name: str
    country_code: str | None = None
    country: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    mentions: int = 1


class NearDuplicate(Event):
    """An earlier article whose body is estimated to be this similar."""

    id: str
    similarity: float


class EnrichSection(Event):
    """Added by enrich: language, entities, places, keywords, summary, tone, topic, duplicates."""

    language: str | None
    language_confidence: float | None = None
    word_count: int
    reading_time_s: int
    summary: str = ""
    keywords: list[str] = Field(default_factory=list)
    sentiment: float | None = None
    sentiment_label: str | None = None
    category: str | None = None
    category_score: float | None = None
    entities: list[Entity] = Field(default_factory=list)
    places: list[Place] = Field(default_factory=list)
    countries: list[str] = Field(default_factory=list, description="ISO codes, most prominent first")
    near_duplicates: list[NearDuplicate] = Field(default_factory=list)
    duplicate_of: str | None = Field(default=None, description="earlier article with the same content hash")
    skipped: dict[str, str] = Field(default_factory=dict, description="step -> why it was skipped")


class IngestedArticle(Event):
    """ingest -> clean."""

    schema_version: Literal[1] = SCHEMA_VERSION
    id: str
    ingest: IngestSection
    trace: list[Stamp] = Field(default_factory=list)


class CleanedArticle(IngestedArticle):
    """clean -> enrich."""

    clean: CleanSection


class EnrichedArticle(CleanedArticle):
    """enrich -> publish."""

    enrich: EnrichSection


class SkippedRevision(Event):
    """A revision of a stored article that arrived after a newer one and was not stored (newest revision wins)."""

    received_at: datetime
    updated_at: datetime | None = None
    content_hash: str
    skipped_at: datetime


class ArticleRecord(Event):
    """The stored / printed record (DESIGN.md field names)."""

    schema_version: Literal[1] = SCHEMA_VERSION
    id: str
    external_id: str | None
    url: str | None
    origin: str
    title: str
    body: str
    authors: list[str]
    source_domain: str | None
    source_name: str | None
    published_at: datetime | None
    language: str | None
    word_count: int | None
    reading_time_s: int | None
    summary: str
    keywords: list[str]
    sentiment: float | None
    sentiment_label: str | None
    category: str | None
    category_score: float | None
    entities: list[Entity]
    places: list[Place]
    countries: list[str]
    near_duplicates: list[NearDuplicate]
    duplicate_of: str | None
    content_hash: str
    received_at: datetime
    trace: list[Stamp]
    # Records stored before clean typed its input were all articles.
    content_type: ContentType = "article"
    # When the page was downloaded (a WARC record's date, the fetch stage's download), if known.
    fetched_at: datetime | None = None
    # The producer's own version time (raw `updated_at`); with `received_at`, what decides which revision is newest.
    updated_at: datetime | None = None
    # step -> why it was skipped or cut short (enrich's steps; storage's `search_index` for a very long body).
    skipped: dict[str, str] = Field(default_factory=dict)
    # What storage removed before writing, by kind and count (`nul_characters`).
    dropped: dict[str, int] = Field(default_factory=dict)
    # Older revisions that arrived after this one, the latest last (storage keeps the last few).
    skipped_revisions: list[SkippedRevision] = Field(default_factory=list)

    @classmethod
    def from_article(cls, article: CleanedArticle) -> ArticleRecord:
        """Flatten an event; a clean-only article (`process --stages clean`) has no enrich fields."""
        enrich = article.enrich if isinstance(article, EnrichedArticle) else None
        ingest, clean = article.ingest, article.clean
        return cls(
            id=article.id,
            external_id=ingest.external_id,
            url=clean.url or ingest.url,
            origin=ingest.origin,
            title=clean.title,
            body=clean.body,
            authors=clean.authors,
            source_domain=clean.source_domain,
            source_name=clean.source_name,
            published_at=clean.published_at,
            language=enrich.language if enrich else clean.language_declared,
            word_count=enrich.word_count if enrich else None,
            reading_time_s=enrich.reading_time_s if enrich else None,
            summary=enrich.summary if enrich else "",
            keywords=enrich.keywords if enrich else [],
            sentiment=enrich.sentiment if enrich else None,
            sentiment_label=enrich.sentiment_label if enrich else None,
            category=enrich.category if enrich else None,
            category_score=enrich.category_score if enrich else None,
            entities=enrich.entities if enrich else [],
            places=enrich.places if enrich else [],
            countries=enrich.countries if enrich else [],
            near_duplicates=enrich.near_duplicates if enrich else [],
            duplicate_of=enrich.duplicate_of if enrich else None,
            content_hash=ingest.content_hash,
            received_at=ingest.received_at,
            trace=article.trace,
            content_type=clean.content_type,
            fetched_at=ingest.fetched_at,
            updated_at=ingest.updated_at,
            skipped=dict(enrich.skipped) if enrich else {},
        )


class PublishedEvent(Event):
    """publish -> downstream consumers: a small notice that a record was committed."""

    schema_version: Literal[1] = SCHEMA_VERSION
    id: str
    url: str | None
    title: str
    revision: int
    stored_at: datetime


class DeadLetter(Event):
    """A message a stage could not process, with enough context to fix and replay it.

    The original payload travels beside it, byte for byte, in the DLQ entry's `payload` field.
    """

    stage: str
    reason: str
    error: str
    traceback: str | None = None
    deliveries: int
    failed_at: datetime
    stream: str
    msg_id: str
    article_id: str | None = None

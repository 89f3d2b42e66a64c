"""The read API's query parameters: filters, sort, page size and projection, checked and turned into storage terms."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from fastapi import HTTPException, Query

from shared.events import CONTENT_TYPES
from shared.storage import ArticleFilters
from shared.storage.base import to_utc
from shared.storage.paging import SORTS, Sort, check_fields

MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 20
MAX_QUERY_CHARS = 500
MAX_FILTER_CHARS = 200
MAX_FACET_SIZE = 50


def invalid(field: str, message: str) -> HTTPException:
    """A 422 shaped like FastAPI's own validation errors, naming the query parameter."""
    return HTTPException(422, detail=[{"loc": ["query", field], "msg": message, "type": "value_error"}])


Text = Annotated[str | None, Query(max_length=MAX_FILTER_CHARS)]
Moment = Annotated[datetime | None, Query(description="ISO 8601 date or date-time (UTC when no offset is given)")]


def article_filters(
    q: Annotated[
        str | None,
        Query(max_length=MAX_QUERY_CHARS, description='full-text terms: words, "a phrase", OR, -excluded, prefix*'),
    ] = None,
    source: Annotated[str | None, Query(max_length=MAX_FILTER_CHARS, description="source domain or name")] = None,
    language: Annotated[str | None, Query(max_length=20, description="language code, e.g. en")] = None,
    country: Annotated[
        str | None, Query(max_length=MAX_FILTER_CHARS, description="ISO code or country name: KP, North Korea")
    ] = None,
    entity: Annotated[
        str | None, Query(max_length=MAX_FILTER_CHARS, description="entity name or part of it, case-insensitive")
    ] = None,
    entity_label: Annotated[
        str | None, Query(max_length=40, description="entity label (PERSON, ORG, GPE, ...); alone or with entity")
    ] = None,
    category: Text = None,
    content_type: Annotated[
        str | None, Query(description=f"what clean found: {', '.join(CONTENT_TYPES)}")
    ] = None,
    published_since: Moment = None,
    published_until: Moment = None,
    received_since: Moment = None,
    received_until: Moment = None,
    duplicates: Annotated[
        bool | None, Query(description="true: only near-duplicates of an earlier article; false: leave them out")
    ] = None,
) -> ArticleFilters:
    """The filters of a query, shared by `/articles` and `/articles/facets`."""
    if content_type is not None and content_type.strip().lower() not in CONTENT_TYPES:
        raise invalid("content_type", f"is one of {', '.join(CONTENT_TYPES)}")
    for name, start, end in (
        ("published_until", published_since, published_until),
        ("received_until", received_since, received_until),
    ):
        if start and end and to_utc(end) <= to_utc(start):
            raise invalid(name, "must be after the corresponding _since")
    return ArticleFilters(
        query=q, source=source, lang=language, country=country, entity=entity, entity_label=entity_label,
        category=category, content_type=content_type, since=published_since, until=published_until,
        received_since=received_since, received_until=received_until, duplicates=duplicates,
    )


@dataclass(frozen=True, slots=True)
class PageParams:
    """Sort, page size, cursor and projection of `/articles`."""

    sort: Sort
    limit: int
    cursor: str | None
    fields: tuple[str, ...] | None


def page_params(
    sort: Annotated[
        str | None,
        Query(description=f"one of {', '.join(SORTS)}; default relevance with q, else -published_at (newest first)"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description="items per page")] = DEFAULT_PAGE_SIZE,
    cursor: Annotated[
        str | None, Query(max_length=2000, description="`next_cursor` of the previous page (same filters and sort)")
    ] = None,
    fields: Annotated[
        str | None, Query(max_length=1000, description="comma-separated record fields to return (default: all)")
    ] = None,
    q: Annotated[str | None, Query(include_in_schema=False)] = None,
) -> PageParams:
    """Check the paging parameters; the default sort depends on whether there are full-text terms."""
    try:
        chosen = Sort.parse(sort) if sort else Sort.parse("relevance" if q and q.strip() else "-published_at")
    except ValueError as error:
        raise invalid("sort", str(error)) from error
    if chosen.key == "relevance" and not (q and q.strip()):
        raise invalid("sort", "relevance needs full-text terms (q)")
    return PageParams(sort=chosen, limit=limit, cursor=cursor, fields=projection(fields))


def projection(fields: str | None) -> tuple[str, ...] | None:
    """`fields=id,title` as a checked tuple; None (every field) when absent or empty."""
    if fields is None or not fields.strip():
        return None
    try:
        return check_fields(fields.split(","))
    except ValueError as error:
        raise invalid("fields", str(error)) from error

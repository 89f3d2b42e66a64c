"""Article storage: one async interface, SQLite (default) or PostgreSQL chosen by URL."""

from __future__ import annotations

from shared.links import DEFAULT_LINK_TIMEOUT_S
from shared.storage.base import (
    HIGHLIGHT_END,
    HIGHLIGHT_START,
    ArticleFilters,
    ArticleSummary,
    SearchHit,
    Storage,
    UpsertResult,
    content_fingerprint,
)
from shared.storage.migrations import LATEST_VERSION, MIGRATIONS
from shared.storage.sources import Source, source_id

__all__ = [
    "HIGHLIGHT_END",
    "HIGHLIGHT_START",
    "LATEST_VERSION",
    "MIGRATIONS",
    "ArticleFilters",
    "ArticleSummary",
    "SearchHit",
    "Source",
    "Storage",
    "UpsertResult",
    "content_fingerprint",
    "open_storage",
    "source_id",
]


def open_storage(url: str, *, read_mostly: bool = False, link_timeout_s: float = DEFAULT_LINK_TIMEOUT_S) -> Storage:
    """The backend for `url` (`sqlite:///rel.db`, `sqlite:////abs.db`, `postgresql://...`); connects lazily.

    `read_mostly` (the read API): SQLite keeps a larger page cache and maps the file. `link_timeout_s`: a
    PostgreSQL connection whose link went dead is dropped within it (NEWSFLOW_LINK_TIMEOUT_S, shared/links.py).
    """
    if url.startswith("sqlite:"):
        from shared.storage.sqlite import SQLiteStorage

        return SQLiteStorage(url, read_mostly=read_mostly)
    if url.startswith(("postgresql://", "postgres://", "postgresql+psycopg://")):
        from shared.storage.postgres import PostgresStorage

        return PostgresStorage(url.replace("postgresql+psycopg://", "postgresql://", 1), link_timeout_s=link_timeout_s)
    raise ValueError(f"unsupported storage URL {url!r}: use sqlite:///path.db or postgresql://...")

"""Registered sources (the feeds and news sitemaps fetch polls): the row, its id, the SQL both backends run."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

SOURCE_COLUMNS = "id, url, name, interval_s, added_at"


@dataclass(frozen=True, slots=True)
class Source:
    """One registered feed or sitemap."""

    id: str
    url: str
    name: str | None
    interval_s: int
    added_at: datetime

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready mapping."""
        return {
            "id": self.id,
            "url": self.url,
            "name": self.name,
            "interval_s": self.interval_s,
            "added_at": self.added_at.isoformat(),
        }


def source_id(url: str) -> str:
    """A short stable id for a source URL (what `sources remove` and the logs name it by)."""
    return hashlib.sha256(url.encode()).hexdigest()[:12]


def insert_source_sql(placeholder: str) -> str:
    """INSERT one source unless its URL is registered already (the caller reads back which row won)."""
    marks = ", ".join([placeholder] * 5)
    return f"INSERT INTO sources ({SOURCE_COLUMNS}) VALUES ({marks}) ON CONFLICT DO NOTHING"

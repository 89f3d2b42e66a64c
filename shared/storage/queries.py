"""SQL both backends share: the filter WHERE clause and the user's search query in FTS5 syntax."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

from shared.storage.base import ArticleFilters

SUMMARY_COLUMNS = (
    "a.id, a.title, a.url, a.source_domain, a.language, a.category, a.published_at, a.word_count, "
    "a.revision, a.updated_at"
)
ORDER_NEWEST_FIRST = "ORDER BY a.published_at DESC NULLS LAST, a.id"


def escape_like(text: str) -> str:
    """Make `%`, `_` and the escape character literal inside a LIKE pattern."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def filter_clause(
    filters: ArticleFilters, placeholder: str, timestamp_param: Callable[[datetime], Any]
) -> tuple[str, list[Any]]:
    """`WHERE ...` (or "") over articles aliased `a`, and its parameters in order."""
    f = filters.normalised()
    conditions: list[str] = []
    params: list[Any] = []
    p = placeholder
    if f.source:
        conditions.append(f"(lower(a.source_domain) = {p} OR lower(a.source_name) = {p})")
        params += [f.source, f.source]
    if f.lang:
        conditions.append(f"a.language = {p}")  # codes are stored lower-case
        params.append(f.lang)
    if f.category:
        conditions.append(f"lower(a.category) = {p}")
        params.append(f.category)
    if f.entity:
        # Substring of the canonical name, case-folded by the database on both sides so that
        # SQLite's ASCII-only lower() and the stored key agree.
        conditions.append(
            "EXISTS (SELECT 1 FROM article_entities ae JOIN entities e ON e.id = ae.entity_id "
            f"WHERE ae.article_id = a.id AND e.name_key LIKE lower({p}) ESCAPE '\\')"
        )
        params.append(f"%{escape_like(f.entity)}%")
    if f.country:
        conditions.append(
            f"EXISTS (SELECT 1 FROM article_countries ac WHERE ac.article_id = a.id AND ac.country_code = {p})"
        )
        params.append(f.country)
    if f.since:
        conditions.append(f"a.published_at >= {p}")
        params.append(timestamp_param(f.since))
    if f.until:
        conditions.append(f"a.published_at < {p}")
        params.append(timestamp_param(f.until))
    return ("WHERE " + " AND ".join(conditions)) if conditions else "", params


_QUERY_TOKEN = re.compile(r'"([^"]*)"|(\S+)')
_WORD = re.compile(r"\w+")


def _fts5_phrase(text: str, prefix: bool = False) -> str | None:
    words = _WORD.findall(text)
    if not words:
        return None
    return '"' + " ".join(words) + '"' + ("*" if prefix else "")


def fts5_query(query: str) -> str | None:
    """Web-search style input ("quoted phrase", OR, -exclude, prefix*) as a safe FTS5 MATCH expression.

    Raw user text would be parsed as FTS5 syntax, where "Putin's" or "U.S.-Korea" are syntax errors;
    every term is therefore quoted. None when nothing searchable is left.
    """
    positive: list[str] = []
    negative: list[str] = []
    for match in _QUERY_TOKEN.finditer(query):
        phrase, bare = match.group(1), match.group(2)
        if phrase is not None:
            term = _fts5_phrase(phrase)
            if term:
                positive.append(term)
            continue
        if bare == "OR":
            if positive and positive[-1] != "OR":
                positive.append("OR")
            continue
        if bare.startswith("-") and len(bare) > 1:
            term = _fts5_phrase(bare[1:])
            if term:
                negative.append(term)
            continue
        term = _fts5_phrase(bare, prefix=bare.endswith("*"))
        if term:
            positive.append(term)
    while positive and positive[-1] == "OR":
        positive.pop()
    if not positive:
        return None
    expression = " ".join(positive)
    if negative:
        expression = f"({expression}) NOT ({' OR '.join(negative)})"
    return expression

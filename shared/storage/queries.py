"""SQL both backends share: the filter WHERE clause and the user's search query in FTS5 syntax."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

from shared.storage.base import ArticleFilters, FacetCount, Facets
from shared.storage.paging import project

SUMMARY_COLUMNS = (
    "a.id, a.title, a.url, a.source_domain, a.language, a.category, a.published_at, a.word_count, "
    "a.revision, a.updated_at, a.content_type"
)
ORDER_NEWEST_FIRST = "ORDER BY a.published_at DESC NULLS LAST, a.id"


def escape_like(text: str) -> str:
    """Make `%`, `_` and the escape character literal inside a LIKE pattern."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


TextMatch = Callable[[str], tuple[str, list[Any]]]


def filter_clause(
    filters: ArticleFilters,
    placeholder: str,
    timestamp_param: Callable[[datetime], Any],
    text_match: TextMatch | None = None,
) -> tuple[str, list[Any]]:
    """`WHERE ...` (or "") over articles aliased `a`, and its parameters in order.

    `text_match` turns the full-text terms into the backend's condition; without it they are left to the caller
    (a ranked query joins the index itself).
    """
    conditions, params = filter_conditions(filters, placeholder, timestamp_param, text_match)
    return ("WHERE " + " AND ".join(conditions)) if conditions else "", params


def filter_conditions(
    filters: ArticleFilters,
    placeholder: str,
    timestamp_param: Callable[[datetime], Any],
    text_match: TextMatch | None = None,
) -> tuple[list[str], list[Any]]:
    """The conditions of `filter_clause`, to AND with a caller's own."""
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
    if f.content_type:
        conditions.append(f"a.content_type = {p}")
        params.append(f.content_type)
    if f.entity or f.entity_label:
        # Substring of the canonical name, case-folded by the database on both sides so that
        # SQLite's ASCII-only lower() and the stored key agree; the label, when given, on the same entity.
        entity_conditions = []
        if f.entity:
            entity_conditions.append(f"e.name_key LIKE lower({p}) ESCAPE '\\'")
            params.append(f"%{escape_like(f.entity)}%")
        if f.entity_label:
            entity_conditions.append(f"e.label = {p}")
            params.append(f.entity_label)
        conditions.append(
            "EXISTS (SELECT 1 FROM article_entities ae JOIN entities e ON e.id = ae.entity_id "
            f"WHERE ae.article_id = a.id AND {' AND '.join(entity_conditions)})"
        )
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
    if f.received_since:
        conditions.append(f"a.received_at >= {p}")
        params.append(timestamp_param(f.received_since))
    if f.received_until:
        conditions.append(f"a.received_at < {p}")
        params.append(timestamp_param(f.received_until))
    if f.duplicates is not None:
        duplicate = (
            "(a.duplicate_of IS NOT NULL OR EXISTS (SELECT 1 FROM near_duplicates nd WHERE nd.article_id = a.id))"
        )
        conditions.append(duplicate if f.duplicates else f"NOT {duplicate}")
    if f.query and text_match is not None:
        condition, text_params = text_match(f.query)
        conditions.append(condition)
        params += text_params
    return conditions, params


def facet_columns(day: str) -> str:
    """What each sampled article contributes to the facets; `day` is the backend's UTC YYYY-MM-DD expression."""
    return f"a.seq, a.id, a.source_domain, a.category, a.language, a.content_type, {day} AS day"


def facets_union(source: str, size: int, pin: str = "") -> str:
    """One statement for every facet over `source` (rows of `facet_columns`): (facet, label, value, count).

    `pin` ("+" on SQLite) prefixes the child tables' GROUP BY keys: SQLite would otherwise walk a whole child
    index in key order (to group without sorting) and probe the small sample for every row.
    """
    top = f"ORDER BY count DESC, value LIMIT {int(size)}"

    def column(facet: str, name: str) -> str:
        return (
            f"SELECT '{facet}' AS facet, NULL AS label, value, count FROM (SELECT m.{name} AS value, "
            f"count(*) AS count FROM {source} m WHERE m.{name} IS NOT NULL GROUP BY m.{name} {top}) {facet}"
        )

    parts = [
        column("sources", "source_domain"),
        column("categories", "category"),
        column("languages", "language"),
        column("content_types", "content_type"),
        "SELECT 'countries', NULL, value, count FROM (SELECT t.country_code AS value, count(*) AS count "
        f"FROM {source} m JOIN article_countries t ON t.article_id = m.id "
        f"GROUP BY {pin}t.country_code {top}) countries",
        # The top `size` entities of every label, ranked by how many matching articles name them.
        "SELECT 'entities', label, value, count FROM (SELECT e.label, e.name AS value, c.count, "
        "row_number() OVER (PARTITION BY e.label ORDER BY c.count DESC, e.name) AS rank FROM ("
        f"SELECT t.entity_id, count(*) AS count FROM {source} m JOIN article_entities t ON t.article_id = m.id "
        f"GROUP BY {pin}t.entity_id) c JOIN entities e ON e.id = c.entity_id) ranked WHERE rank <= {int(size)}",
        f"SELECT 'days', NULL, m.day, count(*) FROM {source} m WHERE m.day IS NOT NULL GROUP BY m.day",
    ]
    return " UNION ALL ".join(parts)


def facets_from_rows(total: int, every: int, rows: Iterable[tuple[Any, ...]]) -> Facets:
    """The `facets_union` rows as `Facets`, counts scaled by the sample step; most frequent first (days in order)."""
    found: dict[str, list[tuple[str | None, str, int]]] = {}
    for facet, label, value, count in rows:
        found.setdefault(str(facet), []).append((label, str(value), int(count) * every))

    def counts(name: str) -> list[FacetCount]:
        ordered = sorted(found.get(name, []), key=lambda row: (-row[2], row[1]))
        return [FacetCount(value, count) for _, value, count in ordered]

    entities: dict[str, list[FacetCount]] = {}
    for label, value, count in sorted(found.get("entities", []), key=lambda row: (str(row[0]), -row[2], row[1])):
        entities.setdefault(str(label), []).append(FacetCount(value, count))
    return Facets(
        total=total,
        sources=counts("sources"),
        countries=counts("countries"),
        categories=counts("categories"),
        languages=counts("languages"),
        content_types=counts("content_types"),
        entities=entities,
        days=[FacetCount(value, count) for _, value, count in sorted(found.get("days", []), key=lambda r: r[1])],
        sample_every=every,
    )


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


# The articles an article duplicates (earlier), those duplicating it (later), and exact copies either way.
NEAR_DUPLICATES_SQL = """
SELECT id, record, similarity, relation FROM (
    SELECT a.id, {record}, d.similarity, 'earlier' AS relation FROM near_duplicates d
        JOIN articles a ON a.id = d.duplicate_id WHERE d.article_id = %s
    UNION ALL
    SELECT a.id, {record}, d.similarity, 'later' AS relation FROM near_duplicates d
        JOIN articles a ON a.id = d.article_id WHERE d.duplicate_id = %s
    UNION ALL
    SELECT a.id, {record}, 1.0 AS similarity, 'earlier' AS relation FROM articles this
        JOIN articles a ON a.id = this.duplicate_of WHERE this.id = %s
    UNION ALL
    SELECT a.id, {record}, 1.0 AS similarity, 'later' AS relation FROM articles a WHERE a.duplicate_of = %s
) found ORDER BY similarity DESC, relation
"""


def duplicates_from_rows(rows: Iterable[tuple[Any, ...]], fields: Sequence[str] | None) -> list[dict[str, Any]]:
    """`NEAR_DUPLICATES_SQL` rows as projected records with `similarity` and `relation`, one per article."""
    found: dict[str, dict[str, Any]] = {}
    for article_id, record, similarity, relation in rows:
        if article_id not in found:  # rows come most similar first
            found[article_id] = project(record, fields, {"similarity": float(similarity), "relation": relation})
    return list(found.values())

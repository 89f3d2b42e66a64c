"""Versioned schema migrations: the same tables on SQLite and PostgreSQL, one statement list per dialect.

Statements are kept as lists (not scripts) so each migration runs inside one transaction together with its
`schema_migrations` row: sqlite3's `executescript` would commit first, and trigger bodies contain semicolons.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Dialect = Literal["sqlite", "postgres"]


@dataclass(frozen=True, slots=True)
class Migration:
    """One schema version: what it changes and the statements per dialect."""

    version: int
    name: str
    sqlite: tuple[str, ...]
    postgres: tuple[str, ...]

    def statements(self, dialect: Dialect) -> tuple[str, ...]:
        """The statements for `dialect`."""
        return self.sqlite if dialect == "sqlite" else self.postgres


# Child tables are shared text; only column types differ, so they are written once with placeholders.
_CHILD_TABLES = (
    """CREATE TABLE entities (
        id {entity_pk},
        name TEXT NOT NULL,
        label TEXT NOT NULL,
        UNIQUE (name, label)
    )""",
    """CREATE TABLE article_entities (
        article_id TEXT NOT NULL REFERENCES articles (id) ON DELETE CASCADE,
        entity_id {entity_ref} NOT NULL REFERENCES entities (id),
        mention_count INTEGER NOT NULL,
        PRIMARY KEY (article_id, entity_id)
    )""",
    """CREATE TABLE mentions (
        article_id TEXT NOT NULL REFERENCES articles (id) ON DELETE CASCADE,
        ordinal INTEGER NOT NULL,
        entity_id {entity_ref} NOT NULL REFERENCES entities (id),
        field TEXT NOT NULL,
        start_offset INTEGER NOT NULL,
        end_offset INTEGER NOT NULL,
        text TEXT NOT NULL,
        PRIMARY KEY (article_id, ordinal)
    )""",
    """CREATE TABLE places (
        article_id TEXT NOT NULL REFERENCES articles (id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        country_code TEXT,
        country TEXT,
        latitude {real},
        longitude {real},
        mentions INTEGER NOT NULL,
        PRIMARY KEY (article_id, name)
    )""",
    """CREATE TABLE article_countries (
        article_id TEXT NOT NULL REFERENCES articles (id) ON DELETE CASCADE,
        country_code TEXT NOT NULL,
        ordinal INTEGER NOT NULL,
        PRIMARY KEY (article_id, country_code)
    )""",
    """CREATE TABLE keywords (
        article_id TEXT NOT NULL REFERENCES articles (id) ON DELETE CASCADE,
        keyword TEXT NOT NULL,
        ordinal INTEGER NOT NULL,
        PRIMARY KEY (article_id, keyword)
    )""",
    # duplicate_id is not a foreign key: the earlier article may not be stored here (yet).
    """CREATE TABLE near_duplicates (
        article_id TEXT NOT NULL REFERENCES articles (id) ON DELETE CASCADE,
        duplicate_id TEXT NOT NULL,
        similarity {real} NOT NULL,
        PRIMARY KEY (article_id, duplicate_id)
    )""",
)

_ARTICLE_COLUMNS = """
        id TEXT {id_constraint},
        external_id TEXT,
        url TEXT,
        origin TEXT NOT NULL,
        title TEXT NOT NULL,
        body TEXT NOT NULL,
        authors {json} NOT NULL,
        source_domain TEXT,
        source_name TEXT,
        published_at {timestamp},
        language TEXT,
        word_count INTEGER,
        reading_time_s INTEGER,
        summary TEXT NOT NULL,
        sentiment {real},
        sentiment_label TEXT,
        category TEXT,
        category_score {real},
        duplicate_of TEXT,
        content_hash TEXT NOT NULL,
        received_at {timestamp} NOT NULL,
        fingerprint TEXT NOT NULL,
        record {json} NOT NULL,
        revision INTEGER NOT NULL DEFAULT 1,
        created_at {timestamp} NOT NULL,
        updated_at {timestamp} NOT NULL"""

_SQLITE_TYPES = {
    "entity_pk": "INTEGER PRIMARY KEY",
    "entity_ref": "INTEGER",
    "real": "REAL",
    "json": "TEXT",
    # ISO 8601 UTC text with fixed precision, so string order is time order.
    "timestamp": "TEXT",
    "id_constraint": "NOT NULL UNIQUE",
}
_POSTGRES_TYPES = {
    "entity_pk": "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
    "entity_ref": "BIGINT",
    "real": "DOUBLE PRECISION",
    "json": "JSONB",
    "timestamp": "TIMESTAMPTZ",
    "id_constraint": "PRIMARY KEY",
}

# SQLite: an INTEGER PRIMARY KEY `seq` is the stable rowid the external-content FTS5 index points at
# (a plain rowid may be renumbered by VACUUM); it also gives export a stable storage order.
_SQLITE_V1 = (
    "CREATE TABLE articles (\n        seq INTEGER PRIMARY KEY," + _ARTICLE_COLUMNS.format(**_SQLITE_TYPES) + "\n)",
    *(table.format(**_SQLITE_TYPES) for table in _CHILD_TABLES),
    """CREATE VIRTUAL TABLE articles_fts USING fts5(
        title, body, content='articles', content_rowid='seq',
        tokenize='porter unicode61 remove_diacritics 2'
    )""",
    """CREATE TRIGGER articles_fts_insert AFTER INSERT ON articles BEGIN
        INSERT INTO articles_fts (rowid, title, body) VALUES (new.seq, new.title, new.body);
    END""",
    """CREATE TRIGGER articles_fts_delete AFTER DELETE ON articles BEGIN
        INSERT INTO articles_fts (articles_fts, rowid, title, body) VALUES ('delete', old.seq, old.title, old.body);
    END""",
    """CREATE TRIGGER articles_fts_update AFTER UPDATE OF title, body ON articles BEGIN
        INSERT INTO articles_fts (articles_fts, rowid, title, body) VALUES ('delete', old.seq, old.title, old.body);
        INSERT INTO articles_fts (rowid, title, body) VALUES (new.seq, new.title, new.body);
    END""",
)

# PostgreSQL: a generated tsvector (title weighted above body) kept current by the database itself.
_POSTGRES_V1 = (
    "CREATE TABLE articles (\n        seq BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,"
    + _ARTICLE_COLUMNS.format(**_POSTGRES_TYPES)
    + """,
        search_vector TSVECTOR GENERATED ALWAYS AS (
            setweight(to_tsvector('english'::regconfig, coalesce(title, '')), 'A')
            || setweight(to_tsvector('english'::regconfig, coalesce(body, '')), 'B')
        ) STORED
)""",
    *(table.format(**_POSTGRES_TYPES) for table in _CHILD_TABLES),
    "CREATE INDEX articles_search_vector ON articles USING GIN (search_vector)",
)

# v2: the filters `articles list/count/export` offer get indexes, and entities a case-folded lookup key
# (backfilled for rows stored under v1) so `--entity putin` finds "Vladimir Putin".
_V2_COMMON = (
    "ALTER TABLE entities ADD COLUMN name_key TEXT",
    "UPDATE entities SET name_key = lower(name)",
    "CREATE INDEX entities_name_key ON entities (name_key)",
    "CREATE INDEX articles_published_at ON articles (published_at)",
    "CREATE INDEX articles_source_domain ON articles (lower(source_domain))",
    "CREATE INDEX articles_language ON articles (language)",
    "CREATE INDEX articles_category ON articles (lower(category))",
    "CREATE INDEX article_entities_entity ON article_entities (entity_id)",
    "CREATE INDEX article_countries_code ON article_countries (country_code)",
    "CREATE INDEX keywords_keyword ON keywords (keyword)",
    "CREATE INDEX near_duplicates_duplicate ON near_duplicates (duplicate_id)",
)

# v3: the read API filters and sorts by receipt time, and finds the exact copies of an article.
_V3_COMMON = (
    "CREATE INDEX articles_received_at ON articles (received_at)",
    "CREATE INDEX articles_duplicate_of ON articles (duplicate_of)",
)

# v4: what clean found on the page (article, brief, results, listing, liveblog), filterable; rows stored before it
# were all articles (clean dead-lettered everything else).
_V4_COMMON = (
    "ALTER TABLE articles ADD COLUMN content_type TEXT NOT NULL DEFAULT 'article'",
    "CREATE INDEX articles_content_type ON articles (content_type)",
)

# v5: the feeds and sitemaps an operator registered for the fetch stage (`newsflow sources add`). What fetch is
# doing with them (polls, failures, conditional-GET validators) lives in Redis, shared by its replicas.
_V5_SOURCES = """CREATE TABLE sources (
        id TEXT PRIMARY KEY,
        url TEXT NOT NULL UNIQUE,
        name TEXT,
        interval_s INTEGER NOT NULL,
        added_at {timestamp} NOT NULL
    )"""

# v6: the read API's newest-first pages walk an index in (publication date, sequence) order, however many
# articles a common word matches (undated articles sort last, as the NULLS LAST of the listings).
_V6_SQLITE = (
    "CREATE INDEX articles_published_key ON articles (coalesce(published_at, ''))",  # + rowid = seq
    # SQLite reads the source filter's sequence numbers from indexes alone (shared/storage/sqlite.py).
    "CREATE INDEX articles_source_name ON articles (lower(source_name))",
)
_V6_POSTGRES = (
    "CREATE INDEX articles_published_key ON articles "
    "((coalesce(published_at, '0001-01-01 00:00:00+00'::timestamptz)), seq)",
    "CREATE INDEX articles_received_key ON articles (received_at, seq)",
    # 64 buckets of the sequence: a facet sample is `mod(seq, 64) < b`, a bitmap ANDed with the text index, so
    # a common word's sample reads 1/k of its matches instead of every one.
    "CREATE INDEX articles_sample_bucket ON articles ((mod(seq, 64)))",
)

# v7: newest revision wins — the time a revision was made (the producer's updated_at, else its receipt; rows stored
# before it count from received_at, read as coalesce(revision_at, received_at), so no row is rewritten). PostgreSQL:
# the search vector is written by the upsert instead of generated, so a very long body is indexed on its first part
# (a tsvector holds at most 1 MB); DROP EXPRESSION keeps every stored vector and its index, without a rewrite.
_V7_SQLITE = ("ALTER TABLE articles ADD COLUMN revision_at TEXT",)
_V7_POSTGRES = (
    "ALTER TABLE articles ADD COLUMN revision_at TIMESTAMPTZ",
    "ALTER TABLE articles ALTER COLUMN search_vector DROP EXPRESSION",
)

MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "articles, entities, mentions, places, countries, keywords, near-duplicates, full-text",
              _SQLITE_V1, _POSTGRES_V1),
    Migration(2, "filter indexes and case-folded entity key", _V2_COMMON, _V2_COMMON),
    Migration(3, "receipt-time and exact-copy indexes for the read API", _V3_COMMON, _V3_COMMON),
    Migration(4, "content type column", _V4_COMMON, _V4_COMMON),
    Migration(5, "sources (feeds and sitemaps the fetch stage polls)",
              (_V5_SOURCES.format(**_SQLITE_TYPES),), (_V5_SOURCES.format(**_POSTGRES_TYPES),)),
    Migration(6, "sort-key indexes for the read API's pages", _V6_SQLITE, _V6_POSTGRES),
    Migration(7, "revision time (newest revision wins); PostgreSQL: search vector written by the upsert",
              _V7_SQLITE, _V7_POSTGRES),
)

LATEST_VERSION = MIGRATIONS[-1].version


def pending(applied: set[int], target: int | None = None) -> list[Migration]:
    """Migrations not yet applied, in order, up to `target` (default: all)."""
    limit = LATEST_VERSION if target is None else target
    return [m for m in MIGRATIONS if m.version not in applied and m.version <= limit]

"""`newsflow articles ...` and `newsflow db migrate` through typer's CliRunner on a real SQLite file."""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
import typer
from typer.testing import CliRunner

from newsflow.cli.articles import articles_app, db_app
from shared.events import ArticleRecord, Place
from shared.storage import LATEST_VERSION, open_storage
from tests.integration.test_storage import entity, make_record

SEED = Path(__file__).resolve().parent.parent / "fixtures" / "seed" / "article-000.txt"
SEED_TITLE = "Sergei Shoigu’s Visit to North Korea: Strengthening Security Ties"

app = typer.Typer()
app.add_typer(articles_app, name="articles")
app.add_typer(db_app, name="db")
runner = CliRunner()


def seed_record() -> ArticleRecord:
    """A record shaped like the seed's: its real title and opening paragraph."""
    paragraphs = [p.strip() for p in SEED.read_text(encoding="utf-8").split("\n\n") if p.strip()]
    body = next(p for p in paragraphs if p.startswith("Sergei Shoigu,"))
    return make_record(
        "seed-000", title=SEED_TITLE, body=body, source_domain="independent.co.uk",
        published_at=datetime(2024, 6, 1, tzinfo=UTC),
        entities=[entity("Sergei Shoigu", "PERSON", body), entity("Kim Jong Un", "PERSON", body),
                  entity("North Korea", "GPE", body)],
        places=[Place(name="North Korea", country_code="KP", country="North Korea")], countries=["KP"],
    )


@pytest.fixture
def storage_url(tmp_path: Path) -> str:
    """A SQLite file holding the seed and two other articles."""
    url = f"sqlite:///{tmp_path}/cli.db"
    records = [
        seed_record(),
        make_record("fr-1", title="Budget vote in Paris", language="fr", source_domain="lemonde.fr",
                    published_at=datetime(2024, 5, 1, tzinfo=UTC)),
        make_record("old-1", title="Harvest report", published_at=datetime(2023, 9, 1, tzinfo=UTC),
                    content_type="results"),
    ]

    async def fill() -> None:
        storage = open_storage(url)
        try:
            await storage.migrate()
            await storage.upsert_articles(records)
        finally:
            await storage.close()

    asyncio.run(fill())
    return url


def invoke(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout


def json_lines(text: str) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in text.splitlines() if line.strip()]


def test_search_finds_the_seed(storage_url: str) -> None:
    hits = json_lines(invoke("articles", "search", "Shoigu", "--json", "--storage-url", storage_url))
    assert [hit["id"] for hit in hits] == ["seed-000"]
    assert "«Shoigu»" in str(hits[0]["snippet"])
    table = invoke("articles", "search", "Shoigu", "--storage-url", storage_url)
    assert "seed-000" in table and "1 hit" in table


def test_list_filters_and_json_lines(storage_url: str) -> None:
    listed = json_lines(invoke("articles", "list", "--json", "--storage-url", storage_url))
    assert [row["id"] for row in listed] == ["seed-000", "fr-1", "old-1"]
    assert listed[0]["title"] == SEED_TITLE
    by_country = json_lines(invoke("articles", "list", "--json", "--country", "North Korea",
                                   "--storage-url", storage_url))
    assert [row["id"] for row in by_country] == ["seed-000"]
    since = json_lines(invoke("articles", "list", "--json", "--since", "2024-01-01", "--lang", "fr",
                              "--storage-url", storage_url))
    assert [row["id"] for row in since] == ["fr-1"]
    assert "seed-000" in invoke("articles", "list", "--limit", "1", "--storage-url", storage_url)


def test_show_prints_the_record_and_fails_for_unknown_ids(storage_url: str) -> None:
    shown = orjson.loads(invoke("articles", "show", "seed-000", "--json", "--storage-url", storage_url))
    assert ArticleRecord.model_validate(shown) == seed_record()
    assert SEED_TITLE in invoke("articles", "show", "seed-000", "--storage-url", storage_url)
    missing = runner.invoke(app, ["articles", "show", "nope", "--storage-url", storage_url])
    assert missing.exit_code == 2
    assert "no article with id nope" in missing.output


def test_count_applies_filters(storage_url: str) -> None:
    assert invoke("articles", "count", "--storage-url", storage_url).strip() == "3"
    assert invoke("articles", "count", "--entity", "kim jong", "--storage-url", storage_url).strip() == "1"
    recent = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
    assert invoke("articles", "count", "--since", recent, "--storage-url", storage_url).strip() == "0"
    assert invoke("articles", "count", "--until", "2024-01-01", "--storage-url", storage_url).strip() == "1"


def test_export_jsonl_and_csv(storage_url: str, tmp_path: Path) -> None:
    exported = json_lines(invoke("articles", "export", "--format", "jsonl", "--storage-url", storage_url))
    # Storage order; one batch is written in id order (so racing writers lock rows alike).
    assert [row["id"] for row in exported] == ["fr-1", "old-1", "seed-000"]
    assert ArticleRecord.model_validate(exported[-1]) == seed_record()

    target = tmp_path / "out" / "articles.csv"
    invoke("articles", "export", "--format", "csv", "--source", "independent.co.uk", "--output", str(target),
           "--storage-url", storage_url)
    rows = list(csv.DictReader(io.StringIO(target.read_text(encoding="utf-8"))))
    assert [row["id"] for row in rows] == ["seed-000"]
    assert rows[0]["title"] == SEED_TITLE
    assert rows[0]["entities"] == "Sergei Shoigu; Kim Jong Un; North Korea"
    assert rows[0]["countries"] == "KP"


def test_list_search_and_show_json_print_the_export_fields(storage_url: str) -> None:
    exported = {row["id"]: row for row in json_lines(invoke("articles", "export", "--storage-url", storage_url))}
    listed = json_lines(invoke("articles", "list", "--json", "--storage-url", storage_url))
    assert [row["id"] for row in listed] == ["seed-000", "fr-1", "old-1"]
    for row in listed:
        assert row == exported[str(row["id"])]  # external_id included, same names, same values
    (hit,) = json_lines(invoke("articles", "search", "Shoigu", "--json", "--storage-url", storage_url))
    assert {k: v for k, v in hit.items() if k not in ("score", "snippet")} == exported["seed-000"]
    shown = orjson.loads(invoke("articles", "show", "seed-000", "--json", "--storage-url", storage_url))
    assert shown == exported["seed-000"]


def test_db_migrate_reports_versions(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/fresh/new.db"
    first = invoke("db", "migrate", "--storage-url", url)
    assert f"schema version {LATEST_VERSION}" in first
    assert (tmp_path / "fresh" / "new.db").exists()
    assert "up to date" in invoke("db", "migrate", "--storage-url", url)


def test_bad_input_exits_with_a_message(tmp_path: Path) -> None:
    bad_url = runner.invoke(app, ["articles", "count", "--storage-url", "mysql://nope"])
    assert bad_url.exit_code == 2 and "unsupported storage URL" in bad_url.output
    bad_date = runner.invoke(app, ["articles", "list", "--since", "yesterday-ish",
                                   "--storage-url", f"sqlite:///{tmp_path}/x.db"])
    assert bad_date.exit_code != 0 and "neither an ISO date" in bad_date.output


def test_content_type_filters_list_count_and_export(storage_url: str) -> None:
    listed = json_lines(invoke("articles", "list", "--json", "--content-type", "results", "--storage-url", storage_url))
    assert [(row["id"], row["content_type"]) for row in listed] == [("old-1", "results")]
    assert invoke("articles", "count", "--content-type", "article", "--storage-url", storage_url).strip() == "2"
    exported = json_lines(invoke("articles", "export", "--content-type", "RESULTS", "--storage-url", storage_url))
    assert [row["id"] for row in exported] == ["old-1"]
    assert "results" in invoke("articles", "list", "--storage-url", storage_url)
    unknown = runner.invoke(app, ["articles", "list", "--content-type", "poem", "--storage-url", storage_url])
    assert unknown.exit_code == 2 and "poem" in unknown.output

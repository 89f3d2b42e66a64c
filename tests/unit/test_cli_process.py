"""`newsflow process`: in-process records with DESIGN.md's field names, in input order, failures reported."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from newsflow.cli import app
from tests.conftest import FIXTURES, SEED

RECORD_FIELDS = {
    "id", "external_id", "url", "origin", "title", "body", "authors", "source_domain", "source_name", "published_at",
    "language", "word_count", "reading_time_s", "summary", "keywords", "sentiment", "category", "entities", "places",
    "near_duplicates", "trace",
}
STORY = "The harbour authority confirmed on Friday that the new ferry terminal will open in June after delays. " * 4


@pytest.fixture
def batch(tmp_path: Path) -> Path:
    html = next((FIXTURES / "news-pages").rglob("*.html")).read_text(encoding="utf-8", errors="replace")
    rows = [
        {"id": "first", "url": "https://example.com/ferry", "text": "Ferry terminal to open in June\n\n" + STORY},
        {"id": "second", "text": "", "html": None},
        {"id": "third", "html": html},
        {"id": "fourth", "text": SEED.read_text()},
    ]
    path = tmp_path / "batch.jsonl"
    path.write_bytes(b"\n".join(orjson.dumps(row) for row in rows) + b"\n")
    return path


def records(output: str) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in output.splitlines() if line.startswith("{")]


def test_process_prints_enriched_records_in_input_order(batch: Path) -> None:
    result = CliRunner().invoke(app, ["process", str(batch)])
    assert result.exit_code == 1  # one input could not be processed
    rows = records(result.stdout)
    assert [r["external_id"] for r in rows] == ["first", "third", "fourth"]
    assert all(r.keys() >= RECORD_FIELDS for r in rows)
    assert rows[0]["url"] == "https://example.com/ferry" and rows[0]["language"] == "en"
    seed = rows[2]
    assert seed["title"] == "Sergei Shoigu’s Visit to North Korea: Strengthening Security Ties"
    assert {e["name"] for e in seed["entities"] if e["label"] == "PERSON"} >= {"Sergei Shoigu", "Kim Jong Un"}  # type: ignore[union-attr, index]
    assert "empty_content" in result.stderr and ":2" in result.stderr


def test_process_stages_clean_stops_before_enrich(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["process", "--stages", "clean", str(SEED)])
    assert result.exit_code == 0
    [row] = records(result.stdout)
    assert row["authors"] == ["Ethan Kim"] and row["source_domain"] == "independent.co.uk"
    assert row["entities"] == [] and row["language"] is None and row["word_count"] is None

"""The clean-stage benchmark: the metric itself, the seeded text set, and a regression floor on the fixtures."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tools.eval.clean import evaluate_all, load_news_pages, references_of, run_clean_eval
from tools.eval.metrics import BodyScore, macro_f1, score_body, shingles
from tools.eval.synthetic import generate_pages

NEWS_PAGES = Path(__file__).parents[1] / "fixtures" / "news-pages"


def test_shingles_are_lowercased_word_4_grams() -> None:
    assert shingles("The cat, the HAT; the bat!") == shingles("the cat the hat the bat")
    assert len(shingles("one two three four five")) == 2
    assert shingles("too short") == {("too", "short"): 1}


def test_score_body_precision_and_recall() -> None:
    reference = "alpha beta gamma delta epsilon zeta eta theta"
    assert score_body(reference, reference) == BodyScore(1.0, 1.0)
    half = score_body("alpha beta gamma delta epsilon", reference)
    assert half.precision == 1.0
    assert half.recall == pytest.approx(2 / 5)
    assert score_body("", reference) == BodyScore(0.0, 0.0)


def test_macro_f1_is_f1_of_the_averages() -> None:
    precision, recall, f1 = macro_f1([BodyScore(1.0, 0.5), BodyScore(0.5, 1.0)])
    assert (precision, recall) == (0.75, 0.75)
    assert f1 == pytest.approx(0.75)


def test_synthetic_text_set_is_deterministic_and_varied() -> None:
    references = references_of(load_news_pages(NEWS_PAGES))
    first = generate_pages(references, seed=7)
    again = generate_pages(references, seed=7)
    other = generate_pages(references, seed=8)
    assert [page.text for page in first] == [page.text for page in again]
    assert [page.text for page in first] != [page.text for page in other]
    features = {feature for page in generate_pages(references, seed=7, variants=6) for feature in page.features}
    assert {"single-breaks", "blank-breaks", "byline0", "byline6"} <= features


def test_quality_floor_on_the_fixture_pages() -> None:
    """A regression guard, not the benchmark: these pages score ~0.99 (HTML) and ~0.99 (text) today."""
    html, text, seed_sized = evaluate_all(NEWS_PAGES, variants=4, speed_rounds=1)
    assert html.documents == 5
    assert html.f1 >= 0.95
    assert html.rejected == 0
    assert text.documents == 20
    assert text.f1 >= 0.97
    assert text.title_accuracy is not None and text.title_accuracy >= 0.9
    assert text.author_accuracy is not None and text.author_accuracy >= 0.85
    assert text.source_accuracy is not None and text.source_accuracy >= 0.9
    # The seed-sized set is the same stories cut to six paragraphs: smaller pages, the same quality floor.
    assert seed_sized.documents == 20 and seed_sized.kilobytes_per_doc < text.kilobytes_per_doc
    assert seed_sized.f1 >= 0.97


def test_run_clean_eval_prints_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_clean_eval(NEWS_PAGES, as_json=True, crossval=False) == 0
    reports = json.loads(capsys.readouterr().out)["sets"]
    assert [report["name"] for report in reports] == ["html", "text (synthetic)", "text (seed-sized)"]
    assert all(0.0 <= report["f1"] <= 1.0 for report in reports)
    assert all(report["docs_per_second"] > 0 and report["kilobytes_per_doc"] > 0 for report in reports)


def test_run_clean_eval_prints_a_table_with_the_speed_against_the_baseline(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_clean_eval(NEWS_PAGES, baseline=True, folds=2) == 0
    out = capsys.readouterr().out
    assert "text (synthetic)" in out and "F1" in out and "html: trafilatura defaults" in out
    assert re.search(r"html speed [\d.]+ pages/cpu-s = [\d.]+× trafilatura defaults", out)
    assert re.search(r"news-pages: 5 pages, \d+ sites .* held out by site, \d folds: mean [\d.]+, worst [\d.]+", out)
    assert "trafilatura defaults: F1" in out


def test_run_clean_eval_on_a_folder_without_index_fails(tmp_path: Path) -> None:
    assert run_clean_eval(tmp_path) == 2

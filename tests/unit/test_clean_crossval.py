"""Cross-validated clean evaluation: folds by site, the tuning fitted without the held-out fold, every dev set."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from services.clean.html import DEFAULT_TUNING, HtmlTuning
from tools.eval.clean import run_clean_eval
from tools.eval.crossval import GoldPage, cross_validate, evaluate_devset, fold_of, load_gold_pages, site_of
from tools.eval.metrics import BodyScore

FIXTURES = Path(__file__).parents[1] / "fixtures"
GOLD = FIXTURES / "news-gold"


def page(page_id: str, site: str) -> GoldPage:
    return GoldPage(page_id, "set", site, "<html></html>", "gold", None, with_title=True)


def test_a_site_never_sits_on_both_sides_of_a_fold() -> None:
    assert site_of("https://www.Example-Times.com/news/a", "x") == site_of("http://example-times.com/b", "y")
    assert site_of(None, "set/page-7") == "set/page-7"
    assert fold_of("example-times.com") == fold_of("example-times.com")
    assert {fold_of(f"site{i}.com") for i in range(50)} == set(range(5))


def test_the_tuning_is_fitted_on_the_other_folds_only() -> None:
    sites = [f"site{i}.com" for i in range(40)]
    pages = [page(f"p{i}", site) for i, site in enumerate(sites)]
    held_fold = fold_of(sites[0])
    # "train-best" wins wherever it is trained; "test-best" is better only on the pages of fold `held_fold`.
    scores = {
        "train-best": [BodyScore(0.9, 0.9) if fold_of(s) != held_fold else BodyScore(0.5, 0.5) for s in sites],
        "test-best": [BodyScore(0.6, 0.6) if fold_of(s) != held_fold else BodyScore(1.0, 1.0) for s in sites],
    }
    results = {result.fold: result for result in cross_validate(pages, scores)}
    assert results[held_fold].chosen == "train-best"
    assert results[held_fold].f1 == pytest.approx(0.5)
    assert sum(result.pages for result in results.values()) == len(pages)


def test_a_devset_is_scored_with_its_headline_cross_validated_and_beside_trafilatura() -> None:
    pages = load_gold_pages(GOLD)
    assert len(pages) == 6 and len({p.site for p in pages}) == 3 and all(p.with_title for p in pages)
    candidates = {"defaults": DEFAULT_TUNING, "no position rules": HtmlTuning(position_rules=False)}
    report = evaluate_devset("news-gold", pages, folds=3, candidates=candidates)
    assert report.pages == 6 and report.sites == 3
    # The unclosed <title> page and the menus, sidebar and footer around every story do not get in the way.
    assert report.f1 >= 0.97 and report.heldout_worst >= 0.95
    assert sum(fold.pages for fold in report.folds) == 6
    assert report.baseline_f1 is not None and report.baseline_pages_per_cpu_s and report.pages_per_cpu_s > 0


def test_every_development_set_under_a_folder_is_evaluated(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_clean_eval(FIXTURES, as_json=True, baseline=False, folds=2) == 0
    output = json.loads(capsys.readouterr().out)
    assert [report["name"] for report in output["sets"]] == ["html", "text (synthetic)", "text (seed-sized)"]
    assert [report["name"] for report in output["crossval"]] == ["news-gold", "news-pages"]
    assert all(0.0 <= report["heldout_worst"] <= report["heldout_mean"] <= 1.0 for report in output["crossval"])

"""The NER benchmark: CoNLL parsing, label folding, scoring, and the printed/JSON report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tools.eval.ner import Scores, fold, read_conll, run_ner_eval

TINY = Path(__file__).resolve().parents[1] / "fixtures" / "ner" / "tiny.conll"


def test_read_conll_splits_documents_and_collects_gold_pairs() -> None:
    first, second = read_conll(TINY)
    assert first.text.splitlines()[0] == "SOCCER - HARLOW WIN ."
    assert first.gold == {("HARLOW", "ORG"), ("LONDON", "LOC"), ("Anna Lindqvist", "PER"), ("German", "MISC"),
                          ("Paris", "LOC")}
    assert second.gold == {("Acme Corp", "ORG"), ("New York", "LOC")}


def test_fold_maps_ontonotes_onto_conll() -> None:
    assert [fold(x) for x in ("PERSON", "GPE", "FAC", "NORP", "LAW", "ORG", "DATE")] == [
        "PER", "LOC", "LOC", "MISC", "MISC", "ORG", None,
    ]


def test_scores_count_type_confusions_as_both_errors() -> None:
    scores = Scores()
    scores.add({("Paris", "LOC"), ("Acme", "PER")}, {("Paris", "LOC"), ("Acme", "ORG")})
    assert scores.prf("LOC") == (1.0, 1.0, 1.0)
    assert scores.prf("PER") == (0.0, 0.0, 0.0)
    precision, recall, f1 = scores.prf()
    assert precision == recall == f1 == 0.5


def test_run_ner_eval_reports_both_systems_as_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_ner_eval(TINY, as_json=True) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["documents"] == 2 and report["gold_entities"] == 7
    for system in ("bare", "news"):
        assert set(report[system]) == {"overall", "PER", "LOC", "ORG", "MISC"}
        assert 0 <= report[system]["overall"]["f1"] <= 1
    # The news pipeline reads the ALL-CAPS dateline and the person at least as well as the bare model.
    assert report["news"]["overall"]["f1"] >= report["bare"]["overall"]["f1"]
    assert report["news"]["PER"]["recall"] == 1.0


def test_run_ner_eval_rejects_a_missing_file(tmp_path: Path) -> None:
    assert run_ner_eval(tmp_path / "absent.txt") == 2

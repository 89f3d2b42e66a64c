"""Enrich's NER pass (services/enrich/ner.py) gives spaCy's own entities, and enrich's entities stay pinned."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from services.enrich.enricher import Enricher, load_spacy
from services.enrich.ner import limit_blas_threads
from shared.events import EnrichSection
from shared.settings import Settings
from tests.unit.test_enrich_entities import make_article, seed_article

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
CATEGORIES = FIXTURES / "enrich" / "categories.json"
GOLDEN = FIXTURES / "enrich" / "entities-golden.json"
# Texts of other kinds: wire copy with datelines, shouted and Title Case headlines, blog and magazine pages.
TEXT_FILES = sorted(p for p in FIXTURES.rglob("*.txt") if "news-pages" in p.parts or "clean" in p.parts)


@pytest.fixture(scope="module")
def enricher() -> Iterator[Enricher]:
    yield Enricher(Settings())


def golden_articles() -> list[tuple[str, str, str]]:
    """(id, title, body) of the pinned articles: the category set and the seed."""
    items = json.loads(CATEGORIES.read_text(encoding="utf-8"))
    seed = seed_article()
    return [(f"categories-{n}", i["title"], i["body"]) for n, i in enumerate(items)] + [
        ("seed", seed.clean.title, seed.clean.body)
    ]


def entity_rows(section: EnrichSection) -> list[dict[str, Any]]:
    return [
        {"name": e.name, "label": e.label, "mentions": [[m.field, m.start, m.end] for m in e.mentions]}
        for e in section.entities
    ]


def test_entities_and_sentences_are_those_of_spacy_own_pipe(enricher: Enricher) -> None:
    """The stepped decoder on numpy's matrix products against spaCy's nlp.pipe on a fresh copy of the model."""
    texts = [t for _, title, body in golden_articles() for t in (title, body)]
    texts += [p.read_text(encoding="utf-8") for p in TEXT_FILES]
    texts += ["", "   ", "LEICESTERSHIRE TAKE OVER AT TOP AFTER INNINGS WIN", "MOSCOW 1996-08-30"]
    stock = load_spacy(enricher.settings.spacy_model)
    expected = list(stock.pipe(texts, batch_size=8))
    # An odd batch size too: states finish at different steps.
    for batch_size in (8, 3):
        docs = enricher.recognise(texts, batch_size=batch_size)
        assert [[(e.start_char, e.end_char, e.label_) for e in d.ents] for d in docs] == [
            [(e.start_char, e.end_char, e.label_) for e in d.ents] for d in expected
        ]
        assert [[s.start_char for s in d.sents] for d in docs] == [[s.start_char for s in d.sents] for d in expected]
    assert sum(len(d.ents) for d in expected) > 300  # the texts hold entities enough to tell


def test_entities_are_pinned(enricher: Enricher) -> None:
    """Every entity of the pinned articles, with its label and mentions (NEWSFLOW_WRITE_GOLDEN=1 rewrites)."""
    articles = golden_articles()
    sections = enricher.enrich_batch([make_article(title, body, id_) for id_, title, body in articles])
    found = {id_: entity_rows(section) for (id_, _, _), section in zip(articles, sections, strict=True)}
    if os.environ.get("NEWSFLOW_WRITE_GOLDEN") == "1":
        GOLDEN.write_text(json.dumps(found, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    assert found == json.loads(GOLDEN.read_text(encoding="utf-8"))


def test_blas_is_held_to_one_thread() -> None:
    assert limit_blas_threads(1)

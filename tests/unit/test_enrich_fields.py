"""Enrich fields other than entities: category, keywords, summary, sentiment, language, places, odd input."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from services.enrich.category import CATEGORIES, classify
from services.enrich.enricher import Enricher
from services.enrich.gazetteer import gazetteer
from services.enrich.keywords import align_to_names, deduplicate_phrases
from services.enrich.places import resolve_places
from services.enrich.sentiment import sentiment_label
from services.enrich.summary import summarise
from shared.events import CleanedArticle, CleanSection, Entity, IngestSection, Mention
from shared.settings import Settings

CATEGORY_ARTICLES: list[dict[str, Any]] = json.loads(
    (Path(__file__).resolve().parents[1] / "fixtures" / "enrich" / "categories.json").read_text(encoding="utf-8")
)
STOP_WORDS = frozenset("the a an of to in and or is was were be on at for with by as it its that this".split())


def make_article(title: str, body: str, article_id: str = "a1") -> CleanedArticle:
    """A CleanedArticle built by hand."""
    return CleanedArticle(
        id=article_id,
        ingest=IngestSection(
            origin="test", received_at=datetime.now(UTC), content_hash="h", kind="text", content=body
        ),
        clean=CleanSection(title=title, body=body, extractor="test"),
    )


@pytest.fixture(scope="module")
def enricher() -> Iterator[Enricher]:
    yield Enricher(Settings())


@pytest.mark.parametrize("article", CATEGORY_ARTICLES, ids=[a["category"] for a in CATEGORY_ARTICLES])
def test_category_of_hand_written_articles(article: dict[str, Any]) -> None:
    category, score = classify(article["title"], article["body"])
    assert category == article["category"]
    assert 0 < score <= 1


def test_category_scheme_and_no_evidence() -> None:
    assert {a["category"] for a in CATEGORY_ARTICLES} == set(CATEGORIES)
    assert classify("", "Xylo quorp blent.") == (None, 0.0)


def test_category_share_is_lower_for_a_mixed_article() -> None:
    sport = CATEGORY_ARTICLES[0]
    business = CATEGORY_ARTICLES[1]
    _, pure = classify(sport["title"], sport["body"])
    _, mixed = classify(sport["title"], sport["body"] + "\n\n" + business["body"])
    assert mixed < pure


def test_enrich_batch_keeps_order_and_fills_every_field(enricher: Enricher) -> None:
    articles = [make_article(a["title"], a["body"], f"id{i}") for i, a in enumerate(CATEGORY_ARTICLES[:4])]
    sections = enricher.enrich_batch(articles)
    assert [s.category for s in sections] == [a["category"] for a in CATEGORY_ARTICLES[:4]]
    for article, section in zip(articles, sections, strict=True):
        words = len(article.clean.body.split())
        assert section.word_count == words
        assert section.reading_time_s == math.ceil(words * 60 / Settings().words_per_minute)
        assert section.language == "en" and section.language_confidence is not None
        assert 5 <= len(section.keywords) <= 10
        assert section.summary[:40] in article.clean.body and len(section.summary) < len(article.clean.body)
        assert section.sentiment_label in {"positive", "negative", "neutral"}
        assert section.near_duplicates == [] and section.duplicate_of is None


def test_sentiment_tells_good_news_from_bad(enricher: Enricher) -> None:
    good = make_article(
        "Village celebrates as new library opens",
        "Residents were delighted on Saturday as the new library opened. Children loved the bright rooms "
        "and the friendly staff, and the mayor praised the wonderful volunteers who made it happen. "
        "Everyone agreed it was a great success and a happy day for the village.",
    )
    bad = make_article(
        "Deadly crash leaves families grieving",
        "A terrible crash killed four people on Sunday and left many more badly injured. Families described "
        "their grief and anger, and witnesses said the scene was horrific. Police warned that the road "
        "remained dangerous and blamed reckless driving for the tragedy.",
    )
    good_section, bad_section = enricher.enrich_batch([good, bad])
    assert good_section.sentiment_label == "positive" and (good_section.sentiment or 0) > 0.3
    assert bad_section.sentiment_label == "negative" and (bad_section.sentiment or 0) < -0.3
    assert sentiment_label(0.0) == "neutral"


def test_non_english_article_gets_neutral_fields_and_reasons(enricher: Enricher) -> None:
    body = (
        "Die Bundesregierung hat am Mittwoch ein neues Klimaschutzgesetz beschlossen. Nach dem Entwurf sollen "
        "die Emissionen bis 2030 deutlich sinken. Umweltverbände begrüßten den Beschluss, kritisierten aber, "
        "dass der Verkehrssektor zu wenig beitragen müsse. Die Opposition kündigte Widerstand im Bundestag an. "
        "Der Bundesrat soll im Herbst über das Gesetz beraten, bevor es Anfang nächsten Jahres in Kraft tritt."
    )
    section = enricher.enrich_batch([make_article("Kabinett beschließt Klimaschutzgesetz", body)])[0]
    assert section.language == "de"
    assert section.entities == [] and "ner" in section.skipped and "'de'" in section.skipped["ner"]
    assert "sentiment" in section.skipped and section.sentiment is None
    assert section.word_count == len(body.split())
    assert section.summary and section.keywords
    assert all(k.lower() not in {"der", "die", "das"} for k in section.keywords)


def test_odd_input_never_raises(enricher: Enricher) -> None:
    empty = make_article("", "")
    tiny = make_article("Hi", "Ok.")
    huge_body = "\n\n".join(CATEGORY_ARTICLES[i % 10]["body"] for i in range(1200))
    huge = make_article("Everything at once", huge_body)
    symbols = make_article("$$$", "### *** 123 456 --- ??? !!! 789 ... ;;; ::: ___ ++++ ====")
    sections = enricher.enrich_batch([empty, tiny, huge, symbols])
    assert sections[0].word_count == 0 and sections[0].reading_time_s == 0 and sections[0].entities == []
    assert "language" in sections[0].skipped
    assert sections[1].word_count == 1
    assert sections[2].word_count == len(huge_body.split())
    assert "ner_tail" in sections[2].skipped and sections[2].entities
    assert sections[3].entities == []


def test_keywords_are_deduplicated_and_aligned_to_names() -> None:
    ranked = ["North Korea", "North Korean", "Kim Jong", "Jong Un amid", "troops", "troop deployments",
              "amid escalating security", "escalating security ties", "Ukraine conflict", "Russia"]
    aligned = align_to_names(ranked, ["Kim Jong Un", "North Korea"])
    assert "Kim Jong Un" in aligned and "Jong Un amid" not in aligned
    kept = deduplicate_phrases(aligned, 10)
    assert kept == ["North Korea", "Kim Jong Un", "troops", "escalating security ties", "Ukraine conflict", "Russia"]


def test_summary_skips_a_restated_lede() -> None:
    sentences = [
        "The city council approved a new budget for schools and roads on Monday after a long debate.",
        "Teachers welcomed the extra money for schools, which will pay for new classrooms and books.",
        "Road repairs will start in spring and last until the end of the year, officials said.",
        "The weather was mild.",
        "On Monday the city council approved the new budget for roads and schools after a long debate.",
    ]
    summary = summarise(sentences, STOP_WORDS)
    assert summary.startswith("The city council approved")
    assert "On Monday the city council" not in summary
    assert summary.count(".") == 3


def test_places_rank_countries_by_prominence() -> None:
    def entity(name: str, label: str, fields: list[str]) -> Entity:
        mentions = [Mention(text=name, start=0, end=len(name), field=f) for f in fields]  # type: ignore[arg-type]
        return Entity(name=name, label=label, mentions=mentions)

    entities = [
        entity("Lagos", "GPE", ["body"]),
        entity("Japan", "GPE", ["title", "body", "body"]),
        entity("Osaka", "GPE", ["body"]),
        entity("Nigerian", "NORP", ["body"]),
        entity("Atlantis", "GPE", ["body"]),
        entity("Acme", "ORG", ["body"]),
    ]
    places, countries = resolve_places(entities, gazetteer())
    by_name = {p.name: p for p in places}
    assert countries == ["JP", "NG"]
    assert by_name["Osaka"].country_code == "JP" and by_name["Osaka"].latitude is not None
    assert by_name["Japan"].country == "Japan" and by_name["Japan"].mentions == 3
    assert by_name["Atlantis"].country_code is None
    assert "Acme" not in by_name

"""Entities made right for news: the seed article, and hand-written articles for each rule."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.enrich.casing import SENTENCE_END, WORD, build_evidence, ends_sentence, is_shouted, restore_case
from services.enrich.enricher import Enricher
from shared.events import CleanedArticle, CleanSection, EnrichSection, IngestSection
from shared.settings import Settings

SEED = Path(__file__).resolve().parents[1] / "fixtures" / "seed" / "article-000.txt"


def make_article(title: str, body: str, article_id: str = "a1") -> CleanedArticle:
    """A CleanedArticle built by hand (the clean stage is not under test here)."""
    return CleanedArticle(
        id=article_id,
        ingest=IngestSection(
            origin="test",
            received_at=datetime.now(UTC),
            content_hash=f"hash-{article_id}",
            kind="text",
            content=f"{title}\n\n{body}",
        ),
        clean=CleanSection(title=title, body=body, extractor="test"),
    )


def seed_article() -> CleanedArticle:
    """The seed as clean would leave it: no chrome, no title line, no source line, no author bio."""
    paragraphs = [p.strip() for p in SEED.read_text(encoding="utf-8").split("\n\n") if p.strip()]
    title = paragraphs[1]
    body_paragraphs = [
        p
        for p in paragraphs[2:]
        if not p.startswith(("Original Source", "Ethan Kim is", "Post Comment", "Loading Now"))
    ]
    return make_article(title, "\n\n".join(body_paragraphs), "seed")


@pytest.fixture(scope="module")
def enricher() -> Iterator[Enricher]:
    yield Enricher(Settings())


@pytest.fixture(scope="module")
def seed(enricher: Enricher) -> EnrichSection:
    return enricher.enrich_batch([seed_article()])[0]


def names_with(section: EnrichSection, label: str) -> set[str]:
    return {e.name for e in section.entities if e.label == label}


def test_seed_people_are_exactly_the_three(seed: EnrichSection) -> None:
    assert names_with(seed, "PERSON") == {"Sergei Shoigu", "Kim Jong Un", "Vladimir Putin"}


def test_seed_short_forms_and_possessives_join_the_full_name(seed: EnrichSection) -> None:
    by_name = {e.name: e for e in seed.entities}
    putin = {m.text for m in by_name["Vladimir Putin"].mentions}
    shoigu = {m.text for m in by_name["Sergei Shoigu"].mentions}
    assert "Putin" in putin  # "President Putin"
    assert "Shoigu" in shoigu  # "Shoigu’s arrival"
    assert not any("’" in text or "'" in text for text in putin | shoigu)
    assert {m.field for m in by_name["Sergei Shoigu"].mentions} == {"title", "body"}


def test_seed_mentions_index_their_field(seed: EnrichSection) -> None:
    article = seed_article()
    for entity in seed.entities:
        for mention in entity.mentions:
            text = article.clean.title if mention.field == "title" else article.clean.body
            assert text[mention.start : mention.end] == mention.text


def test_seed_places_resolve_to_countries(seed: EnrichSection) -> None:
    places = {p.name: p.country_code for p in seed.places}
    assert places["North Korea"] == "KP"
    assert places["Russia"] == "RU"
    assert places["Ukraine"] == "UA"
    assert places["Kursk"] == "RU"  # spaCy alone calls it a PRODUCT
    assert places["Pyongyang"] == "KP"
    assert places["Moscow"] == "RU"
    assert seed.countries[:2] in (["KP", "RU"], ["RU", "KP"])
    assert "Kursk" in names_with(seed, "GPE")


def test_seed_organisations_and_topic(seed: EnrichSection) -> None:
    assert {"TASS", "Security Council"} <= names_with(seed, "ORG")
    assert seed.category in {"conflict/war/defence", "politics"}
    assert not any("Visit" in e.name or "Ties" in e.name for e in seed.entities)


def test_titles_and_honorifics_fold_into_one_person(enricher: Enricher) -> None:
    body = (
        "Prime Minister Anna Lindqvist met union leaders on Monday. Ms. Lindqvist said the talks were useful. "
        "Later, Lindqvist's spokesman said a deal was close, and Dr. Omar Haddad, who chairs the union, agreed.\n\n"
        "Haddad told reporters the strike would end if Lindqvist kept her promise."
    )
    section = enricher.enrich_batch([make_article("Talks on strike make progress", body)])[0]
    people = {e.name: e for e in section.entities if e.label == "PERSON"}
    assert set(people) == {"Anna Lindqvist", "Omar Haddad"}
    assert len(people["Anna Lindqvist"].mentions) == 4
    assert len(people["Omar Haddad"].mentions) == 2


def test_ambiguous_short_form_is_not_linked(enricher: Enricher) -> None:
    body = (
        "John Walker and Mary Walker both ran for the council seat in Leeds. "
        "Walker won by a narrow margin, according to officials who counted the votes overnight."
    )
    section = enricher.enrich_batch([make_article("Council seat decided", body)])[0]
    people = {e.name for e in section.entities if e.label == "PERSON"}
    assert {"John Walker", "Mary Walker"} <= people
    for entity in section.entities:
        if entity.name in {"John Walker", "Mary Walker"}:
            assert all(m.text != "Walker" for m in entity.mentions)


def test_all_caps_headline_is_read_with_restored_case(enricher: Enricher) -> None:
    title = "FLOODS HIT GERMANY AS RHINE BURSTS ITS BANKS NEAR COLOGNE"
    body = (
        "Floods hit western Germany on Tuesday after the Rhine burst its banks near Cologne, forcing "
        "thousands of residents from their homes. Officials in Cologne said the water was still rising."
    )
    section = enricher.enrich_batch([make_article(title, body)])[0]
    title_mentions = {(m.text, e.label) for e in section.entities for m in e.mentions if m.field == "title"}
    assert ("GERMANY", "GPE") in title_mentions
    assert ("COLOGNE", "GPE") in title_mentions
    for entity in section.entities:
        for mention in entity.mentions:
            if mention.field == "title":
                assert title[mention.start : mention.end] == mention.text
    assert not any(e.name.isupper() and len(e.name) > 4 for e in section.entities)


def test_case_restoration_keeps_offsets_and_uses_the_article_as_evidence() -> None:
    body = "The Rhine rose overnight. Residents of Cologne were told to leave their homes."
    title = "RHINE FLOODS FORCE RESIDENTS OF COLOGNE FROM THEIR HOMES"
    evidence = build_evidence([body])
    common = frozenset({"floods", "force", "residents", "from"})
    restored = restore_case(title, evidence, lambda w: w.lower() == "cologne", common)
    assert len(restored) == len(title)
    assert is_shouted(title) and not is_shouted(restored)
    assert restored.startswith("Rhine floods force residents of Cologne")


def test_dateline_is_restored(enricher: Enricher) -> None:
    body = "MOSCOW, March 3 - Officials in Moscow said the new metro line would open next year, ahead of plan."
    section = enricher.enrich_batch([make_article("Metro line to open early", body)])[0]
    moscow = next(e for e in section.entities if e.name == "Moscow")
    assert moscow.label == "GPE"
    assert {m.text for m in moscow.mentions} == {"MOSCOW", "Moscow"}


def test_organisation_cues_and_gazetteer_places(enricher: Enricher) -> None:
    body = (
        "Shares of Norbridge Holdings fell after the company said its plant near Kursk would close. "
        "Analysts at Fenwick Capital Group said Norbridge Holdings had few options. "
        "The firm also has offices in Pyongyang and Lagos."
    )
    section = enricher.enrich_batch([make_article("Plant to close", body)])[0]
    labels = {e.name: e.label for e in section.entities}
    assert labels.get("Norbridge Holdings") == "ORG"
    assert labels.get("Fenwick Capital Group") == "ORG"
    places = {p.name: p.country_code for p in section.places}
    assert places.get("Kursk") == "RU"
    assert places.get("Lagos") == "NG"
    assert places.get("Pyongyang") == "KP"


def test_sports_clubs_named_after_towns_are_organisations(enricher: Enricher) -> None:
    body = (
        "Surrey beat Worcestershire by six wickets in the county championship on Friday, while "
        "Wigan 2 Norwich 1 was the only league football result. Surrey's captain scored a century "
        "and the team moved to the top of the table after a match played in London."
    )
    section = enricher.enrich_batch([make_article("Cricket and football results", body)])[0]
    labels = {e.name: e.label for e in section.entities}
    assert section.category == "sport"
    assert labels.get("Surrey") == "ORG"
    assert labels.get("Wigan") == "ORG"
    assert labels.get("London") == "GPE"  # "played in London": the place, not a club


@given(
    st.text(alphabet=st.sampled_from(list("ab.!?:;,'\"’”)( \t\n\r\u00a0\u2028\x1c\u3000")), max_size=12),
    st.integers(0, 14),
)
def test_ends_sentence_reads_as_the_pattern_does(text: str, end: int) -> None:
    assert ends_sentence(text, end) == bool(SENTENCE_END.search(text[:end]))


def _is_shouted_by_letters(line: str) -> bool:
    """is_shouted as first written, letter by letter (the reference for the one that counts in C first)."""
    letters = [ch for ch in line if ch.isalpha()]
    if len(letters) < 4:
        return False
    if len(WORD.findall(line)) < 2 and len(letters) < 12:
        return False
    return sum(1 for ch in letters if ch.isupper()) / len(letters) >= 0.8


@given(st.text(alphabet=st.sampled_from(list("aAbBzZ ÉéßⅧⓐⒶ1-'’.")), max_size=30))
def test_is_shouted_counts_as_letter_by_letter(line: str) -> None:
    assert is_shouted(line) == _is_shouted_by_letters(line)

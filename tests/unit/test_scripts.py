"""Every script: a short news item is kept whole, typed, counted like its English rendering, and its language named."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from services.clean.article import clean_article
from services.clean.lines import count_words, ends_like_sentence, first_sentence, words_of
from services.enrich.language import LanguageIdentifier, script_language
from shared.events import IngestSection

ITEMS: dict[str, dict[str, Any]] = json.loads(
    (Path(__file__).parents[1] / "fixtures" / "scripts" / "news.json").read_text(encoding="utf-8")
)
ITEMS.pop("_about")


@cache
def identifier() -> LanguageIdentifier:
    return LanguageIdentifier()


def ingest(text: str) -> IngestSection:
    return IngestSection(
        origin="test", received_at=datetime(2024, 5, 1, tzinfo=UTC), content_hash="h", kind="text", content=text
    )


@pytest.mark.parametrize("script", sorted(ITEMS))
def test_a_short_item_is_kept_whole_and_typed_brief(script: str) -> None:
    item = ITEMS[script]
    section = clean_article(ingest(f"{item['title']}\n\n{item['body']}"))
    assert (section.title, section.body, section.content_type) == (item["title"], item["body"], "brief")


@pytest.mark.parametrize("script", sorted(ITEMS))
def test_words_count_about_the_same_in_every_script(script: str) -> None:
    english = count_words(ITEMS["english"]["body"])
    assert 0.6 * english <= count_words(ITEMS[script]["body"]) <= 1.5 * english


@pytest.mark.parametrize("script", sorted(ITEMS))
def test_language_is_named_right(script: str) -> None:
    item = ITEMS[script]
    language, confidence = identifier().identify(f"{item['title']}\n{item['body']}")
    assert language == item["language"]
    assert confidence is not None and confidence >= 0.6


@pytest.mark.parametrize("script", ["hindi", "bengali", "amharic", "chinese", "arabic", "urdu"])
def test_each_script_ends_its_sentences_with_its_own_mark(script: str) -> None:
    first = first_sentence(ITEMS[script]["body"])
    assert ends_like_sentence(first) and len(first) < len(ITEMS[script]["body"])


def test_thai_has_no_sentence_mark_and_its_paragraph_is_still_prose() -> None:
    body = ITEMS["thai"]["body"]
    assert not ends_like_sentence(body)
    # The body of a Thai brief and a page of them: prose, not a list of headlines.
    section = clean_article(ingest("\n\n".join([ITEMS["thai"]["title"], body, body.replace("สาม", "สี่")])))
    assert section.content_type == "brief" and len(section.body.split("\n\n")) == 2


def test_combining_marks_stay_inside_their_word() -> None:
    assert words_of("प्रधानमंत्री ने कहा") == ("प्रधानमंत्री", "ने", "कहा")
    assert words_of("นายกรัฐมนตรีกล่าว") == ("นายกรัฐมนตรีกล่าว",)


def test_persian_keeps_its_zero_width_non_joiner() -> None:
    section = clean_article(ingest(f"{ITEMS['persian']['title']}\n\n{ITEMS['persian']['body']}"))
    assert "می\u200cدهد" in section.body


def test_scripts_lingua_does_not_know_are_named_by_their_script() -> None:
    assert script_language(ITEMS["lao"]["body"]) == ("lo", 1.0)
    assert script_language("ኣብ ከተማ ኣስመራ ሓድሽ መገዲ ተኸፊቱ ኣሎ።")[0] == "ti"  # type: ignore[index]
    assert script_language(ITEMS["english"]["body"]) is None


def test_too_little_or_unclear_text_has_no_language_rather_than_a_wrong_one() -> None:
    assert identifier().identify("Breaking news") == (None, None)
    assert identifier().identify(ITEMS["english"]["title"]) == (None, None)
    # Bosnian, Croatian or Serbian: any of the three, so none of them.
    assert identifier().identify("Vlada je danas predstavila novi zakon o radu.") == (None, None)
    # Amharic was named Afrikaans with the confidence of a language lingua does not know.
    assert identifier().identify(ITEMS["amharic"]["body"])[0] == "am"

"""The keyword stage's YAKE port gives the `yake` package's phrases and scores, exactly, on news text."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yake
from yake.data import utils as yake_utils

from services.enrich import keyphrases
from services.enrich.keyphrases import DEDUP_LIMIT, EXCLUDE, KeyphraseScorer
from services.enrich.keywords import CANDIDATES, KEYWORD_WORDS

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def news_texts() -> list[str]:
    """The seed, the category set's bodies and the hand-written pages' bodies: cut as the stage cuts them, and whole."""
    texts = [(FIXTURES / "seed" / "article-000.txt").read_text(encoding="utf-8")]
    texts += [item["body"] for item in json.loads((FIXTURES / "enrich" / "categories.json").read_text("utf-8"))]
    pages = (FIXTURES / "text-holdout" / "pages.jsonl").read_text(encoding="utf-8").splitlines()
    texts += [f"{page['title']}.\n{page['body']}" for page in map(json.loads, pages)]
    return [" ".join(t.split(" ")[:KEYWORD_WORDS]) for t in texts] + texts[:3]


def test_same_phrases_and_scores_as_yake() -> None:
    reference = yake.KeywordExtractor(lan="en", n=3, top=CANDIDATES, dedup_lim=DEDUP_LIMIT)
    port = KeyphraseScorer("en")
    texts = news_texts()
    assert len(texts) > 20
    for text in texts:
        assert port.top(text, CANDIDATES) == reference.extract_keywords(text)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "...",
        "the of and",
        "ACME CORP. SAID 2024 WAS 10,5 % BETTER. U.S. shares, e.g. ACME's, rose 3.4 % on 2024-01-02!",
        "Bank of England raises rates. The Bank of England said the rise of rates was the Bank's call.",
        "very very very good good news news",
    ],
)
def test_odd_text_matches_yake(text: str) -> None:
    reference = yake.KeywordExtractor(lan="en", n=3, top=CANDIDATES, dedup_lim=DEDUP_LIMIT)
    assert KeyphraseScorer("en").top(text, CANDIDATES) == reference.extract_keywords(text)


def test_other_languages_use_yakes_stop_words() -> None:
    text = "Die Bundesregierung hat am Montag neue Regeln für die Energiepreise beschlossen. Die Regeln gelten ab Mai."
    reference = yake.KeywordExtractor(lan="de", n=3, top=CANDIDATES, dedup_lim=DEDUP_LIMIT)
    assert KeyphraseScorer("de").top(text, CANDIDATES) == reference.extract_keywords(text)


def test_the_tokens_tags_and_stop_words_are_yakes() -> None:
    for text in [*news_texts(), "ACME CORP. SAID 2024 WAS 10,5 % BETTER.\nU.S. shares, e.g. ACME's, rose\t3.4 %!"]:
        filtered = keyphrases.pre_filter(text)
        assert filtered == yake_utils.pre_filter(text)
        sentences = keyphrases.tokenize_sentences(filtered)
        assert sentences == yake_utils.tokenize_sentences(filtered)
        for sentence in sentences:
            for position, word in enumerate(sentence):
                assert keyphrases.get_tag(word, position, EXCLUDE) == yake_utils.get_tag(word, position, EXCLUDE)
    for language in ("en", "de", "pt", "zh", "xx"):  # xx: no list of its own, the language-neutral one
        assert keyphrases.stopwords_of(language) == yake.KeywordExtractor(lan=language).stopword_set


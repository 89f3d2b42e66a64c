"""Key phrases with YAKE, then deduplicated against each other (no "North Korea" beside "North Korean")."""

from __future__ import annotations

import re
from collections.abc import Sequence

from services.enrich.keyphrases import KeyphraseScorer

MIN_KEYWORDS, MAX_KEYWORDS = 5, 10
# YAKE's cost grows faster than the text; news puts its subject in the first paragraphs (inverted pyramid),
# so phrases are drawn from the title and the first words of the body (measured: 18 ms -> 11 ms per article).
KEYWORD_WORDS = 300
CANDIDATES = 30
# Words a key phrase should not start or end with (YAKE's stop lists miss some news connectives).
EDGE_WORDS = frozenset("amid amidst among despite during including via per after before since while".split())
WORD = re.compile(r"[^\W_]+", re.UNICODE)


class KeywordExtractor:
    """YAKE scorers, one per language, built on first use."""

    def __init__(self) -> None:
        self._scorers: dict[str, KeyphraseScorer] = {}

    def extract(self, text: str, language: str = "en", entity_names: Sequence[str] = ()) -> list[str]:
        """5-10 deduplicated key phrases of `text` (fewer only when the text has fewer).

        With `entity_names`, a phrase that is part of a name becomes the name ("Kim Jong" -> "Kim Jong Un")
        and a phrase that cuts through a name ("Jong Un amid") is dropped.
        """
        scorer = self._scorers.get(language)
        if scorer is None:
            scorer = self._scorers[language] = KeyphraseScorer(language)
        words = text.split(" ")
        if len(words) > KEYWORD_WORDS:
            text = " ".join(words[:KEYWORD_WORDS])
        ranked = [phrase for phrase, _ in scorer.top(text, CANDIDATES)]
        return deduplicate_phrases(align_to_names(ranked, entity_names), MAX_KEYWORDS)


def align_to_names(ranked: Sequence[str], entity_names: Sequence[str]) -> list[str]:
    """Complete phrases that are part of a multi-word name; drop phrases that straddle a name's edge."""
    names = [(name, [w.lower() for w in WORD.findall(name)]) for name in entity_names]
    names = [(name, words) for name, words in names if len(words) > 1]
    aligned: list[str] = []
    for phrase in ranked:
        words = [w.lower() for w in WORD.findall(phrase)]
        replacement: str | None = phrase
        for name, name_words in names:
            if _contains(name_words, words) and len(words) < len(name_words):
                replacement = name
                break
            if _straddles(words, name_words):
                replacement = None
                break
        if replacement is not None:
            aligned.append(replacement)
    return aligned


def _contains(outer: Sequence[str], inner: Sequence[str]) -> bool:
    size = len(inner)
    return size > 0 and any(list(outer[i : i + size]) == list(inner) for i in range(len(outer) - size + 1))


def _straddles(phrase: Sequence[str], name: Sequence[str]) -> bool:
    """The phrase shares a proper prefix or suffix of the name with its own edge ("jong un amid")."""
    for size in range(1, min(len(phrase), len(name))):
        edge_shared = list(phrase[:size]) == list(name[-size:]) or list(phrase[-size:]) == list(name[:size])
        if edge_shared and not _contains(phrase, name):
            return True
    return False


def deduplicate_phrases(ranked: Sequence[str], limit: int) -> list[str]:
    """Keep phrases in rank order, dropping any that repeats, contains or is contained in a kept one."""
    kept: list[str] = []
    kept_stems: list[tuple[str, ...]] = []
    for phrase in ranked:
        words = [w.lower() for w in WORD.findall(phrase.replace("’", "'"))]
        words = [w for w in words if w != "s"]
        if not words or all(w.isdigit() for w in words) or words[0] in EDGE_WORDS or words[-1] in EDGE_WORDS:
            continue
        stems = tuple(words)
        if any(_overlaps(stems, other) for other in kept_stems):
            continue
        kept.append(phrase.replace("’s", "").replace("'s", "").strip())
        kept_stems.append(stems)
        if len(kept) == limit:
            break
    return kept


def _overlaps(a: tuple[str, ...], b: tuple[str, ...]) -> bool:
    """One phrase is a contiguous part of the other, or they share most words, word forms aside."""
    short, long_ = (a, b) if len(a) <= len(b) else (b, a)
    shared = sum(1 for x in short if any(_same_word(x, y) for y in long_))
    if len(short) > 1 and shared * 2 >= len(short) + 1:
        return True
    return any(
        all(_same_word(x, y) for x, y in zip(short, long_[i : i + len(short)], strict=True))
        for i in range(len(long_) - len(short) + 1)
    )


def _same_word(a: str, b: str) -> bool:
    """Inflections and derivations of one word: "korea"/"korean", "troop"/"troops", "deploy"/"deployment"."""
    if a == b:
        return True
    short, long_ = (a, b) if len(a) <= len(b) else (b, a)
    return len(short) >= 4 and long_.startswith(short[: max(4, len(short) - 1)]) and len(long_) - len(short) <= 4

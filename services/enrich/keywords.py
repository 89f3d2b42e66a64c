"""Key phrases with YAKE, then deduplicated against each other (no "North Korea" beside "North Korean")."""

from __future__ import annotations

import re
from collections.abc import Sequence

import yake

MIN_KEYWORDS, MAX_KEYWORDS = 5, 10
CANDIDATES = 30
WORD = re.compile(r"[^\W_]+", re.UNICODE)


class KeywordExtractor:
    """YAKE extractors, one per language, built on first use."""

    def __init__(self) -> None:
        self._extractors: dict[str, yake.KeywordExtractor] = {}

    def extract(self, text: str, language: str = "en") -> list[str]:
        """5-10 deduplicated key phrases of `text` (fewer only when the text has fewer)."""
        extractor = self._extractors.get(language)
        if extractor is None:
            extractor = yake.KeywordExtractor(lan=language, n=3, top=CANDIDATES, dedupLim=0.8)
            self._extractors[language] = extractor
        ranked = [phrase for phrase, _ in extractor.extract_keywords(text)]
        return deduplicate_phrases(ranked, MAX_KEYWORDS)


def deduplicate_phrases(ranked: Sequence[str], limit: int) -> list[str]:
    """Keep phrases in rank order, dropping any that repeats, contains or is contained in a kept one."""
    kept: list[str] = []
    kept_stems: list[tuple[str, ...]] = []
    for phrase in ranked:
        words = [w.lower() for w in WORD.findall(phrase.replace("’", "'"))]
        words = [w for w in words if w != "s"]
        if not words or all(w.isdigit() for w in words):
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
    """One phrase is a contiguous part of the other, word forms aside."""
    short, long_ = (a, b) if len(a) <= len(b) else (b, a)
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

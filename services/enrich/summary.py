"""Extractive summary: the 2-3 most central sentences of the body, in reading order, no near-repeats."""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence

WORD = re.compile(r"[^\W_]+", re.UNICODE)
# A sentence whose content words are already this much covered by the chosen ones says nothing new
# (news often closes by restating its lede in other words).
NEAR_REPEAT_COVERAGE = 0.45
MIN_WORDS, MAX_WORDS = 6, 70
LEDE_BONUS = 0.3


def summarise(sentences: Sequence[str], stop_words: frozenset[str], max_sentences: int = 3) -> str:
    """Pick up to `max_sentences` sentences by content-word centrality plus a lede bonus."""
    bags = [_content_words(s, stop_words) for s in sentences]
    frequencies = Counter(word for bag in bags for word in set(bag))
    scored: list[tuple[float, int]] = []
    for index, (sentence, bag) in enumerate(zip(sentences, bags, strict=True)):
        length = len(WORD.findall(sentence))
        if not bag or length < MIN_WORDS or length > MAX_WORDS:
            continue
        centrality = sum(frequencies[w] for w in set(bag)) / math.sqrt(length)
        lede = LEDE_BONUS * max(0.0, 1.0 - index / 5)
        scored.append((centrality * (1 + lede), index))
    if not scored:
        # Too short or oddly shaped to choose from: the opening sentences are the best summary there is.
        return " ".join(s.strip() for s in sentences[:max_sentences] if s.strip())
    chosen: list[int] = []
    for _, index in sorted(scored, key=lambda item: (-item[0], item[1])):
        covered = {word for other in chosen for word in bags[other]}
        if _coverage(bags[index], covered) >= NEAR_REPEAT_COVERAGE:
            continue
        chosen.append(index)
        if len(chosen) == max_sentences:
            break
    return " ".join(sentences[i].strip() for i in sorted(chosen))


def _content_words(sentence: str, stop_words: frozenset[str]) -> list[str]:
    return [w for w in (m.group().lower() for m in WORD.finditer(sentence)) if w not in stop_words and len(w) > 2]


def _coverage(words: Sequence[str], covered: set[str]) -> float:
    """Share of a sentence's distinct content words already said."""
    distinct = set(words)
    return len(distinct & covered) / len(distinct) if distinct else 1.0

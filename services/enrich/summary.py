"""Extractive summary: the 2-3 most central sentences of the body, in reading order, no near-repeats."""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence

WORD = re.compile(r"[^\W_]+", re.UNICODE)
NEAR_REPEAT_JACCARD = 0.5
MIN_WORDS, MAX_WORDS = 6, 70
LEDE_BONUS = 0.15


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
    for _, index in sorted(scored, reverse=True):
        if any(_jaccard(bags[index], bags[other]) > NEAR_REPEAT_JACCARD for other in chosen):
            continue
        chosen.append(index)
        if len(chosen) == max_sentences:
            break
    return " ".join(sentences[i].strip() for i in sorted(chosen))


def _content_words(sentence: str, stop_words: frozenset[str]) -> list[str]:
    return [w for w in (m.group().lower() for m in WORD.finditer(sentence)) if w not in stop_words and len(w) > 2]


def _jaccard(a: Sequence[str], b: Sequence[str]) -> float:
    set_a, set_b = set(a), set(b)
    if not set_a or not set_b:
        return 0.0
    return len(set_a & set_b) / len(set_a | set_b)

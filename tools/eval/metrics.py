"""Extraction quality metrics: 4-word shingle precision/recall (the Article Extraction Benchmark's measure)."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

_WORD = re.compile(r"\w+")
SHINGLE_SIZE = 4


def shingles(text: str, size: int = SHINGLE_SIZE) -> Counter[tuple[str, ...]]:
    """Multiset of lowercased `\\w+` token n-grams; texts shorter than `size` give one short shingle."""
    tokens = _WORD.findall(text.lower())
    if len(tokens) < size:
        return Counter([tuple(tokens)]) if tokens else Counter()
    return Counter(tuple(tokens[i : i + size]) for i in range(len(tokens) - size + 1))


@dataclass(frozen=True)
class BodyScore:
    """Precision and recall of one extracted body against its reference."""

    precision: float
    recall: float


def score_body(predicted: str, reference: str) -> BodyScore:
    """Shingle precision/recall of one document (empty vs empty counts as perfect)."""
    pred, ref = shingles(predicted), shingles(reference)
    if not pred and not ref:
        return BodyScore(1.0, 1.0)
    overlap = sum((pred & ref).values())
    precision = overlap / sum(pred.values()) if pred else 0.0
    recall = overlap / sum(ref.values()) if ref else 0.0
    return BodyScore(precision, recall)


def macro_f1(scores: list[BodyScore]) -> tuple[float, float, float]:
    """Macro-averaged precision and recall over documents, and the F1 of those two averages."""
    if not scores:
        return 0.0, 0.0, 0.0
    precision = sum(s.precision for s in scores) / len(scores)
    recall = sum(s.recall for s in scores) / len(scores)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1

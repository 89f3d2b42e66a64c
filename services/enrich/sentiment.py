"""Document tone with VADER: the mean compound score of its sentences, and the label it maps to."""

from __future__ import annotations

from collections.abc import Sequence

from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

# VADER's own recommended thresholds for its compound score.
POSITIVE_AT = 0.05
NEGATIVE_AT = -0.05


class SentimentScorer:
    """VADER analyser, built once (it parses its lexicon at construction)."""

    def __init__(self) -> None:
        self._analyser = SentimentIntensityAnalyzer()

    def score(self, sentences: Sequence[str]) -> tuple[float, str] | None:
        """(compound in -1..1, label) for the sentences, or None when there are none.

        Sentences are scored one by one and averaged: VADER's compound over a whole article saturates
        at +/-1 because it sums every cue word, which would call most long articles "very positive".
        """
        scores = [self._analyser.polarity_scores(s)["compound"] for s in sentences if s.strip()]
        if not scores:
            return None
        compound = round(sum(scores) / len(scores), 4)
        return compound, sentiment_label(compound)


def sentiment_label(compound: float) -> str:
    """positive / negative / neutral for a VADER compound score."""
    if compound >= POSITIVE_AT:
        return "positive"
    if compound <= NEGATIVE_AT:
        return "negative"
    return "neutral"

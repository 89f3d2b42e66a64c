"""Language identification with lingua (offline): ISO 639-1 code and confidence."""

from __future__ import annotations

from lingua import IsoCode639_1, LanguageDetectorBuilder

# Enough text to be sure of a language; scoring the whole of a long article only costs time.
SAMPLE_CHARS = 1200
# The languages news in this pipeline realistically arrives in. Scoring all 75 of lingua's languages costs
# 5x the time for no gain on news text; a language outside the set is reported as its closest neighbour.
NEWS_LANGUAGES = (
    "en de fr es it pt nl ru pl cs sk uk tr ar zh ja ko sv da nb fi ro hu el hi id vi fa he bg hr sr sl lt lv "
    "et ca eu ga cy sq bn ur ta ms tl sw af is"
).split()
MIN_LETTERS = 20


class LanguageIdentifier:
    """One lingua detector per process over the news languages (models load lazily, low-accuracy mode)."""

    def __init__(self) -> None:
        # Low-accuracy mode uses the small n-gram models: articles are long enough for it, and the
        # high-accuracy models for 75 languages would cost several hundred MB of RSS.
        codes = [getattr(IsoCode639_1, code.upper()) for code in NEWS_LANGUAGES]
        self._detector = (
            LanguageDetectorBuilder.from_iso_codes_639_1(*codes).with_low_accuracy_mode().build()
        )

    def identify(self, text: str) -> tuple[str | None, float | None]:
        """(ISO 639-1 code, confidence 0..1) of `text`, or (None, None) when there is too little to tell."""
        sample = text[:SAMPLE_CHARS]
        if sum(1 for ch in sample if ch.isalpha()) < MIN_LETTERS:
            return None, None
        values = self._detector.compute_language_confidence_values(sample)
        if not values:
            return None, None
        best = values[0]
        return best.language.iso_code_639_1.name.lower(), round(float(best.value), 3)

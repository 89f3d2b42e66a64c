"""Language identification with lingua (offline) and, for scripts lingua has no model for, the script itself."""

from __future__ import annotations

from collections import Counter

from lingua import LanguageDetectorBuilder

# Enough text to be sure of a language; scoring the whole of a long article only costs time.
SAMPLE_CHARS = 800
MIN_LETTERS = 20
# lingua's confidences are relative (they sum to 1 over its languages); below this the text sits between close
# relatives (Hindi/Marathi, Bokmål/Nynorsk/Danish, Bosnian/Croatian/Serbian) or in no language lingua knows, and
# the answer is `None` rather than a confident wrong code.
MIN_CONFIDENCE = 0.6
# Languages so close that a short text can be written in any of them ("Vlada je danas predstavila novi zakon"): the
# best of them is named only when it is far ahead of the others.
_CLOSE_RELATIVES = (frozenset({"bs", "hr", "sr"}), frozenset({"nb", "nn", "da"}), frozenset({"id", "ms"}))
MIN_RELATIVE_CONFIDENCE = 0.9
# Scripts lingua has no model for, each written in one language in the news: (first, last code point, ISO 639-1).
_SCRIPT_LANGUAGES = (
    (0x0E80, 0x0EFF, "lo"),
    (0x1780, 0x17FF, "km"),
    (0x1000, 0x109F, "my"),
    (0x0D80, 0x0DFF, "si"),
    (0x0C80, 0x0CFF, "kn"),
    (0x0D00, 0x0D7F, "ml"),
    (0x0B00, 0x0B7F, "or"),
    (0x0F00, 0x0FFF, "bo"),
    (0x1200, 0x139F, "am"),  # Ethiopic: Amharic, or Tigrinya by its spelling (below)
)
# Tigrinya writes a word-initial "a" as ኣ where Amharic writes አ.
_TIGRINYA_A, _AMHARIC_A = "\u12a3", "\u12a0"


def script_language(sample: str) -> tuple[str, float] | None:
    """(code, share of the letters) when most letters are in a script of one language that lingua does not know."""
    letters = [ch for ch in sample if ch.isalpha()]
    if not letters:
        return None
    counts: Counter[str] = Counter()
    for ch in letters:
        point = ord(ch)
        if point < 0x0B00:  # Latin, Greek, Cyrillic, Hebrew, Arabic, Devanagari, Bengali...: lingua's to judge
            continue
        for first, last, code in _SCRIPT_LANGUAGES:
            if first <= point <= last:
                counts[code] += 1
                break
    if not counts:
        return None
    code, count = counts.most_common(1)[0]
    share = count / len(letters)
    if share < MIN_CONFIDENCE:
        return None
    if code == "am" and sample.count(_TIGRINYA_A) > sample.count(_AMHARIC_A):
        code = "ti"
    return code, round(share, 3)


class LanguageIdentifier:
    """One lingua detector per process over all of lingua's 75 languages (models load lazily, low-accuracy mode)."""

    def __init__(self) -> None:
        # Low-accuracy mode uses the small n-gram models: articles are long enough for it, and the high-accuracy
        # models cost several hundred MB of RSS and ~15x the time. A detector restricted to the common news
        # languages was ~3 ms faster per article but named any other language as its nearest neighbour with full
        # confidence (Amharic and Lao as "af", Nynorsk as Bokmål).
        self._detector = LanguageDetectorBuilder.from_all_languages().with_low_accuracy_mode().build()

    def identify(self, text: str) -> tuple[str | None, float | None]:
        """(ISO 639-1 code, confidence 0..1) of `text`, or (None, None) when there is too little to tell or the
        best guess is not clearly ahead."""
        sample = text[:SAMPLE_CHARS]
        if sum(1 for ch in sample if ch.isalpha()) < MIN_LETTERS:
            return None, None
        by_script = script_language(sample)
        if by_script is not None:
            return by_script
        values = self._detector.compute_language_confidence_values(sample)
        if not values or values[0].value < MIN_CONFIDENCE:
            return None, None
        code = values[0].language.iso_code_639_1.name.lower()
        runner_up = values[1].language.iso_code_639_1.name.lower() if len(values) > 1 else None
        if values[0].value < MIN_RELATIVE_CONFIDENCE and any(
            code in group and runner_up in group for group in _CLOSE_RELATIVES
        ):
            return None, None
        return code, round(float(values[0].value), 3)

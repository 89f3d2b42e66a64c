"""Unicode repair for scraped text: mojibake (ftfy), NFC, invisible characters out, typographic quotes kept."""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

import ftfy

# ftfy's defaults would also straighten curly quotes (uncurl_quotes) and expand ligatures; the record is what a
# reader sees, so typographic quotes stay and only real damage is repaired.
_FTFY_CONFIG = ftfy.TextFixerConfig(
    uncurl_quotes=False,
    fix_latin_ligatures=False,
    fix_character_width=False,
    normalization="NFC",
    explain=False,
)

# Zero-width and bidi-control characters carry no meaning in plain article text; ZWJ (U+200D) is kept because it
# joins emoji sequences and Indic conjuncts.
_INVISIBLE = re.compile("[\u200b\u200c\u200e\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff\u00ad]")
# C0/C1 controls except tab and newline (carriage returns are normalised to newlines before this runs).
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_HORIZONTAL_SPACE = re.compile("[ \t\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000]+")
# Only ASCII quotes get turned into apostrophe-insensitive form for matching; see `matching_form`.
_QUOTE_FOLD = str.maketrans({"‘": "'", "’": "'", "‚": "'", "‛": "'", "“": '"', "”": '"', "„": '"', "‟": '"'})

# ftfy dominates the cost of cleaning a long, clean article, so it runs only when the text shows a telltale of
# mojibake; NFC alone is applied otherwise.
# A UTF-8 lead byte read as Latin-1/cp1252 (Â..ï) followed by a continuation byte read the same way.
_MOJIBAKE_HINT = re.compile(
    "[\u00c2-\u00ef][\u0080-\u00bf\u0152\u0153\u0160\u0161\u0178\u017d\u017e\u0192\u02c6\u02dc\u2013"
    "\u2014\u2018-\u201e\u2020-\u2022\u2026\u2030\u2039\u203a\u20ac\u2122]|\ufffd"
)


def repair_text(text: str) -> str:
    """Fix mojibake, normalise to NFC, drop invisible/control characters and collapse horizontal spaces."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if _MOJIBAKE_HINT.search(text):
        # ftfy works line by line anyway; handing it only the damaged lines keeps clean text at NFC cost.
        text = "\n".join(
            ftfy.fix_text(line, _FTFY_CONFIG) if _MOJIBAKE_HINT.search(line) else line for line in text.split("\n")
        )
    text = unicodedata.normalize("NFC", text)
    text = _INVISIBLE.sub("", text)
    text = _CONTROL.sub("", text)
    return _HORIZONTAL_SPACE.sub(" ", text)


@lru_cache(maxsize=1024)
def matching_form(text: str) -> str:
    """A casefolded, quote-folded, whitespace-collapsed form for comparing lines (never shown to readers)."""
    return " ".join(text.translate(_QUOTE_FOLD).casefold().split())

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

# Characters dropped outright: zero-width and bidi-control characters, which carry no meaning in plain article text
# (ZWJ, U+200D, is kept because it joins emoji sequences and Indic conjuncts, and ZWNJ, U+200C, because Persian and
# Indic spelling needs it: "می‌دهد"), and C0/C1 controls except tab and newline (carriage returns are normalised to
# newlines before this runs).
_DROPPED_CHARS = (
    "\u200b\u200e\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff\u00ad\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f"
)
_DROPPED = re.compile(f"[{_DROPPED_CHARS}]")
# Horizontal spaces other than a plain space; runs of horizontal space collapse to one plain space.
_ODD_SPACE_CHARS = "\t\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000"
_HORIZONTAL_SPACE = re.compile(f"[ {_ODD_SPACE_CHARS}]+")
# Text with no odd space and no double space has nothing for `_HORIZONTAL_SPACE` to collapse; checking that first is
# ~5x cheaper than the substitution, which matches every space (48 -> 10 ms per 200 pages of 7 KB).
_ODD_SPACE = re.compile(f"[{_ODD_SPACE_CHARS}]")
# Typographic quotes become ASCII ones in the apostrophe-insensitive form used for matching; see `matching_form`.
_QUOTE_FOLD = (("‘", "'"), ("’", "'"), ("‚", "'"), ("‛", "'"), ("“", '"'), ("”", '"'), ("„", '"'), ("‟", '"'))

# ftfy dominates the cost of cleaning a long, clean article, so it runs only when the text shows a telltale of
# mojibake; NFC alone is applied otherwise.
# A UTF-8 lead byte read as Latin-1/cp1252 (Â..ï) followed by a continuation byte read the same way.
_MOJIBAKE_LEAD_CHARS = "\u00c2-\u00ef"
_MOJIBAKE_HINT = re.compile(
    f"[{_MOJIBAKE_LEAD_CHARS}][\u0080-\u00bf\u0152\u0153\u0160\u0161\u0178\u017d\u017e\u0192\u02c6\u02dc\u2013"
    "\u2014\u2018-\u201e\u2020-\u2022\u2026\u2030\u2039\u203a\u20ac\u2122]|\ufffd"
)
# Every character the repairs start from. Most English pages have none, and one scan for them spares the three
# scans (hint, drop, odd space) that would each find nothing: the seed article's repair takes 40 µs instead of 113.
_REPAIRABLE = re.compile(f"[{_MOJIBAKE_LEAD_CHARS}\ufffd{_DROPPED_CHARS}{_ODD_SPACE_CHARS}]")


def repair_text(text: str) -> str:
    """Fix mojibake, normalise to NFC, drop invisible/control characters and collapse horizontal spaces."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not _REPAIRABLE.search(text):
        # NFC composes letters; it never makes a character to drop or an odd space, so only double spaces remain.
        text = unicodedata.normalize("NFC", text)
        return _HORIZONTAL_SPACE.sub(" ", text) if "  " in text else text
    if _MOJIBAKE_HINT.search(text):
        # ftfy works line by line anyway; handing it only the damaged lines keeps clean text at NFC cost.
        text = "\n".join(
            ftfy.fix_text(line, _FTFY_CONFIG) if _MOJIBAKE_HINT.search(line) else line for line in text.split("\n")
        )
    text = unicodedata.normalize("NFC", text)
    text = _DROPPED.sub("", text)
    if "  " in text or _ODD_SPACE.search(text):
        text = _HORIZONTAL_SPACE.sub(" ", text)
    return text


@lru_cache(maxsize=1024)
def matching_form(text: str) -> str:
    """A casefolded, quote-folded, whitespace-collapsed form for comparing lines (never shown to readers)."""
    # Eight `str.replace` passes, not `str.translate`: translate looks every character of non-ASCII text up in its
    # table, ~20x slower here (97 -> 5 ms over the 8,200 lines of 200 pages).
    for curly, straight in _QUOTE_FOLD:
        text = text.replace(curly, straight)
    return " ".join(text.casefold().split())

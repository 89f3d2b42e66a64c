"""A second extractor's vote on the head of trafilatura's text: readability's article, compared line by line.

trafilatura judges blocks one by one, so short blocks above the story (a repeated headline, a section label, a
"share this" button, a teaser standfirst) often ride along; readability scores whole containers and usually leaves
them out. When the two agree on the story itself, a short line above it that readability does not have at all is
furniture. Measured on the dev set: lines *below* the story were credit lines as often as chrome (no gain), and
readability's own extra lines inside the story were captions and photo credits, so neither is used.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from lxml.html import HtmlElement
from trafilatura.readability_lxml import Document as ReadabilityDocument

from services.clean.htmltext import html_to_text
from services.clean.lines import count_words

_TOKEN = re.compile(r"\w+")
_SHINGLE = 4
# Edge lines are only judged when the two extractors agree on at least this share of the primary text.
_AGREEMENT = 0.85
# A line is missing from the other extractor's text when at most this share of its 4-word shingles occurs there.
_MISSING_SHARE = 0.1


def readability_lines(tree: HtmlElement) -> list[str]:
    """The lines of readability's article (captions, figures and asides excluded); empty when it finds none.

    readability rewrites the tree it is given, so callers pass a tree they no longer need.
    """
    try:
        summary = ReadabilityDocument(tree, min_text_length=25).summary()
    except Exception:
        # readability raises on odd markup (no body, bad encodings); no vote is a safe answer.
        return []
    _, text = html_to_text(summary)
    return [line for line in text.split("\n") if line.strip()]


def _tokens(text: str) -> list[str]:
    return _TOKEN.findall(text.casefold())


def _shingles(tokens: Sequence[str]) -> list[tuple[str, ...]]:
    if len(tokens) < _SHINGLE:
        return [tuple(tokens)] if tokens else []
    return [tuple(tokens[i : i + _SHINGLE]) for i in range(len(tokens) - _SHINGLE + 1)]


def _locate(lines: Sequence[str]) -> tuple[set[tuple[str, ...]], list[str]]:
    """The shingles of the lines, and each line's tokens joined by spaces (for lines too short for a shingle)."""
    shingles: set[tuple[str, ...]] = set()
    joined: list[str] = []
    for line in lines:
        tokens = _tokens(line)
        joined.append(" " + " ".join(tokens) + " ")
        shingles.update(_shingles(tokens))
    return shingles, joined


def _found_share(line: str, shingles: set[tuple[str, ...]], joined: list[str]) -> float:
    """Share of the line's shingles found in the other text (short lines: 1.0 if found whole in one line)."""
    tokens = _tokens(line)
    if not tokens:
        return 0.0
    if len(tokens) < _SHINGLE:
        needle = " " + " ".join(tokens) + " "
        return 1.0 if any(needle in text for text in joined) else 0.0
    own = _shingles(tokens)
    return sum(1 for shingle in own if shingle in shingles) / len(own)


def agreement(primary: Sequence[str], secondary: Sequence[str]) -> float:
    """Share of the primary text (words weighted) that the secondary extractor also found (0.0 to 1.0)."""
    shingles, joined = _locate(secondary)
    total = found = 0.0
    for line in primary:
        weight = max(1, count_words(line))
        total += weight
        found += _found_share(line, shingles, joined) * weight
    return found / total if total else 0.0


def head_lines(paragraphs: Sequence[str], *, max_words: int) -> list[int]:
    """Indexes of the short lines above the story's first long paragraph (what the second extractor judges)."""
    for index, paragraph in enumerate(paragraphs):
        if count_words(paragraph) >= max_words:
            return list(range(index))
    return []


def unconfirmed_lines(primary: Sequence[str], candidates: Sequence[int], secondary: Sequence[str]) -> set[int]:
    """The candidate lines of `primary` that `secondary` does not have at all, provided the two extractors agree on
    the rest of the text (otherwise one of them missed the story and its vote means nothing)."""
    if not candidates or not secondary or agreement(primary, secondary) < _AGREEMENT:
        return set()
    shingles, joined = _locate(secondary)
    return {index for index in candidates if _found_share(primary[index], shingles, joined) <= _MISSING_SHARE}

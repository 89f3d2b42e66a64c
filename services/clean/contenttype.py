"""What a cleaned page is: an article, a brief, a results table, a listing or a liveblog (or a wall with no story)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from services.clean.lines import ends_like_sentence, is_unpunctuated_script, words_of
from shared.events import ContentType

# A news item shorter than this (in words, characters-equivalent in unspaced scripts) is a brief.
BRIEF_WORDS = 100
# A paragraph this long, or this long and ending like a sentence, is running prose.
_PROSE_WORDS = 30
_SENTENCE_WORDS = 8
# Menu items are one to four words ("Home", "World News", "Terms of Use"); a longer line is something to read.
_READABLE_LINE_WORDS = 5
# A line of figures: scores, standings, prices. Most of its tokens carry a digit ("Pohang 3 Ulsan 2", "6-4 6-2",
# "Net loss 1,071 loss 277"), and there are at least two of them.
_FIGURE_TOKEN_SHARE = 0.3
_MIN_FIGURE_TOKENS = 2
_DIGIT_RUN = re.compile(r"\d+")
# Results: at least this many lines of figures, holding at least this share of the body's lines.
_MIN_FIGURE_LINES = 3
_FIGURE_LINE_SHARE = 0.4
# A listing: at least this many headline-shaped lines, and prose under this share of the words.
_MIN_LISTING_LINES = 5
_LISTING_PROSE_SHARE = 0.3
# A liveblog: at least this many entries that open on a time ("10:32", "14.05 BST", "5 min ago").
_MIN_LIVE_ENTRIES = 3
_LIVE_ENTRY = re.compile(
    r"^(?:\d{1,2}[:.]\d{2}\s*(?:[ap]\.?m\.?)?(?:\s+[A-Z]{2,4})?\b|\d{1,3}\s+(?:min(?:ute)?s?|hours?|hrs?)\s+ago\b)",
    re.IGNORECASE,
)
_LIVE_TITLE = re.compile(r"\blive\b|\bas\s+it\s+happened\b|\blatest\s+updates\b|\bminute[-\s]by[-\s]minute\b", re.I)
# The prompt of a login or paywall: what a page says instead of (or after the start of) its story.
_PAYWALL_PROMPT = re.compile(
    r"\b(?:subscribe|sign\s+in|log\s*in|register|become\s+a\s+(?:member|subscriber))\s+(?:now\s+)?to\s+"
    r"(?:continue|keep|read|view|access|unlock|see)|\b(?:this|the)\s+(?:article|story|content)\s+is\s+"
    r"(?:only\s+)?(?:available\s+)?(?:for|to)\s+(?:subscribers|members|premium)|\bsubscribers?[-\s]only\b|"
    r"\byou(?:['’]ve|\s+have)\s+(?:reached|used)\s+(?:your|the)\s+(?:limit|maximum|\d+\s+free)|"
    r"\balready\s+a\s+subscriber\b|\bcontinue\s+reading\s+with\s+a\s+subscription\b",
    re.IGNORECASE,
)
# Words every prompt uses one of: a cheap test before the pattern.
_PAYWALL_CUES = ("subscri", "sign in", "log in", "login", "register", "member", "already a")
# With a prompt, a story this short is only the teaser the wall lets through.
TEASER_WORDS = 150


@dataclass(frozen=True, slots=True)
class PageSignals:
    """What the page declared or showed beyond its text: a schema.org LiveBlogPosting, a paywall."""

    liveblog: bool = False
    paywalled: bool = False


def paywall_prompt(text: str) -> bool:
    """The text asks the reader to subscribe or sign in to read on."""
    lowered = text.lower()
    return any(cue in lowered for cue in _PAYWALL_CUES) and _PAYWALL_PROMPT.search(text) is not None


def is_figure_line(text: str) -> bool:
    """A line mostly of numbers: a score, a row of a table (cells joined by " | "), a price list."""
    if " | " in text:
        text = text.replace(" | ", " ")
    # Runs of digits bound the tokens holding one from above; most prose lines fail on that count alone.
    runs = len(_DIGIT_RUN.findall(text))
    if runs < _MIN_FIGURE_TOKENS or runs < _FIGURE_TOKEN_SHARE * (text.count(" ") + 1):
        return False
    tokens = text.split()
    figures = sum(1 for token in tokens if _DIGIT_RUN.search(token))
    return figures >= _MIN_FIGURE_TOKENS and figures >= _FIGURE_TOKEN_SHARE * len(tokens)


def is_prose(text: str, words: int) -> bool:
    """Running text: long, or a sentence of several words (Thai and Lao sentences carry no end mark)."""
    return words > _PROSE_WORDS or (
        words >= _SENTENCE_WORDS and (ends_like_sentence(text) or is_unpunctuated_script(text))
    )


def has_readable_content(paragraphs: Sequence[str], paragraph_words: Sequence[int]) -> bool:
    """Some prose or figures a person would read; false for a page of menu items ("Home", "Sport", "Sign in")."""
    for paragraph, words in zip(paragraphs, paragraph_words, strict=True):
        if words >= 4 and (ends_like_sentence(paragraph) or is_unpunctuated_script(paragraph)):
            return True
        if words >= _READABLE_LINE_WORDS or any(is_figure_line(line) for line in paragraph.split("\n")):
            return True
    return False


def classify(
    title: str,
    paragraphs: Sequence[str],
    paragraph_words: Sequence[int],
    signals: PageSignals = PageSignals(),
) -> ContentType:
    """The news type of a page that has readable content (`has_readable_content`)."""
    words = sum(paragraph_words)
    lines = [line for paragraph in paragraphs for line in paragraph.split("\n") if line.strip()]
    if signals.liveblog or _is_liveblog(title, lines):
        return "liveblog"
    prose = [is_prose(p, w) for p, w in zip(paragraphs, paragraph_words, strict=True)]
    prose_words = sum(w for w, is_it in zip(paragraph_words, prose, strict=True) if is_it)
    figure_lines = sum(1 for line in lines if is_figure_line(line))
    if figure_lines >= _MIN_FIGURE_LINES and figure_lines >= _FIGURE_LINE_SHARE * len(lines):
        return "results"
    if _is_listing(paragraphs, paragraph_words, prose_words, words):
        return "listing"
    if signals.paywalled and words < TEASER_WORDS:
        return "login_or_paywall"
    return "brief" if words < BRIEF_WORDS else "article"


def _is_liveblog(title: str, lines: Sequence[str]) -> bool:
    entries = sum(1 for line in lines if _LIVE_ENTRY.match(line))
    return entries >= _MIN_LIVE_ENTRIES and (bool(_LIVE_TITLE.search(title)) or entries >= 2 * _MIN_LIVE_ENTRIES)


def _is_listing(paragraphs: Sequence[str], paragraph_words: Sequence[int], prose_words: int, words: int) -> bool:
    """Many headline-like lines and little running prose: an index or section page."""
    headlines = sum(
        1
        for paragraph, count in zip(paragraphs, paragraph_words, strict=True)
        if 3 <= count <= 20 and not ends_like_sentence(paragraph) and len(words_of(paragraph)) <= 20
    )
    return headlines >= _MIN_LISTING_LINES and prose_words < _LISTING_PROSE_SHARE * words

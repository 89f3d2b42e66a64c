"""Link coverage: how much of an extracted paragraph is the text of a link elsewhere on the page.

A language-independent chrome signal: navigation, account prompts, "related stories" headlines and "Read more: …"
teasers are links in every language, while article prose is mostly plain text with a few inline links.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from lxml.html import HtmlElement

_TOKEN = re.compile(r"\w+")

# Anchors longer than this wrap whole teaser cards or, on odd pages, the article itself; they say nothing about
# whether one paragraph is a link.
_MAX_ANCHOR_TOKENS = 40


@dataclass
class PageLinks:
    """The page's link texts, indexed by their first token for a linear scan of each paragraph."""

    by_first_token: dict[str, list[tuple[str, ...]]] = field(default_factory=lambda: defaultdict(list))

    def add(self, text: str) -> None:
        """Record one anchor's visible text."""
        tokens = _tokens(text)
        if not tokens or len(tokens) > _MAX_ANCHOR_TOKENS:
            return
        bucket = self.by_first_token[tokens[0]]
        if tokens not in bucket:
            bucket.append(tokens)


def page_links(tree: HtmlElement, anchors: Iterable[HtmlElement] | None = None) -> PageLinks:
    """Collect the text of every link on the page that leads away from it (in-page `#anchors` are tables of
    contents and footnotes whose targets are part of the article). `anchors` are the page's `<a>` elements when a
    walk already found them."""
    links = PageLinks()
    for anchor in tree.iter("a") if anchors is None else anchors:
        href = (anchor.get("href") or "").strip()
        if not href or href.startswith("#") or href.lower().startswith("javascript:"):
            continue
        text = anchor.text_content()
        if text and not text.isspace():
            links.add(text)
    return links


def link_coverage(paragraph: str, links: PageLinks) -> float:
    """Share of the paragraph's word characters that fall inside a page link's text (0.0 to 1.0)."""
    tokens = _tokens(paragraph)
    if not tokens or not links.by_first_token:
        return 0.0
    covered = [False] * len(tokens)
    for start, token in enumerate(tokens):
        for candidate in links.by_first_token.get(token, ()):
            end = start + len(candidate)
            if end <= len(tokens) and tuple(tokens[start:end]) == candidate:
                for index in range(start, end):
                    covered[index] = True
    total = linked = 0
    for token, is_linked in zip(tokens, covered, strict=True):
        weight = len(token)
        total += weight
        linked += weight if is_linked else 0
    return linked / total if total else 0.0


def _tokens(text: str) -> tuple[str, ...]:
    # Word tokens only: punctuation around a link ("Read more: Headline.") must not break the match.
    return tuple(_TOKEN.findall(text.casefold()))

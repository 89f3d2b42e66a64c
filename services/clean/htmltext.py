"""A tree-free HTML-to-text converter: the fallback when the main extractor returns nothing usable.

It streams tags through the standard library's HTMLParser, so pathological markup (10,000 nested elements,
unclosed tags, junk bytes) costs linear time and no recursion.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

# Content inside these never reaches a reader.
_SKIPPED = frozenset(
    "script style noscript template svg canvas iframe object embed head nav header footer aside form button select "
    "option label menu dialog figure figcaption".split()
)
_BLOCKS = frozenset(
    "p div section article main li ul ol dl dt dd h1 h2 h3 h4 h5 h6 blockquote pre table tr td th br hr title "
    "address details summary".split()
)
# Self-closing elements never get an end tag, so they must not open a skipped region.
_VOID = frozenset("area base br col embed hr img input link meta param source track wbr".split())
_SPACES = re.compile(r"[ \t\r\f\v]+")


class _BlockTextParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skip_depth = 0
        self.title_parts: list[str] = []
        self.in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self.in_title = True
        if tag in _SKIPPED and tag not in _VOID:
            self.skip_depth += 1
        elif tag in _BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self.in_title = False
        if tag in _SKIPPED and tag not in _VOID:
            self.skip_depth = max(0, self.skip_depth - 1)
        elif tag in _BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if self.in_title:
            self.title_parts.append(data)
            return
        if self.skip_depth == 0:
            self.parts.append(data)


def html_to_text(html: str) -> tuple[str | None, str]:
    """(<title> text, visible block text with one line per block) of an HTML document."""
    parser = _BlockTextParser()
    try:
        parser.feed(html)
        parser.close()
    except (AssertionError, ValueError):
        # HTMLParser raises on a few malformed declarations; what was read so far is still usable.
        pass
    lines = (_SPACES.sub(" ", line).strip() for line in "".join(parser.parts).split("\n"))
    title = _SPACES.sub(" ", "".join(parser.title_parts)).strip() or None
    return title, "\n".join(line for line in lines if line)

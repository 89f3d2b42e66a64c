"""Parse a page once into an lxml tree, with trafilatura's repairs but on UTF-8 bytes, and drop inert elements.

trafilatura's `load_html` strips XML-invalid control characters with a regex over the whole page and parses the
Python string; on the dev set's 400 kB pages that cost about 3.2 ms a page. Deleting the same characters from the
UTF-8 bytes (each is a single byte there, never part of a multi-byte sequence) and letting libxml2 read its native
encoding gives the same tree in about half the time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from lxml import etree
from lxml.html import HtmlComment, HtmlElement, HtmlEntity, HTMLParser, HtmlProcessingInstruction, fromstring

# The parser trafilatura uses, so the tree it is handed is the one it would have built itself.
_PARSER = HTMLParser(collect_ids=False, default_doctype=False, encoding="utf-8", remove_comments=True, remove_pis=True)
# lxml.html picks each element's proxy class in a Python callback (FormElement, InputElement, …), which ran about
# 3,000 times a page and cost 7 % of the HTML run time; nothing downstream uses the form classes, so every
# element gets the plain HtmlElement from lxml's C-level lookup.
_PARSER.set_element_class_lookup(
    etree.ElementDefaultClassLookup(
        element=HtmlElement, comment=HtmlComment, pi=HtmlProcessingInstruction, entity=HtmlEntity
    )
)
# C0 controls other than tab, newline and carriage return: libxml2 rejects them.
_CONTROL_BYTES = bytes([*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20)])
# U+FFFE and U+FFFF are not XML characters either.
_NONCHARACTERS = ("\ufffe".encode(), "\uffff".encode())
# libxml2 mis-parses a doctype holding a system URL on the first line (lxml bug 1955915); trafilatura drops it.
_DOCTYPE_WITH_URL = re.compile(rb"^< ?! ?DOCTYPE[^>]*/[^<>]*>", re.IGNORECASE)
_SELF_CLOSING_HTML = re.compile(rb"(<html.*?)\s*/>", re.IGNORECASE)
# Inside these a reader never sees text, and every extractor run after parsing removes them anyway. Asides and
# footers are shown, but trafilatura deletes them in every pass (main extractor, baseline, page-length measure);
# removing them before it copies the tree cut its time by a fifth on the dev set (median of 6 alternating passes,
# 2.25 -> 1.76 CPU-s for 66 pages) and changed one page's text, for the better (lazy-image-2, P 0.979 -> 0.980).
# Navigation, noscript fallbacks and iframes go too: trafilatura's main extractor deletes them, and only its rescue
# passes (which want article text, not menus) would have seen them. Counted with cachegrind over a warm pass of the
# 66 dev pages: 13.5 -> 11.9 billion instructions (-12 %), every extracted page identical. Media elements (picture,
# video, audio, canvas, object, embed) saved nothing more.
_INERT_TAGS = ("style", "svg", "template", "aside", "footer", "nav", "noscript", "iframe")
_INERT_MARK = "newsflow-inert"
_STRUCTURED_DATA = "application/ld+json"
# Where the page declares its metadata (read by htmlmeta).
DECLARATION_TAGS = ("meta", "script", "link", "time", "h1", "h2", "h3", "title")
_DECLARATIONS = frozenset(DECLARATION_TAGS)
# Elements whose own text is code or markup, never shown.
_CODE_TAGS = frozenset(("script", "style", "template", "noscript"))
# Text nodes shorter than this say nothing about where a line of the story sits ("Share", "1").
MIN_TEXT_NODE_CHARS = 8


@dataclass
class PageParts:
    """The elements the clean stage reads, gathered in one walk over the parsed page, in document order."""

    declarations: list[HtmlElement] = field(default_factory=list)
    anchors: list[HtmlElement] = field(default_factory=list)
    scripts: list[HtmlElement] = field(default_factory=list)
    # The body's text nodes of at least MIN_TEXT_NODE_CHARS characters: (text, element, whether it is the
    # element's tail, i.e. shown by the element's parent).
    texts: list[tuple[str, HtmlElement, bool]] = field(default_factory=list)


_TITLE_START = re.compile(r"<title\b[^>]*>", re.IGNORECASE)
_TITLE_END = re.compile(r"</title\s*>", re.IGNORECASE)


def close_unclosed_title(html: str) -> str:
    """A <title> that is never closed ends at its line's end: a browser would take the whole page for the title
    (a truncated or mangled head, seen in crawls and in saved pages), and so do lxml and HTMLParser."""
    start = _TITLE_START.search(html, 0, 100_000)
    if start is None or _TITLE_END.search(html, start.end()) is not None:
        return html
    line_end = html.find("\n", start.end())
    cut = line_end if line_end >= 0 else len(html)
    return html[:cut] + "</title>" + html[cut:]


def parse_html(html: str) -> HtmlElement | None:
    """The page as an lxml tree (None when it is not HTML at all), equal to what trafilatura's loader builds."""
    data = html.encode("utf-8", "surrogatepass").translate(None, _CONTROL_BYTES)
    for noncharacter in _NONCHARACTERS:
        if noncharacter in data:
            data = data.replace(noncharacter, b"")
    beginning = html[:50].lower()
    if "doctype" in beginning:
        first_line, _, rest = data.partition(b"\n")
        data = _DOCTYPE_WITH_URL.sub(b"", first_line, count=1) + b"\n" + rest
    for line in data[:4096].splitlines()[:4]:
        if b"<html" in line and line.endswith(b"/>"):
            data = _SELF_CLOSING_HTML.sub(rb"\1>", data, count=1)
            break
    try:
        tree = fromstring(data, parser=_PARSER)
    except (etree.ParserError, ValueError):
        return None
    # Text without any markup parses into a wrapper of one paragraph; that is not a page.
    if tree is not None and "html" not in beginning and len(tree) < 2:
        return None
    return tree


def walk_page(tree: HtmlElement) -> PageParts:
    """Gather metadata declarations, links, scripts and body text nodes in a single pass.

    Each whole-page lookup (`tree.iter("a")`, an XPath over text nodes) costs 0.2 to 0.6 ms on a news page;
    one Python walk that sorts elements by tag replaces five of them.
    """
    parts = PageParts()
    in_body = False
    for element in tree.iter():
        tag = element.tag
        if tag in _DECLARATIONS:
            parts.declarations.append(element)
            if tag == "script":
                parts.scripts.append(element)
        elif tag == "a":
            parts.anchors.append(element)
        elif tag == "body":
            in_body = True
        if not in_body:
            continue
        text = element.text
        if text and len(text) >= MIN_TEXT_NODE_CHARS and tag not in _CODE_TAGS and not text.isspace():
            parts.texts.append((text, element, False))
        tail = element.tail
        if tail and len(tail) >= MIN_TEXT_NODE_CHARS and not tail.isspace():
            parts.texts.append((tail, element, True))
    return parts


def strip_inert_elements(tree: HtmlElement, scripts: list[HtmlElement] | None = None) -> None:
    """Remove scripts (but not JSON-LD), styles, inline SVG, templates, asides, footers, navigation, noscript
    fallbacks and iframes, keeping the text that follows them.

    They hold about 250 kB of a typical news page, which trafilatura otherwise copies three times before it
    removes them itself. Read metadata and links before calling this. `scripts` are the page's scripts when a
    walk already found them.
    """
    for script in tree.iter("script") if scripts is None else scripts:
        # JSON-LD stays: trafilatura's rescue extractor reads `articleBody` from it.
        if (script.get("type") or "").strip().lower() != _STRUCTURED_DATA:
            script.tag = _INERT_MARK
    etree.strip_elements(tree, _INERT_MARK, *_INERT_TAGS, with_tail=False)

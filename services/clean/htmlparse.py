"""Parse a page once into an lxml tree, with trafilatura's repairs but on UTF-8 bytes, and drop inert elements.

trafilatura's `load_html` strips XML-invalid control characters with a regex over the whole page and parses the
Python string; on the dev set's 400 kB pages that cost about 3.2 ms a page. Deleting the same characters from the
UTF-8 bytes (each is a single byte there, never part of a multi-byte sequence) and letting libxml2 read its native
encoding gives the same tree in about half the time.
"""

from __future__ import annotations

import re

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
# Inside these a reader never sees text, and every extractor run after parsing removes them anyway.
_INERT_TAGS = ("style", "svg", "template")
_INERT_MARK = "newsflow-inert"
_STRUCTURED_DATA = "application/ld+json"


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


def strip_inert_elements(tree: HtmlElement) -> None:
    """Remove scripts (but not JSON-LD), styles, inline SVG and templates, keeping the text that follows them.

    They hold about 250 kB of a typical news page, which trafilatura otherwise copies three times before it
    removes them itself. Read metadata and links before calling this.
    """
    for script in tree.iter("script"):
        # JSON-LD stays: trafilatura's rescue extractor reads `articleBody` from it.
        if (script.get("type") or "").strip().lower() != _STRUCTURED_DATA:
            script.tag = _INERT_MARK
    etree.strip_elements(tree, _INERT_MARK, *_INERT_TAGS, with_tail=False)

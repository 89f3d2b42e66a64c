"""Parsing a page once for the whole HTML mode: repairs libxml2 needs, and removal of elements nobody reads."""

from __future__ import annotations

import json

from lxml import etree
from lxml.html import HtmlElement

from services.clean.htmlparse import parse_html, strip_inert_elements, walk_page


def _body_text(tree: HtmlElement | None) -> str:
    assert tree is not None
    # lxml returns the lone element of a page that does not open with <html> or a doctype, as trafilatura gets.
    body = tree.find(".//body")
    return " ".join((tree if body is None else body).text_content().split())


def test_control_characters_are_removed_and_the_text_around_them_kept() -> None:
    tree = parse_html("<html><body><p>Bonn\x01 re\x0bported\ufffe a cafe\u0301 rise</p></body></html>")
    assert _body_text(tree) == "Bonn reported a cafe\u0301 rise"


def test_a_page_declaring_a_legacy_encoding_is_read_as_the_unicode_it_already_is() -> None:
    # The page arrives decoded; its XML declaration must neither fail the parse nor re-decode the text.
    html = '<?xml version="1.0" encoding="iso-8859-1"?><html><body><p>Zürich café — 5 €</p></body></html>'
    assert _body_text(parse_html(html)) == "Zürich café — 5 €"


def test_a_doctype_with_a_system_url_does_not_swallow_the_page() -> None:
    html = (
        '<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Strict//EN" '
        '"http://www.w3.org/TR/xhtml1/DTD/xhtml1-strict.dtd">\n<html><body><p>Flood warning lifted</p></body></html>'
    )
    assert _body_text(parse_html(html)) == "Flood warning lifted"


def test_a_self_closing_html_tag_still_yields_the_body() -> None:
    html = '<html lang="en"/>\n<body><p>Harbour reopens after storm</p></body>'
    assert _body_text(parse_html(html)) == "Harbour reopens after storm"


def test_plain_text_and_empty_input_are_not_pages() -> None:
    assert parse_html("The council met on Monday.") is None
    assert parse_html("") is None


def test_inert_elements_go_and_the_text_after_them_stays() -> None:
    ld = json.dumps({"@type": "NewsArticle", "articleBody": "Full text"})
    tree = parse_html(
        "<html><head><style>p{color:red}</style>"
        f'<script type="application/ld+json">{ld}</script></head><body>'
        "<p>Rates rose<script>track('x')</script> for the third month"
        '<svg><path d="M0 0"/><text>icon</text></svg>, the bank said.</p>'
        "<template><p>Hidden card</p></template><aside><p>Deals of the day</p></aside>"
        "<footer>© Harbour Gazette</footer><nav><a href='/'>Home</a></nav><noscript>Enable JavaScript</noscript>"
        "<iframe>Your browser cannot show frames</iframe></body></html>"
    )
    assert tree is not None
    strip_inert_elements(tree)
    assert _body_text(tree) == "Rates rose for the third month, the bank said."
    assert [element.tag for element in tree.iter("script", "style", "svg", "template", "aside", "footer")] == ["script"]
    # JSON-LD stays for the extractor's rescue pass, which reads articleBody from it.
    assert "articleBody" in etree.tostring(tree, encoding="unicode")


def test_walk_page_gathers_declarations_links_scripts_and_body_text_in_one_pass() -> None:
    tree = parse_html(
        "<html><head><title>Harbour news</title><meta property='og:title' content='Pier reopens'>"
        "<script>var tracking = 'not text at all';</script></head><body>"
        "<h1>Pier reopens</h1><p>Ferries return <a href='/ferries'>to the north pier</a> after repairs.</p>"
        '<script type=\'application/ld+json\'>{"headline": "Pier reopens"}</script></body></html>'
    )
    assert tree is not None
    parts = walk_page(tree)
    assert [element.tag for element in parts.declarations] == ["title", "meta", "script", "h1", "script"]
    assert [anchor.text for anchor in parts.anchors] == ["to the north pier"]
    assert len(parts.scripts) == 2
    texts = [(text, element.tag, is_tail) for text, element, is_tail in parts.texts]
    # Head text, script code and nodes too short to place a line ("Ferries" alone would be) are left out.
    assert texts == [
        ("Pier reopens", "h1", False),
        ("Ferries return ", "p", False),
        ("to the north pier", "a", False),
        (" after repairs.", "a", True),
    ]

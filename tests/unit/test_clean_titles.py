"""Titles: initials and abbreviations do not end a headline; datelines, bylines and section labels are never titles;
a declared title wins unless it is only the site's name."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from services.clean.article import clean_article
from services.clean.lines import first_sentence, parse_place_dateline
from shared.events import CleanSection, IngestSection

LEDE = (
    "Two aircraft carriers and a dozen escort ships waited in the Gulf on Saturday for an order from the president, "
    "defence officials said, as talks at the United Nations stalled for a second day."
)
MORE = (
    "Officials said the ships had been in the region for a month and could stay there for several more weeks "
    "while diplomats looked for a way to end the standoff without force."
)


def clean(content: str, kind: str = "text", **fields: Any) -> CleanSection:
    """The article as a producer sends it: content plus the JSON fields it chose to fill (title, source, url)."""
    return clean_article(
        IngestSection(
            origin="test",
            received_at=datetime(2024, 5, 1, tzinfo=UTC),
            content_hash="h",
            kind="html" if kind == "html" else "text",
            content=content,
            **fields,
        )
    )


@pytest.mark.parametrize(
    "headline",
    [
        "U.S. warplanes , ships in Gulf await Clinton order .",
        "Mom Smoked Meth. We're Still Paying the Price",
        "Gen. Adams to lead U.N. force in Cyprus",
        "N.Y. Fed chief sees no rate cut before spring",
    ],
)
def test_initials_abbreviations_and_inner_full_stops_do_not_end_a_headline(headline: str) -> None:
    assert clean(f"{headline}\nKUWAIT 1996-08-31\n{LEDE}\n{MORE}").title == headline
    assert clean(f"{headline}\n\n{LEDE}\n\n{MORE}").title == headline


@pytest.mark.parametrize(
    "dateline", ["BUFFALO, N.Y. (AP) —", "WASHINGTON (Reuters) -", "AL-RAM , West Bank 1996-08-30", "SEOUL 1996-08-30"]
)
def test_a_dateline_is_never_the_title_and_stays_with_the_story(dateline: str) -> None:
    section = clean(f"Carriers wait in the Gulf for an order\n{dateline}\n{LEDE}\n{MORE}")
    assert section.title == "Carriers wait in the Gulf for an order"
    assert section.body.startswith(dateline)


def test_a_bare_byline_name_over_the_dateline_is_not_the_title() -> None:
    section = clean(f"Top Belarus politician blasts president .\nLarisa Sayenko\nMINSK 1996-08-30\n{LEDE}\n{MORE}")
    assert section.title == "Top Belarus politician blasts president ."
    assert section.authors == ["Larisa Sayenko"]
    assert "Larisa Sayenko" not in section.body


def test_a_section_label_is_not_the_title() -> None:
    section = clean(f"World\n\nCarriers wait in the Gulf for an order\n\nBy Dana Whitfield\n\n{LEDE}\n\n{MORE}")
    assert section.title == "Carriers wait in the Gulf for an order"


def test_with_no_headline_the_title_is_the_first_sentence_not_cut_at_an_initial() -> None:
    lede = "The U.S. Navy sent two carriers to the Gulf on Saturday. Officials gave no reason for the move."
    assert clean(f"{lede}\n\n{MORE}").title == "The U.S. Navy sent two carriers to the Gulf on Saturday."


def test_first_sentence_passes_initials_and_abbreviations() -> None:
    assert first_sentence("Gen. J. Smith met Mr. Lee in the U.S. capital. Then he left.") == (
        "Gen. J. Smith met Mr. Lee in the U.S. capital."
    )
    assert first_sentence("北京市政府宣布开通新线路。官员表示满意。") == "北京市政府宣布开通新线路。"
    assert first_sentence("The plan was approved. It starts in May.") == "The plan was approved."


def test_place_datelines_are_told_from_headings_in_capitals() -> None:
    assert parse_place_dateline("FARMINGTON HILLS , Mich .") == ("FARMINGTON HILLS", None)
    assert parse_place_dateline("WORLD NEWS") is None
    assert parse_place_dateline("SOCCER - RESULTS OF THE NORTHERN LEAGUE .") is None


def test_a_declared_title_wins_unless_it_is_the_site_name() -> None:
    body = f"<p>{LEDE}</p><p>{MORE}</p>"
    site_only = (
        '<html><head><meta property="og:title" content="The Daily Planet">'
        '<meta property="og:site_name" content="The Daily Planet"><title>The Daily Planet</title></head>'
        f"<body><article><h1>Carriers wait in the Gulf for an order</h1>{body}</article></body></html>"
    )
    assert clean(site_only, "html").title == "Carriers wait in the Gulf for an order"
    declared = (
        '<html><head><meta property="og:title" content="Carriers wait in Gulf as UN talks stall">'
        "<title>Carriers wait in Gulf as UN talks stall | The Daily Planet</title></head>"
        f"<body><article><h1>Live: Gulf standoff</h1>{body}</article></body></html>"
    )
    assert clean(declared, "html").title == "Carriers wait in Gulf as UN talks stall"


@pytest.mark.parametrize(
    ("headings", "head_title"),
    [
        # The first <h1> names the site, the section or the blog; the headline is the heading the <title> repeats.
        ("<h1>Latest News</h1><h2>Carriers wait in the Gulf for an order</h2>",
         "Carriers wait in the Gulf for an order - Latest News - Harbour Herald"),
        ("<h1>National News</h1><h1>Carriers wait in the Gulf for an order</h1>",
         "TV3 > News > National News > Story > Carriers wait in the Gulf for an order"),
        ("<h1>WWdN: In Exile</h1><h3>Carriers wait in the Gulf for an order</h3>",
         "WWdN: In Exile: Carriers wait in the Gulf for an order"),
        ("<h2>Soccer</h2><h2>Carriers wait in the Gulf for an order</h2>",
         "Carriers wait in the Gulf for an order - Soccer - Sport"),
    ],
)  # fmt: skip
def test_the_heading_the_page_title_repeats_is_the_headline(headings: str, head_title: str) -> None:
    html = (
        f"<html><head><title>{head_title}</title></head><body><div id='top'>{headings}</div>"
        f"<div class='story'><p>{LEDE}</p><p>{MORE}</p></div></body></html>"
    )
    assert clean(html, "html").title == "Carriers wait in the Gulf for an order"


def test_a_title_outside_the_head_is_still_the_page_title() -> None:
    # Markup that opens <html> twice leaves <title> in the body, and the page has no heading to fall back on.
    html = (
        '<html><meta charset="utf-8"><html><style>p {}</style><title>Carriers wait in the Gulf for an order</title>'
        f"<body><p>{LEDE}</p><p>{MORE}</p></body></html>"
    )
    assert clean(html, "html").title == "Carriers wait in the Gulf for an order"


HEADLINE = "Carriers wait in the Gulf for an order"


@pytest.mark.parametrize(
    ("title", "fields"),
    [
        ("Reuters", {"source": "Reuters"}),
        ("BBC News", {"url": "https://www.bbc.co.uk/news/world-123"}),
        ("CNN.com", {"url": "https://edition.cnn.com/2024/05/01/world/gulf"}),
        ("The Daily Planet", {"url": "https://dailyplanet.example/world/gulf"}),
    ],
)
def test_a_json_title_naming_the_publication_gives_way_to_the_headline(title: str, fields: dict[str, str]) -> None:
    section = clean(f"{HEADLINE}\n\n{LEDE}\n\n{MORE}", title=title, **fields)
    assert section.title == HEADLINE
    assert section.body.startswith("Two aircraft carriers")


def test_a_json_title_naming_the_site_the_page_attributes_gives_way() -> None:
    text = f"{HEADLINE}\n\n{LEDE}\n\n{MORE}\n\nSource: The Daily Planet"
    assert clean(text, title="The Daily Planet").title == HEADLINE


def test_a_json_title_naming_the_html_pages_site_gives_way_to_its_headline() -> None:
    html = (
        '<html><head><meta property="og:site_name" content="The Daily Planet"></head>'
        f"<body><article><h1>{HEADLINE}</h1><p>{LEDE}</p><p>{MORE}</p></article></body></html>"
    )
    assert clean(html, "html", title="The Daily Planet").title == HEADLINE
    assert clean(html, "html", title="Daily Planet").title == HEADLINE


def test_a_json_headline_still_wins_even_when_it_names_the_site() -> None:
    # A real headline that mentions the publication is not the publication's name.
    title = "Reuters poll: carriers to stay in the Gulf"
    assert clean(f"{HEADLINE}\n\n{LEDE}\n\n{MORE}", title=title, source="Reuters").title == title
    assert clean(f"<p>{LEDE}</p><p>{MORE}</p>", "html", title=title, source="Reuters").title == title

"""Clean types what it got instead of dropping it: every news type is kept; only pages with nothing to read are not."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import pytest

from services.clean.article import clean_article
from shared.errors import Rejected
from shared.events import CleanSection, IngestSection

STORY = (
    "The regional railway will run night trains between the two cities from next month, the operator said on "
    "Thursday, after a trial last winter carried more passengers than it had expected. Tickets go on sale next "
    "week, and the first trains will leave at eleven in the evening, arriving shortly after dawn. The operator "
    "said it had leased twelve sleeping cars from a neighbouring country and would add more if demand held up. "
    "Unions welcomed the plan but asked for assurances about staffing on the overnight services."
)


def clean(content: str, kind: str = "text", **fields: str) -> CleanSection:
    return clean_article(
        IngestSection(
            origin="test",
            received_at=datetime(2024, 5, 1, tzinfo=UTC),
            content_hash="abc",
            kind="html" if kind == "html" else "text",
            content=content,
            **fields,
        )
    )


def rejection(content: str, kind: str = "text") -> str:
    with pytest.raises(Rejected) as caught:
        clean(content, kind)
    assert caught.value.message
    return caught.value.reason


def test_a_full_story_is_an_article() -> None:
    more = STORY.replace("night trains", "sleeper services").replace("Thursday", "Friday")
    section = clean(f"Night trains return to the north\n\nBy Dana Whitfield\n\n{STORY}\n\n{more}")
    assert section.content_type == "article"
    assert section.word_count is not None and section.word_count > 100


def test_a_three_line_brief_is_kept_as_a_brief() -> None:
    text = (
        "Nikkei ends higher on exporters\n"
        "TOKYO 2024-05-01\n"
        "Tokyo's Nikkei average rose 1.2 percent on Wednesday as a weaker yen lifted exporters, dealers said.\n"
    )
    section = clean(text)
    assert section.content_type == "brief"
    assert section.title == "Nikkei ends higher on exporters"
    assert "Nikkei average rose 1.2 percent" in section.body


RESULTS = """SOCCER - RESULTS OF THE NORTHERN LEAGUE .
LEEDS 2024-04-27
Results of Northern League matches played on Saturday :
Harbridge 2 Castleford 1
Millbrook 0 Eastwick 0
Ridgefield 3 Stanmore 2
Standings ( tabulate under played , won , drawn , lost , goals for , against , points ) :
Harbridge 30 18 7 5 51 27 61
Castleford 30 17 8 5 49 30 59
Eastwick 30 14 9 7 40 31 51
Ridgefield 30 12 8 10 38 36 44
"""


def test_a_results_table_is_kept_with_its_lines() -> None:
    section = clean(RESULTS)
    assert section.content_type == "results"
    assert section.title == "SOCCER - RESULTS OF THE NORTHERN LEAGUE ."
    for line in ("Harbridge 2 Castleford 1", "Ridgefield 30 12 8 10 38 36 44"):
        assert line in section.body


def test_a_company_results_table_is_results() -> None:
    text = """Harbour Foods Q1 profit rises .
CHICAGO 2024-04-30
Quarter ended March 31 ( in millions of dollars , except per share )
2024 2023
Revenue 412.5 388.1
Net income 31.2 27.9
Shr $ 0.52 $ 0.46
Avg shrs 60.1 60.6
"""
    assert clean(text).content_type == "results"


STANDINGS = [("Harbridge", 30, 18, 7, 5, 61), ("Castleford", 30, 17, 8, 5, 59), ("Eastwick", 30, 14, 9, 7, 51)]
SCORES = [("Harbridge", 2, "Castleford", 1), ("Millbrook", 0, "Eastwick", 0), ("Ridgefield", 3, "Stanmore", 2)]


def html_table(rows: Sequence[Sequence[object]], header: Sequence[str] = ()) -> str:
    head = "<tr>" + "".join(f"<th>{cell}</th>" for cell in header) + "</tr>" if header else ""
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table>{head}{body}</table>"


def test_an_html_results_table_keeps_its_rows_as_a_results_record() -> None:
    html = (
        "<html><head><title>Northern League results | The Courier</title></head><body><article>"
        "<h1>Northern League results</h1><p>Results of Northern League matches played on Saturday.</p>"
        f"{html_table(SCORES)}<p>Standings after the weekend's games:</p>"
        f"{html_table(STANDINGS, ('Team', 'P', 'W', 'D', 'L', 'Pts'))}</article></body></html>"
    )
    section = clean(html, "html")
    assert section.content_type == "results"
    lines = section.body.split("\n\n")
    # Each row is one line, its cells apart; the header stays over the figures it names.
    for row in ("Harbridge | 2 | Castleford | 1", "Team | P | W | D | L | Pts", "Eastwick | 30 | 14 | 9 | 7 | 51"):
        assert row in lines
    assert lines.index("Team | P | W | D | L | Pts") + 1 == lines.index("Harbridge | 30 | 18 | 7 | 5 | 61")


def test_a_table_of_links_without_figures_is_still_dropped_as_a_menu() -> None:
    menu = html_table([("Home", "News", "Sport"), ("Weather", "Business", "Travel")])
    html = f"<html><body><article><h1>Night trains return</h1>{menu}<p>{STORY}</p></article></body></html>"
    section = clean(html, "html")
    assert "Weather" not in section.body and section.body.startswith("The regional railway")
    assert section.content_type == "brief"


def test_a_liveblog_is_typed_by_its_timed_entries() -> None:
    entries = "\n".join(
        f"{hour}:{minute:02d} Polls in the {place} district closed and counting began, officials said."
        for hour, minute, place in ((21, 5, "northern"), (21, 40, "central"), (22, 15, "eastern"), (23, 2, "western"))
    )
    section = clean(f"Election night live: results as they come in\n\n{entries}")
    assert section.content_type == "liveblog"
    assert "22:15 Polls in the eastern district" in section.body


def test_a_page_declaring_a_liveblog_is_one() -> None:
    html = (
        '<html><head><script type="application/ld+json">{"@type": "LiveBlogPosting", "headline": "Storm updates"}'
        f"</script></head><body><article><h1>Storm updates</h1><p>{STORY}</p><p>{STORY}</p></article></body></html>"
    )
    assert clean(html, "html").content_type == "liveblog"


def test_a_section_page_of_headlines_is_a_listing() -> None:
    headlines = [
        "Council approves budget for new schools and roads",
        "Flood defences to be raised along the river",
        "Hospital waiting lists fall for a third month",
        "Night trains return to the northern line",
        "Museum reopens after two years of repairs",
        "Police appeal for witnesses after bridge crash",
    ]
    section = clean("Local news\n\n" + "\n\n".join(headlines))
    assert section.content_type == "listing"
    assert all(headline in section.body for headline in headlines[1:])


def test_a_paywalled_teaser_is_kept_and_typed() -> None:
    text = (
        "Inside the deal that saved the shipyard\n\n"
        "Months of secret talks ended on Friday when the yard's new owners signed a rescue deal with the unions.\n\n"
        "Subscribe to continue reading.\n"
    )
    section = clean(text)
    assert section.content_type == "login_or_paywall"
    assert "Months of secret talks" in section.body


def test_a_page_marked_not_free_with_a_short_teaser_is_a_paywall() -> None:
    html = (
        '<html><head><script type="application/ld+json">{"@type": "NewsArticle", "headline": "Yard rescue", '
        '"isAccessibleForFree": "False"}</script></head><body><article><h1>Yard rescue</h1>'
        "<p>Months of secret talks ended on Friday when the yard's new owners signed a rescue agreement with the "
        "unions, people involved in the negotiations said.</p></article></body></html>"
    )
    assert clean(html, "html").content_type == "login_or_paywall"


def test_a_login_wall_with_no_story_is_dead_lettered() -> None:
    text = "Sign in\n\nSubscribe to continue reading this article.\n\nAlready a subscriber? Log in to read the story."
    assert rejection(text) == "login_or_paywall"


def test_an_error_page_is_dead_lettered() -> None:
    html = (
        "<html><head><title>404 Not Found</title></head><body><h1>Page not found</h1>"
        "<p>Sorry, the page you are looking for does not exist or has been moved.</p></body></html>"
    )
    assert rejection(html, "html") == "error_page"


def test_pure_navigation_is_dead_lettered() -> None:
    menu = "\n".join(["Home", "World", "Business", "Sport", "Weather", "Sign in", "Contact us", "Terms of use"] * 2)
    # The menu rules drop it as furniture, or what is left has neither prose nor figures.
    assert rejection(menu) in {"no_article_text", "not_an_article"}
    assert rejection("<html><body><nav><a href='/'>Home</a><a href='/w'>World</a></nav></body></html>", "html") in {
        "no_article_text",
        "not_an_article",
    }


def test_empty_and_binary_content_are_dead_lettered() -> None:
    assert rejection("   \n") == "no_article_text"
    assert rejection("".join(chr(code) for code in range(32)) * 100) == "not_an_article"

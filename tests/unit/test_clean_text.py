"""Text mode of the clean stage: every kind of line a scraped page carries, and the seed article."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import ftfy.bad_codecs  # noqa: F401  (registers the sloppy-windows-1252 codec)
import pytest
from dateutil import parser as date_parser

from services.clean.article import clean_article
from services.clean.lines import (
    _common_date,
    bio_subject,
    is_chrome,
    is_interstitial,
    normalise_domain,
    parse_byline,
    parse_date_line,
    parse_datetime,
    parse_source,
)
from services.clean.text import extract_text, split_units
from shared.events import CleanSection, IngestSection

SEED = Path(__file__).parents[1] / "fixtures" / "seed" / "article-000.txt"

LEDE = (
    "The harbour authority approved a plan on Tuesday to dredge the northern channel, a project that engineers "
    "say will let larger container ships dock without waiting for the tide."
)
SECOND = (
    "Fishermen who use the channel said they feared the work would disturb spawning grounds, and asked the "
    "authority to pause dredging during the spring months when the catch is smallest."
)
THIRD = (
    "The authority's chair, Miriam Osei, said an environmental review had found no lasting harm, but that the "
    "board would publish monitoring data every quarter so that anyone could check."
)


def ingest(text: str, **hints: Any) -> IngestSection:
    return IngestSection(
        origin="test",
        received_at=datetime(2024, 5, 1, tzinfo=UTC),
        content_hash="abc",
        kind="text",
        content=text,
        **hints,
    )


def clean(text: str, **hints: Any) -> CleanSection:
    return clean_article(ingest(text, **hints))


def page(*lines: str, separator: str = "\n\n") -> str:
    return separator.join(lines) + "\n"


# --- the seed article -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def seed() -> CleanSection:
    return clean(SEED.read_text(encoding="utf-8"))


def test_seed_title_is_the_headline_and_not_repeated_in_body(seed: CleanSection) -> None:
    assert seed.title == "Sergei Shoigu’s Visit to North Korea: Strengthening Security Ties"
    assert seed.title not in seed.body


def test_seed_body_has_no_chrome_bio_or_source_line(seed: CleanSection) -> None:
    assert "Loading Now" not in seed.body
    assert "Post Comment" not in seed.body
    assert "Original Source" not in seed.body
    assert "award-winning journalist" not in seed.body
    assert seed.body.startswith("Sergei Shoigu, Russia’s top security adviser, has arrived in North Korea")
    assert seed.body.endswith("face challenges in regional security.")
    assert len(seed.body.split("\n\n")) == 6


def test_seed_metadata(seed: CleanSection) -> None:
    assert seed.source_domain == "independent.co.uk"
    assert seed.authors == ["Ethan Kim"]
    assert seed.extractor == "text-rules"
    assert seed.dropped == {"chrome": 2, "source": 1, "bio": 1}


# --- chrome and interstitials ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        "Loading Now",
        "Skip to main content",
        "Skip to content",
        "Sign in",
        "Log in to comment",
        "Post Comment",
        "Leave a Reply",
        "Share this:",
        "Share on Facebook",
        "Comments (14)",
        "Back to top",
        "© 2024 Harbour Gazette. All rights reserved.",
        "Copyright 2019 The Daily Example",
        "Privacy Policy | Terms of Use | Cookie Settings",
        "Home | News | Sport | Weather | Business",
        "•••",
        # A footer in one line: the menu, then the legal notice and a disclaimer.
        "Home | Archives | Feedback | About us | Disclaimer (c) 2024 Harbour Gazette, All Rights Reserved. The views "
        "expressed in the articles are not necessarily those of the Gazette.",
    ],
)
def test_chrome_lines_are_recognised(line: str) -> None:
    assert is_chrome(line) or is_interstitial(line)


@pytest.mark.parametrize(
    "line",
    [
        "Advertisement",
        "ADVERTISEMENT",
        "Story continues below advertisement",
        "Read More",
        "READ MORE: Port strike enters its third week",
        "Related Articles",
        "Related: How the tide tables are computed",
        "Also read: Ten ferries you can still catch",
        "Sign up for our morning newsletter and get the day's headlines in your inbox.",
        "Subscribe to our newsletter",
        "Join our Telegram channel for breaking updates.",
        "Sponsored content",
    ],
)
def test_interstitial_lines_are_recognised(line: str) -> None:
    assert is_interstitial(line)


@pytest.mark.parametrize(
    "line",
    [
        LEDE,
        "He declined to comment.",
        "What happens next",  # a subheading is story text
        "Get Out is streaming on several services and is available to rent on YouTube.",
        "The newsletter, first printed in 1952, was the harbour's only source of shipping news.",
        "Share prices rose 4 per cent.",
        "Comments from residents were mixed.",
        "The ruling covers pages | menus and (c) marks alike, the court said, and all rights reserved by the authors.",
    ],
)
def test_story_lines_are_not_furniture(line: str) -> None:
    assert not is_chrome(line)
    assert not is_interstitial(line)


def test_chrome_and_interstitials_are_removed_from_the_body_in_order() -> None:
    text = page(
        "Skip to main content",
        "Sign in",
        "Harbour Channel Will Be Dredged Despite Objections",
        LEDE,
        "Advertisement",
        SECOND,
        "Story continues below advertisement",
        THIRD,
        "Share this:",
        "Leave a Reply",
    )
    result = clean(text)
    assert result.title == "Harbour Channel Will Be Dredged Despite Objections"
    assert result.body == f"{LEDE}\n\n{SECOND}\n\n{THIRD}"
    assert result.dropped["chrome"] + result.dropped["interstitial"] == 6


def test_short_line_repeated_on_the_page_is_furniture() -> None:
    text = page("Tide Tables Revised", LEDE, "Harbour Gazette Extra", SECOND, "Harbour Gazette Extra", THIRD)
    assert "Harbour Gazette Extra" not in clean(text).body


# --- bylines ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "authors"),
    [
        ("By Jane Doe", ["Jane Doe"]),
        ("By JANE O'BRIEN", ["Jane O'Brien"]),
        ("By Jane Doe and Tom Okafor", ["Jane Doe", "Tom Okafor"]),
        ("By Jane Doe, Tom Okafor and Ana Silva", ["Jane Doe", "Tom Okafor", "Ana Silva"]),
        ("Jane Doe | Staff Writer", ["Jane Doe"]),
        ("Jane Doe, Senior Correspondent", ["Jane Doe"]),
        ("Written by Ludwig van Beethoven", ["Ludwig van Beethoven"]),
        ("Author: Priya Natarajan", ["Priya Natarajan"]),
        ("By Jane Doe | March 3, 2024", ["Jane Doe"]),
    ],
)
def test_bylines_give_author_names(line: str, authors: list[str]) -> None:
    assert parse_byline(line) == authors


@pytest.mark.parametrize(
    "line",
    [
        "By the end of the week the channel was closed.",
        "By Tuesday",
        "Sony’s PlayStation VR",
        "Harbour Channel Will Be Dredged",
    ],
)
def test_non_bylines_are_not_taken_for_authors(line: str) -> None:
    assert parse_byline(line) is None


def test_byline_leaves_the_body_and_fills_authors() -> None:
    result = clean(page("Channel Dredging Approved", "By Miriam Hale | Port Reporter", LEDE, SECOND))
    assert result.authors == ["Miriam Hale"]
    assert "Miriam Hale" not in result.body


def test_bare_name_under_the_headline_is_the_byline() -> None:
    result = clean(page("Channel Dredging Approved", "Miriam Hale", LEDE, SECOND))
    assert result.authors == ["Miriam Hale"]
    assert result.body == f"{LEDE}\n\n{SECOND}"


# --- source attributions ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "domain", "name", "url"),
    [
        ("Original Source: www.harbourgazette.co.uk", "harbourgazette.co.uk", None, None),
        ("Source: harbourgazette.com", "harbourgazette.com", None, None),
        (
            "Originally published at https://www.harbourgazette.com/news/dredging-42",
            "harbourgazette.com",
            None,
            "https://www.harbourgazette.com/news/dredging-42",
        ),
        ("This article originally appeared on The Harbour Gazette.", None, "The Harbour Gazette", None),
        ("This story was first published on harbourgazette.org.", "harbourgazette.org", None, None),
        ("Source: The Harbour Gazette (harbourgazette.com)", "harbourgazette.com", "The Harbour Gazette", None),
    ],
)
def test_source_attributions_are_parsed(line: str, domain: str | None, name: str | None, url: str | None) -> None:
    reference = parse_source(line)
    assert reference is not None
    assert (reference.domain, reference.name, reference.url) == (domain, name, url)


def test_source_line_becomes_metadata_not_body() -> None:
    url = "https://www.harbourgazette.com/news/dredging-42"
    result = clean(page("Channel Dredging Approved", LEDE, SECOND, f"Originally published at {url}"))
    assert result.source_domain == "harbourgazette.com"
    assert result.url == url
    assert "Originally published" not in result.body


def test_client_hints_take_precedence() -> None:
    result = clean(
        page("Channel Dredging Approved", LEDE, SECOND, "Source: harbourgazette.com"),
        title="Dredging approved (client title)",
        url="https://example.org/a/1",
        source="Harbour Wire",
        published_at="2024-02-03T10:00:00+01:00",
    )
    assert result.title == "Dredging approved (client title)"
    assert result.url == "https://example.org/a/1"
    assert result.source_name == "Harbour Wire"
    assert result.source_domain == "harbourgazette.com"
    assert result.published_at == datetime(2024, 2, 3, 9, 0, tzinfo=UTC)


def test_client_title_line_is_not_repeated_in_body() -> None:
    result = clean(page("Channel Dredging Approved", LEDE, SECOND), title="Channel Dredging Approved")
    assert result.body == f"{LEDE}\n\n{SECOND}"


def test_unparseable_client_date_is_ignored() -> None:
    result = clean(page("Channel Dredging Approved", LEDE, SECOND), published_at="sometime last spring-ish")
    assert result.published_at is None


@pytest.mark.parametrize(
    ("url", "domain"),
    [
        ("https://www.independent.co.uk/news/x", "independent.co.uk"),
        ("www2.example.com", "example.com"),
        ("HTTP://News.Example.COM:8080/path", "news.example.com"),
        ("not a domain", None),
    ],
)
def test_domains_are_normalised(url: str, domain: str | None) -> None:
    assert normalise_domain(url) == domain


# --- bios -------------------------------------------------------------------------------------------------------


BIO = (
    "Miriam Hale is a staff writer covering ports and shipping. She previously reported from Rotterdam and holds "
    "a degree in journalism from the University of Leeds."
)


@pytest.mark.parametrize("bio_first", [True, False])
def test_bio_before_or_after_source_line_leaves_body_and_names_author(bio_first: bool) -> None:
    source = "Original Source: www.harbourgazette.com"
    tail = [BIO, source] if bio_first else [source, BIO]
    result = clean(page("Channel Dredging Approved", LEDE, SECOND, THIRD, *tail, "Post Comment"))
    assert result.authors == ["Miriam Hale"]
    assert result.body == f"{LEDE}\n\n{SECOND}\n\n{THIRD}"
    assert result.dropped["bio"] == 1


def test_pronoun_continuation_of_a_bio_is_bio_too() -> None:
    more = "She has written for several trade magazines and lives in Hull with her two dogs and a journalism degree."
    result = clean(page("Channel Dredging Approved", LEDE, SECOND, BIO, more))
    assert result.body == f"{LEDE}\n\n{SECOND}"


def test_story_paragraph_about_a_person_is_not_a_bio() -> None:
    closing = "Osei is a former harbour pilot who has spent thirty years guiding tankers through the channel."
    assert bio_subject(closing, [], previous_was_bio=False) is None
    result = clean(page("Channel Dredging Approved", LEDE, SECOND, closing))
    assert result.body.endswith(closing)


def test_bio_with_byline_author_is_recognised_by_name() -> None:
    bio = "Miriam Hale covers the harbour for the Gazette."
    result = clean(page("Channel Dredging Approved", "By Miriam Hale", LEDE, SECOND, bio))
    assert result.body == f"{LEDE}\n\n{SECOND}"


@pytest.mark.parametrize(
    "credit",
    [
        "Miriam Hale reported from Rotterdam, and Tom Ash from Hull.",
        "Tom Ash and Ria Lind contributed.",
        "Tom Ash contributed reporting.",
        "Additional reporting by Tom Ash in Hull.",
    ],
)
def test_a_reporting_credit_closing_the_story_is_body_not_a_bio(credit: str) -> None:
    # The legwork behind the story, printed as its last line: the reader sees it as part of the article.
    assert bio_subject(credit, ["Miriam Hale", "Tom Ash"], previous_was_bio=False) is None
    result = clean(page("Channel Dredging Approved", "By Miriam Hale", LEDE, SECOND, credit))
    assert result.body == f"{LEDE}\n\n{SECOND}\n\n{credit}"
    assert result.authors == ["Miriam Hale"]


def test_a_name_alone_is_no_bio_and_no_error() -> None:
    assert bio_subject("Vanessa Hicks", [], previous_was_bio=False) is None
    assert bio_subject("Vanessa", ["Vanessa Hicks"], previous_was_bio=True) is None


@pytest.mark.parametrize(
    "headline",
    [
        "Where do harbour finances go after the dredging vote?",
        "Ferries are back, and the town could not be happier!",
        "How Winter Storms Wreck the Piers Underneath N.Y.C.",
    ],
)
@pytest.mark.parametrize("separator", ["\n\n", "\n"])
def test_a_headline_that_ends_like_a_sentence_is_the_title_when_a_byline_follows(headline: str, separator: str) -> None:
    result = clean(page(headline, "By Miriam Hale", "Published March 3, 2024", LEDE, SECOND, separator=separator))
    assert result.title == headline
    assert result.body == f"{LEDE}\n\n{SECOND}"
    assert result.authors == ["Miriam Hale"]


def test_a_short_first_paragraph_without_a_byline_under_it_stays_body() -> None:
    opening = "Where do harbour finances go after the dredging vote?"
    result = clean(page("Channel Dredging Approved", opening, LEDE, SECOND))
    assert result.title == "Channel Dredging Approved"
    assert result.body.startswith(opening)


def test_a_publication_styled_in_lower_case_is_the_source_name() -> None:
    result = clean(page("Channel Dredging Approved", LEDE, SECOND, "This article originally appeared on the Guardian."))
    assert result.source_name == "the Guardian"
    assert result.body == f"{LEDE}\n\n{SECOND}"


# --- menus, recirculation modules and comment threads ----------------------------------------------------------


@pytest.mark.parametrize("separator", ["\n\n", "\n"])
def test_a_site_menu_above_the_headline_is_chrome(separator: str) -> None:
    menu = ["Skip to content", "Home", "News", "Sport", "Weather", "Local", "Business", "Ports & Shipping"]
    text = page(
        *menu, "Channel dredging approved after long delay", "By Miriam Hale", LEDE, SECOND, separator=separator
    )
    result = clean(text)
    assert result.title == "Channel dredging approved after long delay"
    assert result.authors == ["Miriam Hale"]
    assert result.body == f"{LEDE}\n\n{SECOND}"


def test_a_menu_with_repeated_items_and_a_tagline_above_the_headline() -> None:
    # "World" twice is furniture already; the run goes on through it, and the tagline above the menu is no headline.
    top = ["Skip to main contentSkip to navigation", "Independent news for the coast since 1881", "Home", "World",
           "Business", "Markets", "Sign In", "World", "UK"]  # fmt: skip
    result = clean(
        page(*top, "Channel dredging approved after long delay", "By Miriam Hale", LEDE, SECOND, separator="\n")
    )
    assert result.title == "Channel dredging approved after long delay"
    assert result.body == f"{LEDE}\n\n{SECOND}"


def test_a_name_and_job_title_under_the_headline_are_the_byline() -> None:
    head = [
        "Explainer",
        "What the new harbour rules mean for you",
        "Lena Hoffmann",
        "Brussels correspondent",
        "13 March 2024",
    ]
    result = clean(page(*head, LEDE, SECOND, separator="\n"))
    assert result.title == "What the new harbour rules mean for you"
    assert result.authors == ["Lena Hoffmann"]
    assert result.body == f"{LEDE}\n\n{SECOND}"


def test_a_standfirst_sentence_over_the_byline_does_not_start_the_story() -> None:
    head = ["Opinion", "The dredging fix nobody wants to pay for", "Deeper channels are popular. The bill is not.",
            "By Gregory Hale", "Contributing columnist", "March 5, 2024 at 7:00 a.m. EST"]  # fmt: skip
    result = clean(page(*head, LEDE, SECOND, separator="\n"))
    assert result.title == "The dredging fix nobody wants to pay for"
    assert result.authors == ["Gregory Hale"]
    assert result.published_at is not None and result.published_at.date().isoformat() == "2024-03-05"
    assert result.body.endswith(f"{LEDE}\n\n{SECOND}")


def test_a_related_module_after_the_story_goes_with_its_headlines() -> None:
    module = [
        "More on this story",
        "Harbour board names new chair",
        "Ferry fares to rise in April",
        "Published",
        "2 March 2024",
    ]
    result = clean(page("Channel Dredging Approved", LEDE, SECOND, THIRD, *module))
    assert result.body == f"{LEDE}\n\n{SECOND}\n\n{THIRD}"


def test_a_headline_module_between_paragraphs_is_an_interstitial() -> None:
    module = ["Trending Now", "Harbour board names new chair", "Ferry fares to rise in April"]
    result = clean(page("Channel Dredging Approved", LEDE, *module, SECOND, THIRD, separator="\n"))
    assert result.body == f"{LEDE}\n\n{SECOND}\n\n{THIRD}"


def test_one_short_line_after_a_module_label_is_the_next_subheading() -> None:
    result = clean(page("Channel Dredging Approved", LEDE, "Related Articles", "What happens next", SECOND))
    assert result.body == f"{LEDE}\n\nWhat happens next\n\n{SECOND}"


def test_a_bulleted_list_after_a_more_heading_is_the_story() -> None:
    items = ["- Dredging starts in May", "- The channel reopens in July"]
    result = clean(page("Channel Dredging Approved", LEDE, "More details", *items, SECOND))
    assert all(item in result.body for item in items)


def test_a_comment_thread_below_the_story_goes_whole() -> None:
    thread = [
        "3 Comments",
        "Jo Bloggs",
        "March 4, 2024 at 9:12 am",
        "I think the dredging is a waste of money and the council should think again before it signs anything.",
        "Reply",
    ]
    result = clean(page("Channel Dredging Approved", LEDE, SECOND, THIRD, *thread))
    assert result.body == f"{LEDE}\n\n{SECOND}\n\n{THIRD}"


def test_a_conversation_prompt_high_in_the_story_does_not_end_it() -> None:
    result = clean(page("Channel Dredging Approved", LEDE, "Join the conversation", SECOND, THIRD))
    assert result.body == f"{LEDE}\n\n{SECOND}\n\n{THIRD}"


# --- dates ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "March 3, 2024",
        "Sept. 3, 2024 6:01 am",
        "Dec 31, 1999 12:00 pm",
        "Jan 1, 2021 12:15 AM",
        "3 March 2024",
        "29 Feb 2023",
        "Febtember 3, 2024",
        "May 3 2024 13:00 pm",
    ],
)
def test_common_datelines_read_without_dateutil_agree_with_it(text: str) -> None:
    try:
        expected: datetime | None = date_parser.parse(text, fuzzy=True).replace(tzinfo=UTC)
    except (ValueError, OverflowError):
        expected = None
    assert parse_datetime(text) == expected
    # The five possible dates go through the shortcut; the impossible ones are left to dateutil.
    assert (_common_date(text) is not None) == (text in SHORTCUT_DATES)


SHORTCUT_DATES = {
    "March 3, 2024",
    "Sept. 3, 2024 6:01 am",
    "Dec 31, 1999 12:00 pm",
    "Jan 1, 2021 12:15 AM",
    "3 March 2024",
}


@pytest.mark.parametrize(
    ("line", "day", "is_update"),
    [
        ("Published March 3, 2024", "2024-03-03", False),
        ("Updated: 2024-03-04 10:30", "2024-03-04", True),
        ("3 March 2024 · 5 min read", "2024-03-03", False),
        ("Posted on Jan. 9, 2021 at 6:01 am", "2021-01-09", False),
        ("Tue 5 Mar 2024 12.30 GMT", "2024-03-05", False),
    ],
)
def test_datelines(line: str, day: str, is_update: bool) -> None:
    parsed = parse_date_line(line)
    assert parsed is not None
    assert parsed[0].date().isoformat() == day
    assert parsed[0].tzinfo is not None
    assert parsed[1] is is_update


def test_sentence_mentioning_a_date_is_not_a_dateline() -> None:
    assert parse_date_line("The board first met on March 3, 2024 to discuss the channel.") is None


def test_publication_date_wins_over_update_date() -> None:
    result = clean(page("Channel Dredging Approved", "Updated 2024-03-05", "Published March 3, 2024", LEDE, SECOND))
    assert result.published_at is not None
    assert result.published_at.date().isoformat() == "2024-03-03"
    assert "2024" not in result.body


# --- paragraphs, repetition and unicode -------------------------------------------------------------------------


def test_single_newline_breaks_are_paragraphs() -> None:
    result = clean(page("Channel Dredging Approved", LEDE, "Advertisement", SECOND, THIRD, separator="\n"))
    assert result.body == f"{LEDE}\n\n{SECOND}\n\n{THIRD}"


def test_repeated_paragraph_is_kept_once() -> None:
    result = clean(page("Channel Dredging Approved", LEDE, SECOND, LEDE, THIRD))
    assert result.body == f"{LEDE}\n\n{SECOND}\n\n{THIRD}"


def test_hard_wrapped_paragraphs_are_joined() -> None:
    def wrap(paragraph: str, width: int = 72) -> str:
        lines, current = [], ""
        for word in paragraph.split():
            if current and len(current) + 1 + len(word) > width:
                lines.append(current)
                current = word
            else:
                current = f"{current} {word}".strip()
        lines.append(current)
        return "\n".join(lines)

    text = page("Channel Dredging Approved", wrap(LEDE), wrap(SECOND), wrap(THIRD))
    assert len(split_units(text)) == 4
    assert clean(text).body == f"{LEDE}\n\n{SECOND}\n\n{THIRD}"


def test_mojibake_is_repaired_and_typographic_quotes_kept() -> None:
    quoted = "“We will keep the channel open,” said the harbour master’s deputy, who asked to remain anonymous today."
    # UTF-8 read as Windows-1252 (bytes it leaves undefined kept as C1 controls), as scrapers commonly do.
    broken = quoted.encode("utf-8").decode("sloppy-windows-1252")
    assert "â€" in broken
    result = clean(page("Channel Dredging Approved", LEDE, broken))
    assert quoted in result.body


def test_invisible_characters_are_stripped() -> None:
    result = clean(page("Channel\u200b Dredging Approved", LEDE.replace("harbour", "har\u00adbour\u200b"), SECOND))
    assert "\u200b" not in result.body + result.title
    assert "\u00ad" not in result.body
    assert "harbour authority" in result.body


def test_no_headline_falls_back_to_the_first_sentence() -> None:
    result = clean(page(LEDE, SECOND))
    assert result.title.endswith("…")
    assert LEDE.startswith(result.title[:-1])
    assert len(result.title) <= 121
    assert result.body.startswith(LEDE)


def test_extract_text_reports_what_it_dropped() -> None:
    extraction = extract_text(page("Loading Now", "Channel Dredging Approved", LEDE, "Advertisement", SECOND))
    assert extraction.paragraphs == [LEDE, SECOND]
    assert extraction.dropped == {"chrome": 1, "interstitial": 1}


@pytest.mark.parametrize(
    "line",
    [
        "Photo: Getty Images",
        "Image credit: Harbour Authority",
        "(AP Photo/Jane Doe)",
        "Tags: shipping, harbour, environment",
        "Filed under: City news",
        "5 hours ago",
        "Updated 12 minutes ago",
    ],
)
def test_page_labels_are_chrome(line: str) -> None:
    assert is_chrome(line)


def test_section_label_above_the_headline_is_not_the_title() -> None:
    result = clean(page("WORLD", "Harbour Channel Will Be Dredged Despite Objections", LEDE, SECOND))
    assert result.title == "Harbour Channel Will Be Dredged Despite Objections"
    assert "WORLD" not in result.body
    assert result.body == f"{LEDE}\n\n{SECOND}"


def test_wire_credit_line_at_the_end_is_a_byline() -> None:
    result = clean(page("Channel Dredging Approved", LEDE, SECOND, "Reporting by Miriam Hale; Editing by Tom Ruiz"))
    assert result.body == f"{LEDE}\n\n{SECOND}"
    assert result.authors == ["Miriam Hale"]


# --- whole pages laid out like common sites (tests/fixtures/clean) ---------------------------------------------

SITE_PAGES = Path(__file__).parents[1] / "fixtures" / "clean"


@pytest.mark.parametrize(
    ("name", "title", "authors", "day", "first", "last", "paragraphs"),
    [
        (
            "reuters-style",
            "Germany to boost defence spending as economy stalls, sources say",
            ["Maria Martinez", "Andreas Rinke"],
            None,
            "BERLIN, Nov 26 (Reuters) - Germany plans",
            "declined to comment on the figures.",
            3,
        ),
        (
            "wordpress-style",
            "Why our town's library is the busiest building on Main Street",
            ["Gail Porter"],
            "2023-03-14",
            "When the library extended its opening hours",
            "fund two more staff positions.",
            3,
        ),
        (
            "medium-style",
            "The Quiet Cost of Always-On Notifications",
            ["Dana Whitfield"],
            "2024-01-09",
            "Every buzz pulls attention somewhere else.",
            "hold messages until the afternoon.",
            3,
        ),
    ],
)
def test_site_shaped_pages(
    name: str, title: str, authors: list[str], day: str | None, first: str, last: str, paragraphs: int
) -> None:
    result = clean((SITE_PAGES / f"{name}.txt").read_text(encoding="utf-8"))
    assert result.title == title
    assert result.authors == authors
    assert (result.published_at.date().isoformat() if result.published_at else None) == day
    assert result.body.startswith(first)
    assert result.body.endswith(last)
    assert len(result.body.split("\n\n")) == paragraphs


@pytest.mark.parametrize("line", ["By TMZ Staff", "By the Associated Press", "By Reuters Staff"])
def test_newsroom_bylines_name_no_person(line: str) -> None:
    assert parse_byline(line) == []
    result = clean(page("Channel Dredging Approved", line, LEDE, SECOND))
    assert result.authors == []
    assert result.body == f"{LEDE}\n\n{SECOND}"

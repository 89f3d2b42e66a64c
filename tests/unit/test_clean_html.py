"""HTML mode of the clean stage: extraction, metadata, post-cleaning, hostile markup and real dev pages."""

from __future__ import annotations

import json
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from services.clean.article import clean_article
from services.clean.html import (
    HtmlExtraction,
    _layout_cells,
    _second_opinion,
    declared_language,
    extract_html,
    strip_site_name,
    title_overlap,
)
from services.clean.htmlparse import parse_html, walk_page
from services.clean.htmltext import html_to_text
from services.clean.lines import normalise_domain
from shared.errors import Rejected
from shared.events import CleanSection, IngestSection
from tools.eval.metrics import score_body

NEWS_PAGES = Path(__file__).parents[1] / "fixtures" / "news-pages"

PARAGRAPHS = [
    "The city council voted on Monday to close the old tram depot and turn the site into a public park, ending a "
    "decade of arguments about what should happen to the land beside the river.",
    "Councillors said the park would open in stages, with the first lawns and a playground ready next summer and "
    "the restored depot hall converted into a covered market by the end of the following year.",
    "Residents who had campaigned for the park welcomed the decision, while a group of local traders said they "
    "would have preferred housing, arguing that the neighbourhood needs more homes far more than more grass.",
    "The council's budget sets aside twelve million euros for the work, most of it for cleaning the soil, which "
    "surveys found to be contaminated with oil and heavy metals from more than a century of tram maintenance.",
]


def article_page(*, extra_body: str = "", head: str = "") -> str:
    body = "".join(f"<p>{paragraph}</p>" for paragraph in PARAGRAPHS)
    return f"""<!DOCTYPE html>
<html lang="en-GB"><head>
<meta charset="utf-8">
<title>Old tram depot to become a park | Riverside Chronicle</title>
<meta property="og:title" content="Old tram depot to become a park">
<meta property="og:site_name" content="Riverside Chronicle">
<meta name="author" content="Lena Fischer">
<meta property="article:published_time" content="2024-04-08T09:30:00+02:00">
<link rel="canonical" href="https://www.riversidechronicle.com/city/tram-depot-park">
{head}
</head><body>
<header><nav><a href="/">Home</a> | <a href="/city">City</a> | <a href="/sport">Sport</a></nav>
<a href="/login">Sign in</a></header>
<main><article>
<h1>Old tram depot to become a park</h1>
<p class="byline">By Lena Fischer</p>
{body}
{extra_body}
</article></main>
<aside><h3>Most popular</h3><ul><li><a href="/a">Bridge closed for repairs</a></li>
<li><a href="/b">New bus timetable</a></li></ul></aside>
<footer><p>© 2024 Riverside Chronicle. All rights reserved.</p><a href="/privacy">Privacy Policy</a></footer>
<script>window.analytics = {{ track: function() {{}} }};</script>
</body></html>"""


def ingest(content: str, kind: str = "html", **hints: Any) -> IngestSection:
    return IngestSection(
        origin="test",
        received_at=datetime(2024, 5, 1, tzinfo=UTC),
        content_hash="abc",
        kind="html" if kind == "html" else "text",
        content=content,
        **hints,
    )


def clean(content: str, **hints: Any) -> CleanSection:
    return clean_article(ingest(content, **hints))


def test_article_page_body_and_metadata() -> None:
    result = clean(article_page())
    assert result.body == "\n\n".join(PARAGRAPHS)
    assert result.title == "Old tram depot to become a park"
    assert result.authors == ["Lena Fischer"]
    assert result.source_domain == "riversidechronicle.com"
    assert result.source_name == "Riverside Chronicle"
    assert result.url == "https://www.riversidechronicle.com/city/tram-depot-park"
    assert result.published_at is not None and result.published_at.date().isoformat() == "2024-04-08"
    assert result.language_declared == "en-gb"
    assert result.extractor.startswith("trafilatura")


def test_leftover_chrome_lines_are_post_cleaned() -> None:
    extra = (
        "<p>Advertisement</p><p>Story continues below advertisement</p>"
        "<p>Sign up for our newsletter to get the city news in your inbox every morning.</p>"
        "<p>Share this:</p>"
    )
    result = clean(article_page(extra_body=extra))
    assert result.body == "\n\n".join(PARAGRAPHS)
    assert sum(result.dropped.values()) >= 3


def test_gallery_and_trailing_related_module_are_cut() -> None:
    gallery = "".join(
        f"<p>{i}/12 Slide caption number {i} shows the depot from another angle today</p>" for i in range(1, 13)
    )
    related = "<h2>Related stories</h2>" + "".join(
        f"<p>Teaser paragraph {i} about an entirely different story elsewhere in the city, for readers.</p>"
        for i in range(3)
    )
    result = clean(article_page(extra_body=gallery + related))
    assert "Slide caption" not in result.body
    assert "Teaser paragraph" not in result.body
    assert result.body.startswith(PARAGRAPHS[0])


def test_client_hints_override_extracted_metadata() -> None:
    result = clean(
        article_page(),
        title="Client title",
        url="https://example.net/x",
        source="example.net",
        published_at="2023-01-02",
    )
    assert result.title == "Client title"
    assert result.url == "https://example.net/x"
    assert result.source_domain == "example.net"
    assert result.published_at == datetime(2023, 1, 2, tzinfo=UTC)


@pytest.mark.parametrize(
    ("html", "language"),
    [
        ('<html lang="fr"><head></head></html>', "fr"),
        ("<html xml:lang='de-AT' lang='de-AT'>", "de-at"),
        ('<html><head><meta http-equiv="Content-Language" content="es"></head>', "es"),
        ('<html><head><meta property="og:locale" content="pt_BR"></head>', "pt-br"),
        ("<html><body>no language</body></html>", None),
    ],
)
def test_declared_language(html: str, language: str | None) -> None:
    assert declared_language(html) == language


@pytest.mark.parametrize(
    ("title", "site", "url", "expected"),
    [
        ("Headline here | CNN Politics", "CNN", None, "Headline here"),
        ("Riverside Chronicle | Headline here", "Riverside Chronicle", None, "Headline here"),
        ("Headline here -- Sott.net", None, "https://www.sott.net/a", "Headline here"),
        ("Headline » Local » News » Island Daily", "Island Daily", None, "Headline"),
        ("Mugabe - the end of an era", "The Telegraph", None, "Mugabe - the end of an era"),
    ],
)
def test_site_name_is_stripped_from_titles(title: str, site: str | None, url: str | None, expected: str) -> None:
    assert strip_site_name(title, site, url) == expected


PEANUT_STORY = "".join(
    f"<p>Paragraph {n} of a story about early peanut feeding, with enough words to be running prose here.</p>"
    for n in range(5)
)


@pytest.mark.parametrize(
    ("head_title", "h1", "expected"),
    [
        # A section label in the only <h1>, the headline in <title>.
        (
            "Babies Who Eat Peanuts Early May Avoid Allergy",
            "Allergies Health Center",
            "Babies Who Eat Peanuts Early May Avoid Allergy",
        ),
        # A short headline that <title> repeats (with the site name) is the headline.
        ("Peanut Study Ends | Health Daily", "Peanut Study Ends", "Peanut Study Ends"),
        # A long <h1> is the headline even when <title> says something else.
        (
            "Health Daily - Trusted Medical News And Advice",
            "Babies who eat peanuts early may avoid allergy",
            "Babies who eat peanuts early may avoid allergy",
        ),
    ],
)
def test_headline_from_markup_skips_a_section_label_h1(head_title: str, h1: str, expected: str) -> None:
    html = f"<html><head><title>{head_title}</title></head><body><h1>{h1}</h1>{PEANUT_STORY}</body></html>"
    assert extract_html(html).title == expected


# --- non-articles and hostile input --------------------------------------------------------------------------


def test_404_page_is_rejected() -> None:
    html = (
        "<html><head><title>404 Not Found</title></head><body><h1>Page not found</h1>"
        "<p>Sorry, the page you are looking for does not exist or has been moved.</p>"
        "<p><a href='/'>Go to the home page</a></p></body></html>"
    )
    with pytest.raises(Rejected) as caught:
        clean(html)
    assert caught.value.reason == "error_page"


def test_page_of_links_is_a_listing_or_has_no_article_text() -> None:
    links = "".join(f"<li><a href='/story/{i}'>Headline number {i} about the city</a></li>" for i in range(60))
    try:
        assert clean(f"<html><body><ul>{links}</ul></body></html>").content_type == "listing"
    except Rejected as rejected:  # trafilatura may keep none of a page that is all links
        assert rejected.reason == "no_article_text"


def test_scripts_and_styles_only_is_rejected_as_no_text() -> None:
    scripts = "<script>var a = 1;</script>" * 50
    html = f"<html><head><style>p{{color:red}}</style></head><body>{scripts}</body></html>"
    with pytest.raises(Rejected) as caught:
        clean(html)
    assert caught.value.reason == "no_article_text"


def test_binary_junk_is_rejected() -> None:
    junk = bytes(range(256)).decode("latin-1") * 40
    with pytest.raises(Rejected) as caught:
        clean(junk)
    assert caught.value.reason == "not_an_article"


def test_ten_thousand_levels_of_nesting_end_in_a_result_quickly() -> None:
    text = " ".join(PARAGRAPHS)
    html = "<html><body>" + "<div>" * 10_000 + f"<p>{text}</p>" + "</div>" * 10_000 + "</body></html>"
    started = time.perf_counter()
    try:
        result = clean(html)
    except Rejected as rejected:
        pytest.fail(f"the article text is there to find, got {rejected.reason}")
    assert "tram depot" in result.body
    assert time.perf_counter() - started < 10


def test_fallback_reads_text_trafilatura_cannot_see() -> None:
    html = "<html><body>" + "<span>" * 3000 + "".join(f"<p>{p}</p>" for p in PARAGRAPHS) + "</span>" * 3000
    extraction = extract_html(html)
    assert extraction.paragraphs == PARAGRAPHS
    assert extraction.extractor == "trafilatura+fallback"


def test_html_to_text_skips_furniture_and_keeps_blocks() -> None:
    title, text = html_to_text(
        "<html><head><title>T</title><style>x{}</style></head><body><nav>Menu</nav><p>One</p><div>Two<br>Three"
        "</div><script>bad()</script><img src=x><p>Four</p></body></html>"
    )
    assert title == "T"
    assert text.split("\n") == ["One", "Two", "Three", "Four"]


# --- real dev pages (copied fixtures) --------------------------------------------------------------------------


def fixture_rows() -> list[dict[str, str]]:
    lines = (NEWS_PAGES / "index.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


@pytest.mark.parametrize("row", fixture_rows(), ids=lambda row: row["id"])
def test_real_pages_give_their_article(row: dict[str, str]) -> None:
    html = (NEWS_PAGES / row["html"]).read_text(encoding="utf-8")
    reference = (NEWS_PAGES / row["gold_text"]).read_text(encoding="utf-8")
    result = clean(html)
    score = score_body(result.body, reference)
    # These pages score 0.97-1.0 today; the margin absorbs small extractor changes, not lost paragraphs.
    assert score.precision >= 0.95
    assert score.recall >= 0.95
    assert result.title == row["title"]
    assert result.source_domain == normalise_domain(row["url"])


def test_herald_sun_opinion_column_loses_its_other_columns_module() -> None:
    row = next(row for row in fixture_rows() if row["id"] == "readability/herald-sun-1")
    result = clean((NEWS_PAGES / row["html"]).read_text(encoding="utf-8"))
    assert "Other Opinion Columns" not in result.body
    assert "Ikea" not in result.body


def test_author_bio_after_the_story_leaves_the_body() -> None:
    bio = (
        "<p>Lena Fischer is a staff writer covering city hall and transport. She previously reported for a "
        "regional newspaper and is based in Hamburg.</p>"
    )
    result = clean(article_page(extra_body=bio))
    assert result.body == "\n\n".join(PARAGRAPHS)
    assert result.dropped["bio"] == 1


def test_schema_org_json_ld_metadata_wins() -> None:
    json_ld = """<script type="application/ld+json">{"@context": "https://schema.org", "@graph": [
        {"@type": "WebSite", "name": "Riverside Chronicle"},
        {"@type": "NewsArticle", "headline": "Depot becomes a park after council vote",
         "datePublished": "2024-04-07T18:00:00Z",
         "author": [{"@type": "Person", "name": "Lena Fischer"}, {"@type": "Person", "name": "Omar Haddad"}],
         "publisher": {"@type": "Organization", "name": "Riverside Chronicle"}}]}</script>"""
    result = clean(article_page(head=json_ld))
    assert result.title == "Depot becomes a park after council vote"
    assert result.authors == ["Lena Fischer", "Omar Haddad"]
    assert result.published_at == datetime(2024, 4, 7, 18, 0, tzinfo=UTC)


@pytest.mark.parametrize(("before", "after"), [("<![CDATA[", "]]>"), ("<!--", "-->")])
def test_json_ld_wrapped_in_cdata_or_a_comment_is_read(before: str, after: str) -> None:
    json_ld = (
        f'<script type="application/ld+json">\n  {before}\n  {{"@type": "NewsArticle", "headline": "Depot becomes a '
        f'park", "author": [{{"@type": "Person", "name": "Lena Fischer"}}]}}\n  {after}\n</script>'
    )
    result = clean(article_page(head=json_ld))
    assert result.title == "Depot becomes a park"
    assert result.authors == ["Lena Fischer"]


@pytest.mark.parametrize(
    ("byline", "authors"),
    [
        # The name element and the role element inside one byline box: the box's text is no name.
        (
            "<div class='author'><a rel='author' href='/author/lf'>Lena Fischer</a>"
            "<div class='author-title'>City Editor</div></div>",
            ["Lena Fischer"],
        ),
        # Co-authors in brackets after the name.
        ("<span class='byline'>Lena Fischer (with Omar Haddad)</span>", ["Lena Fischer"]),
    ],
)
def test_marked_up_byline_names_without_roles_or_brackets(byline: str, authors: list[str]) -> None:
    body = "".join(f"<p>{paragraph}</p>" for paragraph in PARAGRAPHS)
    html = (
        "<html><head><title>Depot to become park</title></head><body><article><h1>Depot to become park</h1>"
        f"{byline}{body}</article></body></html>"
    )
    assert clean(html).authors == authors


def test_marked_up_byline_and_url_date_when_nothing_is_declared() -> None:
    body = "".join(f"<p>{paragraph}</p>" for paragraph in PARAGRAPHS)
    html = (
        "<html><head><title>Depot to become park</title>"
        "<link rel='canonical' href='https://news.example.org/2024/04/08/depot-park/'></head><body><article>"
        "<h1>Depot to become park</h1><div class='byline'>By Lena Fischer, City Reporter</div>"
        f"{body}</article></body></html>"
    )
    result = clean(html)
    assert result.authors == ["Lena Fischer"]
    assert result.published_at == datetime(2024, 4, 8, tzinfo=UTC)
    assert result.source_domain == "news.example.org"


def test_a_layout_tables_cells_are_judged_one_by_one_and_a_data_tables_rows_stay_whole() -> None:
    story = " ".join(PARAGRAPHS)
    layout = (
        "<html><head><title>Harbour plan approved</title></head><body><table><tr>"
        "<td><a href='/'>Home</a> <a href='/news'>News</a></td>"
        f"<td><h1>Harbour plan approved</h1>{story}</td>"
        "<td><a href='/mail'>E-mail this to a friend</a></td><td><a href='/print'>Printable version</a></td>"
        "</tr></table></body></html>"
    )
    body = clean(layout).body
    assert "E-mail this to a friend" not in body and "Printable version" not in body
    assert story.split(".")[0] in body
    # A data table's row (scores, prices) stays one line; a row of empty or ruled cells goes.
    dropped: Counter[str] = Counter()
    assert _layout_cells("| Harbridge | 18 | 5 |", dropped) == ["| Harbridge | 18 | 5 |"]
    assert _layout_cells("| | ----- | |", dropped) == [] and dropped["chrome"] == 1
    assert _layout_cells("| Price \\| Tax | 12 |", dropped) == ["| Price \\| Tax | 12 |"]


def test_an_unclosed_title_does_not_swallow_the_page() -> None:
    paragraphs = "".join(f"<p>{p}</p>" for p in PARAGRAPHS)
    section = clean(
        f"<html><head><title>Harbour plan approved\n</head><body><article>{paragraphs}</article></body></html>"
    )
    assert section.title == "Harbour plan approved"
    assert PARAGRAPHS[0] in section.body


@pytest.mark.parametrize(
    ("title", "url"),
    [
        (
            "Moon learns from his mistake - HOOPSWORLD | NBA News, Rumors and Information",
            "https://www.hoopsworld.com/s",
        ),
        ("Moon learns from his mistake - Market Rasen Today", "http://www.marketrasenmail.co.uk/sport/1"),
        # The domain's own name, not its first label ("news"); the sections between headline and site go too.
        ("Moon learns from his mistake_English_Xinhua", "http://news.xinhuanet.com/english/2007-11/24/c.htm"),
        ("Moon learns from his mistake - Soccer - Sport - Belfast Telegraph", "http://www.belfasttelegraph.co.uk/s"),
    ],
)
def test_the_site_name_and_its_tagline_leave_the_title(title: str, url: str) -> None:
    assert strip_site_name(title, None, url) == "Moon learns from his mistake"


def test_a_short_last_part_without_a_site_name_stays_with_the_headline() -> None:
    assert strip_site_name("McCarthy is not for sale - Hughes", None, "https://www.supersoccer.co.uk/x") == (
        "McCarthy is not for sale - Hughes"
    )


def test_title_overlap_is_the_share_of_headline_words_in_the_opening() -> None:
    assert title_overlap("Council approves harbour plan", ["The council approved the harbour plan today."]) == 0.75
    assert title_overlap("Harbour plan", ["The harbour plan was approved."]) == 1.0
    assert title_overlap("Vote", ["Anything at all."]) is None


SPLIT_LEDE = [
    "Harbridge beat Castleford 2-1 on Tuesday night and reached the final of the northern cup for the first time, "
    "after a late goal from the substitute Dan Moss.",
    "The home side will play Eastwick for the title on Saturday. Eastwick beat Millbrook 4-3 after extra time on "
    "Monday.",
    "The final has been played at the county ground in each of its four editions, but Harbridge had never made it.",
]
SPLIT_REST = [
    f"{who} {what}, and the crowd of {n},412 at the county ground {how}, the club said after the match on Tuesday."
    for who, what, n, how in [
        ("The visiting keeper", "saved a penalty in the first half", 12, "rose to applaud him"),
        ("The home captain", "hit the post twice before the break", 11, "groaned both times"),
        ("Moss", "came on with twenty minutes left", 10, "chanted his name"),
        ("The referee", "booked four players in a scrappy second half", 9, "booed him off"),
        ("The visiting manager", "said his side had run out of legs", 8, "had thinned by then"),
        ("The home coach", "praised the fitness of his squad", 7, "stayed to the end"),
        ("The winning goal", "came from a corner in the 88th minute", 6, "was on its feet"),
        ("The visitors", "had won both league meetings this season", 5, "expected a third"),
        ("The showpiece", "will be shown live on regional television", 4, "will be larger"),
        ("Tickets", "go on sale to members on Wednesday morning", 3, "queued overnight"),
    ]
]


def test_a_story_printed_in_two_blocks_is_kept_whole() -> None:
    # The lede above a gallery and the rest below the ad towers, each in its own articleBody: trafilatura's fast
    # pass finds the first block and its full pass the second; neither is the story alone.
    lede = "".join(f'<p class="text">{p}</p>' for p in SPLIT_LEDE)
    rest = "".join(f'<p class="text">{p}</p>' for p in SPLIT_REST)
    html = f"""<html><head><title>Harbridge edge Castleford to reach cup final</title></head><body>
<div class="page"><div class="col-main"><h1>Harbridge edge Castleford to reach cup final</h1>
<div class="gallery"><img src="a.jpg" alt="photo"></div>
<div itemprop="articleBody" class="article">{lede}</div></div>
<div class="towers"><div class="ad" id="sky1"></div><div class="ad" id="sky2"></div></div>
<div class="col-main content-full-article"><div itemprop="articleBody" class="article">{rest}</div></div>
</div></body></html>"""
    paragraphs = extract_html(html).paragraphs
    assert paragraphs == [*SPLIT_LEDE, *SPLIT_REST]


@pytest.mark.parametrize(
    "heading",
    [
        "Reader views (5)",
        "What you think...",
        "{ 2 comments… read them below or add one }",
        "12 Responses to “Old tram depot to become a park”",
        "Trackback Pings",
        "Older Post",
        "Also on HuffPost:",
        "More Headlines",
        "Other News in Science",
        "Recent Online Media Daily Articles",
        "Last 5 posts by Jason Ditz",
    ],
)
def test_comment_sections_and_blog_footers_after_the_story_go(heading: str) -> None:
    thread = (
        f"<p>{heading}</p><p>I have lived by that depot for thirty years and never once seen it used, so this "
        "is good news for all of us.</p><p>Posted by: Brad of Riverside 2:19pm January 12</p>"
    )
    body = clean(article_page(extra_body=thread)).body
    assert body == "\n\n".join(PARAGRAPHS)


@pytest.mark.parametrize("line", ["Other countries followed.", "Recent rains flooded the valley.", "More were hurt."])
def test_a_short_closing_line_that_only_looks_like_a_module_heading_stays(line: str) -> None:
    body = clean(article_page(extra_body=f"<p>{line}</p>")).body
    assert body.endswith(line)


COMMENTS = [
    "I have lived by that depot for thirty years and never once seen it used, so this is good news for all of us who "
    "walk past it every morning on the way to the station.",
    "Twelve million euros for lawns while the buses still run every forty minutes. The council should fix the "
    "transport it already has before it builds anything new on that land.",
    "The soil survey is the real story here: who paid for a century of oil in the ground, and why is it the city and "
    "not the companies that ran the trams?",
]


@pytest.mark.parametrize("heading", ["12 Comments", "Leave a Reply", "Comments"])
def test_a_comment_thread_longer_than_the_story_is_cut_at_its_heading(heading: str) -> None:
    # The thread outweighs the story, so a "most of the story read" rule would keep it; a comment heading does not.
    thread = "".join(
        f"<p>{name} on April {day}</p><p>{text} {name} agrees with the {number}th reply above.</p>"
        for day, name in enumerate(["Brad", "Mira K.", "J. Okafor"], start=8)
        for number, text in enumerate(COMMENTS, start=day)
    )
    assert clean(article_page(extra_body=f"<p>{heading}</p>{thread}")).body == "\n\n".join(PARAGRAPHS)


def test_a_subheading_named_comment_early_in_the_story_ends_nothing() -> None:
    # "Comment" as the story's own section (offer commentary, not read it), after a fifth of the story.
    first, *rest = PARAGRAPHS
    html = article_page().replace(
        "".join(f"<p>{paragraph}</p>" for paragraph in PARAGRAPHS),
        f"<p>{first}</p><h2>Comment</h2>" + "".join(f"<p>{paragraph}</p>" for paragraph in rest),
    )
    assert clean(html).body.endswith(PARAGRAPHS[-1])


STANDFIRST = "The council chose lawns and a covered market over housing for the riverside land."


def standfirst_page(description: str, shown: str) -> str:
    """The article page with a declared description and a header that shows `shown` under the headline."""
    page = article_page(head=f'<meta property="og:description" content="{description}">')
    # Under the headline, outside the <article> that holds the story (as headers are printed): trafilatura leaves it.
    return page.replace(
        "<main><article>", f'<header class="deck"><p class="standfirst">{shown}</p></header><main><article>'
    )


def test_a_standfirst_the_page_declares_and_shows_above_the_story_opens_the_body() -> None:
    assert clean(standfirst_page(STANDFIRST, STANDFIRST)).body == "\n\n".join([STANDFIRST, *PARAGRAPHS])


@pytest.mark.parametrize(
    ("description", "shown"),
    [
        # Declared but never shown (a summary for search engines and link previews).
        (STANDFIRST, "Photo: the depot in 1932."),
        # Shown, but hidden from readers.
        (STANDFIRST, f'<span hidden="">{STANDFIRST}</span>'),
        # The story's own lede, or the headline, as the description.
        (PARAGRAPHS[0], PARAGRAPHS[0]),
        ("Old tram depot to become a park", "Old tram depot to become a park"),
    ],
)
def test_a_description_is_no_standfirst_unless_shown_apart_from_headline_and_lede(description: str, shown: str) -> None:
    body = clean(standfirst_page(description, shown)).body
    assert body.startswith(PARAGRAPHS[0]) and body.count(PARAGRAPHS[0]) == 1


SIDEBAR_BIO = (
    "Paul Overton is a prolific blogger, maker, writer and ukulele player living in Durham with four dogs, two cats "
    "and a lawn that makes his neighbours want to call the city about it. He has written about crafts for ten "
    "years, runs a monthly workshop at the public library, and answers every letter readers send him."
)
SHORT_POST = (
    "No matter how long I stare at this drawing of a rainy street, I still cannot believe it is done in pencil on "
    "plain paper. The artist spent three months on it and used nothing but graphite and an eraser."
)


def table_layout_page(description: str = "") -> str:
    """An old table-layout blog page: a short post in one cell, a long bio and a link list in the sidebar cell."""
    meta = f'<meta name="description" content="{description}">' if description else ""
    friends = "".join(f'<li><a href="/f{number}">Friend {number}</a></li>' for number in range(12))
    return f"""<html><head><title>A pencil drawing of a rainy street | DudeCraft</title>{meta}</head><body>
<table width="900"><tr><td class="main" width="600">
<h2>A pencil drawing of a rainy street</h2><div>{SHORT_POST}</div><div>Posted by Paul at 9:12</div>
</td><td class="side" width="300">
<div class="widget"><h3>Who is the Dude?</h3><div>{SIDEBAR_BIO * 3}</div></div>
<div class="widget"><h3>Friends</h3><ul>{friends}</ul></div>
</td></tr></table></body></html>"""


def wrong_block(html: str, paragraphs: list[str], description: str | None = None) -> HtmlExtraction:
    """What trafilatura hands over on such pages: the sidebar's block taken for the story."""
    return HtmlExtraction(
        title="A pencil drawing of a rainy street", paragraphs=paragraphs, extractor="trafilatura",
        language_declared=None, description=description,
    )  # fmt: skip


def second_opinion(html: str, result: HtmlExtraction) -> bool:
    tree = parse_html(html)
    assert tree is not None
    return _second_opinion(html, result, walk_page(tree))


def test_a_block_that_never_mentions_the_headline_gives_way_to_readabilitys_article() -> None:
    result = wrong_block(table_layout_page(), [SIDEBAR_BIO] * 3)
    assert second_opinion(table_layout_page(), result)
    assert result.extractor == "readability" and SHORT_POST in result.paragraphs
    assert not any("Overton" in paragraph for paragraph in result.paragraphs)


def test_a_block_without_the_declared_description_gives_way_when_readability_prints_it() -> None:
    # The bio mentions the headline's words, so only the description shows it is not the story.
    bio = f"{SIDEBAR_BIO} His favourite pencil drawing of a rainy street hangs in the hall."
    html = table_layout_page(SHORT_POST[:120])
    result = wrong_block(html, [bio], description=SHORT_POST[:120])
    assert second_opinion(html, result) and SHORT_POST in result.paragraphs


@pytest.mark.parametrize(
    ("paragraphs", "description"),
    [
        # The story found mentions its headline and prints the description: readability is not asked.
        ([SHORT_POST, "A pencil drawing of a rainy street, in pencil."], SHORT_POST[:120]),
        # The description is missing, but readability does not print it either.
        ([f"{SIDEBAR_BIO} A pencil drawing of a rainy street."], "A summary for link previews that no line shows."),
    ],
)
def test_a_story_that_holds_its_headline_or_description_is_kept(paragraphs: list[str], description: str) -> None:
    html = table_layout_page(description)
    result = wrong_block(html, list(paragraphs), description=description)
    assert not second_opinion(html, result)
    assert result.paragraphs == paragraphs and result.extractor == "trafilatura"


def test_readability_is_not_taken_when_it_finds_the_headline_no_better() -> None:
    # A page whose every block is off the headline (readability's article included) keeps what trafilatura found.
    html = (
        table_layout_page()
        .replace("A pencil drawing of a rainy street</h2>", "Monday</h2>")
        .replace(SHORT_POST, "Nothing but graphite and an eraser, three months of evenings, and a very patient cat.")
    )
    result = wrong_block(html, [SIDEBAR_BIO] * 3)
    assert not second_opinion(html, result) and result.paragraphs == [SIDEBAR_BIO] * 3

"""Lines placed by where they sit in the page: hidden elements, video players, notices after the story."""

from __future__ import annotations

from services.clean.html import extract_html
from services.clean.htmlparse import parse_html, walk_page
from services.clean.storymap import (
    LineMap,
    embedded_posts,
    outside_story_edges,
    trailing_outside_story,
    unseen_lines,
    widget_tail,
)

STORY = [
    "The harbour authority said on Tuesday that the northern pier would reopen to ferries next month, after a "
    "winter of repairs to the timber piles that storms had loosened in January.",
    "Engineers replaced more than two hundred piles and rebuilt the landing stage, which had been closed since a "
    "fishing boat struck it during the worst of the January gales.",
    "Ferry operators welcomed the news, saying the closure had forced them to use the smaller southern pier, where "
    "only one vessel can berth at a time and queues of cars stretched back into the town.",
    "The authority said the total cost of the work, just under four million euros, would be shared with the "
    "regional government, which declared the storm damage a disaster last spring.",
]


def page(
    *,
    inside: str = "",
    after: str = "",
    before: str = "",
    wrapper_attrs: str = 'class="article-body"',
    story: list[str] = STORY,
) -> str:
    paragraphs = "".join(f"<p>{paragraph}</p>" for paragraph in story)
    return f"""<!DOCTYPE html><html lang="en"><head><title>Northern pier to reopen | Coast Gazette</title>
<meta property="og:title" content="Northern pier to reopen"></head><body>
<main><article><h1>Northern pier to reopen</h1>{before}
<div {wrapper_attrs}>{paragraphs}{inside}</div>
{after}
</article></main></body></html>"""


def body_of(html: str) -> str:
    return "\n".join(extract_html(html).paragraphs)


def test_the_story_alone_is_kept_whole() -> None:
    body = body_of(page())
    assert all(paragraph in body for paragraph in STORY)


def test_topic_tags_in_a_hidden_list_are_dropped() -> None:
    tags = '<ul id="topics" class="hidden"><li>Politics &amp; Government</li><li>Arts &amp; Entertainment</li></ul>'
    body = body_of(page(inside=tags))
    assert "Politics & Government" not in body and "Arts & Entertainment" not in body
    assert STORY[-1] in body


def test_text_hidden_by_attribute_style_or_aria_is_dropped() -> None:
    hidden = (
        "<div hidden><p>Loading weather data for your area now</p></div>"
        '<div style="display: none"><p>Only subscribers can save articles to read later.</p></div>'
        '<div aria-hidden="true"><p>This dialog can be closed with the Escape key.</p></div>'
    )
    body = body_of(page(inside=hidden))
    for junk in ("Loading weather", "Only subscribers", "Escape key"):
        assert junk not in body
    assert all(paragraph in body for paragraph in STORY)


def judged(html: str, lines: list[str]) -> tuple[set[int], int]:
    """(unseen line indexes, trailing lines outside the story) for `lines` as an extractor returned them."""
    tree = parse_html(html)
    assert tree is not None
    line_map = LineMap(walk_page(tree).texts)
    located = [line_map.locate(line) for line in lines]
    return unseen_lines(located, lines), trailing_outside_story(located, lines)


def test_video_player_menus_are_unseen() -> None:
    # video.js prints its captions menu and error dialog as text inside the article, where extractors keep it.
    player = (
        '<div class="video-js vjs-paused" role="region"><div class="vjs-control-bar"><ul class="vjs-menu-content">'
        '<li class="vjs-menu-item">descriptions off<span class="vjs-control-text">, selected</span></li></ul></div>'
        '<p class="vjs-modal-dialog-description">This is a modal window. It can be closed with the Escape key.</p>'
        "</div>"
    )
    html = page().replace(f"<p>{STORY[2]}</p>", player + f"<p>{STORY[2]}</p>")
    lines = [
        *STORY[:2],
        "- descriptions off, selected",
        "This is a modal window. It can be closed with the Escape key.",
        *STORY[2:],
    ]
    unseen, _ = judged(html, lines)
    assert unseen == {2, 3}


def test_a_player_wrapping_the_whole_story_is_not_furniture() -> None:
    # A video page whose player markup encloses the article: the container holds the story, so nothing goes.
    assert judged(page(wrapper_attrs='class="video-js"'), STORY) == (set(), 0)
    # The same for a story hidden until a script reveals it.
    assert judged(page(wrapper_attrs='style="display:none"'), STORY) == (set(), 0)


def test_short_lines_after_the_story_outside_its_container_are_cut() -> None:
    after = (
        '<div class="box"><h3>Today on the Gazette</h3><p>Thanks for signing up!</p>'
        "<p>Now check your phone to download our new app.</p></div>"
    )
    lines = [*STORY, "Today on the Gazette", "Thanks for signing up!", "Now check your phone to download our new app."]
    assert judged(page(after=after), lines) == (set(), 3)


def test_a_short_last_line_inside_the_story_container_stays() -> None:
    closing = "<p>The pier reopens on 4 May at noon.</p>"
    lines = [*STORY, "The pier reopens on 4 May at noon."]
    assert judged(page(inside=closing), lines) == (set(), 0)


def test_a_tail_outweighing_the_story_is_left_alone() -> None:
    # More words after the container than in it means the container was misjudged, not furniture.
    teasers = [f"Harbour town number {n} opens a new museum of ferries" for n in range(1, 21)]
    after = '<div class="more">' + "".join(f"<p>{teaser}</p>" for teaser in teasers) + "</div>"
    assert judged(page(after=after), [*STORY, *teasers])[1] == 0


def test_a_hidden_copy_of_a_visible_paragraph_keeps_it() -> None:
    # A share dialog quoting the story's first paragraph must not take the paragraph itself away.
    dialog = f'<div class="hidden"><p>{STORY[0]}</p></div>'
    assert STORY[0] in body_of(page(after=dialog))


def test_a_story_hidden_until_a_script_reveals_it_is_kept() -> None:
    body = body_of(page(wrapper_attrs='style="display:none"'))
    assert all(paragraph in body for paragraph in STORY)


def test_lines_are_located_through_inline_markup() -> None:
    tree = parse_html(
        "<html><body><div id='a'><p>Ferries will use the <a href='/p'>northern pier</a> again from May, "
        "the harbour authority said.</p></div><ul class='x'><li>Politics &amp; Government</li></ul></body></html>"
    )
    assert tree is not None
    line_map = LineMap(walk_page(tree).texts)
    [paragraph] = line_map.locate("Ferries will use the northern pier again from May, the harbour authority said.")
    assert paragraph.tag == "p"
    [item] = line_map.locate("- Politics & Government")
    assert item.tag == "li"
    assert line_map.locate("A line that is nowhere on the page at all") == []


def test_a_line_pieced_from_several_nodes_is_located_at_the_element_around_them() -> None:
    # Old layouts break one paragraph with <br> and bold words, so no single text node is most of the line.
    tree = parse_html(
        "<html><body><table><tr><td id='story'><b>Chelsea hoping to sign Anelka</b><br>Wednesday, January 09<br>"
        "Chelsea are hoping to complete the signing<br>of the striker in time for the weekend<br>clash with "
        "Tottenham, the club said.</td><td id='side'><p>Ferry news from the coast</p></td></tr></table>"
        "<p>Associated Press</p><p>Associated Press</p></body></html>"
    )
    assert tree is not None
    line_map = LineMap(walk_page(tree).texts)
    [cell] = line_map.locate(
        "Chelsea hoping to sign Anelka Wednesday, January 09 Chelsea are hoping to complete the signing of the "
        "striker in time for the weekend clash with Tottenham, the club said."
    )
    assert cell.get("id") == "story"
    # Text the page repeats places nothing: a line made of it is not located.
    assert line_map.locate("Associated Press Associated Press and more words here") == []


def edges(html: str, lines: list[str]) -> tuple[int, int]:
    """(leading, trailing) lines outside the story's container for `lines` as an extractor returned them."""
    tree = parse_html(html)
    assert tree is not None
    line_map = LineMap(walk_page(tree).texts)
    return outside_story_edges([line_map.locate(line) for line in lines], lines)


# A story long enough that a deck and a byline are a small share of it, as on real pages.
LONGER_STORY = [
    *STORY,
    "Harbour staff will spend the coming weeks testing the new landing stage with the authority's own tug, and "
    "inspectors from the maritime agency are due to sign off the work before the first sailing.",
    "Residents of the streets around the southern pier said they were relieved, after months in which ferry "
    "traffic had blocked driveways and kept delivery vans from reaching the shops on the quay.",
    "The ferry company said timetables would return to their summer pattern from the first week of May, with "
    "extra sailings at weekends to clear the backlog of bookings made during the closure.",
]
DECK = "Repairs cost four million euros and closed the pier all winter, but ferries return in May."


def test_a_deck_and_byline_above_the_story_container_are_cut() -> None:
    before = f'<h2 class="deck">{DECK}</h2><span class="byline"><a href="/a/jd">Jane Doe</a></span>'
    html = page(before=before, story=LONGER_STORY)
    assert edges(html, [DECK, "Jane Doe", *LONGER_STORY]) == (2, 0)
    body = body_of(html)
    assert DECK not in body and all(paragraph in body for paragraph in LONGER_STORY)


def test_a_teaser_from_a_sidebar_widget_above_the_story_is_cut() -> None:
    teaser = "Which harbour town has the oldest pier? We have the answer, and the history behind it."
    html = page(story=LONGER_STORY)
    html = html.replace("<main>", f'<div class="sidebar"><div class="video"><p>{teaser}</p></div></div><main>')
    assert edges(html, [teaser, *LONGER_STORY]) == (1, 0)


def test_a_lead_paragraph_inside_the_story_container_stays() -> None:
    html = page(story=[DECK, *LONGER_STORY])
    assert edges(html, [DECK, *LONGER_STORY]) == (0, 0)


def test_a_long_block_above_the_story_is_left_alone() -> None:
    # A review's verdict box (or any long block) above the container: the container was misjudged, or the block
    # is part of the article; either way more than a tenth of the words is not furniture.
    verdict = " ".join(STORY[:2])
    html = page(before=f"<div class='summary'><p>{verdict}</p></div>", story=LONGER_STORY)
    assert edges(html, [verdict, *LONGER_STORY]) == (0, 0)
    short_lines = [f"Point number {n} of the summary box above the story" for n in range(8)]
    box = "".join(f"<li>{line}</li>" for line in short_lines)
    assert edges(page(before=f"<ul>{box}</ul>", story=LONGER_STORY), [*short_lines, *LONGER_STORY]) == (0, 0)


TWEET = (
    '<blockquote class="twitter-tweet"><p lang="en">Back on the water at last! First sailing from the north pier '
    'this morning <a href="https://t.co/x">pic.twitter.com/AbC123</a></p>— Coast Ferries (@coastferries) '
    '<a href="https://twitter.com/coastferries/status/1">May 4, 2024</a></blockquote>'
)


def test_an_embedded_social_post_is_dropped_and_the_story_kept() -> None:
    instagram = (
        '<blockquote class="instagram-media" data-instgrm-permalink="https://www.instagram.com/p/x/">'
        "<p>A post shared by Harbour Cafe (@harbourcafe) on the day the pier reopened</p></blockquote>"
    )
    html = page(story=LONGER_STORY).replace(
        f"<p>{LONGER_STORY[3]}</p>", TWEET + instagram + f"<p>{LONGER_STORY[3]}</p>"
    )
    body = body_of(html)
    for junk in ("Back on the water", "@coastferries", "Harbour Cafe"):
        assert junk not in body
    assert all(paragraph in body for paragraph in LONGER_STORY)


def test_a_round_up_of_embedded_posts_is_the_story() -> None:
    posts = [f"Reaction number {n} from a reader who was on the first ferry back to the north pier" for n in range(6)]
    embeds = "".join(f'<blockquote class="twitter-tweet"><p>{post}</p></blockquote>' for post in posts)
    tree = parse_html(page(inside=embeds))
    assert tree is not None
    line_map = LineMap(walk_page(tree).texts)
    lines = [*STORY, *posts]
    located = [line_map.locate(line) for line in lines]
    assert embedded_posts(located, lines) == set()
    assert embedded_posts(located[:5], lines[:5]) == {4}


def test_an_aside_box_in_the_story_is_dropped() -> None:
    # Extractors usually prune asides, but not when the box sits deep in the story's markup (seen on Kotaku).
    teaser = "This story continues our history of the northern pier, from the first timber landing stage…"
    box = f'<aside class="inset"><a href="/part-2"><h6>The pier at 100, part 2</h6><p>{teaser}</p></a></aside>'
    html = page(story=LONGER_STORY).replace(f"<p>{LONGER_STORY[2]}</p>", box + f"<p>{LONGER_STORY[2]}</p>")
    lines = [*LONGER_STORY[:2], teaser, *LONGER_STORY[2:]]
    assert judged(html, lines) == ({2}, 0)


def test_an_article_wrapped_in_an_aside_is_kept() -> None:
    assert judged(page(wrapper_attrs='class="story"').replace("<article>", "<aside>"), STORY) == (set(), 0)


def widgets(html: str, lines: list[str]) -> int:
    """Trailing lines in a widget block after the story, for `lines` as an extractor returned them."""
    tree = parse_html(html)
    assert tree is not None
    line_map = LineMap(walk_page(tree).texts)
    return widget_tail(line_map, [line_map.locate(line) for line in lines], lines)


def test_a_paywall_prompt_with_a_sign_up_button_after_a_cut_short_story_is_dropped() -> None:
    # The story is cut short by the paywall, so the prompt is a large share of the words: still a widget.
    prompt = (
        '<div class="regwall"><p class="regwall-text">This article is for members. Register for the digital '
        'edition to keep reading.</p><div class="cta"><p>Choose a free or paid plan</p>'
        '<a href="javascript:void(0)" rel="nofollow">Register now</a></div></div>'
    )
    html = page(story=STORY[:2], after=prompt)
    lines = [
        *STORY[:2],
        "This article is for members. Register for the digital edition to keep reading.",
        "Choose a free or paid plan",
    ]
    assert widgets(html, lines) == 2
    body = body_of(html)
    assert "Register for the digital edition" not in body and "free or paid plan" not in body
    assert all(paragraph in body for paragraph in STORY[:2])


def test_a_comment_policy_notice_linking_to_the_guidelines_is_dropped() -> None:
    # Inside the story's container, in any language: the links to the site's policies give it away, and the
    # notice's second line goes with it because it sits in the same block.
    notice = (
        '<div class="notice"><p>Le journal accueille un débat vif et utile. Merci de lire nos '
        '<a href="/community_guidelines.html">règles de participation</a> et notre '
        '<a href="/privacy.html">politique de confidentialité</a> avant de publier un commentaire.</p>'
        "<p>Les opinions exprimées ci-dessous ne reflètent pas celles du journal.</p></div>"
    )
    lines = [
        *STORY,
        "Le journal accueille un débat vif et utile. Merci de lire nos règles de participation et notre "
        "politique de confidentialité avant de publier un commentaire.",
        "Les opinions exprimées ci-dessous ne reflètent pas celles du journal.",
    ]
    assert widgets(page(inside=notice), lines) == 2


def test_a_last_paragraph_beside_a_share_button_of_the_whole_story_stays() -> None:
    # The share bar belongs to the container of every paragraph, not to the last paragraph's own block.
    html = page(inside='<button class="share">Share</button>')
    assert widgets(html, STORY) == 0
    # A closing line in its own plain block, after the story, is no widget either.
    assert (
        widgets(page(after="<div><p>The pier reopens on 4 May.</p></div>"), [*STORY, "The pier reopens on 4 May."]) == 0
    )


def test_a_last_paragraph_citing_one_policy_page_is_the_story() -> None:
    ending = (
        "The operator said its updated <a href='https://ferries.example/privacy'>privacy policy</a> explains how "
        "passenger lists are kept."
    )
    line = "The operator said its updated privacy policy explains how passenger lists are kept."
    assert widgets(page(inside=f"<p>{ending}</p>"), [*STORY, line]) == 0


def test_notices_and_the_next_story_after_the_container_are_cut_however_long() -> None:
    # Old layouts put a column of teasers with their ledes, or a long copyright notice, after the story.
    notice = (
        "All content Copyright 2000 - 2008 WorldNow and the Coast Gazette. All Rights Reserved. For more "
        "information on this site, please read our Privacy Policy and Terms of Service."
    )
    lede = "Ferry fares will rise by four per cent from June, the operator told passengers on its website today."
    after = f'<div class="column"><h3>More news</h3><p>{lede}</p></div><div class="legal"><p>{notice}</p></div>'
    lines = [*LONGER_STORY, "More news", lede, notice]
    assert judged(page(after=after, story=LONGER_STORY), lines) == (set(), 3)
    # The story's own long last paragraph, inside the container, stays.
    assert judged(page(inside=f"<p>{lede}</p>", story=LONGER_STORY), [*LONGER_STORY, lede]) == (set(), 0)

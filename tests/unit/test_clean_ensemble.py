"""The second extractor's vote on the short lines above trafilatura's story."""

from __future__ import annotations

from lxml.html import fromstring

from services.clean.ensemble import agreement, head_lines, readability_lines, unconfirmed_lines

STORY = [
    "The harbour authority said on Tuesday that the new breakwater would be finished two years late, after "
    "winter storms damaged the foundations.",
    "Engineers had laid the first concrete blocks in the spring, and the contractor had promised the town that "
    "fishing boats would be sheltered by the autumn.",
    "Local skippers said the delay would cost them another season of lost days at sea whenever the wind turned "
    "to the north-east.",
]


def test_head_lines_are_the_short_lines_above_the_first_long_paragraph() -> None:
    assert head_lines(["Coastal towns", "Share this story", *STORY, "Tags: harbour"], max_words=15) == [0, 1]
    assert head_lines(STORY, max_words=15) == []
    assert head_lines(["Only short", "lines here"], max_words=15) == []


def test_a_head_line_the_second_extractor_lacks_is_dropped_when_both_agree_on_the_story() -> None:
    primary = ["Coastal towns weekly digest", "Breakwater delayed again", *STORY]
    secondary = ["Breakwater delayed again", *STORY]
    assert unconfirmed_lines(primary, [0, 1], secondary) == {0}


def test_a_head_line_in_another_script_is_judged_the_same_way() -> None:
    story = ["港湾当局は火曜日、新しい防波堤の完成が冬の嵐で基礎が損傷したため二年遅れると発表した。" * 2] * 3
    primary = ["このニュースをシェア", *story]
    assert unconfirmed_lines(primary, [0], story) == {0}


def test_no_vote_when_the_second_extractor_missed_the_story() -> None:
    primary = ["Coastal towns weekly digest", *STORY]
    # readability found only the last paragraph: its silence about the head line proves nothing.
    assert agreement(primary, STORY[2:]) < 0.5
    assert unconfirmed_lines(primary, [0], STORY[2:]) == set()
    assert unconfirmed_lines(primary, [0], []) == set()


def test_readability_lines_leave_out_captions_and_asides() -> None:
    paragraphs = "".join(f"<p>{text}</p>" for text in STORY * 2)
    page = fromstring(
        "<html><body><nav><a href='/'>Home</a></nav><div class='article'>"
        f"<figure><img src='x.jpg'><figcaption>A crane on the pier (Photo: Jo Bloggs)</figcaption></figure>"
        f"{paragraphs}</div><aside>Most read: ferry fares</aside></body></html>"
    )
    lines = readability_lines(page)
    assert lines[: len(STORY)] == STORY
    assert not any("Photo" in line or "Most read" in line or line == "Home" for line in lines)

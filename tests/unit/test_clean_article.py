"""`clean_article`: non-articles rejected with their reason, and a CleanSection or Rejected for any input."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.clean.article import clean_article
from shared.errors import Rejected
from shared.events import CleanSection, IngestSection

STORY = (
    "The regional railway will run night trains between the two cities from next month, the operator said on "
    "Thursday, after a trial last winter carried more passengers than it had expected."
)


def ingest(content: str, kind: str = "text") -> IngestSection:
    return IngestSection(
        origin="test",
        received_at=datetime(2024, 5, 1, tzinfo=UTC),
        content_hash="abc",
        kind="html" if kind == "html" else "text",
        content=content,
    )


def rejection(content: str, kind: str = "text", min_words: int = 5) -> str:
    with pytest.raises(Rejected) as caught:
        clean_article(ingest(content, kind), min_words=min_words)
    assert caught.value.message
    return caught.value.reason


@pytest.mark.parametrize("content", ["", "   \n\n  ", "\t"])
def test_empty_content_has_no_article_text(content: str) -> None:
    assert rejection(content) == "no_article_text"


def test_only_chrome_has_no_article_text() -> None:
    assert rejection("Loading Now\n\nSign in\n\nShare this:\n\nPost Comment\n") == "no_article_text"


def test_a_few_words_are_too_short_and_a_one_sentence_item_is_a_brief() -> None:
    assert rejection("Night trains\n\nThey return.") == "too_short"
    brief = clean_article(ingest("Night trains return\n\nThe railway will run night trains again."))
    assert (brief.title, brief.body, brief.content_type) == (
        "Night trains return", "The railway will run night trains again.", "brief"
    )


def test_min_words_is_the_callers_threshold() -> None:
    text = f"Night trains return\n\n{STORY}"
    assert clean_article(ingest(text), min_words=20).body == STORY
    assert rejection(text, min_words=500) == "too_short"


def test_text_404_page_is_an_error_page() -> None:
    assert rejection("404 - Page not found\n\nThe page you are looking for does not exist.") == "error_page"
    long_404 = "Page not found\n\n" + "Sorry, we can't find the page you were looking for, please try search. " * 4
    assert rejection(long_404) == "error_page"


def test_list_of_headlines_is_a_listing() -> None:
    headlines = "\n".join(f"Council approves budget for district {i} schools and roads" for i in range(40))
    assert clean_article(ingest(headlines)).content_type == "listing"


def test_binary_junk_is_not_an_article() -> None:
    junk = "".join(chr(code) for code in range(0, 32)) * 200
    assert rejection(junk) == "not_an_article"
    assert rejection(junk, kind="html") == "not_an_article"


def test_chinese_article_is_not_mistaken_for_a_link_list() -> None:
    sentences = ["这座城市决定把旧电车站改建为公园，预计明年夏天开放第一期工程。"] * 12
    text = "旧电车站将变成公园\n\n" + "\n\n".join(f"第{i}段：{s}" for i, s in enumerate(sentences))
    result = clean_article(ingest(text))
    assert result.title == "旧电车站将变成公园"
    assert len(result.body.split("\n\n")) == 12


def test_result_is_a_frozen_clean_section_with_tz_aware_date() -> None:
    result = clean_article(ingest(f"Night trains return\n\nPublished June 2, 2024\n\n{STORY}"))
    assert isinstance(result, CleanSection)
    assert result.published_at == datetime(2024, 6, 2, tzinfo=UTC)
    assert result.dropped == {"date": 1}


# --- any input: a CleanSection or Rejected, nothing else -----------------------------------------------------

_HTML_PIECES = st.sampled_from(
    [
        "<p>",
        "</p>",
        "<div>",
        "</div>",
        "<script>",
        "</script>",
        "<style>",
        "<!--",
        "-->",
        "<a href='x'>",
        "</a>",
        "<h1>",
        "</h1>",
        "<br>",
        "<html lang='en'>",
        "<title>",
        "</title>",
        "&amp;",
        "&#0;",
        "<![CDATA[",
        "]]>",
        "<meta charset='utf-8'>",
        "<table><tr><td>",
        "</td></tr></table>",
        STORY,
        "Advertisement",
        "By Jane Doe",
        "\x00",
        "\ufeff",
        "<",
        ">",
        "\n\n",
    ]
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=3000))
def test_any_text_gives_a_section_or_a_rejection(content: str) -> None:
    try:
        result = clean_article(ingest(content))
    except Rejected as rejected:
        assert rejected.reason in {"no_article_text", "too_short", "not_an_article"}
        return
    assert result.title
    assert result.body.strip()
    assert "\n\n\n" not in result.body


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(_HTML_PIECES, st.text(max_size=80)), max_size=80).map("".join))
def test_any_html_gives_a_section_or_a_rejection(content: str) -> None:
    try:
        result = clean_article(ingest(content, kind="html"))
    except Rejected as rejected:
        assert rejected.reason in {"no_article_text", "too_short", "not_an_article"}
        return
    assert result.title
    assert result.body.strip()


def test_html_document_sent_as_text_is_extracted_as_html() -> None:
    head = "<!DOCTYPE html><html><head><title>Night trains</title></head>"
    html = f"{head}<body><nav>Home</nav><p>{STORY}</p></body></html>"
    result = clean_article(ingest(html, kind="text"))
    assert result.body == STORY
    assert result.extractor.startswith("trafilatura")


@pytest.mark.parametrize(
    "title",
    [
        "Graz harbour expansion update 404",
        "Missing climber not found after search",
        "Visitors return to the Forbidden City",
        "Product no longer available in stores",
    ],
)
def test_short_news_whose_title_mentions_an_error_word_is_not_an_error_page(title: str) -> None:
    body = "Officials said on Monday that the plan would be reviewed by the end of the month after a long debate. " * 3
    section = clean_article(
        IngestSection(
            origin="t", received_at=datetime.now(UTC), content_hash="h", kind="text", content=f"{title}\n\n{body}"
        )
    )
    assert section.title == title


@pytest.mark.parametrize("title", ["404 Not Found", "Error 404", "410 Gone", "Page not found"])
def test_error_pages_are_rejected(title: str) -> None:
    html = f"<html><head><title>{title}</title></head><body><h1>{title}</h1><p>Sorry about that.</p></body></html>"
    with pytest.raises(Rejected) as info:
        clean_article(
            IngestSection(origin="t", received_at=datetime.now(UTC), content_hash="h", kind="html", content=html)
        )
    assert info.value.reason == "error_page"


def test_a_client_title_with_markup_is_stored_as_plain_text() -> None:
    body = "Officials said on Monday that the plan would be reviewed by the end of the month after a debate. " * 3
    section = clean_article(
        IngestSection(
            origin="t",
            received_at=datetime.now(UTC),
            content_hash="h",
            kind="text",
            content=body,
            title="<b>Bold</b> move &amp; <script>x()</script>plan",
        )
    )
    assert section.title == "Bold move & x() plan"

"""The clean stage's entry point: a validated raw page in, an article (or a `Rejected` reason) out."""

from __future__ import annotations

import html as html_lib
import re
from collections import Counter
from datetime import datetime

from services.clean.contenttype import TEASER_WORDS, PageSignals, classify, has_readable_content, paywall_prompt
from services.clean.html import DEFAULT_TUNING, HtmlTuning, extract_html, names_site
from services.clean.lines import SourceRef, count_words, first_sentence, normalise_domain, parse_datetime
from services.clean.text import extract_text
from services.clean.unicode import repair_text
from shared.errors import Rejected
from shared.events import CleanSection, IngestSection

# C0 controls, replacement characters and private-use code points: rare in any text, common in decoded binary.
# C1 controls are left out because mojibake (UTF-8 read as cp1252) is full of them and ftfy repairs it.
_NON_TEXT = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffd\ue000-\uf8ff]")
# Phrases only error pages use. A bare "404" or "not found" is not enough: news titles say "Climber not found",
# "Update 404", "Forbidden City".
_ERROR_PAGE = re.compile(
    r"^\s*(?:error\s+)?(?:40[134]|410)\b(?:\s*[-:|–]?\s*(?:error|not\s+found|page|forbidden|gone|$))|"
    r"\b(?:error\s+40\d|40\d\s+(?:error|not\s+found|page)|page\s+(?:was\s+)?not\s+found|"
    r"page\s+(?:does\s+not|doesn['’]t|no\s+longer)\s+exists?|(?:we\s+)?can['’]t\s+find\s+(?:the|that)\s+page|"
    r"page\s+you\s+(?:are|were|’re|'re|requested|have\s+requested)\s+(?:looking\s+for|could\s+not|cannot|can['’]t|"
    r"does\s+not|doesn['’]t|is\s+no\s+longer)|access\s+denied)\b",
    re.IGNORECASE,
)
# A "text" article that is really a whole HTML document (a scraper that saved the page) goes through HTML mode.
_HTML_DOCUMENT = re.compile(r"\s*(?:<\?xml[^>]*>\s*)?(?:<!doctype\s+html|<html[\s>])", re.IGNORECASE)
_BINARY_SHARE = 0.05
_ERROR_PAGE_MAX_WORDS = 150
_FALLBACK_TITLE_CHARS = 120


_TAG = re.compile(r"<[^>]*>")


def _plain_title(title: str) -> str | None:
    """A client-supplied title as plain text: no tags, entities decoded, unicode repaired, whitespace folded."""
    text = html_lib.unescape(_TAG.sub(" ", title))
    return " ".join(repair_text(text).split()) or None


def clean_article(
    ingest: IngestSection, *, min_words: int = 5, html_tuning: HtmlTuning = DEFAULT_TUNING
) -> CleanSection:
    """Extract the article from `ingest.content` and type it; raise `Rejected` when nothing on the page is news:
    empty or binary content, an HTTP error page, a login wall with no story, menus with no prose or figures."""
    content = ingest.content
    # `isspace` answers at the first visible character; `strip` would copy a 400 kB page to learn the same.
    if not content or content.isspace():
        raise Rejected("no_article_text", "the content is empty")
    sample = content[:20_000]
    if len(_NON_TEXT.findall(sample)) > _BINARY_SHARE * len(sample):
        raise Rejected("not_an_article", "the content looks like binary data, not text")
    signals = PageSignals()

    # A client-given title is text, never markup: tags are dropped and entities decoded before anything else.
    title_hint = _plain_title(ingest.title) if ingest.title else None
    if title_hint and names_site(title_hint, [ingest.source], ingest.url):
        # A producer that sent the publication's name as the title ("Reuters", "BBC News"): the headline is the page's.
        title_hint = None
    language: str | None = None
    site_name: str | None = None
    page_url: str | None = None
    source: SourceRef | None = None
    dropped: Counter[str]
    if ingest.kind == "html" or _HTML_DOCUMENT.match(content):
        page = extract_html(content, url=ingest.url, tuning=html_tuning)
        title, paragraphs, authors, published = page.title, page.paragraphs, page.authors, page.published_at
        extractor, dropped, language, site_name, page_url = (
            page.extractor,
            page.dropped,
            page.language_declared,
            page.site_name,
            page.url,
        )
        signals = page.signals
        if title_hint and names_site(title_hint, [site_name], page_url or ingest.url):
            title_hint = None
    else:
        text = extract_text(content, title_hint=title_hint)
        source = text.source
        if title_hint and source and names_site(title_hint, [source.name], source.url or source.domain):
            # The page's own attribution ("Source: Reuters") names the site the title named: read it again unhinted.
            title_hint = None
            text = extract_text(content)
        title, paragraphs, authors, published = text.title, text.paragraphs, text.authors, text.published_at
        extractor, dropped, source = "text-rules", text.dropped, text.source

    if not paragraphs:
        if signals.paywalled or _prompt_in_text_page(ingest):
            raise Rejected("login_or_paywall", "a login or paywall page with no story")
        raise Rejected("no_article_text", "no article text left after removing page furniture")
    body = "\n\n".join(paragraphs)
    # No word spans a paragraph break, so the body's count is the sum of its paragraphs', whose words the line rules
    # have mostly tokenised (and cached) already: counting the joined body again took ~15 % of text mode's time.
    paragraph_words = [count_words(paragraph) for paragraph in paragraphs]
    words = sum(paragraph_words)
    title = title_hint or title or _title_from_body(paragraphs[0])
    if words < _ERROR_PAGE_MAX_WORDS and (_ERROR_PAGE.search(title) or _ERROR_PAGE.search(paragraphs[0])):
        raise Rejected("error_page", f"looks like an HTTP error page: {title[:80]!r}")
    if words < min_words:
        raise Rejected("too_short", f"the body has {words} words, fewer than {min_words}")
    if not has_readable_content(paragraphs, paragraph_words):
        raise Rejected("not_an_article", "only navigation: no prose or figures on the page")
    # Only a short page can be a wall's teaser; longer ones never pay for the prompt search.
    if (
        not signals.paywalled
        and words < TEASER_WORDS
        and (any(map(paywall_prompt, paragraphs)) or _prompt_in_text_page(ingest))
    ):
        signals = PageSignals(liveblog=signals.liveblog, paywalled=True)
    content_type = classify(title, paragraphs, paragraph_words, signals)
    if content_type == "login_or_paywall":
        teaser = [(p, n) for p, n in zip(paragraphs, paragraph_words, strict=True) if not paywall_prompt(p)]
        if not has_readable_content([p for p, _ in teaser], [n for _, n in teaser]):
            raise Rejected("login_or_paywall", f"a login or paywall page with no story: {title[:80]!r}")

    client_source = repair_text(ingest.source).strip() if ingest.source else None
    client_domain = normalise_domain(client_source) if client_source and " " not in client_source else None
    url = ingest.url or (source.url if source else None) or page_url
    source_domain = client_domain or (source.domain if source else None) or (normalise_domain(url) if url else None)
    source_name = (
        (client_source if client_source and not client_domain else None)
        or (source.name if source else None)
        or site_name
    )
    return CleanSection(
        title=title,
        body=body,
        authors=authors,
        source_domain=source_domain,
        source_name=source_name,
        url=url,
        published_at=_client_date(ingest.published_at) or published,
        language_declared=language,
        extractor=extractor,
        dropped=dict(dropped),
        word_count=words,
        content_type=content_type,
    )


def _prompt_in_text_page(ingest: IngestSection) -> bool:
    """A login or subscription prompt anywhere in a text page: text mode often drops that line as furniture."""
    return ingest.kind == "text" and paywall_prompt(ingest.content[:50_000])


def _client_date(value: str | None) -> datetime | None:
    """A client-given date, parsed leniently; an unparseable one is ignored rather than an error."""
    return parse_datetime(value) if value else None


def _title_from_body(first_paragraph: str) -> str:
    """No headline on the page: the lede's first sentence, cut at a word boundary."""
    sentence = first_sentence(first_paragraph)
    if len(sentence) <= _FALLBACK_TITLE_CHARS:
        return sentence
    return sentence[:_FALLBACK_TITLE_CHARS].rsplit(" ", 1)[0] + "…"

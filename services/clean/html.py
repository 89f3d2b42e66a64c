"""HTML mode: trafilatura for the article, a tree-free fallback, and text-mode post-cleaning of leftover chrome."""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import trafilatura
from htmldate import find_date
from lxml.html import HtmlElement

from services.clean.contenttype import PageSignals, is_figure_line
from services.clean.ensemble import agreement, head_lines, readability_lines, unconfirmed_lines
from services.clean.htmlmeta import PageMeta, read_page_meta
from services.clean.htmlparse import PageParts, close_unclosed_title, parse_html, strip_inert_elements, walk_page
from services.clean.htmltext import html_to_text
from services.clean.lines import (
    COMMENTS_HEADING,
    MODULE_HEADING,
    count_words,
    ends_like_sentence,
    is_chrome,
    is_interstitial,
    normalise_domain,
    parse_byline,
    parse_date_line,
    parse_datetime,
    words_of,
)
from services.clean.linktext import PageLinks, link_coverage, page_links
from services.clean.storymap import (
    LineMap,
    embedded_posts,
    outside_story_edges,
    shown_to_readers,
    unseen_lines,
    widget_tail,
)
from services.clean.text import extract_text, split_units, tail_bios
from services.clean.unicode import matching_form, repair_text

# trafilatura logs every page it cannot handle at WARNING/ERROR; the clean stage reports outcomes itself.
logging.getLogger("trafilatura").setLevel(logging.CRITICAL)
logging.getLogger("htmldate").setLevel(logging.CRITICAL)

# Measured on the dev set (66 news pages, `python -m tools.eval.clean PATH`), with the post-cleaning below:
# default F1 0.947 at ~32 pages/s, favor_precision 0.951, favor_recall 0.948, fast (no readability/jusText
# fallback inside trafilatura) 0.952 and the fastest, fast+favor_precision 0.933. htmldate's "extensive search"
# (dateparser over the whole page) cost half the run time and found no extra dates, so it is off.
TRAFILATURA_OPTIONS: dict[str, Any] = {
    "include_comments": False,
    "include_tables": True,
    "fast": True,
    "date_extraction_params": {"extensive_search": False, "original_date": True},
}


@dataclass(frozen=True, slots=True)
class HtmlTuning:
    """The HTML rules' free choices, fitted by cross-validation (`make eval-clean`); the defaults are the fit."""

    # trafilatura's `fast` mode skips its readability/jusText comparison.
    trafilatura_fast: bool = True
    favor_precision: bool = False
    favor_recall: bool = False
    # Drop lines outside the story's container, hidden ones, embedded posts and trailing widgets.
    position_rules: bool = True
    # Ask readability about the short lines above the story.
    head_vote: bool = True
    # Below this share of the headline's words in the story's opening, trafilatura's full pass is tried too.
    rescue_title_overlap: float = 0.3
    # Below this many words, too; the full pass is taken when it finds more than twice as many.
    rescue_short_words: int = 200

    def trafilatura_options(self) -> dict[str, Any]:
        """Keyword arguments for `trafilatura.bare_extraction`."""
        return {
            **TRAFILATURA_OPTIONS,
            "fast": self.trafilatura_fast,
            "favor_precision": self.favor_precision,
            "favor_recall": self.favor_recall,
        }


DEFAULT_TUNING = HtmlTuning()
_URL_DATE = re.compile(r"/((?:19|20)\d{2})[/-]?(0[1-9]|1[0-2])[/-]?(0[1-9]|[12]\d|3[01])(?:/|[^\d])")
# Below this many words trafilatura's output is treated as a miss and the fallback gets a chance.
_SUSPICIOUS_WORDS = 40
_LANG_ATTR = re.compile(r"<html\b[^>]*?\blang\s*=\s*[\"']?\s*([A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{2,8})*)", re.I)
_META_LANG = re.compile(
    r"<meta\b[^>]*?(?:http-equiv\s*=\s*[\"']?content-language[\"']?[^>]*?content\s*=\s*[\"']?([A-Za-z-]{2,12})"
    r"|property\s*=\s*[\"']og:locale[\"'][^>]*?content\s*=\s*[\"']?([A-Za-z_-]{2,12}))",
    re.I,
)


_EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+\.[\w.-]+\b")
_BULLET = re.compile(r"^[-*•]\s+")
# Slideshow captions: "1/50 Headline …", "Photo 3 of 12".
_GALLERY_ITEM = re.compile(r"^(?:\d{1,3}\s*/\s*\d{1,3}|(?:photo|image|slide|picture)\s+\d+\s+of\s+\d+)\b", re.I)
# A line that is only a bracketed label, as CJK sites print buttons and desk credits: "【纠错】", "[责任编辑：x]".
_BRACKET_LABEL = re.compile(r"^[【［〔\[][^】］〕\]。！？.!?]{1,24}[】］〕\]]?$")
_TITLE_SEPARATOR = re.compile(
    r"\s+(?:\||–|—|--|»|::|·|-)\s+|(?<=\S)(?:\s*[|_]\s*|-)(?=[^\x00-\x7f])|(?<=\w)_(?=\w)|(?<=\w)-\s+(?=[A-Z])"
)
# Lines shorter than this, without sentence punctuation, may still be headline/byline/dateline furniture.
_HEAD_LINE_WORDS = 15
# A line is a link block when at least this share of its word characters is the text of a link on the page
# (0.9 leaves room for a "Read more:" label in front of a linked headline) and it is no longer than a headline.
_LINK_BLOCK_COVERAGE = 0.9
_LINK_BLOCK_MAX_WORDS = 40
# A short unlinked line followed by at least this many link blocks heads a recirculation module.
_MODULE_MIN_LINKS = 2
_MODULE_HEADING_MAX_WORDS = 6
# A module heading only ends the story once this share of the words is behind it (earlier ones are sidebars).
_MODULE_CUT_SHARE = 0.5
# A comment section's heading ("12 Comments", "Leave a Reply") ends the story sooner: a short post under a long
# thread is still the post (news-gold, share fitted on the studied folds 0-3: 0.5, 0.3, 0.15 and 0.1 tried; 0.15
# raised folds 1 and 3 and lowered none, 0.1 lowered fold 2).
_COMMENTS_CUT_SHARE = 0.15


@dataclass
class HtmlExtraction:
    """What HTML mode found; `paragraphs` is the body in reading order."""

    title: str | None
    paragraphs: list[str]
    extractor: str
    authors: list[str] = field(default_factory=list)
    published_at: datetime | None = None
    site_name: str | None = None
    url: str | None = None
    language_declared: str | None = None
    dropped: Counter[str] = field(default_factory=Counter)
    signals: PageSignals = field(default_factory=PageSignals)
    description: str | None = None


def declared_language(html: str) -> str | None:
    """The page's declared language (`<html lang>`, Content-Language, og:locale), as a lowercase BCP 47 tag."""
    head = html[:20_000]
    match = _LANG_ATTR.search(head)
    value = match.group(1) if match else None
    if value is None:
        meta = _META_LANG.search(head)
        value = (meta.group(1) or meta.group(2)) if meta else None
    if not value:
        return None
    return value.replace("_", "-").lower()


def extract_html(html: str, *, url: str | None = None, tuning: HtmlTuning = DEFAULT_TUNING) -> HtmlExtraction:
    """Extract the article of an HTML page; never raises on malformed markup (empty result instead)."""
    result = HtmlExtraction(
        title=None, paragraphs=[], extractor="trafilatura", language_declared=declared_language(html)
    )
    html = close_unclosed_title(html)
    parsed = _extract_story(html, url, result, tuning)
    if tuning.trafilatura_fast and parsed is not None:
        _rescue(html, url, result, tuning)
    if parsed is not None and result.paragraphs:
        _open_with_standfirst(result, parsed.parts)

    if count_words("\n".join(result.paragraphs)) < _SUSPICIOUS_WORDS:
        _apply_fallback(html, result)
    if parsed is not None and _second_opinion(html, result, parsed.parts):
        _open_with_standfirst(result, parsed.parts)
    return result


def _open_with_standfirst(result: HtmlExtraction, parts: PageParts) -> None:
    """Put the page's standfirst (`_standfirst`) first in the body, when there is one."""
    if result.description:
        standfirst = _standfirst(parts, result.description, result.title, result.paragraphs)
        if standfirst is not None:
            result.paragraphs = [standfirst, *result.paragraphs]


# The story is the wrong block when at most this share of the headline's words is in its opening...
_WRONG_BLOCK_OVERLAP = 0.15
# ...and readability's article has at least this share of them.
_SECOND_OPINION_OVERLAP = 0.3
# readability's article must keep at least this share of the words when taken for the declared description.
_SECOND_OPINION_WORDS = 0.5
# A description is recognised by its first characters (often cut short with "…"); shorter keys say too little.
_DESCRIPTION_KEY_CHARS = (20, 40)


def _second_opinion(html: str, result: HtmlExtraction, parts: PageParts) -> bool:
    """readability's article instead of the story found when that story is the wrong block: a sidebar, a footer
    or a link list on old table layouts and short blog posts. Two signals, each confirmed by readability: the
    story hardly mentions its headline and readability's article does, or the page declares a description the
    story leaves out and readability's article prints (no shorter than half the story, no further from the
    headline). readability (a fresh parse and ~8 ms) is asked on about two news-gold pages in five, mostly for a
    description the page words differently from its story, and its article is taken on about one in forty; True
    when it was taken."""
    overlap = title_overlap(result.title, result.paragraphs) if result.title else None
    off_topic = overlap is not None and overlap <= _WRONG_BLOCK_OVERLAP
    key = matching_form(result.description or "")[: _DESCRIPTION_KEY_CHARS[1]]
    if len(key) <= _DESCRIPTION_KEY_CHARS[0] or (result.title and matching_form(result.title).startswith(key)):
        key = ""  # too short to recognise, or the headline itself
    story = matching_form(" ".join(result.paragraphs))
    if key and (key in story or not _printed(key, parts)):
        key = ""  # in the story already, or never printed (a summary for link previews): no sign either way
    if not off_topic and not key:
        return False
    tree = parse_html(html)  # readability rewrites the tree it reads, and the first one was pruned
    lines = readability_lines(tree) if tree is not None else []
    if not lines:
        return False
    second_overlap = (title_overlap(result.title, lines) if result.title else None) or 0.0
    words = count_words("\n".join(result.paragraphs))
    if not (off_topic and second_overlap >= _SECOND_OPINION_OVERLAP) and not (
        key
        and key in matching_form(" ".join(lines))
        and second_overlap >= (overlap or 0.0)
        and count_words("\n".join(lines)) >= _SECOND_OPINION_WORDS * words
    ):
        return False
    # readability prints the headline over its article; the record holds it as the title.
    headline = matching_form(result.title or "")
    result.paragraphs = [line for index, line in enumerate(lines) if index > 2 or matching_form(line) != headline]
    result.extractor = "readability"
    return True


def _printed(key: str, parts: PageParts) -> bool:
    """Whether the page's text shows `key` (a matching form), however its inline markup splits the words."""
    squeezed = key.replace(" ", "")
    # One matching form of the whole text: per text node, the forms' cache is flooded by long pages.
    return squeezed in matching_form(" ".join(raw for raw, _, _ in parts.texts)).replace(" ", "")


# A standfirst is a sentence or two: the page's description within these bounds, in words.
_STANDFIRST_WORDS = (5, 60)
# How many of the story's first paragraphs are searched for the description (a lede it repeats is no standfirst).
_STANDFIRST_OPENING = 3
# Lines compared by their first characters (a description is often cut short with "…").
_STANDFIRST_KEY_CHARS = 40
# The description is shown at most this many text nodes above the story's first line (the headline, a byline, a
# date and a photo credit sit between them; measured on news-gold's studied folds, one page in 69 had it further).
_STANDFIRST_DISTANCE = 30
# A text node this long is enough to recognise one of the story's first paragraphs by.
_STANDFIRST_LINE_CHARS = 20


def _standfirst(parts: PageParts, description: str, title: str | None, paragraphs: list[str]) -> str | None:
    """The page's description when the page prints it above the story as a line of its own (the standfirst under
    the headline, which trafilatura leaves out with the header around it), and neither the headline nor the story's
    opening repeats it."""
    wanted = " ".join(description.split())
    if not _STANDFIRST_WORDS[0] <= count_words(wanted) <= _STANDFIRST_WORDS[1]:
        return None
    key = matching_form(wanted)[:_STANDFIRST_KEY_CHARS]
    if (title and matching_form(title).startswith(key)) or key in matching_form(
        " ".join(paragraphs[:_STANDFIRST_OPENING])
    ):
        return None
    heads = [matching_form(paragraph)[:_STANDFIRST_KEY_CHARS] for paragraph in paragraphs[:_STANDFIRST_OPENING]]
    shown: int | None = None
    for index, (raw, element, _) in enumerate(parts.texts):
        text = " ".join(raw.split())
        if shown is None and text == wanted:
            if not shown_to_readers(element):
                return None
            shown = index
            continue
        if shown is not None and index - shown > _STANDFIRST_DISTANCE:
            return None
        if len(text) < _STANDFIRST_LINE_CHARS:
            continue
        line_key = matching_form(text[: 2 * _STANDFIRST_KEY_CHARS])[:_STANDFIRST_KEY_CHARS]
        if any(head.startswith(line_key) for head in heads if head):
            # The story begins here: the description is a standfirst only if it was shown above.
            return wanted if shown is not None else None
    return None


_RESCUE_LENGTH_FACTOR = 2
# The two passes found different parts of one story when less than this share of the full pass's text is in the
# fast pass's.
_SPLIT_STORY_SHARED = 0.2
_TITLE_WORD = re.compile(r"\w{4,}")
# The story's opening words that are searched for the headline's words.
_OPENING_WORDS = 300


def title_overlap(title: str, paragraphs: list[str]) -> float | None:
    """Share of the headline's words (four letters or more) found among the story's first 300 words; None for a
    headline with fewer than two such words."""
    wanted = set(_TITLE_WORD.findall(title.lower()))
    if len(wanted) < 2:
        return None
    opening: set[str] = set()
    for paragraph in paragraphs:
        opening.update(_TITLE_WORD.findall(paragraph.lower()))
        if len(opening) >= _OPENING_WORDS:
            break
    return len(wanted & opening) / len(wanted)


def _rescue(html: str, url: str | None, result: HtmlExtraction, tuning: HtmlTuning) -> None:
    """A story that hardly mentions its own headline is often the wrong block (a sidebar, the next story), and a
    short one often a part of the story: trafilatura's slower pass, which compares itself with readability and
    jusText, gets a second say on those pages (about one in eight)."""
    overlap = title_overlap(result.title, result.paragraphs) if result.title else None
    off_topic = overlap is not None and overlap < tuning.rescue_title_overlap
    words = count_words("\n".join(result.paragraphs))
    if not off_topic and words >= tuning.rescue_short_words:
        return
    second = HtmlExtraction(title=None, paragraphs=[], extractor="trafilatura", language_declared=None)
    # A fresh parse: trafilatura's fast pass leaves the tree changed, and its full pass then finds less (measured:
    # dev-fold F1 0.906 instead of 0.916 when the first tree was reused).
    _extract_story(html, url, second, replace(tuning, trafilatura_fast=False))
    second_overlap = (title_overlap(result.title, second.paragraphs) if result.title else None) or 0.0
    longer = count_words("\n".join(second.paragraphs)) > _RESCUE_LENGTH_FACTOR * words
    if (off_topic and second_overlap > (overlap or 0.0)) or (
        words < tuning.rescue_short_words and longer and second_overlap >= (overlap or 0.0)
    ):
        result.paragraphs, result.dropped = second.paragraphs, second.dropped
        result.extractor = "trafilatura-full"
    elif (
        words < tuning.rescue_short_words
        and longer
        and not off_topic
        and (agreement(second.paragraphs, result.paragraphs) < _SPLIT_STORY_SHARED)
    ):
        # A story printed in two blocks (the lede above a photo or an ad, the rest below): the fast pass found the
        # first, the full pass the larger second, and they share almost nothing; together they are the story.
        result.paragraphs = [*result.paragraphs, *second.paragraphs]
        result.dropped.update(second.dropped)
        result.extractor = "trafilatura+full"


def _extract_story(html: str, url: str | None, result: HtmlExtraction, tuning: HtmlTuning) -> _ParsedPage | None:
    """trafilatura's main text, post-cleaned, bios and position checks applied, into `result`; returns the parsed
    page (None when the page could not be parsed)."""
    text, page = _run_trafilatura(html, url, result, tuning)
    if text is None or page is None:
        return page
    result.paragraphs = _post_clean(repair_text(text), result.title, result.dropped, page.links)
    bios = tail_bios(result.paragraphs, result.authors)
    if bios:
        result.dropped["bio"] += len(bios)
        result.authors = result.authors or [name for name in bios.values() if name][:1]
        result.paragraphs = [p for index, p in enumerate(result.paragraphs) if index not in bios]
    if tuning.position_rules:
        result.paragraphs = _drop_by_position(page.parts, result.paragraphs, result.dropped)
    if tuning.head_vote:
        result.paragraphs = _drop_unconfirmed_head(page.tree, result.paragraphs, result.dropped)
    return page


def _drop_by_position(parts: PageParts, paragraphs: list[str], dropped: Counter[str]) -> list[str]:
    """Drop lines the page hides from its readers or prints inside a video player's controls, then short lines
    before and after the story that sit outside the element holding it."""
    if not paragraphs:
        return paragraphs
    line_map = LineMap(parts.texts)
    located = [line_map.locate(paragraph) for paragraph in paragraphs]
    for reason, drop in (("unseen", unseen_lines), ("embedded_post", embedded_posts)):
        lines = drop(located, paragraphs)
        if lines:
            dropped[reason] += len(lines)
            paragraphs = [p for index, p in enumerate(paragraphs) if index not in lines]
            located = [where for index, where in enumerate(located) if index not in lines]
    widgets = widget_tail(line_map, located, paragraphs)
    if widgets:
        dropped["widget"] += widgets
        paragraphs, located = paragraphs[:-widgets], located[:-widgets]
    head, tail = outside_story_edges(located, paragraphs)
    dropped["outside_story"] += head + tail
    return paragraphs[head : len(paragraphs) - tail]


def _drop_unconfirmed_head(tree: HtmlElement | None, paragraphs: list[str], dropped: Counter[str]) -> list[str]:
    """Ask readability about the short lines above the story; drop those it does not have."""
    candidates = head_lines(paragraphs, max_words=_HEAD_LINE_WORDS)
    # readability costs about 8 ms a page, a sixth of the budget, so it only runs when there is a line to judge
    # (10 of the 66 dev pages).
    if not candidates or tree is None:
        return paragraphs
    drop = unconfirmed_lines(paragraphs, candidates, readability_lines(tree))
    dropped["head"] += len(drop)
    return [p for index, p in enumerate(paragraphs) if index not in drop]


@dataclass
class _ParsedPage:
    """The page as parsed once: its tree (whole; trafilatura prunes a copy), what one walk over it found, and the
    text of its links."""

    tree: HtmlElement
    parts: PageParts
    links: PageLinks


def _run_trafilatura(
    html: str, url: str | None, result: HtmlExtraction, tuning: HtmlTuning
) -> tuple[str | None, _ParsedPage | None]:
    """Parse once, read the page's declared metadata into `result`, and return trafilatura's main text with the
    parsed page."""
    try:
        tree = parse_html(html)
        if tree is None:
            return None, None
        parts = walk_page(tree)
        # Metadata is read from the page's own declarations before trafilatura prunes the tree. Measured on the
        # dev set against trafilatura's metadata pass: title 0.80 vs 0.74, author 0.79 vs 0.62, date 0.97 both,
        # source 0.92 vs 0.89, and 53 vs 39 pages per CPU-second.
        _apply_page_meta(read_page_meta(tree, parts.declarations), result, url, tree)
        # Read before trafilatura prunes the tree: the links of navigation and recirculation modules count too.
        page = _ParsedPage(tree, parts, page_links(tree, parts.anchors))
        strip_inert_elements(tree, parts.scripts)
        return _main_text(tree, url, tuning), page
    except (RecursionError, MemoryError, ValueError, TypeError, AttributeError, IndexError, KeyError, LookupError):
        # lxml and trafilatura raise a zoo of errors on hostile markup; the fallback handles those pages.
        return None, None
    except Exception:
        # Any other library failure must still end in a result (or a Rejected), never a crashed consumer.
        return None, None


def _main_text(tree: HtmlElement, url: str | None, tuning: HtmlTuning) -> str | None:
    """trafilatura's main text of a parsed page."""
    document = trafilatura.bare_extraction(tree, url=url, with_metadata=False, **tuning.trafilatura_options())
    if document is None:
        return None
    # bare_extraction returns a Document unless as_dict=True, which is never passed here.
    text = document.get("text") if isinstance(document, dict) else document.text
    return str(text or "")


def _apply_page_meta(meta: PageMeta, result: HtmlExtraction, url: str | None, tree: HtmlElement) -> None:
    result.site_name = _clean_meta(meta.site_name)
    result.description = _clean_meta(meta.description)
    result.signals = PageSignals(liveblog=meta.liveblog, paywalled=meta.paywalled)
    result.url = _clean_meta(meta.url)
    result.title = _declared_headline(meta.titles, result.site_name, result.url or url)
    result.published_at = parse_datetime(meta.published) if meta.published else None
    authors = [name for raw in meta.authors for name in _split_authors(raw)]
    for text in meta.byline_texts if not authors else []:
        # Marked-up bylines read "By Jane Doe", "Jane Doe | Staff Writer" or just the name.
        authors = parse_byline(text) or parse_byline(text, allow_bare_name=True) or []
        if authors:
            break
    result.authors = _plausible_authors(authors, result.site_name, result.url or url)
    if result.published_at is None:
        result.published_at = _date_in_url(result.url or url) or _date_in_page(tree)


def _declared_headline(titles: list[str], site_name: str | None, url: str | None) -> str | None:
    """The first declared title that is not just the site's name ("The Daily Planet" as og:title), site suffixes
    stripped."""
    site_keys = _site_keys(site_name, url)
    for raw in titles:
        title = _clean_meta(raw)
        if not title:
            continue
        title = strip_site_name(title, site_name, url)
        # Only the exact name: "Hockeychannel.com" still beats the lede's first sentence as a page's title (the
        # body would then start twice), where a producer's "BBC News" gives way to the headline (`names_site`).
        if _alnum(title) not in site_keys:
            return title
    return None


def names_site(title: str, site_names: Iterable[str | None], url: str | None) -> bool:
    """The title only names the publication: "The Daily Planet", "BBC News" on bbc.co.uk, "CNN.com", "Reuters |
    Breaking news" when the site is Reuters."""
    names: list[str | None] = [name for name in site_names if name]
    for name in names or [None]:
        keys = _site_keys(name, url)
        keys |= {key.removeprefix("the") for key in keys}
        keys.discard("")
        stripped = strip_site_name(title, name, url)
        bare = "".join(word for word in _NAME_WORD.findall(stripped.casefold()) if word not in _SITE_NAME_WORDS)
        if _alnum(stripped) in keys or bare in keys:
            return True
    return False


def _date_in_page(tree: HtmlElement) -> datetime | None:
    """htmldate's markup heuristics, only for pages that declare no date (its extensive search stays off)."""
    found = find_date(tree, extensive_search=False, original_date=True, outputformat="%Y-%m-%d")
    return parse_datetime(found) if found else None


def _date_in_url(url: str | None) -> datetime | None:
    """Many news URLs carry the publication day: /2014/12/27/, /2023-11/17/, /20181006/."""
    match = _URL_DATE.search(url or "")
    if not match:
        return None
    year, month, day = (int(part) for part in match.groups())
    try:
        return datetime(year, month, day, tzinfo=UTC)
    except ValueError:
        return None


def _apply_fallback(html: str, result: HtmlExtraction) -> None:
    """Tree-free text conversion classified by the text-mode rules; used when it finds more than trafilatura."""
    page_title, text = html_to_text(html)
    fallback = extract_text(text, title_hint=result.title or _strip_site_suffix(page_title))
    # The fallback sees the whole page, furniture included, so it must find clearly more text to be trusted.
    if count_words("\n".join(fallback.paragraphs)) < 2 * count_words("\n".join(result.paragraphs)) + 20:
        return
    result.paragraphs = fallback.paragraphs
    result.dropped = fallback.dropped
    result.extractor = "trafilatura+fallback"
    result.title = result.title or fallback.title or _strip_site_suffix(page_title)
    result.authors = result.authors or fallback.authors
    result.published_at = result.published_at or fallback.published_at


def _post_clean(text: str, title: str | None, dropped: Counter[str], links: PageLinks | None = None) -> list[str]:
    """Drop chrome and interstitial lines trafilatura kept, repeated paragraphs, a repeated title, galleries and
    the recirculation/comment modules that follow the story."""
    paragraphs: list[str] = []
    module_starts: list[int] = []
    comment_starts: set[int] = set()
    seen: set[str] = set()
    title_key = matching_form(title) if title else None
    in_head = True
    # Some pages hard-wrap paragraphs with <br>; trafilatura then emits one line per visual line.
    lines = [cell for unit in split_units(text) for cell in _layout_cells(unit, dropped)]
    figure_rows = _figure_table_rows(lines)
    for index, line in enumerate(lines):
        # A row of a table of figures (standings, scores, prices) is the story's data, not a menu of short items.
        row = figure_rows.get(index)
        line = row or line
        key = matching_form(line)
        # trafilatura marks list items with "- "; the rules judge the item itself.
        content = _BULLET.sub("", line)
        if MODULE_HEADING.match(content):
            module_starts.append(len(paragraphs))
            if COMMENTS_HEADING.match(content):
                comment_starts.add(len(paragraphs))
        if key == title_key or (in_head and parse_byline(content, require_marker=True) is not None):
            # The headline repeated in the text, and a byline above the story, are metadata, not body.
            dropped["head"] += 1
        elif count_words(content) <= _HEAD_LINE_WORDS and parse_date_line(content):
            dropped["date"] += 1
        elif count_words(content) <= _HEAD_LINE_WORDS and _EMAIL.search(content):
            # "Write to Jane Doe at jane@example.com": contact furniture.
            dropped["chrome"] += 1
        elif key in seen and len(words_of(line)) > 3:
            dropped["duplicate"] += 1
        elif _BRACKET_LABEL.match(content):
            dropped["chrome"] += 1
        elif _GALLERY_ITEM.match(content):
            dropped["gallery"] += 1
        elif is_interstitial(content):
            dropped["interstitial"] += 1
        elif row is None and is_chrome(content):
            dropped["chrome"] += 1
        else:
            seen.add(key)
            paragraphs.append(line)
            in_head = in_head and count_words(line) < _HEAD_LINE_WORDS and not ends_like_sentence(line)
    if links is None:
        return _cut_trailing_modules(paragraphs, module_starts, dropped, comment_starts)
    flags = [_is_link_block(_BULLET.sub("", p), links) for p in paragraphs]
    # Module headings in any language: a short line over a list of links ("เรื่องที่เกี่ยวข้อง", "関連記事").
    module_starts = sorted(set(module_starts) | set(_link_module_starts(paragraphs, flags)))
    kept = _cut_trailing_modules(paragraphs, module_starts, dropped, comment_starts)
    return _trim_link_edges(kept, flags[: len(kept)], dropped)


# trafilatura escapes a "|" inside a cell as "\|".
_TABLE_CELL_SEPARATOR = re.compile(r"\s*(?<!\\)\|\s*")
_RULE_CELL = re.compile(r"^[-=_~*\s]*$")
# A data table with at least this many rows of figures is kept whole (`_figure_table_rows`).
_MIN_FIGURE_ROWS = 2


def _table_cells(line: str) -> list[str] | None:
    """The non-empty cells of a table row as trafilatura prints it ("| cell | cell |"); None for any other line."""
    if not line.startswith("|"):
        return None
    return [
        cell.replace("\\|", "|")
        for cell in _TABLE_CELL_SEPARATOR.split(line.removeprefix("|").removesuffix("|").strip())
        if not _RULE_CELL.match(cell)
    ]


def _layout_cells(line: str, dropped: Counter[str]) -> list[str]:
    """A table row as trafilatura prints it ("| cell | cell |"): a layout table's row (one that holds a paragraph of
    prose) is split into its cells, so the menus and "E-mail this" links beside the story are judged one by one; a
    row of empty or ruled cells is dropped; a data table's row (short cells: scores, prices) stays one line."""
    cells = _table_cells(line)
    if cells is None:
        return [line]
    if not cells:
        dropped["chrome"] += 1
        return []
    if len(cells) == 1 or any(count_words(cell) > _HEAD_LINE_WORDS for cell in cells):
        return cells
    return [line]


def _figure_table_rows(lines: list[str]) -> dict[int, str]:
    """The rows of data tables that hold figures (standings, results, prices), by line index, each as its cells
    joined by " | ": a table with at least two rows of figures keeps all its rows, its header among them. Read as
    lines, such rows look like menus ("| Leeds | 30 | 18 | 61 |") and the chrome rules would drop them."""
    rows: dict[int, str] = {}
    index = 0
    while index < len(lines):
        end = index
        while end < len(lines) and lines[end].startswith("|"):
            end += 1
        if end == index:
            index += 1
            continue
        table = {row: " | ".join(_table_cells(lines[row]) or []) for row in range(index, end)}
        if sum(1 for text in table.values() if is_figure_line(text)) >= _MIN_FIGURE_ROWS:
            rows.update((row, text) for row, text in table.items() if text)
        index = end
    return rows


def _link_module_starts(paragraphs: list[str], flags: list[bool]) -> list[int]:
    """Where a short heading is followed by a list of links: a "related stories" module in any language."""
    return [
        index
        for index in range(len(paragraphs) - _MODULE_MIN_LINKS)
        if not flags[index]
        and count_words(paragraphs[index]) <= _MODULE_HEADING_MAX_WORDS
        and not ends_like_sentence(paragraphs[index])
        and all(flags[index + 1 : index + 1 + _MODULE_MIN_LINKS])
    ]


def _trim_link_edges(paragraphs: list[str], flags: list[bool], dropped: Counter[str]) -> list[str]:
    """Drop runs of link-only lines before the first and after the last line of prose."""
    start = 0
    while start < len(paragraphs) and flags[start]:
        start += 1
    end = len(paragraphs)
    while end > start and flags[end - 1]:
        end -= 1
    dropped["link"] += len(paragraphs) - (end - start)
    return paragraphs[start:end]


def _is_link_block(text: str, links: PageLinks) -> bool:
    """A line that is (nearly) all link text: menus, account prompts, related headlines, "Read more: …" teasers."""
    if count_words(text) > _LINK_BLOCK_MAX_WORDS:
        return False
    return link_coverage(text, links) >= _LINK_BLOCK_COVERAGE


def _cut_trailing_modules(
    paragraphs: list[str], module_starts: list[int], dropped: Counter[str], comment_starts: set[int]
) -> list[str]:
    """Cut at a "Related stories" / "Up next" heading once most of the story has been read, at a comment section's
    heading (`comment_starts`) once some of it has."""
    total = sum(count_words(p) for p in paragraphs)
    for start in module_starts:
        share = _COMMENTS_CUT_SHARE if start in comment_starts else _MODULE_CUT_SHARE
        if start > 0 and sum(count_words(p) for p in paragraphs[:start]) >= share * total:
            dropped["trailing_module"] += len(paragraphs) - start
            return paragraphs[:start]
    return paragraphs


def _clean_meta(value: str | None) -> str | None:
    if not value:
        return None
    cleaned = repair_text(value).strip()
    return cleaned or None


def _split_authors(author: str | None) -> list[str]:
    """trafilatura joins several authors with "; "; each is cleaned of a leading "By"."""
    if not author:
        return []
    authors: list[str] = []
    for part in re.split(r"\s*;\s*", repair_text(author)):
        part = part.strip()
        if not part:
            continue
        parsed = parse_byline(part) if part.lower().startswith("by ") else None
        for name in parsed or [re.sub(r"^by\s+", "", part, flags=re.I)]:
            if name not in authors:
                authors.append(name)
    return authors


def _plausible_authors(authors: list[str], site_name: str | None, url: str | None) -> list[str]:
    """Drop "authors" that are the publication itself ("CNN") or fragments too short to be a name."""
    site_keys = _site_keys(site_name, url)
    return [
        author
        for author in authors
        if len(_alnum(author)) > 2 and not any(key in _alnum(author) or _alnum(author) in key for key in site_keys)
    ]


def _strip_site_suffix(title: str | None) -> str | None:
    """`Headline | Site Name` -> `Headline` (the longest side of the last separator)."""
    if not title:
        return None
    parts = _TITLE_SEPARATOR.split(title)
    return max(parts, key=len).strip() if len(parts) > 1 else title.strip()


def strip_site_name(title: str, site_name: str | None, url: str | None) -> str:
    """Remove the publication's name and breadcrumbs around a headline ("Headline | CNN Politics" -> "Headline")."""
    parts = _TITLE_SEPARATOR.split(title)
    if len(parts) < 2:
        return title
    site_keys = _site_keys(site_name, url)

    def is_site(part: str) -> bool:
        key = _alnum(part)
        # "Market Rasen Today" on marketrasenmail.co.uk: a shared stem of six letters or more names the site too.
        return bool(key) and any(
            site in key or key in site or _common_prefix(site, key) >= max(_SITE_STEM, 0.6 * min(len(site), len(key)))
            for site in site_keys
        )

    def is_crumb(part: str) -> bool:
        return len(words_of(part)) <= 3

    # "Headline - HOOPSWORLD | NBA News, Rumors and Information": the site's name and the tagline after it go.
    named = next((index for index in range(1, len(parts)) if is_site(parts[index])), None)
    if named is not None:
        parts = parts[:named]
    # Short parts between the headline and the site's name are its sections ("Headline - Soccer - Belfast
    # Telegraph"); without a site name to anchor them, a last short part may be the headline's own ("… - Hughes").
    while len(parts) > 1 and (is_site(parts[-1]) or ((len(parts) > 2 or named is not None) and is_crumb(parts[-1]))):
        parts.pop()
    while len(parts) > 1 and is_site(parts[0]):
        parts.pop(0)
    if len(parts) == 1:
        return parts[0].strip()
    # Whatever is left is one headline that itself contains a separator; keep it as the page wrote it.
    start = title.find(parts[0])
    end = title.rfind(parts[-1]) + len(parts[-1])
    return title[start:end].strip() if start >= 0 and end > start else title


_SITE_STEM = 6
# Host labels that name no publication: "news.xinhuanet.com" is Xinhua's, not "News"'s.
_GENERIC_LABELS = frozenset("news blog blogs edition en online home web english".split())
# Second-level labels under a country code: "bbc.co.uk", "smh.com.au".
_SECOND_LEVEL = frozenset("co com org net ac gov edu ne or".split())
# Words around a publication's name that are not part of it: "BBC News", "CNN.com", "The Times Online".
_SITE_NAME_WORDS = _GENERIC_LABELS | _SECOND_LEVEL | frozenset("the www uk".split())
_NAME_WORD = re.compile(r"\w+")


def _site_keys(site_name: str | None, url: str | None) -> set[str]:
    """The site's name and its domain's names ("news.xinhuanet.com": xinhuanet), letters and digits only."""
    keys = {_alnum(site_name)} if site_name else set()
    domain = normalise_domain(url) if url else None
    if domain:
        labels = domain.split(".")[:-1]
        if len(labels) > 1 and labels[-1] in _SECOND_LEVEL and len(domain.rsplit(".", 1)[-1]) == 2:
            labels.pop()
        if labels:
            keys.add(_alnum(labels[-1]))
        if labels and labels[0] not in _GENERIC_LABELS:
            keys.add(_alnum(labels[0]))
    keys.discard("")
    return keys


def _common_prefix(first: str, second: str) -> int:
    shorter = min(len(first), len(second))
    return next((index for index in range(shorter) if first[index] != second[index]), shorter)


def _alnum(text: str | None) -> str:
    return "".join(ch for ch in (text or "").casefold() if ch.isalnum())


def source_domain_of(url: str | None) -> str | None:
    """The source's domain from a page URL (no `www.`)."""
    return normalise_domain(url) if url else None

"""Text mode: turn a scraped plain-text page into title, byline, body paragraphs and source metadata."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from services.clean.lines import (
    MODULE_HEADING,
    LineKind,
    SourceRef,
    bio_subject,
    count_words,
    ends_like_sentence,
    is_chrome,
    is_interstitial,
    is_role_line,
    parse_byline,
    parse_date_line,
    parse_place_dateline,
    parse_source,
    words_of,
)
from services.clean.unicode import matching_form, repair_text

# The start of a comment thread: "Leave a Reply", "12 Comments", "2 thoughts on “…”".
_COMMENTS_START = re.compile(
    r"^(?:\d+\s+)?(?:comments?|thoughts?\s+on|responses?\s+to|replies\s+to)\b|^(?:leave|post|add|write)\s+a\s+"
    r"(?:reply|comment|response)\b|^join\s+the\s+(?:discussion|conversation)\b",
    re.IGNORECASE,
)
_BLANK_LINE = re.compile(r"\n[ \t]*\n")
# A title is a headline: short, and not closed by a full stop (questions and exclamations are fine).
_MAX_TITLE_WORDS = 30
_MAX_TITLE_CHARS = 250
# How many leading units may precede the title (top chrome, a kicker, a date).
_TITLE_WINDOW = 8
_SHORT_LINE_WORDS = 8
# Shorter headline-shaped lines above the story are more often section labels ("World", "Climate crisis").
_MIN_HEADLINE_WORDS = 3
# A headline ending in "?", "!" or an initialism is at most this long; a longer such line is a lede.
_SENTENCE_HEADLINE_WORDS = 20
# Where the head of the page may still be, counted in lines (a site menu can take twenty).
_HEAD_SCAN_UNITS = 3 * _TITLE_WINDOW
# The lines a headline sits over.
_HEAD_ANCHORS = (LineKind.BYLINE, LineKind.DATE, LineKind.DATELINE)
# Title Case: at least this share of the words of four letters or more start with a capital.
_HEADLINE_CASED_SHARE = 0.8
_INITIALISM_END = re.compile(r"(?:\b[A-Z]\.){2,}$")
_MIN_PROSE_WORDS = 8
# A module between paragraphs: a heading of at most six words over at most five headlines of at most 15 words.
_MODULE_HEADING_WORDS = 6
_MAX_MODULE_ITEMS = 5
_MIN_MODULE_ITEMS = 2
_MODULE_ITEM_WORDS = 15
_CLOSING_MARKS = "”\"'’」)"
# The marks that end a statement (not a question or an exclamation) in the scripts news comes in.
_FULL_STOPS = (".", "。", "।", "።", "۔", "။", "។")
_BULLET_ITEM = re.compile(r"^\s*(?:[-*•–]|\d+[.)])\s")
_READING_TIME = re.compile(r"^\d+\s*min(?:ute)?s?\s+read$", re.IGNORECASE)
# Under this share of lines going on in lower case after a full-width line, the lines are not wrapped prose.
_WRAPPED_LOWER_SHARE = 0.25
# Menus: at least this many lines in a row of at most this many words each.
_MIN_MENU_RUN = 3
_MENU_ITEM_WORDS = 3
# A comment thread's heading ends the story only below this share of its prose (a mid-story "Join the
# conversation" prompt does not).
_COMMENTS_BELOW_SHARE = 0.5


@dataclass
class TextExtraction:
    """What text mode found; `paragraphs` is the body in reading order."""

    title: str | None
    paragraphs: list[str]
    authors: list[str] = field(default_factory=list)
    source: SourceRef | None = None
    published_at: datetime | None = None
    dropped: Counter[str] = field(default_factory=Counter)
    date_is_update: bool = False


@dataclass(slots=True)
class _Unit:
    text: str
    kind: LineKind = LineKind.BODY


def split_units(text: str) -> list[str]:
    """Paragraph candidates: one per line, with hard-wrapped lines (fixed-width text) joined back."""
    lines = [line.strip() for line in text.split("\n")]
    wrap_width = _wrap_width([line for line in lines if line])
    if wrap_width is None:
        return [line for line in lines if line]
    units: list[str] = []
    for block in _BLANK_LINE.split(text):
        current: list[str] = []
        for raw in block.split("\n"):
            line = raw.strip()
            if not line:
                continue
            if _standalone_kind(line) is not None or (len(line) < 0.6 * wrap_width and _is_dateline(line)):
                # Furniture glued under a wrapped paragraph is never part of it.
                if current:
                    units.append(" ".join(current))
                    current = []
                units.append(line)
                continue
            current.append(line)
            if len(line) < 0.6 * wrap_width:
                units.append(" ".join(current))
                current = []
        if current:
            units.append(" ".join(current))
    return units


def _wrap_width(lines: list[str]) -> int | None:
    """The fixed width the text was hard-wrapped at, or None when lines are whole paragraphs."""
    long_lines = [line for line in lines if len(line) >= 30]
    if len(long_lines) < 6:
        return None
    width = max(len(line) for line in long_lines)
    if width > 110:
        return None
    near_width = [line for line in long_lines if len(line) >= 0.75 * width]
    open_ended = [line for line in near_width if not ends_like_sentence(line)]
    if len(near_width) < 0.5 * len(long_lines) or len(open_ended) < 0.5 * len(near_width):
        return None
    # A wrapped sentence goes on in lower case on the next line; a list of headlines starts every line anew.
    starts = [lines[i + 1][0] for i, line in enumerate(lines[:-1]) if len(line) >= 0.75 * width]
    cased = [ch for ch in starts if ch.isupper() or ch.islower()]
    if len(cased) >= _MIN_MENU_RUN and sum(1 for ch in cased if ch.islower()) < _WRAPPED_LOWER_SHARE * len(cased):
        return None
    return width


def _is_dateline(text: str) -> bool:
    return parse_date_line(text) is not None or parse_place_dateline(text) is not None


def _standalone_kind(text: str) -> LineKind | None:
    """The kind of a line judged on its own (no position or page context), or None when it could be body."""
    if parse_source(text) is not None:
        return LineKind.SOURCE
    if is_interstitial(text):
        return LineKind.INTERSTITIAL
    if is_chrome(text):
        return LineKind.CHROME
    return None


def extract_text(content: str, *, title_hint: str | None = None) -> TextExtraction:
    """Classify every line of a plain-text page and assemble the article."""
    units = [_Unit(text) for text in split_units(repair_text(content))]
    result = TextExtraction(title=None, paragraphs=[])
    if not units:
        return result

    _mark_standalone(units, result)
    _mark_repeated_short_lines(units)
    _mark_inline_modules(units)
    _mark_trailing_modules(units)
    first_body = _mark_head(units, result, title_hint)
    _mark_bylines_anywhere(units, result, first_body)
    _mark_tail_bios(units, result)
    _mark_end_matter(units)

    seen: set[str] = set()
    title_key = matching_form(result.title) if result.title else None
    for unit in units:
        if unit.kind is LineKind.BODY or unit.kind is LineKind.DATELINE:
            key = matching_form(unit.text)
            if key in seen or key == title_key:
                unit.kind = LineKind.DUPLICATE
            else:
                seen.add(key)
                result.paragraphs.append(unit.text)
                continue
        if unit.kind is not LineKind.TITLE:
            result.dropped[unit.kind.value] += 1
    return result


def _mark_standalone(units: list[_Unit], result: TextExtraction) -> None:
    references: list[SourceRef] = []
    for unit in units:
        kind = _standalone_kind(unit.text)
        if kind is None:
            continue
        unit.kind = kind
        if kind is LineKind.SOURCE:
            reference = parse_source(unit.text)
            if reference is not None:
                references.append(reference)
    result.source = _pick_source(references)


def _pick_source(references: list[SourceRef]) -> SourceRef | None:
    """The article's attribution: the last one naming a domain (photo credits like "Source: Supplied" come first)."""
    if not references:
        return None
    with_domain = [reference for reference in references if reference.domain]
    chosen = with_domain[-1] if with_domain else references[-1]
    if chosen.name is None:
        named = [reference.name for reference in references if reference.name]
        if named:
            return SourceRef(url=chosen.url, domain=chosen.domain, name=named[-1])
    return chosen


def _mark_repeated_short_lines(units: list[_Unit]) -> None:
    """A short line printed several times on one page ("Advertisement", a section label) is furniture."""
    counts = Counter(matching_form(unit.text) for unit in units if len(words_of(unit.text)) <= _SHORT_LINE_WORDS)
    for unit in units:
        if (
            unit.kind is LineKind.BODY
            and len(words_of(unit.text)) <= _SHORT_LINE_WORDS
            and not ends_like_sentence(unit.text)
            and counts[matching_form(unit.text)] >= 2
        ):
            unit.kind = LineKind.INTERSTITIAL


def _is_prose(text: str) -> bool:
    """A paragraph of running text: several words ending like a sentence, or simply long (words counted as in scripts
    written without spaces too: a Thai or Chinese paragraph is a few runs of letters between its spaces or commas)."""
    words = count_words(text)
    return words > _MAX_TITLE_WORDS or (words >= _MIN_PROSE_WORDS and ends_like_sentence(text))


def _mark_head(units: list[_Unit], result: TextExtraction, title_hint: str | None) -> int:
    """Title, bylines and datelines before the first paragraph of prose; returns that paragraph's index."""
    first_body = next(
        (
            i
            for i, unit in enumerate(units)
            if unit.kind is LineKind.BODY
            and _is_prose(unit.text)
            and not _headline_over_byline(units, i)
            and not (i < _TITLE_WINDOW and _headline_cased(unit.text))
        ),
        len(units),
    )
    _mark_menu_runs(units, first_body)
    # The headline, bylines and datelines are among the first lines above the story that are not furniture.
    head = [i for i in range(first_body) if units[i].kind is LineKind.BODY][: _TITLE_WINDOW + 4]
    hint_key = matching_form(title_hint) if title_hint else None
    for index in head:
        unit = units[index]
        if unit.kind is not LineKind.BODY:
            continue
        if hint_key is not None and matching_form(unit.text) == hint_key:
            unit.kind = LineKind.TITLE
            result.title = result.title or unit.text
        else:
            _take_byline_or_date(unit, result, allow_bare_name=False)

    title_index = next((i for i in head if units[i].kind is LineKind.TITLE), None)
    if title_index is None and hint_key is None:
        title_index = _choose_title(units, head[:_TITLE_WINDOW])
        if title_index is not None:
            units[title_index].kind = LineKind.TITLE
            result.title = units[title_index].text
            # Headline-shaped lines above the headline are section labels and taglines.
            for index in range(title_index):
                if units[index].kind is LineKind.BODY:
                    units[index].kind = LineKind.CHROME
    if title_index is not None and title_index + 1 < first_body and not result.authors:
        # A bare name counts as the byline only right under the headline, and only if no explicit byline exists.
        _take_byline_or_date(units[title_index + 1], result, allow_bare_name=True)
    for index in range(1, first_body):
        # "Lena Hoffmann" / "Brussels correspondent": the job title under a byline is part of it.
        if (
            units[index - 1].kind is LineKind.BYLINE
            and units[index].kind is LineKind.BODY
            and is_role_line(units[index].text)
        ):
            units[index].kind = LineKind.BYLINE
    return first_body


def _mark_menu_runs(units: list[_Unit], first_body: int) -> None:
    """Runs of one-to-three-word lines above the story ("Home", "News", "Sport", "Weather") are a site's menus."""
    run: list[int] = []
    for index in [*range(first_body), None]:
        if index is not None and units[index].kind is not LineKind.BODY:
            # Items already judged as furniture ("Sign in", a repeated "World") belong to the run.
            continue
        if index is not None and _is_menu_item(units[index].text):
            run.append(index)
            continue
        if len(run) >= _MIN_MENU_RUN:
            for item in run:
                units[item].kind = LineKind.CHROME
        run = []


def _is_menu_item(text: str) -> bool:
    return (
        len(words_of(text)) <= _MENU_ITEM_WORDS
        and not ends_like_sentence(text)
        and parse_date_line(text) is None
        and parse_byline(text) is None
    )


def _mark_trailing_modules(units: list[_Unit]) -> None:
    """A recirculation module after the story's last paragraph ("Related topics", "More on this story", "Most read"
    and the headlines under it) and a comment thread below most of the story ("12 Comments", "Leave a Reply" and
    the comments themselves) are page furniture."""
    cut = None
    for index in range(len(units) - 1, -1, -1):
        unit = units[index]
        if unit.kind is LineKind.BODY and _is_prose(unit.text):
            break
        if unit.kind is not LineKind.TITLE and MODULE_HEADING.match(unit.text):
            cut = index
    candidates = units if cut is None else units[:cut]
    headings = [
        index
        for index, unit in enumerate(candidates)
        if unit.kind is not LineKind.TITLE
        and len(words_of(unit.text)) <= _SHORT_LINE_WORDS
        and _COMMENTS_START.match(unit.text)
    ]
    if headings:
        # Most pages have no comment heading; only those pay for weighing the prose above each one.
        prose_words = [count_words(unit.text) if _is_prose(unit.text) else 0 for unit in units]
        total = sum(prose_words)
        for heading in headings:
            above = sum(prose_words[index] for index in range(heading) if units[index].kind is LineKind.BODY)
            if above >= _COMMENTS_BELOW_SHARE * total:
                cut = heading
                break
            # Higher up it is a prompt between paragraphs ("Join the conversation"), not the thread.
            units[heading].kind = LineKind.INTERSTITIAL
    if cut is None:
        return
    for unit in units[cut:]:
        if unit.kind in (LineKind.BODY, LineKind.INTERSTITIAL):
            unit.kind = LineKind.CHROME


def _mark_inline_modules(units: list[_Unit]) -> None:
    """A module heading between paragraphs ("Related Articles", "Trending Now") and the linked headlines under it are
    an interstitial: two to five short lines without a full stop (bulleted lines are the story's own list)."""
    for index, unit in enumerate(units):
        if unit.kind is LineKind.TITLE or len(words_of(unit.text)) > _MODULE_HEADING_WORDS:
            continue
        if not MODULE_HEADING.match(unit.text):
            continue
        unit.kind = LineKind.INTERSTITIAL
        items: list[_Unit] = []
        for follower in units[index + 1 : index + 1 + _MAX_MODULE_ITEMS]:
            text = follower.text
            if (
                follower.kind is not LineKind.BODY
                or len(words_of(text)) > _MODULE_ITEM_WORDS
                or text.rstrip(_CLOSING_MARKS).endswith(_FULL_STOPS)
                or _BULLET_ITEM.match(text)
            ):
                break
            items.append(follower)
        # One short line after the label may be the story's next subheading; a list of them is the module.
        if len(items) >= _MIN_MODULE_ITEMS:
            for item in items:
                item.kind = LineKind.INTERSTITIAL


def _choose_title(units: list[_Unit], head: list[int]) -> int | None:
    """The headline: the last headline-shaped line above the byline/dateline, else the first substantial one."""
    anchor = next((i for i in head if units[i].kind in _HEAD_ANCHORS), None)
    candidates = [
        i
        for i in head
        if units[i].kind is LineKind.BODY and _headline_shaped(units[i].text, full_stop=_headline_cased(units[i].text))
    ]
    if anchor is not None:
        above = [i for i in candidates if i < anchor]
        # A name alone ("Dana Whitfield"), a job title ("Brussels correspondent") or a reading time ("6 min read")
        # between the headline and the dateline is the byline's company, not the headline.
        while len(above) > 1 and _byline_company(units[above[-1]].text):
            above.pop()
        if not above or _byline_company(units[above[-1]].text):
            # Wire copy closes its headline with a full stop ("Cofinec plunges on H1 results ."): a short line over
            # the byline and dateline is the headline when nothing above them is headline-shaped.
            limit = above[-1] if above else anchor
            over = [i for i in head if i < limit and units[i].kind is LineKind.BODY]
            if over and _headline_shaped(units[over[-1]].text, full_stop=True):
                above = [over[-1]]
        if above:
            return above[-1]
    if not candidates:
        return None
    substantial = [i for i in candidates if count_words(units[i].text) >= _MIN_HEADLINE_WORDS]
    return substantial[0] if substantial else candidates[0]


def _byline_company(text: str) -> bool:
    return bool(_READING_TIME.match(text) or is_role_line(text) or parse_byline(text, allow_bare_name=True) is not None)


def _headline_cased(text: str) -> bool:
    """Title Case or capitals ("Mom Smoked Meth. We're Still Paying", "POLISH NBP REFRAINS ..."): how headlines are
    set, and prose never is; such a line may end with a full stop and still be the headline."""
    words = [word for word in words_of(text) if len(word) >= 4 and word[0].isalpha()]
    if len(words) < _MIN_HEADLINE_WORDS or len(words_of(text)) > _SENTENCE_HEADLINE_WORDS:
        return False
    return sum(1 for word in words if word[0].isupper()) >= _HEADLINE_CASED_SHARE * len(words)


def _headline_shaped(text: str, min_words: int = 1, *, full_stop: bool = False) -> bool:
    words = words_of(text)
    ending = text.rstrip("”\"'’」")
    if full_stop:  # a headline set in Title Case or capitals, or one over a dateline, may end on a full stop
        return min_words <= len(words) <= _SENTENCE_HEADLINE_WORDS and len(text) <= _MAX_TITLE_CHARS
    return (
        min_words <= len(words) <= _MAX_TITLE_WORDS
        and len(text) <= _MAX_TITLE_CHARS
        # Headlines carry no full stop, though one may end on an initialism ("… Underneath N.Y.C.").
        and (not ending.endswith(_FULL_STOPS) or bool(_INITIALISM_END.search(ending)))
    )


def _headline_over_byline(units: list[_Unit], index: int) -> bool:
    """A short line that reads like a sentence near the top, with a byline or dateline right under it: a headline
    ("Where do relations go after the vote?", "… N.Y.C.") or a standfirst, not the story's first paragraph."""
    if index >= _HEAD_SCAN_UNITS or index + 1 >= len(units):
        return False
    if len(words_of(units[index].text)) > _SENTENCE_HEADLINE_WORDS:
        return False
    below = units[index + 1].text
    return parse_byline(below) is not None or _is_dateline(below)


def _take_byline_or_date(
    unit: _Unit, result: TextExtraction, *, allow_bare_name: bool, require_marker: bool = False
) -> bool:
    authors = parse_byline(unit.text, allow_bare_name=allow_bare_name, require_marker=require_marker)
    if authors is not None:
        unit.kind = LineKind.BYLINE
        for author in authors:
            if author not in result.authors:
                result.authors.append(author)
        # "By Jane Doe | March 3, 2024" or "Posted on March 3, 2024 by Jane Doe": the date rides along.
        parts = re.split(r"[|•·]|\s[-–—]\s|\s+by\s+", unit.text, flags=re.IGNORECASE)
        dated = next((found for found in map(parse_date_line, parts) if found), None)
        if dated and result.published_at is None:
            result.published_at = dated[0]
        return True
    place = parse_place_dateline(unit.text)
    if place is not None:
        # "SEOUL 1996-08-30", "BUFFALO, N.Y. (AP) —": a wire dateline on its own line, never the headline.
        unit.kind = LineKind.DATELINE
        if place[1] is not None and result.published_at is None:
            result.published_at = place[1]
        return True
    dated = parse_date_line(unit.text)
    if dated:
        unit.kind = LineKind.DATE
        moment, is_update = dated
        # The first publication date wins; an "Updated …" date stands in only until one is found.
        if result.published_at is None or (result.date_is_update and not is_update):
            result.published_at = moment
            result.date_is_update = is_update
        return True
    return False


def _mark_bylines_anywhere(units: list[_Unit], result: TextExtraction, first_body: int) -> None:
    """Explicit bylines ("By …", "Name | Role") and datelines may also sit under the lede or at the end."""
    for unit in units[first_body:]:
        if unit.kind is LineKind.BODY and not _is_prose(unit.text):
            _take_byline_or_date(unit, result, allow_bare_name=False, require_marker=True)


def tail_bios(paragraphs: list[str], authors: list[str]) -> dict[int, str]:
    """Author bios at the end of a story: {paragraph index: the writer's name, or "" when it is not stated}.

    Bios sit after the story (before or after a source line). Short non-sentence lines ("Cancel reply") are no
    evidence of story text, so the backwards walk passes them; it stops at the first paragraph of story prose.
    """
    trailing: list[int] = []
    for index in range(len(paragraphs) - 1, -1, -1):
        if not _is_prose(paragraphs[index]):
            continue
        if bio_subject(paragraphs[index], authors, previous_was_bio=True) is None:
            break
        trailing.append(index)
    # Judge that run in reading order, so a pronoun paragraph ("He has written …") counts only after a named bio.
    bios: dict[int, str] = {}
    previous_was_bio = False
    for index in reversed(trailing):
        name = bio_subject(paragraphs[index], authors, previous_was_bio=previous_was_bio)
        previous_was_bio = name is not None
        if name is not None:
            bios[index] = name
    return bios


def _mark_tail_bios(units: list[_Unit], result: TextExtraction) -> None:
    body = [unit for unit in units if unit.kind is LineKind.BODY]
    for index, name in tail_bios([unit.text for unit in body], result.authors).items():
        body[index].kind = LineKind.BIO
        if name and not result.authors:
            result.authors.append(name)


def _mark_end_matter(units: list[_Unit]) -> None:
    """After the source line, bio, credit line or comment-thread heading that closes the story, whatever is not
    prose is page furniture."""
    end_matter = None
    for index in range(len(units) - 1, -1, -1):
        unit = units[index]
        if unit.kind is LineKind.BODY and _is_prose(unit.text):
            break
        closes_story = unit.kind in (LineKind.SOURCE, LineKind.BIO, LineKind.BYLINE)
        if closes_story or (unit.kind is LineKind.BODY and _COMMENTS_START.match(unit.text)):
            end_matter = index
    if end_matter is None:
        return
    for unit in units[end_matter:]:
        if unit.kind is LineKind.BODY:
            unit.kind = LineKind.CHROME

"""Where each extracted line sits in the page, and the lines that sit where a reader would not see story text.

Language-independent signals from the page's structure, read on the tree that was parsed once:

- a line whose element is hidden (`hidden`, `aria-hidden="true"`, `display:none`, a `hidden`/`sr-only` class) or
  lives inside a video player's controls is not something a reader of the story sees, and one in an `aside` (a
  teaser box, deals, a pull quote) is beside the story, not in it;
- a line inside a post embedded from a social network (`blockquote.twitter-tweet`, `instagram-media`, …) quotes
  another site, unless such posts are a large share of the text;
- short lines before or after the story that sit outside the element holding it (decks and bylines above it,
  sidebar teasers, comment-policy notices, app-download widgets, "contributed to this report" boxes) belong to the
  page around the story, not to it;
- lines at the end of the story whose own block (the largest element around them that holds no earlier line) also
  holds a control (a button, a form field, a `javascript:` link) or links to two of the site's policy pages are a
  widget: a paywall's sign-up prompt, a comment section's policy notice, a newsletter form.

Measured on the dev set and left out: class/id/role tokens of widgets (modal, dialog, newsletter, promo, related,
share, social, comments, subscribe, role=dialog/menu) removed nothing trafilatura had kept, and `paywall` marks
the story's own paragraphs on some sites (wired_001 lost 80 % of its text).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from lxml.html import HtmlElement

from services.clean.htmlparse import MIN_TEXT_NODE_CHARS
from services.clean.lines import count_words

# A text node locates a line when it is at least this share of the line (the rest is inline markup around it).
_LOCATE_SHARE = 0.5
_BULLET = re.compile(r"^[-*•]\s+")
# Where a text node may start inside a line: at its start, or at a word's start or end (a tail often opens with
# punctuation, as the "— Name (@handle)" line of an embedded post does).
_BOUNDARY = re.compile(r"^|\b|(?<= )")

# Class and id tokens (whole tokens, never substrings of longer names) of content hidden from sighted readers.
_HIDDEN_TOKENS = frozenset(
    "hidden hide is-hidden d-none sr-only visually-hidden visuallyhidden screen-reader-text screenreader-only".split()
)
# Video players (video.js and its skins) print their menus, captions settings and error dialogs as text.
_PLAYER_TOKENS = frozenset("video-js".split())
_PLAYER_PREFIXES = ("vjs-",)
# Every token above contains one of these.
_NAME_HINTS = ("hid", "sr-only", "screen", "d-none", "vjs-", "video-js")
_TRUE = frozenset(("true", "TRUE", "True"))
_HIDDEN_STYLE = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden", re.IGNORECASE)
# The story's container is the deepest element holding at least this share of the located words of its prose
# (lines of at least _PROSE_LINE_WORDS words).
_STORY_SHARE = 0.8
_PROSE_LINE_WORDS = 15
# Never strip a tail holding more than this share of the body's words: it would outweigh what is left as the story,
# so the container was misjudged.
_MAX_TAIL_SHARE = 0.5
# Lines above the story outside its container (teasers, decks, bylines) hold at most this share of the words, and
# none of them is as long as a paragraph of running prose.
_MAX_HEAD_SHARE = 0.1
_LONG_HEAD_LINE_WORDS = 40
# A hidden or player container holding more than this share of the located words is the story itself (revealed
# by a script, or a video page whose player wraps the article), never furniture to drop.
_MAX_CONTAINER_SHARE = 0.2
# Posts embedded from social networks, as their embed codes mark them before (or without) the network's script
# turning them into iframes: the post's text and its "— Name (@handle) date" line are quoted furniture, not the
# story's prose.
_EMBED_TOKENS = frozenset(
    "twitter-tweet twitter-video instagram-media tiktok-embed fb-post fb-video reddit-card reddit-embed-bq "
    "bluesky-embed text-post-media".split()
)
_EMBED_HINTS = ("twitter-", "instagram-", "tiktok-", "fb-", "reddit-", "bluesky-", "text-post-")
# When embedded posts hold more than this share of the words they are the story (a round-up of reactions).
_MAX_EMBED_SHARE = 0.25
# Widgets after the story: elements a reader operates, and links to the pages of terms a notice refers to.
_CONTROL_TAGS = ("button", "form", "input", "select", "textarea")
_LEGAL_LINK = re.compile(r"privacy|terms|guideline|cookie|legal|conditions|datenschutz|impressum", re.IGNORECASE)
_MIN_POLICY_LINKS = 2
# Lines of a widget mix text and links (a notice linking to the terms): a text node a third of the line places it.
_WIDGET_LOCATE_SHARE = 0.3
# A widget block is a few short lines: a paywall prompt on a story cut short can still be a third of its words.
_MAX_WIDGET_LINES = 6
_MAX_WIDGET_LINE_WORDS = 60
_MAX_WIDGET_SHARE = 0.35


class LineMap:
    """The page's text nodes with the element that shows each, and a lookup from an extracted line to them."""

    def __init__(self, texts: Iterable[tuple[str, HtmlElement, bool]]) -> None:
        """Index the body's text nodes as `walk_page` gathers them: (text, element, is the element's tail)."""
        self._exact: dict[str, list[tuple[HtmlElement, bool]]] = {}
        # Text nodes by their first characters, so a line is searched at its boundaries rather than node by node.
        self._by_prefix: dict[str, list[str]] = {}
        for raw, element, is_tail in texts:
            text = " ".join(raw.split())
            if len(text) < MIN_TEXT_NODE_CHARS:
                continue
            shown = self._exact.get(text)
            if shown is None:
                self._exact[text] = [(element, is_tail)]
                self._by_prefix.setdefault(text[:MIN_TEXT_NODE_CHARS], []).append(text)
            else:
                shown.append((element, is_tail))

    def _elements(self, text: str) -> list[HtmlElement]:
        """The elements that show `text`: a tail is shown by its element's parent."""
        shown: list[HtmlElement] = []
        for element, is_tail in self._exact[text]:
            owner = element.getparent() if is_tail else element
            if owner is not None and owner not in shown:
                shown.append(owner)
        return shown

    def locate(self, line: str, share: float = _LOCATE_SHARE) -> list[HtmlElement]:
        """The elements showing a text node that is most of `line` (several when the page repeats that text), else
        the element around the nodes the line is pieced from; empty when the line cannot be placed. A `share` under
        a half finds the largest of several nodes, for lines made of text and links."""
        wanted = " ".join(_BULLET.sub("", line).split())
        if wanted in self._exact:
            return self._elements(wanted)
        shortest = share * len(wanted)
        # Two text nodes of one line cannot both be most of it, so the first found is the answer (with a smaller
        # share, the first long enough is as good: all of them sit in the line's own element); it must start early
        # enough to be that long.
        for match in _BOUNDARY.finditer(wanted, 0, int(len(wanted) - shortest) + 1):
            start = match.start()
            for fragment in self._by_prefix.get(wanted[start : start + MIN_TEXT_NODE_CHARS], ()):
                if len(fragment) >= shortest and wanted.startswith(fragment, start):
                    return self._elements(fragment)
        return self._pieced(wanted, shortest) if share >= _LOCATE_SHARE else []

    def _pieced(self, wanted: str, shortest: float) -> list[HtmlElement]:
        """The element around the text nodes a line is made of (text, links, bold words, lines broken by <br>), when
        nodes the page shows only once cover enough of it; empty otherwise."""
        owners: list[HtmlElement] = []
        covered = 0
        position = 0
        for match in _BOUNDARY.finditer(wanted):
            start = match.start()
            if start < position:
                continue
            piece = ""
            for fragment in self._by_prefix.get(wanted[start : start + MIN_TEXT_NODE_CHARS], ()):
                if len(fragment) > len(piece) and wanted.startswith(fragment, start):
                    piece = fragment
            if not piece:
                continue
            position = start + len(piece)
            shown = self._elements(piece)
            # A piece the page repeats (a name, "Associated Press") could be any of its copies: it places nothing.
            if len(shown) == 1:
                owners.append(shown[0])
                covered += len(piece)
        if covered < shortest or not owners:
            return []
        common = [owners[0], *owners[0].iterancestors()]
        for owner in owners[1:]:
            around = {id(element) for element in (owner, *owner.iterancestors())}
            while common and id(common[0]) not in around:
                common.pop(0)
        return common[:1]


def _is_unseen(element: HtmlElement) -> bool:
    """Hidden from sighted readers, part of a video player, or an aside."""
    # An aside is a box beside the story by definition (teasers, "part 2" links, deals, pull quotes); the
    # container-share cap in `unseen_lines` keeps a page that wraps its whole article in one.
    if element.tag == "aside" or element.get("hidden") is not None or element.get("aria-hidden") in _TRUE:
        return True
    style = element.get("style")
    if style and _HIDDEN_STYLE.search(style):
        return True
    names = f"{element.get('class') or ''} {element.get('id') or ''}".lower()
    # Most elements name nothing of the kind; the substring test spares them the token split.
    if not any(hint in names for hint in _NAME_HINTS):
        return False
    return any(
        token in _HIDDEN_TOKENS or token in _PLAYER_TOKENS or token.startswith(_PLAYER_PREFIXES)
        for token in names.split()
    )


def shown_to_readers(element: HtmlElement) -> bool:
    """Neither the element nor any element around it is hidden, a video player's or an aside."""
    return not any(_is_unseen(node) for node in (element, *element.iterancestors()))


class _Marks:
    """The unseen containers (hidden, player, aside) around elements, each element judged once per page."""

    def __init__(self) -> None:
        self._chains: dict[HtmlElement, tuple[HtmlElement, ...]] = {}

    def marked(self, element: HtmlElement) -> tuple[HtmlElement, ...]:
        """The element and its ancestors that are hidden or belong to a video player, innermost first."""
        # Lines share most of their ancestors: walk up only to the first element already judged.
        path: list[HtmlElement] = []
        chain: tuple[HtmlElement, ...] = ()
        current: HtmlElement | None = element
        while current is not None:
            known = self._chains.get(current)
            if known is not None:
                chain = known
                break
            path.append(current)
            current = current.getparent()
        for node in reversed(path):
            if _is_unseen(node):
                chain = (node, *chain)
            self._chains[node] = chain
        return chain


def unseen_lines(located: Sequence[Sequence[HtmlElement]], paragraphs: Sequence[str]) -> set[int]:
    """Indexes of the lines every copy of which sits in a hidden element, a video player's controls or an aside
    (never one holding more than a fifth of the words)."""
    marks = _Marks()
    weights = [count_words(paragraph) for paragraph in paragraphs]
    total = sum(weights)
    per_line = [[marks.marked(element) for element in elements] for elements in located]
    words_inside: dict[HtmlElement, int] = {}
    for copies, weight in zip(per_line, weights, strict=True):
        for container in {container for copy in copies for container in copy}:
            words_inside[container] = words_inside.get(container, 0) + weight
    small = {container for container, words in words_inside.items() if words <= _MAX_CONTAINER_SHARE * total}
    return {
        index
        for index, copies in enumerate(per_line)
        if copies and all(any(container in small for container in copy) for copy in copies)
    }


def _story_container(located: Sequence[Sequence[HtmlElement]], weights: Sequence[int]) -> HtmlElement | None:
    """The deepest element holding most of the located words (first copy of each line); None when none does."""
    total = sum(weights)
    if not total:
        return None
    held: dict[HtmlElement, int] = {}
    depth: dict[HtmlElement, int] = {}
    for elements, weight in zip(located, weights, strict=True):
        if not elements:
            continue
        chain = [elements[0], *elements[0].iterancestors()]
        for level, ancestor in enumerate(reversed(chain)):
            held[ancestor] = held.get(ancestor, 0) + weight
            depth[ancestor] = level
    candidates = [element for element, words in held.items() if words >= _STORY_SHARE * total]
    return max(candidates, key=lambda element: depth[element]) if candidates else None


def outside_story_edges(located: Sequence[Sequence[HtmlElement]], paragraphs: Sequence[str]) -> tuple[int, int]:
    """How many lines at the start and at the end of `paragraphs` sit outside the element that holds the story
    (0 for an edge when unsure)."""
    weights = [count_words(paragraph) for paragraph in paragraphs]
    # The container is judged by the story's prose: a sidebar of forty teaser headlines after a short story would
    # otherwise hold enough of the words to pull the container up to the whole page.
    prose = [weight if weight >= _PROSE_LINE_WORDS else 0 for weight in weights]
    story = _story_container(located, prose if any(prose) else weights)
    if story is None or len(paragraphs) < 3:
        return 0, 0
    inside = [any(_inside(element, story) for element in elements) for elements in located]
    tail = _trailing_outside(located, weights, inside)
    head = _leading_outside(located[: len(located) - tail], weights[: len(weights) - tail], inside)
    return head, tail


def trailing_outside_story(located: Sequence[Sequence[HtmlElement]], paragraphs: Sequence[str]) -> int:
    """How many lines at the end of `paragraphs` sit outside the element that holds the story (0 when unsure)."""
    return outside_story_edges(located, paragraphs)[1]


def _trailing_outside(located: Sequence[Sequence[HtmlElement]], weights: Sequence[int], inside: Sequence[bool]) -> int:
    # Everything after the story's container goes (teaser columns, comment policies, copyright notices, the next
    # story's lede), prose or not, as long as it does not outweigh the story. The tail starts after the last line
    # found inside the story; lines that could not be placed go with their neighbours, but at least one tail line
    # must have been placed outside.
    cut = len(weights)
    while cut > 0 and not inside[cut - 1]:
        cut -= 1
    if not any(located[cut:]) or sum(weights[cut:]) > _MAX_TAIL_SHARE * sum(weights):
        return 0
    return len(weights) - cut


def _leading_outside(located: Sequence[Sequence[HtmlElement]], weights: Sequence[int], inside: Sequence[bool]) -> int:
    # Teasers, decks and bylines above the story: short, few, and at least one placed outside the container.
    # Engadget's review summary box (pros, cons, verdict) is a long block above the story that the reference keeps;
    # the caps leave such blocks alone.
    cut = 0
    while cut < len(weights) and not inside[cut]:
        cut += 1
    if (
        cut == len(weights)
        or not any(located[:cut])
        or sum(weights[:cut]) > _MAX_HEAD_SHARE * sum(weights)
        or any(weight >= _LONG_HEAD_LINE_WORDS for weight in weights[:cut])
    ):
        return 0
    return cut


def _own_block(element: HtmlElement, story_ancestors: set[HtmlElement]) -> HtmlElement | None:
    """The largest element around `element` that holds none of the earlier lines (None when it is one of theirs)."""
    if element in story_ancestors:
        return None
    block = element
    for ancestor in element.iterancestors():
        if ancestor in story_ancestors:
            break
        block = ancestor
    return block


def _is_widget(block: HtmlElement) -> bool:
    """The block holds something a reader operates, or links to two of the site's policy pages (terms, privacy,
    comment guidelines); one such link is what a story about a privacy policy has."""
    if next(block.iter(*_CONTROL_TAGS), None) is not None:
        return True
    policies: set[str] = set()
    for link in block.iter("a"):
        href = (link.get("href") or "").strip()
        if href.lower().startswith("javascript:"):
            return True
        if _LEGAL_LINK.search(href):
            policies.add(href)
    return len(policies) >= _MIN_POLICY_LINKS


def widget_tail(line_map: LineMap, located: Sequence[Sequence[HtmlElement]], paragraphs: Sequence[str]) -> int:
    """How many lines at the end of `paragraphs` sit in a widget block after the story (0 when unsure)."""
    located = [
        elements
        or (line_map.locate(paragraph, _WIDGET_LOCATE_SHARE) if index >= len(paragraphs) - _MAX_WIDGET_LINES else [])
        for index, (elements, paragraph) in enumerate(zip(located, paragraphs, strict=True))
    ]
    weights = [count_words(paragraph) for paragraph in paragraphs]
    total = sum(weights)
    best = 0
    for size in range(1, min(_MAX_WIDGET_LINES, len(paragraphs) - 1) + 1):
        start = len(paragraphs) - size
        if weights[start] > _MAX_WIDGET_LINE_WORDS or sum(weights[start:]) > _MAX_WIDGET_SHARE * total:
            break
        if not located[start]:
            continue
        earlier = [elements[0] for elements in located[:start] if elements]
        if not earlier:
            break
        story_ancestors = {ancestor for element in earlier for ancestor in (element, *element.iterancestors())}
        blocks = [_own_block(elements[0], story_ancestors) for elements in located[start:] if elements]
        if all(block is not None and _is_widget(block) for block in blocks):
            best = size
    return best


def _in_embed(element: HtmlElement) -> bool:
    """Inside a social network's embedded post."""
    for current in (element, *element.iterancestors()):
        names = current.get("class")
        if names and any(hint in names for hint in _EMBED_HINTS) and not _EMBED_TOKENS.isdisjoint(names.split()):
            return True
    return False


def embedded_posts(located: Sequence[Sequence[HtmlElement]], paragraphs: Sequence[str]) -> set[int]:
    """Indexes of the lines every copy of which sits in a post embedded from a social network (empty when such
    posts are a large share of the text)."""
    embedded = {index for index, elements in enumerate(located) if elements and all(_in_embed(e) for e in elements)}
    if not embedded:
        return embedded
    weights = [count_words(paragraph) for paragraph in paragraphs]
    if sum(weights[index] for index in embedded) > _MAX_EMBED_SHARE * sum(weights):
        return set()
    return embedded


def _inside(element: HtmlElement, container: HtmlElement) -> bool:
    return element is container or any(ancestor is container for ancestor in element.iterancestors())

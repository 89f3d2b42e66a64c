"""Case restoration for shouted text (ALL-CAPS headlines, datelines, Title Case headlines).

NER models trained on mixed-case text see "LEICESTERSHIRE TAKE OVER AT TOP" as a run of acronyms. We rewrite
such stretches to the casing a reader would expect, **keeping every character offset unchanged** (each word is
replaced by a same-length word), so entity offsets found on the restored copy index the original text.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

WORD = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)?")
SENTENCE_END = re.compile(r"[.!?:]['\"’”)]*\s*$")
_SENTENCE_PUNCTUATION, _CLOSERS = frozenset(".!?:"), frozenset("'\"’”)")
# "MOSCOW, Aug 30 (Reuters) -" / "LONDON 1996-08-30": a caps place name opening a paragraph.
DATELINE = re.compile(r"^([A-Z][A-Z'’.\-]+(?:\s[A-Z][A-Z'’.\-]+){0,3})(?=\s*(?:,|\(|\d|-\s))", re.MULTILINE)

SHOUTED_UPPER_RATIO = 0.8
HEADLINE_CAPITALISED_RATIO = 0.7


@dataclass
class CaseEvidence:
    """How words are written where the text is not shouted: lower-cased word -> counts of its forms."""

    forms: dict[str, Counter[str]] = field(default_factory=dict)

    def add_text(self, text: str) -> None:
        """Count word forms outside shouted lines, skipping sentence-initial words (capitalised anyway)."""
        for line in text.splitlines():
            if is_shouted(line) or is_headline_case(line):
                continue
            previous_end = 0
            for match in WORD.finditer(line):
                word = match.group()
                before = line[previous_end : match.start()]
                previous_end = match.end()
                if match.start() == 0 or ends_sentence(line, match.start()) or '"' in before:
                    continue
                lower = word.lower()
                counts = self.forms.get(lower)
                if counts is None:  # (setdefault built a Counter for every word, kept or not)
                    counts = self.forms[lower] = Counter()
                counts[word] += 1

    def preferred(self, word: str) -> str | None:
        """The most common non-initial form of `word`, or None without evidence."""
        counts = self.forms.get(word.lower())
        if not counts:
            return None
        return counts.most_common(1)[0][0]

    def mostly_lower(self, word: str) -> bool:
        """True when the word is written in lower case more often than not."""
        form = self.preferred(word)
        return form is not None and form.islower()


def ends_sentence(text: str, end: int) -> bool:
    """`SENTENCE_END.search(text[:end])`, read backwards from `end`: the search scanned the whole prefix, once per
    word, which made evidence gathering quadratic in the length of a paragraph (3.4 ms of an article)."""
    index = min(end, len(text))
    while index and text[index - 1].isspace():  # str.isspace and the pattern's \s are the same character class
        index -= 1
    while index and text[index - 1] in _CLOSERS:
        index -= 1
    return bool(index) and text[index - 1] in _SENTENCE_PUNCTUATION


def is_shouted(line: str) -> bool:
    """A line written (nearly) all in capitals, with enough letters to tell."""
    letters = sum(map(str.isalpha, line))
    if letters < 4:
        return False
    # Capitals among all characters bound those among the letters ("Ⅷ" is upper case, not a letter): most lines
    # fail on the bound, counted in C, and only the rest are counted letter by letter.
    if sum(map(str.isupper, line)) / letters < SHOUTED_UPPER_RATIO:
        return False
    words = WORD.findall(line)
    if len(words) < 2 and letters < 12:
        return False
    upper = sum(1 for ch in line if ch.isupper() and ch.isalpha())
    return upper / letters >= SHOUTED_UPPER_RATIO


def is_headline_case(line: str) -> bool:
    """A Title Case headline: most longer words capitalised, and more than a bare name."""
    words = [w for w in WORD.findall(line) if len(w) > 3]
    if len(words) < 4 or is_shouted(line):
        return False
    capitalised = sum(1 for w in words if w[0].isupper())
    return capitalised / len(words) >= HEADLINE_CAPITALISED_RATIO


def _same_length(original: str, replacement: str) -> str:
    # Some characters change length when case-mapped ("İ".lower() is two code points): keep those as they were.
    return replacement if len(replacement) == len(original) else original


def restore_case(
    text: str,
    evidence: CaseEvidence,
    is_known_name: Callable[[str], bool],
    common_words: frozenset[str],
) -> str:
    """Rewrite shouted lines, datelines and Title Case headlines to natural casing, offsets preserved."""
    out: list[str] = []
    for line in text.splitlines(keepends=True):
        stripped = line.rstrip("\r\n")
        if is_shouted(stripped):
            out.append(_restore_shouted(line, evidence, is_known_name, common_words))
        elif is_headline_case(stripped):
            out.append(_restore_headline(line, evidence, is_known_name))
        else:
            out.append(_restore_dateline(line, evidence, is_known_name, common_words))
    restored = "".join(out)
    return restored if len(restored) == len(text) else text


def _restore_shouted(
    line: str, evidence: CaseEvidence, is_known_name: Callable[[str], bool], common_words: frozenset[str]
) -> str:
    chars = list(line)
    matches = list(WORD.finditer(line))
    known_spans = _known_multiword_spans(line, matches, is_known_name)
    sentence_start = True
    for index, match in enumerate(matches):
        word = match.group()
        if index in known_spans:
            new = word[0].upper() + word[1:].lower()
        else:
            new = _restore_word(word, evidence, is_known_name, common_words, sentence_start)
        chars[match.start() : match.end()] = _same_length(word, new)
        sentence_start = ends_sentence(line, match.end() + 1) or line[match.end() :].startswith((" - ", " -- "))
    return "".join(chars)


def _known_multiword_spans(line: str, matches: list[re.Match[str]], is_known_name: Callable[[str], bool]) -> set[int]:
    """Indexes of words that belong to a multi-word gazetteer name ("NEW YORK", "SOUTH AFRICA")."""
    covered: set[int] = set()
    for size in (3, 2):
        for start in range(len(matches) - size + 1):
            window = range(start, start + size)
            if covered.intersection(window):
                continue
            phrase = line[matches[start].start() : matches[start + size - 1].end()]
            if "\n" not in phrase and is_known_name(phrase):
                covered.update(window)
    return covered


def _restore_word(
    word: str,
    evidence: CaseEvidence,
    is_known_name: Callable[[str], bool],
    common_words: frozenset[str],
    sentence_start: bool,
) -> str:
    lower = word.lower()
    preferred = evidence.preferred(word)
    if preferred is not None and not (preferred.islower() and sentence_start):
        return preferred
    if is_known_name(word):
        return word[0].upper() + word[1:].lower()
    base = lower.split("'")[0].split("’")[0]
    if base in common_words or len(base) == 1:
        return (lower[0].upper() + lower[1:]) if sentence_start else lower
    if len(word) <= 3:
        return word  # an unknown short capitalised word is most likely an acronym (NFL, UEFA is longer)
    return word[0].upper() + word[1:].lower()


def _restore_headline(line: str, evidence: CaseEvidence, is_known_name: Callable[[str], bool]) -> str:
    """Title Case: lower-case only the words the article itself writes in lower case."""
    chars = list(line)
    for index, match in enumerate(WORD.finditer(line)):
        word = match.group()
        if index == 0 or not word[0].isupper() or word.isupper() or is_known_name(word):
            continue
        if evidence.mostly_lower(word):
            chars[match.start() : match.end()] = _same_length(word, word.lower())
    return "".join(chars)


def _restore_dateline(
    line: str, evidence: CaseEvidence, is_known_name: Callable[[str], bool], common_words: frozenset[str]
) -> str:
    match = DATELINE.match(line)
    if match is None or len(match.group(1)) < 3:
        return line
    head = match.group(1)
    # Acronym datelines ("UN", "NATO") are left alone; place names get their natural casing.
    if len(head) <= 4 and not is_known_name(head):
        return line
    words = list(WORD.finditer(head))
    chars = list(line)
    known = _known_multiword_spans(head, words, is_known_name)
    for index, word_match in enumerate(words):
        word = word_match.group()
        new = (
            word[0] + word[1:].lower()
            if index in known or is_known_name(word)
            else _restore_word(word, evidence, is_known_name, common_words, sentence_start=False)
        )
        if new.islower():
            new = new[0].upper() + new[1:]
        chars[word_match.start() : word_match.end()] = _same_length(word, new)
    return "".join(chars)


def build_evidence(texts: Iterable[str]) -> CaseEvidence:
    """Case evidence gathered from all the given texts (an article's title and body)."""
    evidence = CaseEvidence()
    for text in texts:
        evidence.add_text(text)
    return evidence

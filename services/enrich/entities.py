"""Named entities made right for news: clean spans, gazetteer fixes, one entity per real-world thing."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from spacy.tokens import Doc, Span

from services.enrich.casing import CaseEvidence
from services.enrich.gazetteer import Gazetteer, normalise_key
from shared.events import Entity, Mention

Field = Literal["title", "body"]

# Labels of things with names; numeric labels (CARDINAL, PERCENT, ...) are not "things in the article".
NAMED_LABELS = frozenset(
    {"PERSON", "NORP", "FAC", "ORG", "GPE", "LOC", "PRODUCT", "EVENT", "WORK_OF_ART", "LAW", "LANGUAGE"}
)
KEPT_LABELS = NAMED_LABELS | {"DATE"}
PLACE_LABELS = frozenset({"GPE", "LOC"})
# What follows a dateline's place: a comma, "(Reuters)", a month or an ISO date.
DATELINE_TAIL = re.compile(
    r"[ \t]*(?:,|\(|\d{4}-\d{2}-\d{2}|(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?\s+\d)",
    re.IGNORECASE,
)
# "in London", "at Lord's": after these a town is where something happens, even on the sports pages.
PLACE_PREPOSITIONS = frozenset({"in", "at", "near", "outside", "to", "into", "across", "around"})
# spaCy's small model sends place names to these labels when context misleads it ("Kursk" -> PRODUCT).
RELABEL_TO_PLACE = frozenset({"PRODUCT", "WORK_OF_ART", "FAC", "EVENT", "LAW", "NORP", "LANGUAGE", "PERSON"})

POSSESSIVES = frozenset({"'s", "’s", "'", "’", "s'", "s’"})
LEADING_NOISE = frozenset({"the", "a", "an", "this", "that", "these", "those", "'", "’", '"', "“", "”", "-", "--"})
# Honorifics and titles folded away from person names ("President Putin" is Putin).
TITLES = frozenset(
    """mr mr. mrs mrs. ms ms. miss dr dr. prof prof. professor sir dame lord lady president vice
    prime minister ministers secretary chancellor senator sen. rep. representative governor gov. mayor
    general gen. lt. lieutenant col. colonel major maj. captain capt. sgt. sergeant admiral adm. commander
    marshal king queen prince princess emperor pope cardinal bishop archbishop rev. reverend father sheikh
    judge justice chief leader chairman chairwoman chair ceo director coach manager striker defender
    midfielder goalkeeper forward skipper spokesman spokeswoman spokesperson deputy former late foreign
    defence defense interior finance economy trade state supreme top security adviser advisor official
    ambassador envoy premier party""".split()
)
# A final word that makes a span an organisation whatever the model said ("Acme Corp", "Leeds United").
ORG_SUFFIXES = frozenset(
    """inc inc. corp corp. co co. ltd ltd. plc llc ag sa nv gmbh bhd fc afc cf united rovers wanderers
    athletic athletico city's bank group party council committee commission ministry agency association
    federation union university college institute airlines airways club league exchange court senate
    parliament congress assembly army navy police department office foundation fund organisation
    organization board authority company corporation holdings motors bureau service services network
    press times journal post telegraph herald tribune news television tv radio""".split()
)


@dataclass
class FieldText:
    """One NER'd field: the original text, its case-restored copy and the Doc parsed from that copy."""

    name: Field
    text: str
    doc: Doc

    def __post_init__(self) -> None:
        self.restored = self.doc.text


@dataclass
class Candidate:
    """A cleaned entity span with its field, offsets (into both texts) and label."""

    field: Field
    start: int
    end: int
    label: str
    surface: str  # from the original text
    natural: str  # same span from the case-restored copy
    words: tuple[str, ...]
    followed_by_number: bool = False
    opens_line: bool = False  # opens a dateline ("LONDON 1996-08-30", "MOSCOW, March 3")
    after_preposition: bool = False

    @property
    def key(self) -> str:
        return normalise_key(self.natural)


def extract_entities(
    fields: Sequence[FieldText],
    gazetteer: Gazetteer,
    evidence: CaseEvidence,
    common_words: frozenset[str],
    *,
    sport: bool = False,
) -> list[Entity]:
    """Entities of one article from its NER'd fields, one per real-world thing, OntoNotes labels.

    `sport`: the article is about sport, where a city or county name usually stands for its club
    ("Surrey beat Kent", "Wigan 2 Norwich 1") while a country name stays a place (national sides).
    """
    candidates: list[Candidate] = []
    for field_text in fields:
        spans = [span for ent in field_text.doc.ents if ent.label_ in KEPT_LABELS for span in clean_span(ent)]
        found = [_candidate(field_text, span) for span in spans]
        found += _gazetteer_spans(field_text, found, gazetteer, evidence, common_words)
        candidates += [c for c in found if c is not None]
    candidates = [_relabel(c, gazetteer) for c in candidates]
    if sport:
        candidates = [_relabel_clubs(c, gazetteer) for c in candidates]
    candidates = [c for c in candidates if is_entity_like(c, gazetteer, evidence)]
    return group_candidates(candidates, gazetteer)


def clean_span(ent: Span) -> list[Span]:
    """Trim determiners, titles, possessives and punctuation; cut at an inner possessive; split at line breaks,
    dashes and numbers (table rows and "CRICKET - AUSTRALIA" headlines are not one name)."""
    doc = ent.doc
    parts: list[tuple[int, int]] = []
    start = ent.start
    for index in range(ent.start, ent.end + 1):
        if index == ent.end or _is_separator(doc, index):
            if index > start:
                parts.append((start, index))
            start = index + 1
    spans = [_trim(doc, a, b, ent.label_) for a, b in parts]
    return [span for span in spans if span is not None]


def _is_separator(doc: Doc, index: int) -> bool:
    token = doc[index]
    return (
        "\n" in token.text
        or "\n" in token.whitespace_
        or token.text in {"-", "--", "–", "—", "|", "(", ")", ";", ":"}
        or token.like_num
    ) and not (token.text == "-" and not token.whitespace_)


def _trim(doc: Doc, start: int, end: int, label: str) -> Span | None:
    while start < end and (
        doc[start].lower_ in LEADING_NOISE
        or doc[start].is_punct
        or (label == "PERSON" and doc[start].lower_ in TITLES and end - start > 1)
    ):
        start += 1
    # "Sergei Shoigu’s Visit" is Sergei Shoigu: the possessive ends the name.
    for index in range(start + 1, end):
        if doc[index].lower_ in POSSESSIVES:
            end = index
            break
    while end > start and (doc[end - 1].is_punct or doc[end - 1].lower_ in POSSESSIVES):
        end -= 1
    if end <= start:
        return None
    return Span(doc, start, end, label=label)


def _candidate(field_text: FieldText, span: Span) -> Candidate:
    start, end = span.start_char, span.end_char
    surface = field_text.text[start:end]
    natural = span.text
    # A possessive glued to the token ("Putin’s" when the tokenizer kept it) is not part of the name.
    for suffix in ("'s", "’s"):
        if natural.lower().endswith(suffix) and len(natural) > len(suffix) + 1:
            end -= len(suffix)
            surface, natural = surface[: -len(suffix)], natural[: -len(suffix)]
    doc = span.doc
    following = doc[span.end] if span.end < len(doc) else None
    # Doc.text is rebuilt from the tokens on every access: read the field's restored copy instead.
    restored = field_text.restored
    opens_line = span.start_char == 0 or restored[span.start_char - 1] == "\n"
    dateline = opens_line and bool(DATELINE_TAIL.match(restored, span.end_char))
    return Candidate(
        field_text.name,
        start,
        end,
        span.label_,
        surface,
        natural,
        tuple(t.lower_ for t in span),
        followed_by_number=following is not None and following.like_num,
        opens_line=dateline,
        after_preposition=span.start > 0 and doc[span.start - 1].lower_ in PLACE_PREPOSITIONS,
    )


def _gazetteer_spans(
    field_text: FieldText,
    found: Sequence[Candidate],
    gazetteer: Gazetteer,
    evidence: CaseEvidence,
    common_words: frozenset[str],
) -> list[Candidate]:
    """Capitalised places and nationalities the model missed."""
    doc = field_text.doc
    covered = [False] * len(doc)
    for candidate in found:
        span = doc.char_span(candidate.start, candidate.end, alignment_mode="expand")
        for token_index in range(span.start, span.end) if span is not None else ():
            covered[token_index] = True
    added: list[Candidate] = []
    index = 0
    while index < len(doc):
        match = _longest_gazetteer_match(doc, index, covered, gazetteer, evidence, common_words)
        if match is None:
            index += 1
            continue
        end, label = match
        added.append(_candidate(field_text, Span(doc, index, end, label=label)))
        index = end
    return added


def _longest_gazetteer_match(
    doc: Doc,
    index: int,
    covered: list[bool],
    gazetteer: Gazetteer,
    evidence: CaseEvidence,
    common_words: frozenset[str],
) -> tuple[int, str] | None:
    if covered[index] or not doc[index].text[:1].isupper():
        return None
    for size in range(min(gazetteer.max_words, len(doc) - index), 0, -1):
        end = index + size
        if any(covered[index:end]) or not doc[end - 1].text[:1].isupper():
            continue
        text = doc[index:end].text
        is_demonym, _ = gazetteer.demonym_country(text)
        place = gazetteer.place(text)
        if place is None and not is_demonym:
            continue
        lower = text.lower()
        sentence_initial = index == 0 or doc[index - 1].is_sent_end or doc[index - 1].text in {"\n", "\n\n"}
        # "Reading", "Mobile": a common word names a city only where the article writes it capitalised.
        if size == 1 and lower in common_words and (sentence_initial or evidence.mostly_lower(text)):
            continue
        if place is not None:
            return end, "LOC" if place.kind == "supranational" else "GPE"
        return end, "NORP"
    return None


def _relabel(candidate: Candidate, gazetteer: Gazetteer) -> Candidate:
    """Gazetteer and cue-word corrections of the model's label."""
    label = candidate.label
    if label not in KEPT_LABELS - {"DATE"}:
        return candidate
    is_demonym, _ = gazetteer.demonym_country(candidate.natural)
    place = gazetteer.place(candidate.natural)
    if is_demonym and label in {"GPE", "LOC", "PERSON", "ORG", "PRODUCT", "WORK_OF_ART"}:
        label = "NORP"
    elif place is not None and label in RELABEL_TO_PLACE and not (label == "PERSON" and len(candidate.words) > 1):
        label = "LOC" if place.kind == "supranational" else "GPE"
    elif place is not None and label == "LOC" and place.kind != "supranational":
        label = "GPE"
    elif place is not None and label == "ORG" and place.kind in {"country", "supranational"}:
        label = "LOC" if place.kind == "supranational" else "GPE"
    elif len(candidate.words) > 1 and candidate.words[-1] in ORG_SUFFIXES and label != "ORG":
        label = "ORG"
    if label == candidate.label:
        return candidate
    return Candidate(
        candidate.field,
        candidate.start,
        candidate.end,
        label,
        candidate.surface,
        candidate.natural,
        candidate.words,
        candidate.followed_by_number,
        candidate.opens_line,
        candidate.after_preposition,
    )


def _relabel_clubs(candidate: Candidate, gazetteer: Gazetteer) -> Candidate:
    """In sport: towns, counties and states named as a side are clubs; a dateline town stays a place."""
    if candidate.label not in {"GPE", "LOC", "PERSON", "NORP"} or candidate.after_preposition:
        return candidate
    if candidate.opens_line:  # the dateline: where the story was filed
        return candidate
    place = gazetteer.place(candidate.natural)
    if place is not None and place.kind in {"country", "supranational"}:
        return candidate
    if candidate.label == "NORP" and gazetteer.demonym_country(candidate.natural)[0]:
        return candidate
    is_place = place is not None or candidate.label in {"GPE", "LOC"} or candidate.words[-1].endswith("shire")
    # A lone word with a score after it ("Orrell 20 Bath 15") is a side, whatever the model guessed.
    is_side = len(candidate.words) == 1 and candidate.followed_by_number and candidate.label != "NORP"
    if not (is_place or is_side):
        return candidate
    return Candidate(
        candidate.field,
        candidate.start,
        candidate.end,
        "ORG",
        candidate.surface,
        candidate.natural,
        candidate.words,
        candidate.followed_by_number,
        candidate.opens_line,
        candidate.after_preposition,
    )


def is_entity_like(candidate: Candidate, gazetteer: Gazetteer, evidence: CaseEvidence) -> bool:
    """Drop spans that are not names: no capital letter, or only words the article writes in lower case."""
    if candidate.label == "DATE":
        return any(ch.isalnum() for ch in candidate.natural)
    natural = candidate.natural
    if not natural[:1].isupper() and not natural[:1].isdigit():
        return False
    if not any(ch.isalpha() for ch in natural):
        return False
    if gazetteer.place(natural) is not None or gazetteer.demonym_country(natural)[0]:
        return True
    words = [w for w in candidate.natural.split() if any(ch.isalpha() for ch in w)]
    return not all(evidence.mostly_lower(w.strip("'’\".,")) for w in words)


def group_candidates(candidates: Sequence[Candidate], gazetteer: Gazetteer) -> list[Entity]:
    """Merge mentions of the same thing: same key case-insensitively, short person names to the full name."""
    groups: dict[str, list[Candidate]] = {}
    for candidate in candidates:
        groups.setdefault(candidate.key, []).append(candidate)
    labels = {key: _vote(members) for key, members in groups.items()}
    people = sorted(
        (key for key, label in labels.items() if label == "PERSON" and len(key.split()) > 1),
        key=lambda key: -len(key.split()),
    )
    merged_into: dict[str, str] = {}
    for key in groups:
        if key in people and len(key.split()) > 1 and _is_full_name(key, people):
            continue
        if labels[key] not in {"PERSON", "ORG", "GPE", "NORP", "PRODUCT", "WORK_OF_ART", "FAC", "LOC"}:
            continue
        if labels[key] != "PERSON" and (gazetteer.place(key) is not None or gazetteer.demonym_country(key)[0]):
            continue
        targets = {full for full in people if full != key and _is_part_of_name(key.split(), full.split())}
        # Keep only the longest names; an ambiguous short form ("Kim" with two Kims) stays on its own.
        targets = {t for t in targets if not any(t != o and _is_part_of_name(t.split(), o.split()) for o in targets)}
        if len(targets) == 1:
            merged_into[key] = targets.pop()
    final: dict[str, list[Candidate]] = {}
    for key, members in groups.items():
        final.setdefault(merged_into.get(key, key), []).extend(members)
    full_names = set(merged_into.values())
    final_labels = {key: "PERSON" if key in full_names else labels[key] for key in final}
    entities = [
        Entity(
            name=_canonical_name(members),
            label=final_labels[key],
            mentions=[
                Mention(text=m.surface, start=m.start, end=m.end, field=m.field)
                for m in sorted(members, key=lambda m: (m.field != "title", m.start))
            ],
        )
        for key, members in final.items()
    ]
    order = {key: index for index, key in enumerate(final)}
    keyed = dict(zip(final, entities, strict=True))
    return [keyed[key] for key in sorted(final, key=lambda k: (-len(final[k]), order[k]))]


def _is_full_name(key: str, people: Sequence[str]) -> bool:
    return not any(other != key and _is_part_of_name(key.split(), other.split()) for other in people)


def _is_part_of_name(short: Sequence[str], full: Sequence[str]) -> bool:
    """"putin" in "vladimir putin", "kim" / "kim jong" in "kim jong un": a leading or trailing run of words."""
    size = len(short)
    if size == 0 or size >= len(full):
        return False
    return list(full[:size]) == list(short) or list(full[-size:]) == list(short)


def _vote(members: Sequence[Candidate]) -> str:
    counts = Counter(m.label for m in members)
    return counts.most_common(1)[0][0]


def _canonical_name(members: Sequence[Candidate]) -> str:
    """The longest form, preferring one not written in capitals."""
    best = max(members, key=lambda m: (not m.natural.isupper() or len(m.natural) <= 4, len(m.natural)))
    return best.natural

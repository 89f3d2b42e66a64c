"""YAKE key-phrase scoring (the algorithm of the `yake` 0.7 package, same phrases and scores) over plain dicts.

`yake` keeps its co-occurrence graph in networkx and its statistics in per-word dicts of dicts; on a 300-word
news lead that bookkeeping was three quarters of its 12 ms. This module runs the same steps on the same tokens
(yake's own segmenter and tokenizer, segtok) with lists and tuples, about 3x faster;
`tests/unit/test_enrich_keyphrases.py` checks phrase for phrase and score for score against the package. The
package itself is never imported here (it brings networkx: ~12 MB of the enrich process for nothing it uses);
only its stop-word files are read.
"""

from __future__ import annotations

import importlib.util
import math
import re
import string
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
from segtok.segmenter import split_multi
from segtok.tokenizer import split_contractions, web_tokenizer

N_GRAM = 3
WINDOW = 1  # co-occurrence window (yake's default)
# yake 0.7's KeywordExtractor takes `dedup_lim`; the `dedupLim=0.8` this stage used to pass was silently
# ignored, so 0.9 (the default) is what every stored record was made with.
DEDUP_LIMIT = 0.9
EXCLUDE = frozenset(string.punctuation)
DISCARDED_TAGS = frozenset({"u", "d"})  # unparsable tokens and numbers


@dataclass(slots=True)
class Term:
    """One (lower-cased, plural-folded) word: counts and position statistics."""

    index: int
    stopword: bool
    tf: float = 0.0
    tf_upper: float = 0.0  # as an acronym (all capitals)
    tf_proper: float = 0.0  # capitalised inside a sentence
    sentences: dict[int, None] = field(default_factory=dict)  # sentence ids in first-seen order
    h: float = 0.0


@dataclass(slots=True)
class Candidate:
    """A 1-3 word phrase: its first surface form, its terms, and whether one occurrence had no number in it."""

    surface: str
    terms: tuple[Term, ...]
    plain: bool  # some occurrence without a number or unparsable token
    tf: float = 0.0
    h: float = 1.0

    @property
    def valid(self) -> bool:
        """A plain occurrence, and no stop word at either end."""
        return self.plain and not (self.terms[0].stopword or self.terms[-1].stopword)


class KeyphraseScorer:
    """YAKE for one language: `top(text, k)` gives the k best phrases, most relevant first."""

    def __init__(self, language: str) -> None:
        self.stopwords: frozenset[str] = stopwords_of(language)

    def top(self, text: str, count: int) -> list[tuple[str, float]]:
        """(phrase, score) of the `count` best phrases after YAKE's near-repeat filter; lower scores rank first."""
        if not text:
            return []
        terms, candidates, edges, sentence_count = self._build(text.replace("\n", " "))
        self._score_terms(terms, edges, sentence_count)
        valid = [c for c in candidates.values() if c.valid]
        for candidate in valid:
            candidate.h = _phrase_score(candidate, edges)
        ranked = sorted(valid, key=lambda c: c.h)  # stable: ties keep first-seen order, as in yake
        kept: list[Candidate] = []
        for candidate in ranked:
            key = candidate.surface.lower()
            if all(_similarity(key, other.surface.lower()) <= DEDUP_LIMIT for other in kept):
                kept.append(candidate)
                if len(kept) == count:
                    break
        return [(c.surface, c.h) for c in kept]

    def _build(self, text: str) -> tuple[dict[str, Term], dict[str, Candidate], dict[tuple[int, int], float], int]:
        terms: dict[str, Term] = {}
        candidates: dict[str, Candidate] = {}
        edges: dict[tuple[int, int], float] = {}  # (left term, right term) -> co-occurrences
        sentences = tokenize_sentences(pre_filter(text))
        for sentence_id, sentence in enumerate(sentences):
            block: list[tuple[str, str, str, Term]] = []  # (tag, word, lower, term) since the last punctuation
            for position, word in enumerate(sentence):
                if all(ch in EXCLUDE for ch in word):
                    block = []
                    continue
                tag = get_tag(word, position, EXCLUDE)
                lower = word.lower()
                term = self._term(terms, lower)
                term.sentences[sentence_id] = None
                term.tf += 1.0
                if tag == "a":
                    term.tf_upper += 1.0
                elif tag == "n":
                    term.tf_proper += 1.0
                if tag not in DISCARDED_TAGS:
                    for left in block[max(0, len(block) - WINDOW) :]:
                        if left[0] not in DISCARDED_TAGS:
                            pair = (left[3].index, term.index)
                            edges[pair] = edges.get(pair, 0.0) + 1.0
                # The phrases ending here: the word alone, then with one and two words before it.
                phrase_terms: tuple[Term, ...] = (term,)
                key, surface, plain = lower, word, tag not in DISCARDED_TAGS
                _count(candidates, key, surface, phrase_terms, plain)
                for left_tag, left_word, left_lower, left_term in reversed(block[max(0, len(block) - (N_GRAM - 1)) :]):
                    key, surface = f"{left_lower} {key}", f"{left_word} {surface}"
                    phrase_terms = (left_term, *phrase_terms)
                    plain = plain and left_tag not in DISCARDED_TAGS
                    _count(candidates, key, surface, phrase_terms, plain)
                block.append((tag, word, lower, term))
        return terms, candidates, edges, len(sentences)

    def _term(self, terms: dict[str, Term], lower: str) -> Term:
        stop = lower in self.stopwords
        key = lower[:-1] if lower.endswith("s") and len(lower) > 3 else lower
        term = terms.get(key)
        if term is None:
            letters = "".join(ch for ch in key if ch not in EXCLUDE)
            term = Term(len(terms), stop or key in self.stopwords or len(letters) < 3)
            terms[key] = term
        return term

    @staticmethod
    def _score_terms(terms: dict[str, Term], edges: dict[tuple[int, int], float], sentence_count: int) -> None:
        frequencies = np.array([t.tf for t in terms.values() if not t.stopword])
        if not frequencies.size:
            return
        # numpy's pairwise sums, exactly as yake computes them (a plain sum can differ in the last bit).
        mean_tf, std_tf = frequencies.mean(), frequencies.std()
        max_tf = max(t.tf for t in terms.values())
        out_degree = [0] * len(terms)
        out_weight = [0.0] * len(terms)
        in_degree = [0] * len(terms)
        in_weight = [0.0] * len(terms)
        for (source, target), weight in edges.items():
            out_degree[source] += 1
            out_weight[source] += weight
            in_degree[target] += 1
            in_weight[target] += weight
        for term in terms.values():
            i = term.index
            right = 0.0 if out_weight[i] == 0 else out_degree[i] / out_weight[i]
            left = 0.0 if in_weight[i] == 0 else in_degree[i] / in_weight[i]
            relatedness = (0.5 + (left * (term.tf / max_tf))) + (0.5 + (right * (term.tf / max_tf)))
            frequency = term.tf / (mean_tf + std_tf)
            spread = len(term.sentences) / sentence_count
            casing = max(term.tf_upper, term.tf_proper) / (1.0 + math.log(term.tf))
            position = math.log(math.log(3.0 + _median(list(term.sentences))))
            term.h = (position * relatedness) / (casing + (frequency / relatedness) + (spread / relatedness))


def stopwords_of(language: str) -> frozenset[str]:
    """yake's stop-word list for a language (its language-neutral list when it has none), as yake reads it."""
    spec = importlib.util.find_spec("yake")  # finds the installed package without importing it
    assert spec is not None and spec.submodule_search_locations, "the yake package (its stop-word lists) is missing"
    folder = Path(next(iter(spec.submodule_search_locations))) / "core" / "StopwordsList"
    path = folder / f"stopwords_{language[:2].lower()}.txt"
    if not path.exists():
        path = folder / "stopwords_noLang.txt"
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        text = path.read_text(encoding="ISO-8859-1")
    return frozenset(text.lower().split("\n"))


_PARAGRAPH_START = re.compile(r"^(\s*([A-Z]))")


def pre_filter(text: str) -> str:
    """yake's pre-filter: a line that starts with a capital begins a paragraph, others continue the previous one."""
    parts = []
    for line in text.split("\n"):
        parts.append(("\n\n" if _PARAGRAPH_START.match(line) else " ") + line.replace("\t", " "))
    return "".join(parts)


def tokenize_sentences(text: str) -> list[list[str]]:
    """Sentences (segtok's segmenter) of words (its web tokenizer, contractions split), as yake tokenises."""
    return [
        [w for w in split_contractions(web_tokenizer(sentence)) if w and not (w.startswith("'") and len(w) > 1)]
        for sentence in split_multi(text)
        if sentence.strip()
    ]


@lru_cache(maxsize=10_000)
def get_tag(word: str, position: int, exclude: frozenset[str]) -> str:
    """yake's word class: d(igits), u(nusual), a(cronym), n(ame: capitalised inside a sentence), p(lain)."""
    if word.replace(",", "").isdigit() or word.replace(",", "").replace(".", "", 1).isdigit():
        return "d"
    digits = sum(ch.isdigit() for ch in word)
    letters = sum(ch.isalpha() for ch in word)
    excluded = sum(ch in exclude for ch in word)
    if (digits and letters) or (not digits and not letters) or excluded > 1:
        return "u"
    if word.isupper():
        return "a"
    if len(word) > 1 and word[0].isupper() and position > 0 and sum(ch.isupper() for ch in word) == 1:
        return "n"
    return "p"


def _count(candidates: dict[str, Candidate], key: str, surface: str, terms: tuple[Term, ...], plain: bool) -> None:
    candidate = candidates.get(key)
    if candidate is None:
        candidate = candidates[key] = Candidate(surface, terms, plain)
    elif plain:
        candidate.plain = True
    candidate.tf += 1.0


def _median(ordered: list[int]) -> float:
    """np.median of sentence ids that are already in ascending order (the middle one, or the two middles' mean)."""
    middle = len(ordered) // 2
    return float(ordered[middle]) if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def _phrase_score(candidate: Candidate, edges: dict[tuple[int, int], float]) -> float:
    """Product over sum of the words' scores; an inner stop word weighs by how strongly it binds its neighbours."""
    total, product = 0.0, 1.0
    terms = candidate.terms
    for position, term in enumerate(terms):
        if not term.stopword:
            total += term.h
            product *= term.h
            continue
        before = after = 0.0
        if position > 0 and (terms[position - 1].index, term.index) in edges:
            before = edges[(terms[position - 1].index, term.index)] / terms[position - 1].tf
        if position < len(terms) - 1 and (term.index, terms[position + 1].index) in edges:
            after = edges[(term.index, terms[position + 1].index)] / terms[position + 1].tf
        binding = before * after
        product *= 1 + (1 - binding)
        total -= 1 - binding
    return product / ((total + 1) * candidate.tf)


def _similarity(a: str, b: str) -> float:
    """yake's "seqm" near-repeat measure: cheap rejections, then length, character and trigram overlap."""
    if a == b:
        return 1.0
    longest = max(len(a), len(b))
    if abs(len(a) - len(b)) > longest * 0.6:
        return 0.0
    if longest > 3:
        if a[0] != b[0] or a[-1] != b[-1]:
            return 0.0
        if min(len(a), len(b)) >= 3 and a[:2].lower() != b[:2].lower():
            return 0.0
    if abs(a.count(" ") - b.count(" ")) > 1:
        return 0.0
    length_ratio = min(len(a), len(b)) / longest
    if length_ratio < 0.3:
        return 0.0
    a, b = a.lower(), b.lower()
    chars_a, chars_b = set(a), set(b)
    union = chars_a | chars_b
    if not union:
        return 0.0
    char_overlap = len(chars_a & chars_b) / len(union)
    if char_overlap < 0.2:
        return 0.0
    if longest <= 4:
        return char_overlap * length_ratio
    words_a, words_b = a.split(), b.split()
    if len(words_a) > 1 or len(words_b) > 1:
        word_union = set(words_a) | set(words_b)
        if word_union:
            word_overlap = len(set(words_a) & set(words_b)) / len(word_union)
            if word_overlap > 0.4:
                return word_overlap
    trigrams_a = {a[i : i + 3] for i in range(len(a) - 2)}
    trigrams_b = {b[i : i + 3] for i in range(len(b) - 2)}
    trigram_union = trigrams_a | trigrams_b
    trigram_overlap = len(trigrams_a & trigrams_b) / len(trigram_union) if trigram_union else 0
    return min(0.3 * length_ratio + 0.2 * char_overlap + 0.5 * trigram_overlap, 1.0)

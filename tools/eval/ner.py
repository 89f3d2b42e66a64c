"""NER benchmark on CoNLL-2003-format files: document-level (surface, type) sets, bare model vs news pipeline."""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.table import Table

from newsflow.inputs import RawInput
from newsflow.process import Failure, LocalPipeline
from services.enrich.casing import build_evidence, restore_case
from services.enrich.category import is_sport
from services.enrich.enricher import Enricher
from services.enrich.entities import FieldText, extract_entities
from shared.settings import Settings

TYPES = ("PER", "LOC", "ORG", "MISC")
# OntoNotes -> CoNLL; labels not listed (DATE, CARDINAL, ...) have no CoNLL counterpart and are dropped.
ONTONOTES_TO_CONLL: dict[str, str] = {
    "PERSON": "PER",
    "GPE": "LOC",
    "LOC": "LOC",
    "FAC": "LOC",
    "ORG": "ORG",
    "NORP": "MISC",
    "EVENT": "MISC",
    "WORK_OF_ART": "MISC",
    "PRODUCT": "MISC",
    "LANGUAGE": "MISC",
    "LAW": "MISC",
}

Pair = tuple[str, str]


@dataclass
class Document:
    """One -DOCSTART- document: its sentences joined by newlines, and the gold (surface, type) set."""

    text: str
    gold: set[Pair] = field(default_factory=set)


@dataclass
class Scores:
    """True positives, false positives and false negatives per CoNLL type."""

    tp: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TYPES, 0))
    fp: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TYPES, 0))
    fn: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TYPES, 0))

    def add(self, predicted: set[Pair], gold: set[Pair]) -> None:
        """Count one document's predicted set against its gold set."""
        for _, kind in predicted & gold:
            self.tp[kind] += 1
        for _, kind in predicted - gold:
            self.fp[kind] += 1
        for _, kind in gold - predicted:
            self.fn[kind] += 1

    def prf(self, kind: str | None = None) -> tuple[float, float, float]:
        """(precision, recall, F1) for one type, or micro-averaged over all when `kind` is None."""
        kinds = TYPES if kind is None else (kind,)
        tp = sum(self.tp[k] for k in kinds)
        fp = sum(self.fp[k] for k in kinds)
        fn = sum(self.fn[k] for k in kinds)
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        return precision, recall, f1

    def as_dict(self) -> dict[str, dict[str, float]]:
        """{"overall"|type: {"precision", "recall", "f1"}} rounded to 4 places."""
        out: dict[str, dict[str, float]] = {}
        for name, kind in [("overall", None), *((k, k) for k in TYPES)]:
            p, r, f = self.prf(kind)
            out[name] = {"precision": round(p, 4), "recall": round(r, 4), "f1": round(f, 4)}
        return out


def read_conll(path: Path) -> Iterator[Document]:
    """Documents of a CoNLL-2003 file (`token POS chunk NER`, BIO or IOB1 tags, -DOCSTART- between docs)."""
    sentences: list[list[tuple[str, str]]] = []
    current: list[tuple[str, str]] = []
    for raw_line in [*path.read_text(encoding="utf-8").splitlines(), "-DOCSTART- -X- -X- O"]:
        line = raw_line.strip()
        if line.startswith("-DOCSTART-") or not line:
            if current:
                sentences.append(current)
                current = []
            if line.startswith("-DOCSTART-") and sentences:
                yield _document(sentences)
                sentences = []
            continue
        parts = line.split()
        current.append((parts[0], parts[-1]))


def _document(sentences: list[list[tuple[str, str]]]) -> Document:
    lines: list[str] = []
    gold: set[Pair] = set()
    for sentence in sentences:
        lines.append(" ".join(token for token, _ in sentence))
        words: list[str] = []
        kind: str | None = None
        for token, tag in [*sentence, ("", "O")]:
            prefix, _, tag_kind = tag.partition("-")
            starts_new = prefix == "B" or (prefix == "I" and tag_kind != kind)
            if words and kind and (tag == "O" or starts_new):
                gold.add((" ".join(words), kind))
                words, kind = [], None
            if tag != "O":
                if starts_new or not words:
                    words, kind = [token], tag_kind
                else:
                    words.append(token)
    return Document("\n".join(lines), gold)


def fold(label: str) -> str | None:
    """CoNLL type of an OntoNotes label, or None when CoNLL has no such type."""
    return ONTONOTES_TO_CONLL.get(label)


def predict_bare(enricher: Enricher, texts: list[str]) -> Iterator[set[Pair]]:
    """The model alone: its entities as they come, labels folded."""
    for doc in enricher.recognise(texts, batch_size=16):
        yield {(ent.text, kind) for ent in doc.ents if (kind := fold(ent.label_))}


def predict_news(enricher: Enricher, texts: list[str]) -> Iterator[set[Pair]]:
    """The news pipeline: case restoration, gazetteer, cleaning and linking (`extract_entities`)."""
    restored: list[str] = []
    evidences = []
    for text in texts:
        evidence = build_evidence([text])
        evidences.append(evidence)
        restored.append(restore_case(text, evidence, enricher.is_known_name, enricher.common_words))
    docs = enricher.recognise(restored, batch_size=16)
    for text, doc, evidence in zip(texts, docs, evidences, strict=True):
        entities = extract_entities(
            [FieldText("body", text, doc)],
            enricher.gazetteer,
            evidence,
            enricher.common_words,
            sport=is_sport(text, doc),
        )
        yield {
            (mention.text, kind) for entity in entities if (kind := fold(entity.label)) for mention in entity.mentions
        }


@dataclass
class ProcessOutcome:
    """What `newsflow process` made of the documents: records kept (by content type) and inputs rejected (by
    reason)."""

    kept: Counter[str] = field(default_factory=Counter)
    rejected: Counter[str] = field(default_factory=Counter)


def predict_process(pipeline: LocalPipeline, texts: list[str], outcome: ProcessOutcome) -> Iterator[set[Pair]]:
    """The whole `process` path, clean included: each text as a raw article, entities read from the stored record
    (title and body); a rejected document predicts nothing."""
    items = [RawInput(f"conll:{index}", {"text": text}) for index, text in enumerate(texts)]
    for result in pipeline.run(items):
        if isinstance(result, Failure):
            outcome.rejected[result.reason] += 1
            yield set()
            continue
        outcome.kept[result.content_type] += 1
        yield {
            (mention.text, kind)
            for entity in result.entities
            if (kind := fold(entity.label))
            for mention in entity.mentions
        }


def evaluate(
    documents: Iterable[Document], enricher: Enricher, pipeline: LocalPipeline | None = None
) -> tuple[dict[str, Scores], ProcessOutcome]:
    """Scores of the bare model, the enrich pipeline on the raw text, and (with `pipeline`) the whole process path."""
    docs = list(documents)
    texts = [d.text for d in docs]
    outcome = ProcessOutcome()
    results: dict[str, Scores] = {"bare": Scores(), "news": Scores()}
    for name, predict in (("bare", predict_bare), ("news", predict_news)):
        for document, predicted in zip(docs, predict(enricher, texts), strict=True):
            results[name].add(predicted, document.gold)
    if pipeline is not None:
        results["process"] = Scores()
        for document, predicted in zip(docs, predict_process(pipeline, texts, outcome), strict=True):
            results["process"].add(predicted, document.gold)
    return results, outcome


def run_ner_eval(path: Path, *, as_json: bool = False, limit: int | None = None) -> int:
    """Print P/R/F1 overall and per type for both systems; exit status 0, or 2 when the file is unusable."""
    console = Console(width=140) if not sys.stdout.isatty() else Console()
    if path.is_dir():  # the folder holding one CoNLL file (as ../shared/data/ner-dev does)
        found = sorted(p for p in path.iterdir() if p.suffix in (".txt", ".conll") and p.name != "SOURCE.md")
        path = found[0] if len(found) == 1 else path
    if not path.is_file():
        console.print(f"[red]no such file:[/red] {path} (give a CoNLL-2003 file, or a folder holding exactly one)")
        return 2
    documents = list(read_conll(path))[:limit]
    if not documents:
        console.print(f"[red]no documents in[/red] {path}")
        return 2
    started = time.perf_counter()
    pipeline = LocalPipeline(Settings())
    results, outcome = evaluate(documents, pipeline.enricher, pipeline)
    elapsed = time.perf_counter() - started
    if as_json:
        payload = {
            "documents": len(documents),
            "gold_entities": sum(len(d.gold) for d in documents),
            "seconds": round(elapsed, 2),
            "process_kept": dict(outcome.kept),
            "process_rejected": dict(outcome.rejected),
            **{name: scores.as_dict() for name, scores in results.items()},
        }
        print(json.dumps(payload, indent=2))
        return 0
    table = Table(title=f"NER, document-level (surface, type) sets — {len(documents)} documents, {path.name}")
    table.add_column("type")
    for name in results:
        for metric in ("P", "R", "F1"):
            table.add_column(f"{name} {metric}", justify="right")
    for kind in (None, *TYPES):
        row = [kind or "overall"]
        for scores in results.values():
            row += [f"{value:.3f}" for value in scores.prf(kind)]
        table.add_row(*row)
    console.print(table)
    kept, rejected = sum(outcome.kept.values()), sum(outcome.rejected.values())
    reasons = ", ".join(f"{count} {reason}" for reason, count in outcome.rejected.most_common())
    console.print(
        "bare = spaCy model alone; news = enrich on the raw text; process = `newsflow process` (ingest, clean, "
        f"enrich) with a rejected document scored as empty. {elapsed:.1f}s"
    )
    console.print(
        f"process: {kept} kept ({', '.join(f'{n} {k}' for k, n in outcome.kept.most_common()) or 'none'}), "
        f"{rejected} rejected" + (f" ({reasons})" if reasons else "")
    )
    return 0

"""HTML quality that holds on unseen sites: k folds by site, the HTML rules' tuning fitted on the other folds.

Every candidate tuning (`CANDIDATES`) runs once over a development set; for each fold the candidate with the best
F1 on the other folds' pages is chosen and scored on the fold's own pages, whose sites it never saw. The held-out
mean and the worst fold are reported beside the all-pages score of the shipped defaults, and trafilatura's default
extraction is measured on the same pages in the same run (F1 and pages per CPU-second).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import trafilatura

from services.clean.article import clean_article
from services.clean.html import DEFAULT_TUNING, HtmlTuning
from services.clean.lines import normalise_domain
from shared.errors import Rejected
from shared.events import IngestSection
from tools.eval.metrics import BodyScore, macro_f1, score_body

FOLDS = 5
_EPOCH = datetime(2024, 1, 1, tzinfo=UTC)
# The free choices of the HTML rules, each a candidate fit; "defaults" is what the clean stage ships.
CANDIDATES: dict[str, HtmlTuning] = {
    "defaults": DEFAULT_TUNING,
    "no rescue": HtmlTuning(rescue_title_overlap=0.0, rescue_short_words=0),
    "full trafilatura": HtmlTuning(trafilatura_fast=False),
    "no position rules": HtmlTuning(position_rules=False),
    "favor precision": HtmlTuning(favor_precision=True),
}


@dataclass(frozen=True)
class GoldPage:
    """A page with human (or reference) main text; `with_title` when that text starts with the headline."""

    id: str
    subset: str
    site: str
    html: str
    gold: str
    url: str | None
    with_title: bool


@dataclass
class FoldResult:
    """One held-out fold: its pages and sites, the tuning fitted on the other folds, its F1."""

    fold: int
    pages: int
    sites: int
    chosen: str
    f1: float


@dataclass
class DevSetReport:
    """Cross-validated HTML body F1 of one development set, with trafilatura's defaults beside it."""

    name: str
    pages: int
    sites: int
    precision: float
    recall: float
    f1: float
    heldout_mean: float
    heldout_worst: float
    folds: list[FoldResult]
    subsets: dict[str, float]
    pages_per_cpu_s: float
    candidates: dict[str, float] = field(default_factory=dict)
    baseline_f1: float | None = None
    baseline_subsets: dict[str, float] = field(default_factory=dict)
    baseline_pages_per_cpu_s: float | None = None


def site_of(url: str | None, page_id: str) -> str:
    """The site a page belongs to (its registered host), so no site sits on both sides of a fold."""
    return (normalise_domain(url) if url else None) or page_id


def fold_of(site: str, folds: int = FOLDS) -> int:
    """A stable fold for a site."""
    return int(hashlib.sha1(site.encode()).hexdigest(), 16) % folds


def load_gold_pages(path: Path) -> list[GoldPage]:
    """A news-gold folder: `index.jsonl` rows `{id, set, html, text, url}` with human main text (headline first)."""
    pages = []
    for line in (path / "index.jsonl").read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        pages.append(
            GoldPage(
                id=row["id"],
                subset=row.get("set") or path.name,
                site=site_of(row.get("url"), row["id"]),
                html=(path / row["html"]).read_text(encoding="utf-8", errors="replace"),
                gold=(path / row["text"]).read_text(encoding="utf-8", errors="replace"),
                url=row.get("url"),
                with_title=True,
            )
        )
    return pages


def _extracted(page: GoldPage, tuning: HtmlTuning) -> str:
    ingest = IngestSection(
        external_id=page.id, origin="eval", received_at=_EPOCH, content_hash="0" * 16, kind="html",
        content=page.html, url=page.url,
    )  # fmt: skip
    try:
        section = clean_article(ingest, min_words=0, html_tuning=tuning)
    except Rejected:
        return ""
    return f"{section.title}\n\n{section.body}" if page.with_title else section.body


def _trafilatura_text(page: GoldPage) -> str:
    # The headline is part of the gold, so trafilatura's own title is put before its text as ours is.
    document = trafilatura.bare_extraction(page.html, url=page.url, with_metadata=page.with_title)
    if document is None or isinstance(document, dict):  # a dict only with as_dict=True, never passed here
        return ""
    text = str(document.text or "")
    return f"{document.title}\n\n{text}" if page.with_title and document.title else text


def _scores(pages: Sequence[GoldPage], extract: Callable[[GoldPage], str]) -> tuple[list[BodyScore], float]:
    """Per-page scores and pages per CPU-second of this process."""
    started = time.process_time()
    texts = [extract(page) for page in pages]
    elapsed = time.process_time() - started
    return [score_body(text, page.gold) for text, page in zip(texts, pages, strict=True)], (
        len(pages) / elapsed if elapsed > 0 else 0.0
    )


def _f1(scores: Sequence[BodyScore]) -> float:
    return macro_f1(list(scores))[2]


def _by_subset(pages: Sequence[GoldPage], scores: Sequence[BodyScore]) -> dict[str, float]:
    subsets = sorted({page.subset for page in pages})
    if len(subsets) < 2:
        return {}
    return {
        name: round(_f1([s for p, s in zip(pages, scores, strict=True) if p.subset == name]), 4) for name in subsets
    }


def cross_validate(
    pages: Sequence[GoldPage], candidate_scores: dict[str, list[BodyScore]], folds: int = FOLDS
) -> list[FoldResult]:
    """For each fold, the candidate fitted on the other folds and its F1 on the fold's pages."""
    assignment = [fold_of(page.site, folds) for page in pages]
    results = []
    for fold in range(folds):
        held = [index for index, f in enumerate(assignment) if f == fold]
        train = [index for index, f in enumerate(assignment) if f != fold]
        if not held or not train:
            continue
        chosen = max(candidate_scores, key=lambda name: _f1([candidate_scores[name][i] for i in train]))
        results.append(
            FoldResult(
                fold=fold,
                pages=len(held),
                sites=len({pages[i].site for i in held}),
                chosen=chosen,
                f1=round(_f1([candidate_scores[chosen][i] for i in held]), 4),
            )
        )
    return results


def evaluate_devset(
    name: str,
    pages: Sequence[GoldPage],
    *,
    folds: int = FOLDS,
    candidates: dict[str, HtmlTuning] | None = None,
    baseline: bool = True,
) -> DevSetReport:
    """Run every candidate over `pages`, cross-validate the choice by site, and measure trafilatura beside it."""
    candidates = CANDIDATES if candidates is None else candidates
    candidate_scores: dict[str, list[BodyScore]] = {}
    speed = 0.0
    for label, tuning in candidates.items():
        candidate_scores[label], pages_per_second = _scores(pages, partial(_extracted, tuning=tuning))
        if label == "defaults":
            speed = pages_per_second
    shipped = candidate_scores["defaults"]
    precision, recall, f1 = macro_f1(shipped)
    fold_results = cross_validate(pages, candidate_scores, folds)
    heldout = [result.f1 for result in fold_results]
    report = DevSetReport(
        name=name,
        pages=len(pages),
        sites=len({page.site for page in pages}),
        precision=round(precision, 4),
        recall=round(recall, 4),
        f1=round(f1, 4),
        heldout_mean=round(sum(heldout) / len(heldout), 4) if heldout else f1,
        heldout_worst=min(heldout) if heldout else f1,
        folds=fold_results,
        subsets=_by_subset(pages, shipped),
        pages_per_cpu_s=round(speed, 1),
        candidates={label: round(_f1(scores), 4) for label, scores in candidate_scores.items()},
    )
    if baseline:
        baseline_scores, baseline_speed = _scores(pages, _trafilatura_text)
        report.baseline_f1 = round(_f1(baseline_scores), 4)
        report.baseline_subsets = _by_subset(pages, baseline_scores)
        report.baseline_pages_per_cpu_s = round(baseline_speed, 1)
    return report


def report_lines(report: DevSetReport) -> list[str]:
    """The report as plain lines for the console."""
    lines = [
        f"{report.name}: {report.pages} pages, {report.sites} sites — body F1 {report.f1:.3f} on all pages "
        f"(P {report.precision:.3f}, R {report.recall:.3f}); held out by site, {len(report.folds)} folds: "
        f"mean {report.heldout_mean:.3f}, worst {report.heldout_worst:.3f}",
        "  folds: "
        + "; ".join(f"{r.fold}: {r.f1:.3f} ({r.pages} pages, {r.sites} sites, fit: {r.chosen})" for r in report.folds),
        "  candidates on all pages: " + ", ".join(f"{label} {f1:.3f}" for label, f1 in report.candidates.items()),
    ]
    if report.subsets:
        lines.append("  by set: " + ", ".join(f"{name} {f1:.3f}" for name, f1 in report.subsets.items()))
    if report.baseline_f1 is not None and report.baseline_pages_per_cpu_s:
        lines.append(
            f"  trafilatura defaults: F1 {report.baseline_f1:.3f}"
            + (" (" + ", ".join(f"{n} {f:.3f}" for n, f in report.baseline_subsets.items()) + ")"
               if report.baseline_subsets else "")
            + f"; speed {report.pages_per_cpu_s:.1f} vs {report.baseline_pages_per_cpu_s:.1f} pages/cpu-s = "
            f"{report.pages_per_cpu_s / report.baseline_pages_per_cpu_s:.2f}× trafilatura in this run"
        )  # fmt: skip
    return lines


def as_json(reports: Sequence[DevSetReport]) -> str:
    """The reports as a JSON array."""
    return json.dumps([asdict(report) for report in reports], indent=2)

"""The stages' logic chained in one process (no Redis, no storage): `newsflow process` and the benchmark baseline."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import islice
from typing import Literal

from newsflow.inputs import InputError, RawInput
from services.clean.article import clean_article
from services.ingest.validate import ingest_article, validate_raw_article
from shared.errors import Rejected
from shared.events import ArticleRecord, CleanedArticle
from shared.settings import Settings

StopAfter = Literal["clean", "enrich"]


@dataclass(frozen=True, slots=True)
class Failure:
    """An input that did not become a record: where it came from, the stage, and why."""

    where: str
    stage: str
    reason: str
    error: str


def _batches(items: Iterable[RawInput | InputError], size: int) -> Iterator[list[RawInput | InputError]]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


class LocalPipeline:
    """ingest -> clean (-> enrich) over batches, models loaded once, results in input order."""

    def __init__(self, settings: Settings, *, stop_after: StopAfter = "enrich") -> None:
        self.settings = settings
        self.stop_after = stop_after
        if stop_after == "enrich":
            from services.enrich.dedup import InMemoryNearDuplicateIndex
            from services.enrich.enricher import Enricher

            self.enricher = Enricher(settings)
            self.index = InMemoryNearDuplicateIndex()
        # As each service does once its models are loaded (`Stage.lifespan`): keep them out of full collections.
        gc.collect()
        gc.freeze()

    def clean_one(self, item: RawInput) -> CleanedArticle | Failure:
        """Validate, identify and clean one raw input."""
        stage = "ingest"
        try:
            raw = validate_raw_article(dict(item.data))
            article = ingest_article(raw, origin="cli", received_at=datetime.now(UTC))
            stage = "clean"
            section = clean_article(article.ingest, min_words=self.settings.min_body_words)
        except Rejected as rej:
            return Failure(item.where, stage, rej.reason, rej.message)
        return CleanedArticle(id=article.id, ingest=article.ingest, trace=article.trace, clean=section)

    async def run_batch(self, batch: list[RawInput | InputError]) -> list[ArticleRecord | Failure]:
        """One batch through the stages; the output list is aligned with the input list."""
        results: list[ArticleRecord | CleanedArticle | Failure] = [
            Failure(item.where, "read", "unreadable", item.error)
            if isinstance(item, InputError)
            else self.clean_one(item)
            for item in batch
        ]
        cleaned = [r for r in results if isinstance(r, CleanedArticle)]
        if self.stop_after == "enrich" and cleaned:
            from services.enrich.step import enrich_articles

            enriched = iter(await enrich_articles(self.enricher, self.index, cleaned))
            results = [next(enriched) if isinstance(r, CleanedArticle) else r for r in results]
        return [ArticleRecord.from_article(r) if isinstance(r, CleanedArticle) else r for r in results]

    def run(self, items: Iterable[RawInput | InputError], batch_size: int = 64) -> Iterator[ArticleRecord | Failure]:
        """Every input's record or failure, in input order, streaming batch by batch."""
        for batch in _batches(items, batch_size):
            yield from asyncio.run(self.run_batch(batch))

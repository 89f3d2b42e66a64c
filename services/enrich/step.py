"""The enrich stage's event-level step: NLP over a batch, then the shared near-duplicate index, per article."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Protocol

from services.enrich.enricher import Enricher
from shared.events import CleanedArticle, EnrichedArticle, NearDuplicate


class DuplicateIndex(Protocol):
    """Redis-backed in the service, in memory for `newsflow process`."""

    async def check_and_add_many(
        self, articles: Sequence[tuple[str, str, str]]
    ) -> list[tuple[list[NearDuplicate], str | None]]: ...


async def enrich_articles(
    enricher: Enricher, index: DuplicateIndex, articles: Sequence[CleanedArticle]
) -> list[EnrichedArticle]:
    """Enrich a batch: spaCy & co. in a worker thread (the event loop keeps serving), then duplicates in order."""
    sections = await asyncio.to_thread(enricher.enrich_batch, articles)
    duplicates = await index.check_and_add_many([(a.id, a.clean.body, a.ingest.content_hash) for a in articles])
    enriched = []
    for article, section, (near, duplicate_of) in zip(articles, sections, duplicates, strict=True):
        section = section.model_copy(update={"near_duplicates": near, "duplicate_of": duplicate_of})
        enriched.append(
            EnrichedArticle(
                id=article.id, ingest=article.ingest, clean=article.clean, trace=article.trace, enrich=section
            )
        )
    return enriched

"""A synthetic news corpus of any size, deterministic article by article, and a bulk loader for storage.

For benchmarks at 1k-100k+ stored articles (`python -m tools bench --scale`, the read API's benchmark). Each
article is built from its own seeded RNG, so article n is the same whatever else is generated:

- body: ~`words` words of the fixtures' prose sentences (`tests/fixtures/`, the same pool as `make bench`)
  with ~20 % of the words swapped for words drawn from a Zipf-distributed vocabulary of the pool's words and
  ~30k pseudo-words, so rare terms are rare (full-text search selectivity looks like a real corpus, and every
  article is as distinct to the near-duplicate index as real ones);
- ~`near_duplicate_rate` of the articles are near-copies (3 % of words changed: shingle similarity ~0.8)
  of a recent article, listed in `near_duplicates`, as a wire story republished by other sites;
- entities named in the body (with true offsets) drawn Zipf-wise from ~20k people, ~2k organisations and real
  places with their countries; sources, categories, dates spread over the last year; four trace stamps.

`bulk_load(url, records)` writes through the storage's own `upsert_articles` (the schema, child rows and the
search index exactly as publish writes them) in large batches, two in flight.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import random
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import Any

from services.enrich.category import CATEGORIES
from shared.events import ArticleRecord
from shared.storage import open_storage
from tools.bench.pipeline import DEFAULT_SOURCES, sentence_pool

CORPUS_SEED = 17
WORDS_PER_ARTICLE = 500
NEAR_DUPLICATE_RATE = 0.10
SWAP_RATE = 0.20
NEAR_DUPLICATE_EDIT_RATE = 0.03
NEAR_DUPLICATE_LOOKBACK = 500  # a republished story is a recent one
PSEUDO_WORDS = 30_000
ZIPF_EXPONENT = 1.05
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)  # fixed, so a corpus is the same on every run
SPAN = timedelta(days=365)
STAGES = ("ingest", "clean", "enrich", "publish")

_SYLLABLES = (
    "ba be bi bo bu da de di do du fa fe fi fo ga ge gi go ka ke ki ko la le li lo lu ma me mi mo mu na ne ni no "
    "nu pa pe pi po ra re ri ro ru sa se si so su ta te ti to tu va ve vi vo za ze zi zo bra cre dri fla gro pla "
    "pro sta stri tra tro ven ton lin mar ber gan dor wel sen kar mil"
).split()
_FIRST = (
    "James Mary Robert Patricia John Jennifer Michael Linda David Elizabeth William Barbara Richard Susan Joseph "
    "Jessica Thomas Sarah Charles Karen Daniel Nancy Matthew Lisa Anthony Betty Mark Sandra Paul Ashley Steven "
    "Kimberly Andrew Emily Joshua Donna Kenneth Michelle Kevin Carol Brian Amanda George Melissa Timothy Deborah "
    "Sergei Olga Dmitri Anna Ivan Elena Hans Greta Pierre Claire Luca Giulia Carlos Lucia Kenji Yuki Wei Mei "
    "Arjun Priya Ahmed Fatima Kwame Ama Ji-woo Min-jun Mateo Sofia Lars Ingrid Pavel Zofia Omar Leila Tunde Chiamaka"
).split()
_LAST = (
    "Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez Lopez Gonzalez Wilson "
    "Anderson Thomas Taylor Moore Jackson Martin Lee Perez Thompson White Harris Sanchez Clark Ramirez Lewis "
    "Robinson Walker Young Allen King Wright Scott Torres Nguyen Hill Flores Green Adams Nelson Baker Hall Rivera "
    "Campbell Mitchell Carter Roberts Ivanov Petrova Schmidt Weber Dubois Moreau Rossi Bianchi Fernandez Silva "
    "Tanaka Suzuki Wang Chen Sharma Patel Haddad Khan Mensah Okafor Kim Park Andersson Novak Kowalski Sato Osei"
).split()
_ORG_HEADS = (
    "National Federal Global United Northern Eastern Western Southern Central Royal Atlantic Pacific Metro "
    "Continental Premier Allied Civic Standard First Capital"
).split()
_ORG_TAILS = (
    "Bank Group Council Commission Ministry Agency Association Federation Union University Institute Airlines "
    "Motors Holdings Energy Telecom Foundation Party Court Authority"
).split()
_PLACES = (
    ("Russia", "RU"),
    ("Ukraine", "UA"),
    ("United States", "US"),
    ("China", "CN"),
    ("Germany", "DE"),
    ("France", "FR"),
    ("United Kingdom", "GB"),
    ("Japan", "JP"),
    ("India", "IN"),
    ("Brazil", "BR"),
    ("North Korea", "KP"),
    ("South Korea", "KR"),
    ("Israel", "IL"),
    ("Iran", "IR"),
    ("Turkey", "TR"),
    ("Italy", "IT"),
    ("Spain", "ES"),
    ("Poland", "PL"),
    ("Canada", "CA"),
    ("Australia", "AU"),
    ("Mexico", "MX"),
    ("Nigeria", "NG"),
    ("Egypt", "EG"),
    ("South Africa", "ZA"),
    ("Kenya", "KE"),
    ("Moscow", "RU"),
    ("Kyiv", "UA"),
    ("Washington", "US"),
    ("Beijing", "CN"),
    ("Berlin", "DE"),
    ("Paris", "FR"),
    ("London", "GB"),
    ("Tokyo", "JP"),
    ("New Delhi", "IN"),
    ("Pyongyang", "KP"),
    ("Seoul", "KR"),
    ("Jerusalem", "IL"),
    ("Tehran", "IR"),
    ("Ankara", "TR"),
    ("Rome", "IT"),
)
_SOURCES = tuple(
    (f"{name.lower().replace(' ', '')}.example", name)
    for name in (
        "Daily Ledger",
        "Morning Wire",
        "The Courier",
        "Evening Post",
        "Global Times Review",
        "City Herald",
        "Northern Echo Press",
        "Capital Tribune",
        "Harbour Gazette",
        "Valley Chronicle",
        "Metro Observer",
        "National Dispatch",
        "Coastal Journal",
        "Union Standard",
        "River Sentinel",
        "Highland Mercury",
        "Summit Bulletin",
        "Lakeside Record",
        "Frontier Monitor",
        "Atlas Report",
    )
)


def article_id(tag: str, number: int) -> str:
    """The corpus article's id: 24 hex digits like the pipeline's, spread over the key space as real ids are."""
    return hashlib.blake2b(f"{tag}:{number}".encode(), digest_size=12).hexdigest()


@dataclass(frozen=True)
class SyntheticArticle:
    """One generated article: text, the entities named in it (name, label, [(start, end)]), its source story."""

    number: int
    id: str
    title: str
    body: str
    entities: list[tuple[str, str, list[tuple[int, int]]]]
    near_duplicate_of: str | None
    published_at: datetime
    source: tuple[str, str]
    category: str


class _Zipf:
    """Weighted draws of ranks 0..n-1 with weight 1/(rank+1)^s (random.choices over cumulative weights)."""

    def __init__(self, size: int, exponent: float = ZIPF_EXPONENT) -> None:
        self.ranks = range(size)
        self.cumulative = list(itertools.accumulate(1.0 / (rank + 1) ** exponent for rank in self.ranks))

    def draw(self, rng: random.Random, k: int) -> list[int]:
        return rng.choices(self.ranks, cum_weights=self.cumulative, k=k)


class SyntheticCorpus:
    """Article n of a corpus, for any n; the pools are built once (about a second)."""

    def __init__(
        self,
        *,
        seed: int = CORPUS_SEED,
        tag: str = "scale",
        words: int = WORDS_PER_ARTICLE,
        near_duplicate_rate: float = NEAR_DUPLICATE_RATE,
        sources: Path = DEFAULT_SOURCES,
    ) -> None:
        self.seed, self.tag, self.words, self.near_duplicate_rate = seed, tag, words, near_duplicate_rate
        self.sentences = [sentence.split(" ") for sentence in sentence_pool(sources)]
        pool_words = sorted({w for s in self.sentences for w in s if w.isalpha() and w.islower() and len(w) > 3})
        rng = random.Random(f"{seed}:vocabulary")
        pseudo = {"".join(rng.choices(_SYLLABLES, k=rng.randint(2, 4))) for _ in range(PSEUDO_WORDS)}
        # Real words first (the most frequent ranks), then pseudo-words: the Zipf tail.
        self.vocabulary = pool_words + sorted(pseudo - set(pool_words))
        self._word_ranks = _Zipf(len(self.vocabulary))
        people = [f"{first} {last}" for first in _FIRST for last in _LAST]
        random.Random(f"{seed}:people").shuffle(people)
        orgs = [
            f"{head} {word.capitalize()} {tail}"
            for head in _ORG_HEADS
            for tail in _ORG_TAILS
            for word in pool_words[:5]
        ]
        random.Random(f"{seed}:orgs").shuffle(orgs)
        self.entity_pool: list[tuple[str, str]] = (
            [(name, "GPE") for name, _ in _PLACES]
            + [(name, "PERSON") for name in people]
            + [(name, "ORG") for name in orgs]
        )
        random.Random(f"{seed}:entities").shuffle(self.entity_pool)
        self._entity_ranks = _Zipf(len(self.entity_pool))
        self._source_ranks = _Zipf(len(_SOURCES), 1.0)

    @cached_property
    def place_countries(self) -> dict[str, str]:
        """Place name -> ISO country code of the places entities are drawn from."""
        return dict(_PLACES)

    def _rng(self, number: int) -> random.Random:
        return random.Random(f"{self.seed}:{self.tag}:{number}")

    def article(self, number: int) -> SyntheticArticle:
        """Article `number` of this corpus."""
        rng = self._rng(number)
        original = self._original_of(number, rng)
        if original is None:
            return self._article(number, rng, self._story(rng), near_duplicate_of=None)
        # The original story's text with a few words edited; this article's own id, date and source.
        while (earlier := self._original_of(original, source := self._rng(original))) is not None:
            original = earlier  # a copy of a copy lists the story it was copied from first
        story = self._story(source, edits=rng)
        return self._article(number, rng, story, near_duplicate_of=article_id(self.tag, original))

    def original_of(self, number: int) -> int | None:
        """The article `number` is a near-copy of (the first story of a chain of copies), or None."""
        original = self._original_of(number, self._rng(number))
        while original is not None and (earlier := self._original_of(original, self._rng(original))) is not None:
            original = earlier
        return original

    def copy_body(self, number: int, variant: int) -> str:
        """Another near-copy of article `number`'s story (as a republished wire story reads): its own edits."""
        root = self.original_of(number)
        source = self._rng(number if root is None else root)
        self._original_of(number if root is None else root, source)  # the coin, as `article` draws it first
        return self._story(source, edits=random.Random(f"{self.seed}:{self.tag}:{number}:copy:{variant}"))[1]

    def _original_of(self, number: int, rng: random.Random) -> int | None:
        """The article `number` copies (drawn first from its RNG), or None for an original story."""
        coin, back = rng.random(), rng.randint(1, NEAR_DUPLICATE_LOOKBACK)
        return number - min(back, number) if number > 0 and coin < self.near_duplicate_rate else None

    def _story(self, rng: random.Random, edits: random.Random | None = None) -> tuple[str, str, list[Any]]:
        """(title, body, entities) from `rng`; `edits` changes ~3 % of the words without moving `rng`'s draws."""
        sentences: list[list[str]] = []
        total = 0
        while total < self.words:
            sentence = list(rng.choice(self.sentences))
            swaps = max(1, round(len(sentence) * SWAP_RATE))
            positions = rng.sample(range(1, len(sentence)), min(swaps, len(sentence) - 1))
            for position, rank in zip(positions, self._word_ranks.draw(rng, len(positions)), strict=True):
                word = sentence[position]
                sentence[position] = self.vocabulary[rank] + word[len(word.rstrip('.,;:!?”"’)')) :]
            sentences.append(sentence)
            total += len(sentence)
        if edits is not None:
            for sentence in sentences:
                for position in range(1, len(sentence)):
                    if edits.random() < NEAR_DUPLICATE_EDIT_RATE:
                        sentence[position] = self.vocabulary[self._word_ranks.draw(edits, 1)[0]]
        drawn = self._entity_ranks.draw(rng, rng.randint(6, 18))
        names = list(dict.fromkeys(self.entity_pool[rank] for rank in drawn))
        title_words = [w.strip('.,;:!?“”"‘’()') for w in sentences[0][: rng.randint(6, 10)]]
        title = f"{names[0][0]}: {' '.join(title_words)}"
        mentions: dict[tuple[str, str], list[tuple[int, int]]] = {name: [] for name in names}
        paragraphs: list[str] = []
        offset = 0
        for start in range(0, len(sentences), 3):
            parts: list[str] = []
            for sentence in sentences[start : start + 3]:
                text = " ".join(sentence)
                if rng.random() < 0.5:  # about every other sentence names someone or something
                    name, label = names[rng.randrange(len(names))]
                    position = offset + sum(len(p) + 1 for p in parts)
                    mentions[(name, label)].append((position, position + len(name)))
                    text = f"{name} said {text[0].lower()}{text[1:]}"
                parts.append(text)
            paragraph = " ".join(parts)
            paragraphs.append(paragraph)
            offset += len(paragraph) + 2
        entities = [(name, label, spans) for (name, label), spans in mentions.items() if spans]
        return title, "\n\n".join(paragraphs), entities

    def _article(
        self, number: int, rng: random.Random, story: tuple[str, str, list[Any]], near_duplicate_of: str | None
    ) -> SyntheticArticle:
        title, body, entities = story
        return SyntheticArticle(
            number=number,
            id=article_id(self.tag, number),
            title=title,
            body=body,
            entities=entities,
            near_duplicate_of=near_duplicate_of,
            published_at=EPOCH + SPAN * (number % 100_003) / 100_003,
            source=_SOURCES[self._source_ranks.draw(rng, 1)[0]],
            category=CATEGORIES[rng.randrange(len(CATEGORIES))],
        )

    def raw(self, number: int) -> dict[str, Any]:
        """Article `number` as a raw input (what `newsflow push` sends): its title line, then the body."""
        article = self.article(number)
        return {
            "id": f"{self.tag}-{number}",
            "url": f"https://{article.source[0]}/{self.tag}/{number}",
            "source": article.source[1],
            "text": f"{article.title}\n\n{article.body}\n",
        }

    def record(self, number: int) -> ArticleRecord:
        """Article `number` as publish stores it (the shape of real enrich output)."""
        return _record(self, self.article(number))

    def records(self, start: int, count: int) -> Iterator[ArticleRecord]:
        """Records `start` .. `start + count - 1`."""
        return (self.record(number) for number in range(start, start + count))


def _record(corpus: SyntheticCorpus, article: SyntheticArticle) -> ArticleRecord:
    rng = random.Random(article.number)
    body_words = article.body.split()
    places = [
        {"name": name, "country_code": corpus.place_countries[name], "country": name, "mentions": len(spans)}
        for name, label, spans in article.entities
        if label == "GPE"
    ]
    received = article.published_at + timedelta(minutes=rng.randint(1, 90))
    stamps = []
    moment = received
    for stage in STAGES:
        duration = rng.uniform(0.1, 60.0)
        stamps.append(
            {
                "stage": stage,
                "version": "bench",
                "worker": f"{stage}-bench",
                "started_at": moment,
                "finished_at": moment + timedelta(milliseconds=duration),
                "duration_ms": round(duration, 3),
            }
        )
        moment += timedelta(milliseconds=duration + 2)
    return ArticleRecord.model_validate(
        {
            "id": article.id,
            "external_id": f"{corpus.tag}-{article.number}",
            "url": f"https://{article.source[0]}/{corpus.tag}/{article.number}",
            "origin": "bench",
            "title": article.title,
            "body": article.body,
            "authors": [corpus.entity_pool[rng.randrange(len(corpus.entity_pool))][0]],
            "source_domain": article.source[0],
            "source_name": article.source[1],
            "published_at": article.published_at,
            "language": "en",
            "word_count": len(body_words),
            "reading_time_s": len(body_words) * 60 // 230,
            "summary": article.body.split("\n\n", 1)[0][:400],
            "keywords": list(dict.fromkeys(w.strip('.,;:!?“”"‘’()').lower() for w in rng.sample(body_words, 12)))[:8],
            "sentiment": round(rng.uniform(-1, 1), 3),
            "sentiment_label": rng.choice(("negative", "neutral", "positive")),
            "category": article.category,
            "category_score": round(rng.uniform(0.3, 1.0), 3),
            "entities": [
                {
                    "name": name,
                    "label": label,
                    "mentions": [{"text": name, "start": s, "end": e, "field": "body"} for s, e in spans],
                }
                for name, label, spans in article.entities
            ],
            "places": places,
            "countries": list(dict.fromkeys(p["country_code"] for p in places)),
            "near_duplicates": (
                [{"id": article.near_duplicate_of, "similarity": round(rng.uniform(0.72, 0.9), 3)}]
                if article.near_duplicate_of
                else []
            ),
            "duplicate_of": None,
            "content_hash": hashlib.sha256(article.body.encode()).hexdigest(),
            "received_at": received,
            "trace": stamps,
        }
    )


async def bulk_load(
    url: str,
    records: Iterable[ArticleRecord],
    *,
    batch_size: int = 500,
    connections: int = 2,
    progress: Callable[[int, float], None] | None = None,
) -> int:
    """Upsert `records` into the storage at `url` (migrated first); returns how many were written.

    Batches go through `upsert_articles`, so rows, child rows and the search index are exactly publish's.
    `connections` batches are in flight at once: PostgreSQL runs them side by side (its tsvector and GIN work
    is most of the cost); SQLite's one writer thread queues them while the next batch is generated.
    `progress(written, seconds)` after each batch.
    """
    storage = open_storage(url)
    parallel = max(1, connections)
    written = 0
    started = time.perf_counter()
    try:
        await storage.migrate()
        pending: set[asyncio.Task[Any]] = set()
        iterator = iter(records)
        while batch := list(itertools.islice(iterator, batch_size)):
            if len(pending) >= parallel:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    written += len(task.result())
                    if progress:
                        progress(written, time.perf_counter() - started)
            pending.add(asyncio.ensure_future(storage.upsert_articles(batch)))
        for result in await asyncio.gather(*pending):
            written += len(result)
        if progress:
            progress(written, time.perf_counter() - started)
    finally:
        await storage.close()
    return written

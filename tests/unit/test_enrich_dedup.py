"""Near-duplicate logic without Redis: shingles, MinHash similarity, LSH banding, the in-memory index."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from datasketch import MinHash

from services.enrich.dedup import SEED, InMemoryNearDuplicateIndex, Signer, optimal_bands, shingles, similarity

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"

STORY = (
    "The city council approved a new budget for schools and roads on Monday after a long debate. Teachers "
    "welcomed the extra money, which will pay for new classrooms and books. Road repairs will start in spring "
    "and last until the end of the year, officials said, adding that the plan had support from both parties "
    "and would be reviewed again next autumn when the first results are known."
)
EDITED = STORY.replace("Monday", "Tuesday").replace("books", "laptops")
OTHER = (
    "Harlow Town reached the semifinal of the county cup on Saturday after a 3-1 win over Ridgeway Rovers in "
    "front of a crowd of 4,000. Striker Tomas Bell scored twice in the first half and the goalkeeper saved a "
    "penalty before the break, and the coach praised his players after the match."
)


def test_shingles_are_lowercase_word_trigrams() -> None:
    assert shingles("One two, THREE four") == {b"one two three", b"two three four"}
    assert shingles("Hello world") == {b"hello world"}
    assert shingles("  ... ") == set()


def test_similarity_estimates_jaccard() -> None:
    signer = Signer()
    story, edited, other = signer.sign(STORY), signer.sign(EDITED), signer.sign(OTHER)
    assert story is not None and edited is not None and other is not None
    assert similarity(story, story) == 1.0
    true_jaccard = len(shingles(STORY) & shingles(EDITED)) / len(shingles(STORY) | shingles(EDITED))
    assert abs(similarity(story, edited) - true_jaccard) < 0.15
    assert similarity(story, other) < 0.2


def test_optimal_bands_fit_the_signature() -> None:
    bands, rows = optimal_bands(0.7, 128)
    assert bands * rows <= 128 and bands > 1 and rows > 1
    _, strict_rows = optimal_bands(0.9, 128)
    assert strict_rows >= rows  # a higher threshold needs longer (stricter) bands


async def test_in_memory_index_lists_earlier_near_duplicates_and_exact_copies() -> None:
    index = InMemoryNearDuplicateIndex()
    assert await index.check_and_add("a", STORY, "hash-a") == ([], None)
    near, duplicate_of = await index.check_and_add("b", EDITED, "hash-b")
    assert [n.id for n in near] == ["a"] and near[0].similarity >= 0.7 and duplicate_of is None
    assert await index.check_and_add("c", OTHER, "hash-c") == ([], None)
    near, duplicate_of = await index.check_and_add("d", STORY, "hash-a")
    assert duplicate_of == "a"
    assert [n.id for n in near][:1] == ["a"] and near[0].similarity == 1.0


async def test_in_memory_index_is_idempotent_per_article() -> None:
    index = InMemoryNearDuplicateIndex()
    await index.check_and_add("a", STORY, "hash-a")
    await index.check_and_add("b", EDITED, "hash-b")
    # Re-processing "a" must not list itself, nor "b" (which came later), nor flag itself as a copy.
    assert await index.check_and_add("a", STORY, "hash-a") == ([], None)
    near, _ = await index.check_and_add("b", EDITED, "hash-b")
    assert [n.id for n in near] == ["a"]


def test_signatures_are_datasketchs_minhash_value_for_value() -> None:
    """The index in Redis holds signatures made by datasketch's MinHash: the signer's must equal them."""
    texts = [STORY, EDITED, OTHER, "a", "one two", "Über die Straße: 日本語のテキスト, ein Test."]
    texts += [item["body"] for item in json.loads((FIXTURES / "enrich" / "categories.json").read_text("utf-8"))]
    for num_perm in (128, 64):
        signer = Signer(num_perm)
        for text in texts:
            reference = MinHash(num_perm=num_perm, seed=SEED)
            reference.update_batch(list(shingles(text)))
            ours = signer.sign(text)
            assert ours is not None and ours.dtype == reference.hashvalues.dtype
            assert np.array_equal(ours, reference.hashvalues), text[:60]


def test_the_enrich_service_imports_no_library_it_does_not_use() -> None:
    """scipy (through datasketch), networkx (through yake): ~56 MB of every replica's memory, for nothing used."""
    code = (
        "import sys, services.enrich.main; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'scipy', 'datasketch', 'yake', 'networkx'}))"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split("\n")[-2] == "[]"

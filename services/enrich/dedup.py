"""Near-duplicate detection across the corpus: MinHash (datasketch) of body shingles, LSH bands in Redis.

The index lives in Redis so every enrich replica sees the same corpus and it survives restarts. Keys
(all under `names(settings).key("dedup", ...)`):

- `dedup:band:<i>:<bucket>`  set of article ids whose band `i` hashes to `bucket`
- `dedup:sig`                hash article id -> MinHash signature (hex), to estimate similarity of candidates
- `dedup:order`              hash article id -> insertion sequence number ("earlier" means a lower number)
- `dedup:seq`                counter behind `dedup:order`
- `dedup:content`            hash content hash -> id of the first article with that exact content

One Lua script does the lookup and the insert atomically, so two replicas enriching two copies of the same
story at the same moment still see each other (whichever runs second lists the first), and re-processing an
article (at-least-once delivery) neither lists itself nor inserts it twice.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from datasketch import MinHash
from redis.asyncio import Redis

from shared.events import NearDuplicate
from shared.settings import Settings
from shared.streams import names

DEFAULT_THRESHOLD = 0.7
DEFAULT_NUM_PERM = 128
SHINGLE_WORDS = 3
MAX_NEAR_DUPLICATES = 20
SEED = 1  # the same seed in every replica, or signatures would not be comparable
WORD = re.compile(r"[^\W_]+", re.UNICODE)

# KEYS: order, seq, content, sig, band keys...   ARGV: article id, content hash, signature hex
CHECK_AND_ADD = """
local id = ARGV[1]
local own = redis.call('HGET', KEYS[1], id)
if not own then
  own = redis.call('INCR', KEYS[2])
  redis.call('HSET', KEYS[1], id, own)
end
own = tonumber(own)
local duplicate_of = false
if ARGV[2] ~= '' then
  redis.call('HSETNX', KEYS[3], ARGV[2], id)
  local first = redis.call('HGET', KEYS[3], ARGV[2])
  if first ~= id then
    local first_order = tonumber(redis.call('HGET', KEYS[1], first) or '0')
    if first_order < own then duplicate_of = first end
  end
end
if ARGV[3] ~= '' then
  redis.call('HSET', KEYS[4], id, ARGV[3])
end
local seen = {}
local result = {duplicate_of or ''}
for i = 5, #KEYS do
  for _, other in ipairs(redis.call('SMEMBERS', KEYS[i])) do
    if other ~= id and not seen[other] then
      seen[other] = true
      local order = tonumber(redis.call('HGET', KEYS[1], other) or '0')
      if order < own then
        local signature = redis.call('HGET', KEYS[4], other)
        if signature then
          table.insert(result, other)
          table.insert(result, signature)
        end
      end
    end
  end
  redis.call('SADD', KEYS[i], id)
end
return result
"""


def optimal_bands(threshold: float, num_perm: int) -> tuple[int, int]:
    """(bands, rows) minimising the false-positive + false-negative areas of the LSH S-curve at `threshold`."""

    def probability(s: float, bands: int, rows: int) -> float:
        return float(1 - (1 - s**rows) ** bands)

    def area(low: float, high: float, bands: int, rows: int, positive: bool) -> float:
        steps = 200
        width = (high - low) / steps
        total = 0.0
        for step in range(steps):
            p = probability(low + (step + 0.5) * width, bands, rows)
            total += (p if positive else 1 - p) * width
        return total

    best = (1, num_perm)
    best_error = float("inf")
    for bands in range(1, num_perm + 1):
        for rows in range(1, num_perm // bands + 1):
            error = area(0.0, threshold, bands, rows, True) + area(threshold, 1.0, bands, rows, False)
            if error < best_error:
                best, best_error = (bands, rows), error
    return best


def shingles(body: str, size: int = SHINGLE_WORDS) -> set[bytes]:
    """Word `size`-grams of the lower-cased body (the whole text when it has fewer words)."""
    words = [w.lower() for w in WORD.findall(body)]
    if not words:
        return set()
    if len(words) < size:
        return {" ".join(words).encode()}
    return {" ".join(words[i : i + size]).encode() for i in range(len(words) - size + 1)}


@dataclass(frozen=True)
class Signer:
    """MinHash signatures with fixed permutations (built once; the same in every process)."""

    num_perm: int = DEFAULT_NUM_PERM

    def __post_init__(self) -> None:
        prototype = MinHash(num_perm=self.num_perm, seed=SEED)
        # Reusing the permutations saves regenerating them per article; the scheme must be passed with them.
        object.__setattr__(self, "_permutations", prototype.permutations)
        object.__setattr__(self, "_scheme", prototype.scheme)

    def sign(self, body: str) -> np.ndarray[Any, Any] | None:
        """The body's MinHash hash values, or None when it has no words."""
        grams = shingles(body)
        if not grams:
            return None
        minhash = MinHash(
            num_perm=self.num_perm,
            seed=SEED,
            permutations=self._permutations,  # type: ignore[attr-defined]
            scheme=self._scheme,  # type: ignore[attr-defined]
        )
        minhash.update_batch(list(grams))
        values: np.ndarray[Any, Any] = np.asarray(minhash.hashvalues)
        return values


def similarity(a: np.ndarray[Any, Any], b: np.ndarray[Any, Any]) -> float:
    """Estimated Jaccard similarity of two MinHash signatures."""
    return float(np.count_nonzero(a == b)) / len(a)


def band_buckets(signature: np.ndarray[Any, Any], bands: int, rows: int) -> list[str]:
    """One bucket id per band: a short digest of that band's hash values."""
    return [
        hashlib.blake2b(signature[i * rows : (i + 1) * rows].astype(np.uint32).tobytes(), digest_size=8).hexdigest()
        for i in range(bands)
    ]


def _encode(signature: np.ndarray[Any, Any]) -> str:
    # datasketch's default (affine32) scheme keeps hash values below 2**32, so 4 bytes each suffice.
    return signature.astype("<u4").tobytes().hex()


def _decode(value: str | bytes) -> np.ndarray[Any, Any]:
    text = value.decode() if isinstance(value, bytes) else value
    return np.frombuffer(bytes.fromhex(text), dtype="<u4")


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


class NearDuplicateIndex:
    """The shared corpus index in Redis (async, `redis.asyncio`)."""

    def __init__(
        self,
        redis: Redis,
        settings: Settings,
        *,
        threshold: float = DEFAULT_THRESHOLD,
        num_perm: int = DEFAULT_NUM_PERM,
    ) -> None:
        self.redis = redis
        self.threshold = threshold
        self.signer = Signer(num_perm)
        self.bands, self.rows = optimal_bands(threshold, num_perm)
        self._names = names(settings)
        self._script = redis.register_script(CHECK_AND_ADD)

    def key(self, *parts: str) -> str:
        """A key of this index (the namespace tests clean up)."""
        return self._names.key("dedup", *parts)

    async def check_and_add(
        self, article_id: str, body: str, content_hash: str
    ) -> tuple[list[NearDuplicate], str | None]:
        """(earlier articles at least `threshold` similar, earlier article with the same content hash)."""
        signature = self.signer.sign(body)
        buckets = band_buckets(signature, self.bands, self.rows) if signature is not None else []
        band_keys = [self.key("band", str(i), bucket) for i, bucket in enumerate(buckets)]
        reply: Sequence[str | bytes] = await self._script(
            keys=[self.key("order"), self.key("seq"), self.key("content"), self.key("sig"), *band_keys],
            args=[article_id, content_hash, _encode(signature) if signature is not None else ""],
        )
        duplicate_of = _text(reply[0]) or None
        near: list[NearDuplicate] = []
        if signature is not None:
            for index in range(1, len(reply) - 1, 2):
                score = similarity(signature, _decode(reply[index + 1]))
                if score >= self.threshold:
                    near.append(NearDuplicate(id=_text(reply[index]), similarity=round(score, 3)))
        return _ranked(near), duplicate_of


class InMemoryNearDuplicateIndex:
    """The same index in process memory, for `newsflow process` (no Redis)."""

    def __init__(self, *, threshold: float = DEFAULT_THRESHOLD, num_perm: int = DEFAULT_NUM_PERM) -> None:
        self.threshold = threshold
        self.signer = Signer(num_perm)
        self.bands, self.rows = optimal_bands(threshold, num_perm)
        self._order: dict[str, int] = {}
        self._signatures: dict[str, np.ndarray[Any, Any]] = {}
        self._buckets: dict[tuple[int, str], set[str]] = {}
        self._content: dict[str, str] = {}

    async def check_and_add(
        self, article_id: str, body: str, content_hash: str
    ) -> tuple[list[NearDuplicate], str | None]:
        """(earlier articles at least `threshold` similar, earlier article with the same content hash)."""
        own = self._order.setdefault(article_id, len(self._order) + 1)
        duplicate_of: str | None = None
        if content_hash:
            first = self._content.setdefault(content_hash, article_id)
            if first != article_id and self._order[first] < own:
                duplicate_of = first
        signature = self.signer.sign(body)
        if signature is None:
            return [], duplicate_of
        self._signatures[article_id] = signature
        candidates: set[str] = set()
        for band, bucket in enumerate(band_buckets(signature, self.bands, self.rows)):
            members = self._buckets.setdefault((band, bucket), set())
            candidates |= members
            members.add(article_id)
        near = [
            NearDuplicate(id=other, similarity=round(score, 3))
            for other in candidates
            if other != article_id
            and self._order[other] < own
            and (score := similarity(signature, self._signatures[other])) >= self.threshold
        ]
        return _ranked(near), duplicate_of


def _ranked(near: list[NearDuplicate]) -> list[NearDuplicate]:
    return sorted(near, key=lambda n: (-n.similarity, n.id))[:MAX_NEAR_DUPLICATES]

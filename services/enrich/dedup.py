"""Near-duplicate detection across the corpus: MinHash of body shingles, LSH bands in Redis.

The index lives in Redis so every enrich replica sees the same corpus and it survives restarts. Its cost per
article and its memory are bounded whatever the corpus size:

- each band bucket keeps only its `BUCKET_CAP` newest articles, so a story copied 5,000 times costs what one
  copied 50 times does (the 20 most similar earlier copies are listed either way);
- a horizon (`NEWSFLOW_DEDUP_HORIZON_DAYS`, `NEWSFLOW_DEDUP_HORIZON_ARTICLES`) evicts the oldest articles, a
  few per article added, so memory is bounded by the horizon, not the corpus. The trade-off: an article
  republished after it left the horizon is not flagged.

Keys (all under `names(settings).key("dedup", ...)`):

- `dedup:clock`          the last sequence number given (milliseconds of Redis time, strictly increasing)
- `dedup:seen`           sorted set article id -> its sequence number ("earlier" means lower)
- `dedup:docs`           hash sequence number -> signature, article id and content hash (packed bytes)
- `dedup:bands:<i>`      hash bucket digest of band i -> the newest sequence numbers in it (13 digits each)
- `dedup:content`        hash content hash -> id of the first article with that exact content

Adding an article is one short Lua script (constant work: a few commands per band), run before its lookup,
so two replicas enriching two copies of the same story at the same moment still see each other: whichever got
the higher sequence number reads the other. Lookups and evictions are plain pipelined reads and short
per-article scripts; no script's work grows with the corpus or a bucket's history. Re-processing an article
(at-least-once delivery) keeps its sequence number, lists nothing later and inserts nothing twice.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import struct
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
from redis.asyncio import Redis
from redis.client import NEVER_DECODE

from shared.events import NearDuplicate
from shared.settings import Settings
from shared.streams import names

DEFAULT_THRESHOLD = 0.7
DEFAULT_NUM_PERM = 128
SHINGLE_WORDS = 3
MAX_NEAR_DUPLICATES = 20
# Newest articles kept per band bucket: well above MAX_NEAR_DUPLICATES, so the best earlier copies are found.
BUCKET_CAP = 50
# Candidates whose signatures are fetched per article: the ones sharing the most bands with it (a band is shared
# with probability similarity**rows, so the most similar share the most), newest first among equals.
MAX_CANDIDATES = 64
# Evictions per article added: more than one, so an index above its horizon shrinks back to it.
EVICTIONS_PER_ARTICLE = 2
SEED = 1  # the same seed in every replica, or signatures would not be comparable
SEQ_DIGITS = 13  # milliseconds since 1970 until the year 2286
WORD = re.compile(r"[^\W_]+", re.UNICODE)
DAY_MS = 86_400_000

# KEYS: clock, seen, docs, content, band hashes...
# ARGV: id, content hash, packed doc, bucket cap, sequence number ('' = next), horizon ms (0 = none),
#       band buckets (one per band key)...
ADD = """
local id, cap, width = ARGV[1], tonumber(ARGV[4]), 13
local own = redis.call('ZSCORE', KEYS[2], id)
local fresh = not own
if fresh then
  if ARGV[5] ~= '' then
    own = tonumber(ARGV[5])
  else
    local now = redis.call('TIME')
    local last = tonumber(redis.call('GET', KEYS[1]) or '0')
    own = math.max(tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000), last + 1)
    redis.call('SET', KEYS[1], string.format('%d', own))
  end
  redis.call('ZADD', KEYS[2], own, id)
else
  own = tonumber(own)
end
local seq = string.format('%013d', own)
local duplicate_of = ''
if ARGV[2] ~= '' then
  local first = redis.call('HGET', KEYS[4], ARGV[2])
  local first_seq = first and first ~= id and redis.call('ZSCORE', KEYS[2], first)
  local horizon = tonumber(ARGV[6])
  if first_seq and horizon > 0 and own - tonumber(first_seq) > horizon then
    first_seq = false  -- beyond the horizon: as if evicted already
  end
  if first_seq and tonumber(first_seq) < own then
    duplicate_of = first
  elseif not first or (first ~= id and not first_seq) then
    redis.call('HSET', KEYS[4], ARGV[2], id)  -- the first, or the first copy left the index
  end
end
if redis.call('HGET', KEYS[3], seq) ~= ARGV[3] then
  redis.call('HSET', KEYS[3], seq, ARGV[3])
  for i = 5, #KEYS do
    local bucket = ARGV[i + 2]
    local members = redis.call('HGET', KEYS[i], bucket) or ''
    local present = false
    if not fresh then
      for at = 1, #members, width do
        if string.sub(members, at, at + width - 1) == seq then present = true; break end
      end
    end
    if not present then
      members = members .. seq
      if #members > cap * width then members = string.sub(members, #members - cap * width + 1) end
      redis.call('HSET', KEYS[i], bucket, members)
    end
  end
end
return {seq, duplicate_of}
"""

# KEYS: seen, docs, content, band hashes...   ARGV: id, sequence number, content hash, band buckets...
EVICT = """
local id, seq, width = ARGV[1], ARGV[2], 13
redis.call('ZREM', KEYS[1], id)
redis.call('HDEL', KEYS[2], seq)
if ARGV[3] ~= '' and redis.call('HGET', KEYS[3], ARGV[3]) == id then redis.call('HDEL', KEYS[3], ARGV[3]) end
for i = 4, #KEYS do
  local bucket = ARGV[i]
  local members = redis.call('HGET', KEYS[i], bucket)
  if members then
    local kept = {}
    for at = 1, #members, width do
      local member = string.sub(members, at, at + width - 1)
      if member ~= seq then kept[#kept + 1] = member end
    end
    if #kept == 0 then
      redis.call('HDEL', KEYS[i], bucket)
    else
      redis.call('HSET', KEYS[i], bucket, table.concat(kept))
    end
  end
end
return 1
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


def _fmix32(values: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """MurmurHash3's 32-bit finalizer (a bijection that spreads the input hash's bits), wrapping as uint32."""
    values = values ^ (values >> np.uint32(16))
    values = values * np.uint32(0x85EBCA6B)
    values = values ^ (values >> np.uint32(13))
    values = values * np.uint32(0xC2B2AE35)
    mixed: np.ndarray[Any, Any] = values ^ (values >> np.uint32(16))
    return mixed


@dataclass(frozen=True)
class Signer:
    """MinHash signatures with fixed permutations (built once; the same in every process).

    The signature is datasketch's `MinHash(num_perm, seed=1)` ("affine32" scheme), value for value, so the
    signatures already in an index stay comparable: per shingle the first 4 bytes of its SHA-1 (little-endian),
    MurmurHash3's finalizer, then a * h + b modulo 2**32 for each of the `num_perm` (a odd, b) pairs drawn from
    numpy's RandomState(seed), and the minimum over the shingles. It is computed here rather than by datasketch,
    whose import brings scipy (~44 MB of every enrich replica's memory) for this one formula;
    `tests/unit/test_enrich_dedup.py` checks it against datasketch.
    """

    num_perm: int = DEFAULT_NUM_PERM

    def __post_init__(self) -> None:
        draws = np.random.RandomState(SEED)
        a = draws.randint(0, 1 << 31, self.num_perm, dtype=np.uint32) * np.uint32(2) + np.uint32(1)
        b = draws.randint(0, 1 << 32, self.num_perm, dtype=np.uint32)
        object.__setattr__(self, "_a", a)
        object.__setattr__(self, "_b", b)

    def sign(self, body: str) -> np.ndarray[Any, Any] | None:
        """The body's MinHash hash values (uint32), or None when it has no words."""
        grams = shingles(body)
        if not grams:
            return None
        digests = b"".join(hashlib.sha1(gram).digest()[:4] for gram in grams)
        hashes = _fmix32(np.frombuffer(digests, dtype="<u4").astype(np.uint32)).reshape(-1, 1)
        permuted = hashes * self._a + self._b  # type: ignore[attr-defined]
        values: np.ndarray[Any, Any] = permuted.min(axis=0)
        return values

    def sign_many(self, bodies: Sequence[str]) -> list[np.ndarray[Any, Any] | None]:
        """`sign` of each body (one call, for a worker thread)."""
        return [self.sign(body) for body in bodies]


def similarity(a: np.ndarray[Any, Any], b: np.ndarray[Any, Any]) -> float:
    """Estimated Jaccard similarity of two MinHash signatures."""
    return float(np.count_nonzero(a == b)) / len(a)


def band_digests(signature: np.ndarray[Any, Any], bands: int, rows: int) -> list[bytes]:
    """One bucket id per band: an 8-byte digest of that band's hash values."""
    values = signature.astype(np.uint32)
    return [hashlib.blake2b(values[i * rows : (i + 1) * rows].tobytes(), digest_size=8).digest() for i in range(bands)]


def band_buckets(signature: np.ndarray[Any, Any], bands: int, rows: int) -> list[str]:
    """`band_digests` in hex (the in-memory index's keys)."""
    return [digest.hex() for digest in band_digests(signature, bands, rows)]


def pack_doc(signature: np.ndarray[Any, Any] | None, article_id: str, content_hash: str) -> bytes:
    """The `dedup:docs` value: length-prefixed signature (4 bytes a value) and id, then the content hash."""
    # Hash values are below 2**32 (the affine32 scheme of `Signer`), so 4 bytes each suffice.
    raw = signature.astype("<u4").tobytes() if signature is not None else b""
    ident = article_id.encode()
    return struct.pack("<H", len(raw)) + raw + struct.pack("<H", len(ident)) + ident + content_hash.encode()


def unpack_doc(value: bytes) -> tuple[np.ndarray[Any, Any] | None, str, str]:
    """(signature or None, article id, content hash) of a `dedup:docs` value."""
    (size,) = struct.unpack_from("<H", value)
    signature = np.frombuffer(value, dtype="<u4", count=size // 4, offset=2) if size else None
    at = 2 + size
    (ident_size,) = struct.unpack_from("<H", value, at)
    at += 2
    return signature, value[at : at + ident_size].decode(), value[at + ident_size :].decode()


def _sequences(members: bytes | None) -> list[int]:
    if not members:
        return []
    return [int(members[at : at + SEQ_DIGITS]) for at in range(0, len(members), SEQ_DIGITS)]


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


@dataclass(frozen=True, slots=True)
class _Added:
    seq: int
    duplicate_of: str | None
    signature: np.ndarray[Any, Any] | None
    buckets: list[bytes]


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
        self.horizon_ms = int(settings.dedup_horizon_days * DAY_MS)
        self.horizon_articles = settings.dedup_horizon_articles
        self._names = names(settings)
        self._add = redis.register_script(ADD)
        self._evict = redis.register_script(EVICT)
        self.band_keys = [self.key("bands", str(band)) for band in range(self.bands)]

    def key(self, *parts: str) -> str:
        """A key of this index (the namespace tests clean up)."""
        return self._names.key("dedup", *parts)

    async def check_and_add(
        self, article_id: str, body: str, content_hash: str
    ) -> tuple[list[NearDuplicate], str | None]:
        """(earlier articles at least `threshold` similar, earlier article with the same content hash)."""
        (result,) = await self.check_and_add_many([(article_id, body, content_hash)])
        return result

    async def check_and_add_many(
        self, articles: Sequence[tuple[str, str, str]]
    ) -> list[tuple[list[NearDuplicate], str | None]]:
        """`check_and_add` for a batch of (id, body, content hash), in order: later ones see earlier ones."""
        if not articles:
            return []
        signatures = await asyncio.to_thread(self.signer.sign_many, [body for _, body, _ in articles])
        added = await self._add_all(articles, signatures)
        results = await self._lookup(added)
        await self.evict(limit=EVICTIONS_PER_ARTICLE * len(articles), now_ms=max(a.seq for a in added))
        return results

    async def _add_all(
        self, articles: Sequence[tuple[str, str, str]], signatures: Sequence[np.ndarray[Any, Any] | None]
    ) -> list[_Added]:
        """Index every article (one short script each, pipelined, in order): its sequence number and exact copy."""
        buckets = [band_digests(s, self.bands, self.rows) if s is not None else [] for s in signatures]
        fixed = [self.key("clock"), self.key("seen"), self.key("docs"), self.key("content")]
        async with self.redis.pipeline(transaction=False) as pipe:
            for (article_id, _, content_hash), signature, digests in zip(articles, signatures, buckets, strict=True):
                await self._add(
                    keys=[*fixed, *self.band_keys[: len(digests)]],
                    args=[
                        article_id,
                        content_hash,
                        pack_doc(signature, article_id, content_hash),
                        BUCKET_CAP,
                        "",
                        self.horizon_ms,
                        *digests,
                    ],
                    client=pipe,
                )
            replies = await pipe.execute()
        return [
            _Added(int(_text(seq)), _text(duplicate_of) or None, signature, digests)
            for (seq, duplicate_of), signature, digests in zip(replies, signatures, buckets, strict=True)
        ]

    async def _lookup(self, added: Sequence[_Added]) -> list[tuple[list[NearDuplicate], str | None]]:
        """Earlier members of each article's buckets (one pipelined read), then their signatures (one HMGET)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for item in added:
                for band, digest in enumerate(item.buckets):
                    pipe.hget(self.band_keys[band], digest)
            replies = iter(await pipe.execute())
        oldest = max(a.seq for a in added) - self.horizon_ms if self.horizon_ms else 0
        candidates: list[list[int]] = []
        for item in added:
            shared: Counter[int] = Counter()
            for _ in item.buckets:
                shared.update({s for s in _sequences(next(replies)) if oldest <= s < item.seq})
            best = sorted(shared.items(), key=lambda pair: (-pair[1], -pair[0]))[:MAX_CANDIDATES]
            candidates.append([seq for seq, _ in best])
        wanted = sorted(set().union(*candidates))
        docs: dict[int, tuple[np.ndarray[Any, Any], str]] = {}
        if wanted:
            values = await self._docs([f"{s:0{SEQ_DIGITS}d}" for s in wanted])
            for seq, value in zip(wanted, values, strict=True):
                if value:  # None: evicted by another replica meanwhile
                    signature, article_id, _ = unpack_doc(value)
                    if signature is not None and len(signature) == self.signer.num_perm:
                        docs[seq] = (signature, article_id)
        results = []
        for item, found in zip(added, candidates, strict=True):
            near: list[NearDuplicate] = []
            seqs = [s for s in found if s in docs]
            if item.signature is not None and seqs:
                matrix = np.stack([docs[s][0] for s in seqs])
                scores = np.count_nonzero(matrix == item.signature, axis=1) / len(item.signature)
                near = [
                    NearDuplicate(id=docs[s][1], similarity=round(float(score), 3))
                    for s, score in zip(seqs, scores, strict=True)
                    if score >= self.threshold
                ]
            results.append((_ranked(near), item.duplicate_of))
        return results

    async def _docs(self, seqs: Sequence[str]) -> list[bytes | None]:
        # Packed bytes: never decoded, whatever the client's decode_responses.
        values: list[bytes | None] = await self.redis.execute_command(  # type: ignore[no-untyped-call]
            "HMGET", self.key("docs"), *seqs, **{NEVER_DECODE: []}
        )
        return values

    async def evict(self, *, limit: int, now_ms: int | None = None) -> int:
        """Remove up to `limit` of the oldest articles beyond the horizon; returns how many left the index."""
        seen = self.key("seen")
        victims: dict[str, int] = {}
        if self.horizon_ms:
            now_ms = now_ms if now_ms is not None else int(time.time() * 1000)
            rows = await self.redis.zrangebyscore(
                seen, "-inf", f"({now_ms - self.horizon_ms}", start=0, num=limit, withscores=True
            )
            victims.update((_text(member), int(score)) for member, score in cast(list[tuple[Any, float]], rows))
        if self.horizon_articles and len(victims) < limit:
            excess = int(await self.redis.zcard(seen)) - self.horizon_articles
            if excess > 0:
                rows = await self.redis.zrange(seen, 0, min(excess, limit) - 1, withscores=True)
                victims.update((_text(member), int(score)) for member, score in cast(list[tuple[Any, float]], rows))
        if not victims:
            return 0
        seqs = [f"{seq:0{SEQ_DIGITS}d}" for seq in victims.values()]
        values = await self._docs(seqs)
        fixed = [seen, self.key("docs"), self.key("content")]
        async with self.redis.pipeline(transaction=False) as pipe:
            for (article_id, _), seq, value in zip(victims.items(), seqs, values, strict=True):
                signature, _, content_hash = unpack_doc(value) if value else (None, article_id, "")
                digests = band_digests(signature, self.bands, self.rows) if signature is not None else []
                await self._evict(
                    keys=[*fixed, *self.band_keys[: len(digests)]],
                    args=[article_id, seq, content_hash, *digests],
                    client=pipe,
                )
            await pipe.execute()
        return len(victims)

    async def load(self, entries: Sequence[tuple[str, np.ndarray[Any, Any] | None, str]], *, first_seq: int) -> None:
        """Index (id, signature, content hash) entries as sequence numbers `first_seq`, `first_seq + 1`, ...

        No lookups: moving an older index over, or bulk-loading one for a benchmark. The numbers must lie below
        Redis's clock in milliseconds (what `check_and_add` gives), or articles indexed later sort before them.
        """
        fixed = [self.key("clock"), self.key("seen"), self.key("docs"), self.key("content")]
        async with self.redis.pipeline(transaction=False) as pipe:
            for offset, (article_id, signature, content_hash) in enumerate(entries):
                digests = band_digests(signature, self.bands, self.rows) if signature is not None else []
                await self._add(
                    keys=[*fixed, *self.band_keys[: len(digests)]],
                    args=[
                        article_id,
                        content_hash,
                        pack_doc(signature, article_id, content_hash),
                        BUCKET_CAP,
                        first_seq + offset,
                        0,
                        *digests,
                    ],
                    client=pipe,
                )
            await pipe.execute()

    async def upgrade(self, chunk: int = 500) -> int:
        """Move an index written by the previous layout (sets per bucket, hex signatures) into this one.

        Its articles keep their order, just before now; its keys are removed. Returns the articles moved.
        One replica does it (a lock key); the others go on meanwhile against the new layout.
        """
        order, signatures = self.key("order"), self.key("sig")
        if not await self.redis.exists(order) or await self.redis.type(order) not in (b"hash", "hash"):
            return 0
        lock = self.key("upgrade")
        if not await self.redis.set(lock, "1", nx=True, px=600_000):
            return 0
        try:
            ranked = sorted(
                [(int(position), _text(article_id)) async for article_id, position in self.redis.hscan_iter(order)]
            )
            hashes = {_text(article_id): _text(h) async for h, article_id in self.redis.hscan_iter(self.key("content"))}
            (now_s, now_us) = await self.redis.time()
            base = now_s * 1000 + now_us // 1000 - len(ranked) - 1
            for start in range(0, len(ranked), chunk):
                part = [article_id for _, article_id in ranked[start : start + chunk]]
                entries = []
                for article_id, value in zip(part, await self.redis.hmget(signatures, part), strict=True):
                    signature = np.frombuffer(bytes.fromhex(_text(value)), dtype="<u4") if value else None
                    if signature is not None and len(signature) != self.signer.num_perm:
                        signature = None
                    entries.append((article_id, signature, hashes.get(article_id, "")))
                await self.load(entries, first_seq=base + start)
            old_buckets = [key async for key in self.redis.scan_iter(match=self.key("band", "*"), count=1000)]
            for start in range(0, len(old_buckets), 1000):
                await self.redis.unlink(*old_buckets[start : start + 1000])
            await self.redis.unlink(order, signatures, self.key("seq"))
            return len(ranked)
        finally:
            await self.redis.delete(lock)


class InMemoryNearDuplicateIndex:
    """The same index in process memory, for `newsflow process` (no Redis; no horizon: one run's input)."""

    def __init__(self, *, threshold: float = DEFAULT_THRESHOLD, num_perm: int = DEFAULT_NUM_PERM) -> None:
        self.threshold = threshold
        self.signer = Signer(num_perm)
        self.bands, self.rows = optimal_bands(threshold, num_perm)
        self._order: dict[str, int] = {}
        self._signatures: dict[str, np.ndarray[Any, Any]] = {}
        self._buckets: dict[tuple[int, str], list[str]] = {}
        self._content: dict[str, str] = {}

    async def check_and_add_many(
        self, articles: Sequence[tuple[str, str, str]]
    ) -> list[tuple[list[NearDuplicate], str | None]]:
        """`check_and_add` for each (id, body, content hash), in order."""
        return [await self.check_and_add(*article) for article in articles]

    async def check_and_add(
        self, article_id: str, body: str, content_hash: str
    ) -> tuple[list[NearDuplicate], str | None]:
        """(earlier articles at least `threshold` similar, earlier article with the same content hash)."""
        fresh = article_id not in self._order
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
        shared: Counter[str] = Counter()
        for band, bucket in enumerate(band_buckets(signature, self.bands, self.rows)):
            members = self._buckets.setdefault((band, bucket), [])
            shared.update({other for other in members if self._order[other] < own})
            if fresh or article_id not in members:
                members.append(article_id)
                del members[:-BUCKET_CAP]  # the newest only, as in Redis
        # The same choice of candidates as in Redis: most bands shared, then newest.
        candidates = sorted(shared.items(), key=lambda pair: (-pair[1], -self._order[pair[0]]))[:MAX_CANDIDATES]
        near = [
            NearDuplicate(id=other, similarity=round(score, 3))
            for other, _ in candidates
            if (score := similarity(signature, self._signatures[other])) >= self.threshold
        ]
        return _ranked(near), duplicate_of


def _ranked(near: list[NearDuplicate]) -> list[NearDuplicate]:
    return sorted(near, key=lambda n: (-n.similarity, n.id))[:MAX_NEAR_DUPLICATES]

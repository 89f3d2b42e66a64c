"""robots.txt (RFC 9309) as protego reads it, with the RFC's rules for a robots.txt that cannot be had.

A 2xx robots.txt is parsed; 4xx means no rules (everything allowed); a 5xx or an unreachable site means
everything is disallowed until the next try. The verdict is cached in Redis for every replica (as JSON: the rules'
text, or which of the two blanket answers applies).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import orjson
from protego import Protego

RobotsRule = Literal["rules", "allow_all", "disallow_all"]
# A robots.txt larger than this is cut there (RFC 9309 §2.5 asks parsers to read at least 500 KiB).
MAX_ROBOTS_BYTES = 512 * 1024


@dataclass(frozen=True, slots=True)
class Robots:
    """One site's robots.txt verdict."""

    rule: RobotsRule
    text: str = ""

    @classmethod
    def from_response(cls, status: int | None, body: bytes) -> Robots:
        """What a GET /robots.txt answered (status None: the site could not be reached)."""
        if status is not None and 200 <= status < 300:
            return cls("rules", body[:MAX_ROBOTS_BYTES].decode("utf-8", "replace"))
        if status is not None and 400 <= status < 500:
            return cls("allow_all")
        return cls("disallow_all")

    def allows(self, url: str, user_agent: str) -> bool:
        """May `user_agent` fetch `url`?"""
        if self.rule != "rules":
            return self.rule == "allow_all"
        return bool(_parsed(self.text).can_fetch(url, user_agent))

    def crawl_delay(self, user_agent: str) -> float | None:
        """The Crawl-delay the site asks of `user_agent` (seconds), if any."""
        if self.rule != "rules":
            return None
        delay = _parsed(self.text).crawl_delay(user_agent)
        return float(delay) if delay is not None else None

    def to_json(self) -> bytes:
        """The cache entry."""
        return orjson.dumps({"rule": self.rule, "text": self.text})

    @classmethod
    def from_json(cls, data: bytes) -> Robots:
        """A cache entry back."""
        value = orjson.loads(data)
        return cls(value["rule"], value.get("text", ""))


@lru_cache(maxsize=256)
def _parsed(text: str) -> Protego:
    # Parsed once per distinct robots.txt per process: a busy site's rules are checked for every page.
    return Protego.parse(text)

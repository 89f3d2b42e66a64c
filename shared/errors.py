"""The two kinds of failure the delivery policy tells apart."""

from __future__ import annotations


class Rejected(Exception):
    """A permanent failure for this input: dead-letter it at once with `reason`.

    `reason` is a short snake_case code operators filter on (`too_large`, `no_article_text`, ...);
    the message says what exactly was wrong.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class TransientError(Exception):
    """A dependency (Redis, storage) is unavailable: retry later, never dead-letter on the first try."""

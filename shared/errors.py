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


class ConfigurationError(RuntimeError):
    """The settings ask for something unsafe or impossible; the service refuses to start (exit status 2).

    `event` is the log event naming the refusal (e.g. `http_ingest.refused`).
    """

    def __init__(self, message: str, *, event: str = "configuration.refused") -> None:
        super().__init__(message)
        self.event = event

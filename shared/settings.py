"""One Settings object for every service and the CLI (env prefix NEWSFLOW_, .env supported)."""

from __future__ import annotations

import os
import secrets
import socket
from functools import lru_cache
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def default_consumer_name() -> str:
    """A consumer name unique per process (a restarted container keeps hostname and pid 1, hence the suffix)."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(2)}"


SECRET_QUERY_KEYS = frozenset({"password", "pass", "token", "secret"})


def redact_url(url: str) -> str:
    """The URL with the secret in its user-info replaced by ***, safe to log or print."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, host = netloc.rpartition("@")
        user, has_password, _ = userinfo.partition(":")
        # `redis://SECRET@host` is a bare secret to some clients: hide it too.
        netloc = f"{user}:***@{host}" if has_password else f"***@{host}"
    # redis-py also takes `?password=…` in the query string.
    query = "&".join(
        f"{key}=***" if key.lower() in SECRET_QUERY_KEYS else f"{key}={value}" if sep else key
        for key, sep, value in (pair.partition("=") for pair in parts.query.split("&") if pair)
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


class Settings(BaseSettings):
    """Runtime configuration; every field is NEWSFLOW_<NAME> in the environment."""

    model_config = SettingsConfigDict(env_prefix="NEWSFLOW_", env_file=".env", extra="ignore")

    redis_url: str = "redis://127.0.0.1:6379/0"
    storage_url: str = "sqlite:///data/newsflow.db"
    data_dir: str = "data"
    # Prefix of every stream and key, so several pipelines (or test runs) share one Redis safely.
    key_prefix: str = "newsflow"
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: str = "INFO"
    consumer: str = Field(default_factory=default_consumer_name)
    batch_size: int = Field(default=32, ge=1, le=1000)
    # How long XREADGROUP blocks waiting for entries; a lone article is handled as soon as it arrives.
    poll_ms: int = Field(default=100, ge=1)
    max_deliveries: int = Field(default=5, ge=1)
    claim_idle_ms: int = Field(default=30_000, ge=100)
    # A connection to Redis or PostgreSQL with no answer for this long (a request unanswered, data unacknowledged,
    # keepalive probes lost: the link is gone) is dropped and made anew (shared/links.py). With the retry cap it
    # bounds how soon a replica cut off works again once its network is back: see `links.rejoin_bound_s`.
    link_timeout_s: float = Field(default=10.0, ge=1.0)
    # A step failing for a transient reason (Redis or the database away) is retried after 0.2 s, 0.4 s, ... and
    # at most this long apart.
    retry_max_s: float = Field(default=10.0, gt=0)
    claim_interval_ms: int = Field(default=5_000, ge=50)
    # A batch in hand is renewed (kept from other replicas' claimers) for at most this long: past it, a hung handler
    # or an outage that never ends shows as entries pending past the claim time, and another replica may take them.
    max_hold_ms: int = Field(default=600_000, ge=1_000)
    # A consumer idle this long with nothing pending is removed from its group.
    dead_consumer_idle_ms: int = Field(default=600_000, ge=1_000)
    trim_interval_s: float = Field(default=60.0, gt=0)
    shutdown_timeout_s: float = Field(default=20.0, gt=0)
    max_article_bytes: int = Field(default=5_000_000, ge=1_000)
    min_body_words: int = Field(default=5, ge=0)
    spacy_model: str = "en_core_web_sm"
    words_per_minute: int = Field(default=230, ge=50)
    # The near-duplicate index holds the newest articles only, so its memory and cost stay bounded
    # (services/enrich/dedup.py): an article older than either horizon is no longer found. 0: no such limit.
    dedup_horizon_days: float = Field(default=30.0, ge=0)
    dedup_horizon_articles: int = Field(default=250_000, ge=0)
    service_version: str = "0.1.0"
    # HTTP (health, readiness, metrics; ingest also takes POST /articles). Port unset: the stage's default
    # (ingest 8000, clean 8001, enrich 8002, publish 8003) so `newsflow up` runs all four on one machine; 0: no HTTP.
    http_host: str = "127.0.0.1"
    http_port: int | None = Field(default=None, ge=0, le=65535)
    # HTTP ingest: unset = on when an API token is configured (or in dev mode); true = on, and refuse to start
    # without a token unless dev mode; false = off.
    http_ingest: bool | None = None
    api_token: SecretStr | None = None
    # A development setup: HTTP ingest may run without a token.
    dev_mode: bool = False
    max_batch_bytes: int = Field(default=50_000_000, ge=1_000)
    max_batch_articles: int = Field(default=1_000, ge=1)
    # Every HTTP server (each service's health port, ingest's POST /articles, the read API) cuts slow clients
    # off: the request line and headers must arrive within the header timeout (408, or closed when nothing came),
    # a body within the body timeout (408); past the connection cap a new connection is answered 429.
    http_header_timeout_s: float = Field(default=10.0, gt=0)
    http_body_timeout_s: float = Field(default=60.0, gt=0)
    http_max_connections: int = Field(default=256, ge=1)
    # The DLQ keeps the newest this many entries: each commit that dead-letters drops the oldest beyond it (with
    # their payloads), logged as `dlq.trimmed` and counted; `newsflow dlq export` saves entries first. 0: no limit.
    dlq_maxlen: int = Field(default=10_000, ge=0)
    # The read API (`newsflow serve api`): a bearer token to read articles, separate from the ingest token, and
    # an operator token for the console's mutating actions (DLQ replay/delete); never logged.
    read_token: SecretStr | None = None
    operator_token: SecretStr | None = None
    # How often the API samples the pipeline's status for the console's lag chart (an hour of samples is kept).
    status_sample_s: float = Field(default=10.0, gt=0)
    # fetch: registered feeds and sitemaps -> article pages -> the raw stream (`newsflow sources add URL`).
    fetch_user_agent: str = "newsflow-fetch/0.1"
    # Per host: one request at a time, and at least this long between the end of one and the start of the next
    # (a robots.txt Crawl-delay that asks for more wins).
    fetch_host_delay_s: float = Field(default=1.0, ge=0)
    # Everything one page (or feed) may take, robots.txt and redirects included; below NEWSFLOW_CLAIM_IDLE_MS.
    fetch_timeout_s: float = Field(default=20.0, gt=0)
    fetch_max_redirects: int = Field(default=5, ge=0)
    # Connect to private, loopback, link-local (cloud metadata), multicast and reserved addresses too. Off: a
    # feed, link or redirect that resolves to one is refused (`blocked_address`). On for a crawl of local sites.
    fetch_allow_private: bool = False
    # Feeds and sitemaps (decompressed); pages are bounded by NEWSFLOW_MAX_ARTICLE_BYTES.
    fetch_max_document_bytes: int = Field(default=50_000_000, ge=1_000)
    # A page that times out or answers 429/5xx is tried again this many times, after base, 4x base, 16x base...
    fetch_retries: int = Field(default=3, ge=0)
    fetch_retry_base_s: float = Field(default=10.0, gt=0)
    fetch_poll_interval_s: int = Field(default=300, ge=1, description="default for `sources add --interval`")
    # How often each replica looks for due sources and due retries.
    fetch_tick_s: float = Field(default=1.0, gt=0)
    # A URL seen this long ago may be fetched again when a feed lists it anew.
    fetch_seen_days: float = Field(default=30.0, gt=0)
    fetch_robots_ttl_s: int = Field(default=3600, ge=1)
    # New URLs queued from one poll of one source (newest first); the rest wait for the next poll.
    fetch_max_links_per_poll: int = Field(default=1000, ge=1)
    fetch_max_sitemaps_per_poll: int = Field(default=50, ge=1)

    @model_validator(mode="after")
    def _reads_fit_the_link_timeout(self) -> Settings:
        # XREADGROUP blocks up to NEWSFLOW_POLL_MS waiting for entries: the reply timeout must leave room for it.
        if self.poll_ms / 1000 + 1 > self.link_timeout_s:
            raise ValueError(
                f"NEWSFLOW_LINK_TIMEOUT_S ({self.link_timeout_s}) must exceed NEWSFLOW_POLL_MS ({self.poll_ms} ms) "
                "by at least 1 s: a read blocking that long would be taken for a dead link"
            )
        return self


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()

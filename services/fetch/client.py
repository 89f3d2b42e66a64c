"""One HTTP request with the fetch stage's limits: size and time bounded, redirects not followed, addresses guarded.

Redirects are followed by the polite client (services/fetch/polite.py), hop by hop: each hop is a request to a
server, so it waits the politeness delay like any other request, obeys robots.txt, and a hop to another host
waits for that host's turn. Every connection goes through the address guard (services/fetch/addresses.py).

Failures come back as a `Download` with `error` set, never as an exception, so the caller decides between
retrying (a timeout, a refused connection, 429, 5xx) and recording a permanent failure.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpx

from services.fetch.addresses import AddressGuard, BlockedAddress, guarded_client
from shared.settings import Settings

# Worth trying again later: the server is overloaded, restarting or asked us to slow down.
RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})


@dataclass(frozen=True, slots=True)
class Download:
    """What a GET brought back."""

    url: str
    final_url: str
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    # timeout | connect | protocol (worth a retry) | too_large | redirects | decoding | invalid_url |
    # blocked_address (the guard refused the host's address); None: an HTTP answer arrived
    error: str | None = None
    detail: str = ""
    # Redirect hops followed to get here.
    redirects: int = 0
    # A redirect to another host, not followed: that host's turn, robots.txt and delay come first.
    redirect_to: str | None = None

    @property
    def retryable(self) -> bool:
        """A failure that may well pass on a later try."""
        if self.error is not None:
            return self.error in ("timeout", "connect", "protocol")
        return self.status in RETRY_STATUSES

    @property
    def ok(self) -> bool:
        """A 2xx answer with its whole body."""
        return self.error is None and self.status is not None and 200 <= self.status < 300

    def describe(self) -> str:
        """A short reason for logs and the source's state (`http_503`, `timeout: …`)."""
        if self.error is not None:
            return f"{self.error}: {self.detail}" if self.detail else self.error
        return f"http_{self.status}"


def make_client(settings: Settings, guard: AddressGuard | None = None) -> httpx.AsyncClient:
    """The process's HTTP client: our user agent, no redirects followed, compressed bodies decoded, guarded."""
    return guarded_client(
        guard or AddressGuard.for_settings(settings.fetch_allow_private),
        headers={"User-Agent": settings.fetch_user_agent, "Accept-Encoding": "gzip, deflate, br"},
        follow_redirects=False,
        timeout=httpx.Timeout(settings.fetch_timeout_s),
        limits=httpx.Limits(max_connections=max(settings.batch_size, 10), max_keepalive_connections=20),
    )


def redirect_target(answer: Download) -> str | None:
    """Where a redirect answer points (absolute, no fragment); None when it is not a redirect."""
    location = answer.headers.get("location", "").strip()
    if answer.error is not None or answer.status not in REDIRECT_STATUSES or not location:
        return None
    return urlunsplit(urlsplit(urljoin(answer.final_url, location))._replace(fragment=""))


async def get_once(
    client: httpx.AsyncClient, url: str, current: str, *, max_bytes: int, headers: dict[str, str] | None = None,
    redirects: int = 0,
) -> Download:
    """One request (no redirect following); `url` is the one first asked for, `current` this hop's."""
    try:
        async with client.stream("GET", current, headers=headers) as response:
            answer = {k.lower(): v for k, v in response.headers.items()}
            declared = response.headers.get("Content-Length")
            if declared and declared.isdigit() and int(declared) > max_bytes:
                return Download(url, current, response.status_code, answer, error="too_large",
                                detail=f"Content-Length {int(declared):,} > {max_bytes:,}", redirects=redirects)
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > max_bytes:
                    return Download(url, current, response.status_code, answer, error="too_large",
                                    detail=f"body over {max_bytes:,} bytes", redirects=redirects)
                chunks.append(chunk)
            return Download(url, current, response.status_code, answer, b"".join(chunks), redirects=redirects)
    except BlockedAddress as exc:
        return Download(url, current, error="blocked_address", detail=str(exc), redirects=redirects)
    except httpx.TimeoutException as exc:
        return Download(url, current, error="timeout", detail=type(exc).__name__, redirects=redirects)
    except (httpx.ConnectError, httpx.NetworkError) as exc:
        return Download(url, current, error="connect", detail=str(exc) or type(exc).__name__, redirects=redirects)
    except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
        return Download(url, current, error="invalid_url", detail=str(exc), redirects=redirects)
    except httpx.DecodingError as exc:
        return Download(url, current, error="decoding", detail=str(exc), redirects=redirects)
    except (httpx.RemoteProtocolError, httpx.LocalProtocolError) as exc:
        return Download(url, current, error="protocol", detail=str(exc), redirects=redirects)

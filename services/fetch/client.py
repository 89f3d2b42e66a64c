"""One HTTP GET with the fetch stage's limits: redirects followed (the final URL kept), size and time bounded.

Redirects are followed here, hop by hop, not by httpx: each hop is a request to a server, so hops wait the
politeness delay between them like any two requests would.

Failures come back as a `Download` with `error` set, never as an exception, so the caller decides between
retrying (a timeout, a refused connection, 429, 5xx) and recording a permanent failure.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from urllib.parse import urljoin

import httpx

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
    # timeout | connect | protocol (worth a retry) | too_large | redirects | decoding | invalid_url;
    # None: an HTTP answer arrived
    error: str | None = None
    detail: str = ""

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


def make_client(settings: Settings) -> httpx.AsyncClient:
    """The process's HTTP client: our user agent, redirects followed up to the limit, compressed bodies decoded."""
    return httpx.AsyncClient(
        headers={"User-Agent": settings.fetch_user_agent, "Accept-Encoding": "gzip, deflate, br"},
        follow_redirects=False,
        timeout=httpx.Timeout(settings.fetch_timeout_s),
        limits=httpx.Limits(max_connections=max(settings.batch_size, 10), max_keepalive_connections=20),
    )


async def download(
    client: httpx.AsyncClient,
    url: str,
    *,
    max_bytes: int,
    timeout_s: float,
    headers: dict[str, str] | None = None,
    max_redirects: int = 5,
    hop_delay_s: float = 0.0,
) -> Download:
    """GET `url`, following up to `max_redirects` hops (`hop_delay_s` apart), within `timeout_s` overall."""
    current = url
    try:
        async with asyncio.timeout(timeout_s):
            for hop in range(max_redirects + 1):
                if hop and hop_delay_s:
                    await asyncio.sleep(hop_delay_s)
                answer = await _get_once(client, url, current, max_bytes=max_bytes, headers=headers)
                location = answer.headers.get("location")
                if answer.error is not None or answer.status not in REDIRECT_STATUSES or not location:
                    return answer
                current = urljoin(current, location)
            return Download(url, current, error="redirects", detail=f"more than {max_redirects} redirects")
    except TimeoutError:
        return Download(url, current, error="timeout", detail=f"no complete answer within {timeout_s:g}s")


async def _get_once(
    client: httpx.AsyncClient, url: str, current: str, *, max_bytes: int, headers: dict[str, str] | None
) -> Download:
    """One request (no redirect following); `url` is the one first asked for, `current` this hop's."""
    try:
        async with client.stream("GET", current, headers=headers) as response:
            answer = {k.lower(): v for k, v in response.headers.items()}
            declared = response.headers.get("Content-Length")
            if declared and declared.isdigit() and int(declared) > max_bytes:
                return Download(url, current, response.status_code, answer, error="too_large",
                                detail=f"Content-Length {int(declared):,} > {max_bytes:,}")
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > max_bytes:
                    return Download(url, current, response.status_code, answer, error="too_large",
                                    detail=f"body over {max_bytes:,} bytes")
                chunks.append(chunk)
            return Download(url, current, response.status_code, answer, b"".join(chunks))
    except httpx.TimeoutException as exc:
        return Download(url, current, error="timeout", detail=type(exc).__name__)
    except (httpx.ConnectError, httpx.NetworkError) as exc:
        return Download(url, current, error="connect", detail=str(exc) or type(exc).__name__)
    except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
        return Download(url, current, error="invalid_url", detail=str(exc))
    except httpx.DecodingError as exc:
        return Download(url, current, error="decoding", detail=str(exc))
    except (httpx.RemoteProtocolError, httpx.LocalProtocolError) as exc:
        return Download(url, current, error="protocol", detail=str(exc))

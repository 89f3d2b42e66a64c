"""uvicorn for every newsflow HTTP server, guarded against slow and greedy clients.

uvicorn (0.55, h11) has no header timeout: its keep-alive timer starts only after a first response and is cancelled
by any byte received, so a client sending its headers a byte at a time holds a connection, and a task, for ever
(200 such connections to ingest all stayed open). `GuardedH11Protocol` adds, per connection:

- a header deadline: from the moment a request is awaited (the connection opened, or the previous response was
  sent) its request line and headers must be complete within NEWSFLOW_HTTP_HEADER_TIMEOUT_S — absolute, not reset
  by each byte. Then the connection is closed, after a 408 when part of a request had come;
- a body backstop: a request whose body is still arriving NEWSFLOW_HTTP_BODY_TIMEOUT_S (plus a grace) after its
  headers, and that nobody answered, is closed (the routes that read bodies answer 408 at the timeout themselves);
- a connection cap: past NEWSFLOW_HTTP_MAX_CONNECTIONS open connections a new one is answered 429 at once and
  closed, before it costs a task.
"""

from __future__ import annotations

import asyncio
import functools
from dataclasses import dataclass
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from shared.observability.logging import get_logger
from shared.observability.metrics import record_http_refused
from shared.settings import Settings

# After the body timeout, a route that reads the body answers 408 itself; the backstop waits this much longer.
BODY_GRACE_S = 5.0
# A refused connection is closed once its request's headers are in (or after this), so the client reads the 429.
REFUSED_LINGER_S = 1.0

log = get_logger("newsflow.http")


@dataclass(frozen=True, slots=True)
class HttpLimits:
    """The slow-client limits of one server (from Settings)."""

    header_timeout_s: float
    body_timeout_s: float
    max_connections: int

    @classmethod
    def of(cls, settings: Settings) -> HttpLimits:
        return cls(settings.http_header_timeout_s, settings.http_body_timeout_s, settings.http_max_connections)


def _plain_response(status: int, reason: str, message: str, *extra: tuple[str, str]) -> bytes:
    body = message.encode()
    headers = [
        ("content-type", "text/plain; charset=utf-8"),
        ("content-length", str(len(body))),
        ("connection", "close"),
        ("x-content-type-options", "nosniff"),
        *extra,
    ]
    head = f"HTTP/1.1 {status} {reason}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n"
    return head.encode("ascii") + body


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a header deadline, a body backstop and a connection cap (see the module)."""

    def __init__(self, *args: Any, limits: HttpLimits, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limits = limits
        self._timer: asyncio.TimerHandle | None = None
        self._awaited_after: object = None  # the request cycle that was current when headers began to be awaited
        self._partial = 0  # bytes of the awaited request received so far
        self._body_timer: asyncio.TimerHandle | None = None
        self._refused = False
        self._refused_tail = b""

    # -- the connection cap ------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            self._refuse()
            return
        self._await_headers()

    def _refuse(self) -> None:
        self._refused = True
        record_http_refused("too_many_connections")
        message = f"too many connections (the limit is {self.limits.max_connections}); retry shortly\n"
        self.transport.write(_plain_response(429, "Too Many Requests", message, ("retry-after", "1")))
        # Closing at once, with the request unread, would make the kernel send a reset, and many clients would
        # then never read the 429: read the request's headers first (or give up after a moment).
        self._timer = self.loop.call_later(REFUSED_LINGER_S, self._close)

    def _close(self) -> None:
        if not self.transport.is_closing():
            self.transport.close()

    # -- the header deadline -----------------------------------------------------------------------

    def _awaiting_headers(self) -> bool:
        return self.cycle is self._awaited_after and (self.cycle is None or self.cycle.response_complete)

    def _await_headers(self) -> None:
        self._cancel_timer()
        self._awaited_after = self.cycle
        self._partial = 0
        self._timer = self.loop.call_later(self.limits.header_timeout_s, self._headers_timed_out)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _headers_timed_out(self) -> None:
        self._timer = None
        if self.transport.is_closing() or not self._awaiting_headers():
            return
        if self._partial:
            record_http_refused("header_timeout")
            message = f"the request's headers did not arrive within {self.limits.header_timeout_s:g} s\n"
            self.transport.write(_plain_response(408, "Request Timeout", message))
            log.debug("http.header_timeout", client=self.client, received_bytes=self._partial)
        self.transport.close()

    def data_received(self, data: bytes) -> None:
        if self._refused:
            tail = self._refused_tail + data
            self._refused_tail = tail[-3:]
            if b"\r\n\r\n" in tail:
                self._close()
            return
        if self._awaiting_headers():
            self._partial += len(data)
        super().data_received(data)
        if self._timer is not None and not self._awaiting_headers():
            self._cancel_timer()  # a request's headers are in: the app (or the body backstop) has it now
        self._watch_body()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and (self.cycle is None or self.cycle.response_complete):
            self._await_headers()

    # -- the body backstop -------------------------------------------------------------------------

    def _watch_body(self) -> None:
        receiving = (
            self.cycle is not None and not self.cycle.response_complete and self.conn.their_state is h11.SEND_BODY
        )
        if receiving and self._body_timer is None:
            self._body_timer = self.loop.call_later(self.limits.body_timeout_s + BODY_GRACE_S, self._body_timed_out)
        elif not receiving and self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

    def _body_timed_out(self) -> None:
        self._body_timer = None
        if self.transport.is_closing() or self.conn.their_state is not h11.SEND_BODY:
            return
        record_http_refused("body_timeout")
        log.debug("http.body_timeout", client=self.client)
        self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timer()
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None
        super().connection_lost(exc)


def server_config(app: Any, settings: Settings, **options: Any) -> uvicorn.Config:
    """A uvicorn Config serving `app` with the guarded protocol and these settings' limits."""
    protocol = functools.partial(GuardedH11Protocol, limits=HttpLimits.of(settings))
    return uvicorn.Config(
        app,
        http=protocol,  # type: ignore[arg-type]
        access_log=False,
        log_config=None,
        server_header=False,
        **options,
    )

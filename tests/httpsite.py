"""A local web site for tests: a threaded HTTP server on 127.0.0.1 (or another loopback address) serving the routes a
test sets.

It serves feeds, sitemaps (gzip too), robots.txt, redirects, slow and failing pages, answers conditional GETs
(ETag / Last-Modified -> 304), and records every request (path, headers, time) so a test can check what a
crawler asked for and when. Nothing here reaches beyond the loopback interface.
"""

from __future__ import annotations

import contextlib
import gzip
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Route:
    """What one path answers."""

    body: bytes = b""
    status: int = 200
    content_type: str | None = "text/html; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    # Compress the body on the wire (Content-Encoding: gzip) when the client accepts it.
    gzip_encoding: bool = False
    etag: str | None = None
    last_modified: str | None = None
    # Answer 503 this many times before answering normally.
    fail_times: int = 0
    redirect_to: str | None = None


@dataclass(frozen=True)
class Request:
    """One request the site received."""

    path: str
    headers: dict[str, str]
    at: float
    status: int
    # When the answer had been written (monotonic, like `at`).
    done: float = 0.0


class Site:
    """A test-owned HTTP server on a free port; `add` routes, read `requests`, `stop` at the end."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.routes: dict[str, Route] = {}
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        site = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:  # quiet
                pass

            def do_GET(self) -> None:
                site._answer(self)

        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self.base = f"http://{host}:{self.port}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def url(self, path: str) -> str:
        """The absolute URL of `path` on this site."""
        return self.base + path

    def add(self, path: str, body: bytes | str = b"", **options: object) -> Route:
        """Serve `body` at `path` (options: the `Route` fields)."""
        route = Route(body=body.encode() if isinstance(body, str) else body, **options)  # type: ignore[arg-type]
        with self._lock:
            self.routes[path] = route
        return route

    def hits(self, path: str) -> list[Request]:
        """The requests for `path`, in order."""
        with self._lock:
            return [r for r in self.requests if r.path == path]

    def stop(self) -> None:
        """Stop serving and release the port."""
        self.server.shutdown()
        self.server.server_close()

    def _answer(self, handler: BaseHTTPRequestHandler) -> None:
        path = handler.path
        with self._lock:
            route = self.routes.get(path) or self.routes.get(path.split("?", 1)[0])
            failing = route is not None and route.fail_times > 0
            if failing and route is not None:
                route.fail_times -= 1
        headers = {k.lower(): v for k, v in handler.headers.items()}
        arrived = time.monotonic()
        status, extra, body = self._response(route, headers, failing)
        if route is not None and route.delay_s:
            time.sleep(route.delay_s)
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client gave up (a timeout test)
            handler.send_response(status)
            for name, value in extra.items():
                handler.send_header(name, value)
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            handler.wfile.write(body)
        with self._lock:
            self.requests.append(Request(path, headers, arrived, status, time.monotonic()))

    @staticmethod
    def _response(route: Route | None, headers: dict[str, str], failing: bool) -> tuple[int, dict[str, str], bytes]:
        if route is None:
            return 404, {"Content-Type": "text/plain"}, b"not found"
        if failing:
            return 503, {"Content-Type": "text/plain", "Retry-After": "0"}, b"try again"
        if route.redirect_to is not None:
            return route.status if route.status in (301, 302, 303, 307, 308) else 301, {
                **route.headers, "Location": route.redirect_to
            }, b""
        extra = dict(route.headers)
        if route.content_type:
            extra["Content-Type"] = route.content_type
        if route.etag:
            extra["ETag"] = route.etag
        if route.last_modified:
            extra["Last-Modified"] = route.last_modified
        not_modified = (route.etag is not None and headers.get("if-none-match") == route.etag) or (
            route.etag is None
            and route.last_modified is not None
            and headers.get("if-modified-since") == route.last_modified
        )
        if not_modified and route.status == 200:
            return 304, {k: v for k, v in extra.items() if k in ("ETag", "Last-Modified")}, b""
        body = route.body
        if route.gzip_encoding and "gzip" in headers.get("accept-encoding", ""):
            body = gzip.compress(body)
            extra["Content-Encoding"] = "gzip"
        return route.status, extra, body

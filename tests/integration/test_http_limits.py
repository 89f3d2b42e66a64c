"""The guarded HTTP protocol (shared/observability/httpserver.py) on a real uvicorn server, over real sockets.

A small app stands in for a service: `/ok` answers at once, `/echo` reads its body as ingest does. The fault suite
(tests/faults/test_ops_faults.py) runs the same attacks against the real ingest process.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn
from fastapi import FastAPI, HTTPException, Request

from shared.observability.health import bind_socket
from shared.observability.httpserver import server_config
from shared.settings import Settings

pytestmark = pytest.mark.integration

HEADER_TIMEOUT_S = 1.0
BODY_TIMEOUT_S = 1.5
MAX_CONNECTIONS = 8


def make_app() -> FastAPI:
    app = FastAPI()

    @app.get("/ok")
    async def ok() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/echo")
    async def echo(request: Request) -> dict[str, int]:
        body = bytearray()
        try:
            async with asyncio.timeout(BODY_TIMEOUT_S):
                async for chunk in request.stream():
                    body += chunk
        except TimeoutError:
            raise HTTPException(408, detail="body too slow", headers={"Connection": "close"}) from None
        return {"bytes": len(body)}

    return app


@pytest.fixture(scope="module")
def server() -> Iterator[int]:
    settings = Settings(
        http_header_timeout_s=HEADER_TIMEOUT_S, http_body_timeout_s=BODY_TIMEOUT_S, http_max_connections=MAX_CONNECTIONS
    )
    # Bound here, on a port the kernel picks, before uvicorn serves it: no other process can take it in between.
    sock = bind_socket("127.0.0.1", 0)
    port = int(sock.getsockname()[1])
    running = uvicorn.Server(server_config(make_app(), settings, lifespan="off"))
    thread = threading.Thread(target=lambda: running.run(sockets=[sock]), daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not running.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    yield port
    running.should_exit = True
    thread.join(timeout=10)


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=10)


def read_until_closed(sock: socket.socket, timeout: float = 10.0) -> tuple[bytes, float]:
    """Everything the server sends until it closes, and when it closed (seconds from now)."""
    started = time.monotonic()
    sock.settimeout(timeout)
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        data += chunk
    return data, time.monotonic() - started


def get(port: int, path: str = "/ok") -> bytes:
    with connect(port) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".encode())
        return read_until_closed(sock)[0]


def test_headers_sent_a_byte_at_a_time_are_cut_off_at_the_header_timeout(server: int) -> None:
    with connect(server) as sock:
        started = time.monotonic()
        sock.sendall(b"G")
        request = b"ET /ok HTTP/1.1\r\nHost: t\r\nX-Slow: "
        for byte in request:  # well within the timeout between bytes, never the whole headers
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                break  # closed by the server
            time.sleep(0.05)
        answer, _ = read_until_closed(sock)
        closed_after = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408 Request Timeout"), answer[:80]
    assert HEADER_TIMEOUT_S - 0.1 <= closed_after <= HEADER_TIMEOUT_S + 1.5


def test_a_connection_that_sends_nothing_is_closed_quietly(server: int) -> None:
    with connect(server) as sock:
        answer, after = read_until_closed(sock)
    assert answer == b"" and after <= HEADER_TIMEOUT_S + 1.0


def test_keep_alive_the_next_request_gets_the_same_deadline(server: int) -> None:
    with connect(server) as sock:
        sock.sendall(b"GET /ok HTTP/1.1\r\nHost: t\r\n\r\n")
        sock.settimeout(5)
        first = sock.recv(65536)
        assert first.startswith(b"HTTP/1.1 200")
        started = time.monotonic()
        for byte in b"GET /ok HTTP/1.1\r\nHost: t\r\n":  # the second request dribbles in
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                break
            time.sleep(0.1)
        answer, _ = read_until_closed(sock)
        assert time.monotonic() - started <= HEADER_TIMEOUT_S + 1.5
    assert answer.startswith(b"HTTP/1.1 408")


def test_a_body_that_does_not_arrive_gets_408(server: int) -> None:
    with connect(server) as sock:
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n0123456789")
        answer, after = read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:80]
    assert b"body too slow" in answer and after <= BODY_TIMEOUT_S + 1.0


def test_over_the_connection_cap_a_new_connection_gets_429_and_the_others_still_work(server: int) -> None:
    held = [connect(server) for _ in range(MAX_CONNECTIONS)]
    try:
        for sock in held:
            sock.sendall(b"GET /ok HTTP/1.1\r\nHost: t\r\n")  # headers left incomplete: each holds its place
        time.sleep(0.2)
        refused = get(server)
        assert refused.startswith(b"HTTP/1.1 429 Too Many Requests"), refused[:80]
        assert b"retry-after: 1" in refused.lower()
    finally:
        for sock in held:
            sock.close()
    deadline = time.monotonic() + 5
    while not get(server).startswith(b"HTTP/1.1 200"):  # the places are free again once those are closed
        assert time.monotonic() < deadline


def test_ordinary_requests_are_untouched(server: int) -> None:
    assert get(server).startswith(b"HTTP/1.1 200")
    with connect(server) as sock:  # two requests pipelined on one connection, and a body in one piece
        sock.sendall(
            b"GET /ok HTTP/1.1\r\nHost: t\r\n\r\n"
            b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello"
        )
        answer, _ = read_until_closed(sock)
    assert answer.count(b"HTTP/1.1 200 OK") == 2 and b'{"bytes":5}' in answer

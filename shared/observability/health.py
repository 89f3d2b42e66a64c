"""Each service's HTTP side: /healthz, /readyz, /metrics (plus any routes the service adds), beside the consumer.

The ASGI app runs in the stage's lifespan as a background task (uvicorn, its signal handlers off: FastStream owns
SIGTERM and stops the stage, which stops this server). A service adds routes of its own (ingest: POST /articles)
through a factory it hands its `Stage`; this module knows nothing of any one stage.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable, Generator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol

import uvicorn
from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from shared.errors import ConfigurationError
from shared.observability import metrics
from shared.observability.httpserver import server_config
from shared.observability.logging import get_logger
from shared.settings import Settings

DEFAULT_PORTS = {"ingest": 8000, "clean": 8001, "enrich": 8002, "publish": 8003, "fetch": 8004, "api": 8080}
PROBE_TIMEOUT_S = 2.0
STOP_TIMEOUT_S = 5.0

log = get_logger("newsflow.http")

# A service's own routes: built once the probe client exists; may refuse the configuration (ConfigurationError).
RoutesFactory = Callable[[Settings, Redis], list[APIRouter]]


class Served(Protocol):
    """What the HTTP side needs to know of the stage it serves."""

    name: str
    settings: Settings
    input_stream: str
    group: str
    consumer: str

    def unready_reason(self) -> str | None: ...


def http_port(settings: Settings, stage: str) -> int | None:
    """The port this stage serves HTTP on; None when HTTP is off (NEWSFLOW_HTTP_PORT=0)."""
    if settings.http_port is None:
        return DEFAULT_PORTS[stage]
    return settings.http_port or None



def probe_client(settings: Settings) -> Redis:
    """A Redis client of the HTTP side's own, with short timeouts, so probes never queue behind the policy."""
    return Redis.from_url(settings.redis_url, socket_connect_timeout=PROBE_TIMEOUT_S, socket_timeout=10)


async def readiness(redis: Redis, stream: str, group: str) -> tuple[bool, str]:
    """(ready, why): Redis answers and the stage's consumer group exists on its input stream."""
    try:
        async with asyncio.timeout(PROBE_TIMEOUT_S):
            groups = await redis.xinfo_groups(stream)
    except ResponseError as exc:
        if "no such key" in str(exc).lower():
            return False, f"stream {stream} does not exist yet"
        return False, f"redis error: {type(exc).__name__}"
    except (RedisError, OSError, TimeoutError) as exc:
        return False, f"redis unreachable: {type(exc).__name__}"
    names = {g["name"].decode() if isinstance(g["name"], bytes) else g["name"] for g in groups}
    if group not in names:
        return False, f"group {group} does not exist on {stream}"
    return True, "ok"


def build_app(
    stage: str,
    stream: str,
    group: str,
    settings: Settings,
    redis: Redis,
    *,
    consumer: str = "",
    routers: Sequence[APIRouter] = (),
    description: str = "",
    unready: Callable[[], str | None] | None = None,
) -> FastAPI:
    """The ASGI app: health, readiness and metrics for `stage`, plus the service's own `routers`."""
    app = FastAPI(
        title=f"newsflow {stage}",
        version=settings.service_version,
        description=description or f"The {stage} service of the newsflow pipeline: health, readiness and metrics.",
    )

    @app.middleware("http")
    async def no_sniffing(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response = await call_next(request)
        # Every answer is JSON or plain text: a browser must never render one as HTML.
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers.setdefault("Cache-Control", "no-store")
        return response

    @app.get("/healthz", summary="The process is up")
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "stage": stage, "consumer": consumer}

    @app.get(
        "/readyz",
        summary="Redis answers, the stage's consumer group exists, and what it writes to (storage) is usable",
        responses={503: {"description": "not ready (Redis unreachable, group missing, storage unavailable)"}},
    )
    async def readyz() -> JSONResponse:
        ready, why = await readiness(redis, stream, group)
        blocked = unready() if unready is not None and ready else None
        if blocked is not None:
            ready, why = False, blocked
        body = {"status": "ready" if ready else "unready", "stage": stage, "reason": why}
        return JSONResponse(body, status_code=200 if ready else 503)

    @app.get("/metrics", summary="Prometheus metrics", response_class=Response)
    async def metrics_endpoint() -> Response:
        try:
            async with asyncio.timeout(PROBE_TIMEOUT_S):
                await metrics.refresh_stream_gauges(redis, stream, group)
            metrics.REDIS_UP.set(1)
        except (RedisError, OSError, TimeoutError):
            metrics.REDIS_UP.set(0)
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

    for router in routers:
        app.include_router(router)
    return app


class _EmbeddedServer(uvicorn.Server):
    """uvicorn without its signal handlers: FastStream owns SIGTERM/SIGINT and stops us through the lifespan."""

    @contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


@dataclass
class HttpServer:
    """A running HTTP server and the task serving it."""

    server: uvicorn.Server
    task: asyncio.Task[None]
    port: int
    redis: Redis

    async def stop(self) -> None:
        """Stop accepting, finish in-flight requests (bounded), close the probe client."""
        self.server.should_exit = True
        try:
            await asyncio.wait_for(asyncio.shield(self.task), timeout=STOP_TIMEOUT_S)
        except TimeoutError:
            self.server.force_exit = True
            self.task.cancel()
        except Exception:
            log.exception("http.stop_failed")
        await self.redis.aclose()


def bind_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to host:port for uvicorn to serve on (OSError when the port is taken)."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[
        0
    ]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


async def serve_http(stage: Served, routes: RoutesFactory | None = None) -> HttpServer | None:
    """Start the stage's HTTP server in the background; None when HTTP is off or its port is taken."""
    settings = stage.settings
    port = http_port(settings, stage.name)
    if port is None:
        log.info("http.disabled", stage=stage.name)
        return None
    redis = probe_client(settings)
    try:
        routers = routes(settings, redis) if routes is not None else []
    except ConfigurationError as exc:
        await redis.aclose()
        log.error(exc.event, stage=stage.name, error=str(exc))
        # A configuration mistake, not a crash: one clear log line and exit status 2, no traceback.
        raise SystemExit(2) from exc
    app = build_app(
        stage.name,
        stage.input_stream,
        stage.group,
        settings,
        redis,
        consumer=stage.consumer,
        routers=routers,
        unready=stage.unready_reason,
    )
    try:
        sock = bind_socket(settings.http_host, port)
    except OSError as exc:
        # The consumer is what matters; a second replica on one machine (newsflow up) finds the port taken.
        log.error("http.bind_failed", stage=stage.name, host=settings.http_host, port=port, error=str(exc))
        await redis.aclose()
        return None
    server = _EmbeddedServer(server_config(app, settings, lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=[sock]), name=f"http-{stage.name}")
    while not server.started and not task.done():
        await asyncio.sleep(0.01)
    if task.done():
        error = task.exception()
        log.error("http.start_failed", stage=stage.name, port=port, error=repr(error))
        await redis.aclose()
        return None
    log.info(
        "http.started",
        stage=stage.name,
        host=settings.http_host,
        port=port,
        routes=sorted({route.path for router in routers for route in router.routes}),  # type: ignore[attr-defined]
    )
    return HttpServer(server=server, task=task, port=port, redis=redis)

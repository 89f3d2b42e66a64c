"""api: the read side for people — search with facets over HTTP (/articles) and the operator console (/console)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, FastAPI, HTTPException, Query, Request, Response
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel
from redis.asyncio import Redis
from redis.exceptions import RedisError

from services.api.access import Access
from services.api.console import LoginRequired, console_router
from services.api.pipeline import STUCK_AFTER_S, LagHistory
from services.api.query import MAX_FACET_SIZE, PageParams, article_filters, invalid, page_params, projection
from shared.errors import ConfigurationError, TransientError
from shared.observability.logging import configure_logging, get_logger
from shared.observability.status import collect_status
from shared.settings import get_settings
from shared.storage import LATEST_VERSION, ArticleFilters, open_storage
from shared.streams import names

settings = get_settings()
configure_logging(settings, service="api")
log = get_logger("newsflow.api")
try:
    access = Access.from_settings(settings)
except ConfigurationError as exc:
    # A configuration mistake, not a crash: one clear log line and exit status 2, no traceback.
    log.error(exc.event, error=str(exc))
    raise SystemExit(2) from exc
storage = open_storage(settings.storage_url, read_mostly=True, link_timeout_s=settings.link_timeout_s)
redis = Redis.from_url(settings.redis_url, socket_connect_timeout=2, socket_timeout=10)
streams = names(settings)
history = LagHistory()


async def sample_pipeline() -> None:
    """Every NEWSFLOW_STATUS_SAMPLE_S: a status snapshot into the console's hour of lag history."""
    while True:
        try:
            history.add(await collect_status(redis, streams, stuck_after_s=STUCK_AFTER_S), streams)
        except (RedisError, OSError) as error:
            log.warning("api.status_sample_failed", error=str(error))
        await asyncio.sleep(settings.status_sample_s)


@asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    """Sample the pipeline while serving; close storage and Redis after the last request."""
    sampler = asyncio.create_task(sample_pipeline(), name="api-status-sampler")
    log.info("api.started", storage=storage.url.split(":", 1)[0], open=access.open)
    try:
        yield
    finally:
        sampler.cancel()
        with suppress(asyncio.CancelledError):
            await sampler
        await storage.close()
        await redis.aclose()


app = FastAPI(
    title="newsflow api",
    version=settings.service_version,
    description=(
        "Search the stored articles (the backend's own full-text index, ranked), filter, facet and page through "
        "them. Every route but /healthz needs `Authorization: Bearer NEWSFLOW_READ_TOKEN` (the operator token "
        "also reads). Items carry the stored record's fields, the same as `newsflow articles export`."
    ),
    lifespan=lifespan,
)
app.mount("/console/static", StaticFiles(directory=Path(__file__).parent / "static"), name="console-static")


@app.middleware("http")
async def headers_and_log(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    """Security headers on every answer, and one log line per request (never the Authorization header)."""
    started = time.perf_counter()
    response = await call_next(request)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers.setdefault("Cache-Control", "no-store")
    if request.url.path.startswith("/console"):
        response.headers["Content-Security-Policy"] = (
            "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
        )
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Referrer-Policy"] = "same-origin"
    log.info("http.request", method=request.method, path=request.url.path, status=response.status_code,
             duration_ms=round((time.perf_counter() - started) * 1000, 2))
    return response


@app.exception_handler(TransientError)
async def storage_unavailable(_: Request, error: TransientError) -> JSONResponse:
    log.warning("api.storage_unavailable", error=str(error))
    return JSONResponse({"detail": "storage is unavailable; retry later"}, status_code=503,
                        headers={"Retry-After": "5"})


@app.exception_handler(RedisError)
async def redis_unavailable(_: Request, error: RedisError) -> JSONResponse:
    log.warning("api.redis_unavailable", error=str(error))
    return JSONResponse({"detail": "Redis is unavailable; retry later"}, status_code=503, headers={"Retry-After": "5"})


@app.exception_handler(LoginRequired)
async def login_required(request: Request, _: LoginRequired) -> RedirectResponse:
    return RedirectResponse("/console/login?next=" + quote(request.url.path), status_code=303)


bearer = HTTPBearer(auto_error=False, description="NEWSFLOW_READ_TOKEN (or NEWSFLOW_OPERATOR_TOKEN)")
_schema_ready = False


async def reader(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> None:
    """A read or operator bearer token, and a storage schema this API can query."""
    global _schema_ready
    if not access.open:
        if credentials is None:
            raise HTTPException(401, detail="missing bearer token", headers={"WWW-Authenticate": "Bearer"})
        if access.role_of_token(credentials.credentials) is None:
            raise HTTPException(401, detail="invalid bearer token",
                                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
    if not _schema_ready:
        version = await storage.schema_version()
        if version < LATEST_VERSION:
            raise HTTPException(503, detail=f"storage schema is at version {version}, this API needs {LATEST_VERSION}: "
                                "start publish (it migrates) or run `newsflow db migrate`",
                                headers={"Retry-After": "10"})
        _schema_ready = True


class ArticlePageOut(BaseModel):
    """A page of records (with `score` and `snippet` when `q` is given) and the cursor of the next page."""

    items: list[dict[str, Any]]
    next_cursor: str | None
    sort: str
    limit: int


class DuplicatesOut(BaseModel):
    """Stored near-duplicates of an article, each with `similarity` and `relation` (earlier / later)."""

    items: list[dict[str, Any]]


ArticleId = Annotated[str, PathParam(max_length=200)]
Fields = Annotated[str | None, Query(max_length=1000, description="comma-separated record fields (default: all)")]


@app.get("/healthz", summary="The process is up (no token needed)")
async def healthz() -> dict[str, str]:
    return {"status": "ok", "service": "api"}


@app.get("/readyz", summary="Storage has the schema this API reads, and Redis answers (no token needed)",
         responses={503: {"description": "not ready: storage or Redis unavailable, or the schema is behind"}})
async def readyz() -> JSONResponse:
    try:
        version = await storage.schema_version()
        await redis.ping()
    except (TransientError, RedisError, OSError) as error:
        return JSONResponse({"status": "unready", "reason": type(error).__name__}, status_code=503)
    if version < LATEST_VERSION:
        return JSONResponse({"status": "unready", "reason": f"schema version {version}, needs {LATEST_VERSION}"},
                            status_code=503)
    return JSONResponse({"status": "ready", "service": "api"})


@app.get("/articles", response_model=ArticlePageOut, dependencies=[Depends(reader)],
         summary="Search and filter stored articles, a page at a time",
         responses={401: {"description": "missing or wrong bearer token"},
                    422: {"description": "a bad parameter (named in `detail[].loc`)"}})
async def list_articles(
    filters: Annotated[ArticleFilters, Depends(article_filters)], page: Annotated[PageParams, Depends(page_params)]
) -> ArticlePageOut:
    try:
        found = await storage.query_articles(
            filters, sort=page.sort, limit=page.limit, cursor=page.cursor, fields=page.fields
        )
    except ValueError as error:
        raise invalid("cursor", str(error)) from error
    return ArticlePageOut(items=found.items, next_cursor=found.next_cursor, sort=str(page.sort), limit=page.limit)


@app.get("/articles/facets", dependencies=[Depends(reader)], summary="Counts over every article the filters match")
async def article_facets(
    filters: Annotated[ArticleFilters, Depends(article_filters)],
    size: Annotated[int, Query(ge=1, le=MAX_FACET_SIZE, description="values per facet (and per entity label)")] = 10,
) -> dict[str, Any]:
    return (await storage.facets(filters, size=size)).to_dict()


@app.get("/articles/{article_id}", dependencies=[Depends(reader)],
         summary="One stored record, its trace (per-stage lineage) included",
         responses={404: {"description": "no article with this id"}})
async def get_article(article_id: ArticleId, fields: Fields = None) -> dict[str, Any]:
    chosen = projection(fields)
    record = await storage.get_article(article_id)
    if record is None:
        raise HTTPException(404, detail=f"no article with id {article_id}")
    data = record.model_dump(mode="json")
    return data if chosen is None else {name: data[name] for name in chosen}


@app.get("/articles/{article_id}/duplicates", response_model=DuplicatesOut, dependencies=[Depends(reader)],
         summary="Stored near-duplicates of an article, most similar first",
         responses={404: {"description": "no article with this id"}})
async def get_duplicates(article_id: ArticleId, fields: Fields = None) -> DuplicatesOut:
    chosen = projection(fields)
    if await storage.get_article(article_id) is None:
        raise HTTPException(404, detail=f"no article with id {article_id}")
    return DuplicatesOut(items=await storage.near_duplicates(article_id, fields=chosen))


app.include_router(console_router(access, storage, redis, streams, history))

"""HTTP ingest: POST /articles — one JSON article or a JSON-lines batch, validated as the ingest stage does, queued."""

from __future__ import annotations

import asyncio
import secrets
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel
from redis.asyncio import Redis
from redis.exceptions import RedisError

from services.ingest.validate import ingest_article, parse_raw_payload
from shared.errors import ConfigurationError, Rejected
from shared.events import RawArticle
from shared.observability.metrics import record_http_refused
from shared.settings import Settings
from shared.streams import names
from shared.transport.producer import enqueue_raw

# `curl --data @article.json` sends form-urlencoded unless told otherwise: a body is JSON whatever it is labelled.
JSON_TYPES = frozenset({"application/json", "", "application/x-www-form-urlencoded", "text/plain"})
JSON_LINES_TYPES = frozenset(
    {"application/x-ndjson", "application/jsonl", "application/x-jsonlines", "application/jsonlines"}
)


class QueuedArticle(BaseModel):
    """One article accepted and queued on the raw stream."""

    line: int | None = None
    entry_id: str
    article_id: str


class ArticleError(BaseModel):
    """Why one article (or one line of a batch) was refused."""

    line: int | None = None
    reason: str
    message: str


class IngestResult(BaseModel):
    """What POST /articles did: entries queued, and the articles refused (with the ingest stage's reasons)."""

    queued: list[QueuedArticle]
    errors: list[ArticleError]


def _raw_article_body() -> dict[str, Any]:
    schema = RawArticle.model_json_schema(ref_template="#/components/schemas/{model}")
    schema.pop("$defs", None)
    return {
        "required": True,
        "content": {
            "application/json": {"schema": schema},
            "application/x-ndjson": {
                "schema": {"type": "string", "description": "one raw article (JSON object) per line"}
            },
        },
    }


def _too_large(what: str, size: int, limit: int) -> HTTPException:
    return HTTPException(413, detail=f"{what} is {size:,} bytes or more; the limit is {limit:,}")


async def read_body(request: Request, limit: int, what: str, timeout_s: float) -> bytes:
    """The request body, refused with 413 as soon as it passes `limit` (never buffered past it), 408 when it has
    not all arrived within `timeout_s` of the headers."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(what, int(declared), limit)
    body = bytearray()
    try:
        async with asyncio.timeout(timeout_s):
            async for chunk in request.stream():
                body += chunk
                if len(body) > limit:
                    raise _too_large(what, len(body), limit)
    except TimeoutError:
        record_http_refused("body_timeout")
        raise HTTPException(
            408,
            detail=f"the body did not arrive within {timeout_s:g} s ({len(body):,} bytes came); send it faster",
            headers={"Connection": "close"},
        ) from None
    return bytes(body)


def http_ingest_enabled(settings: Settings) -> bool:
    """Whether ingest serves POST /articles; raises ConfigurationError when it would run without a token."""
    if settings.http_ingest is False:
        return False
    has_token = settings.api_token is not None and bool(settings.api_token.get_secret_value())
    if settings.http_ingest is None:
        return has_token or settings.dev_mode
    if not has_token and not settings.dev_mode:
        raise ConfigurationError(
            "HTTP ingest is on (NEWSFLOW_HTTP_INGEST=true) but NEWSFLOW_API_TOKEN is not set; "
            "set a token, or NEWSFLOW_DEV_MODE=true for a development setup",
            event="http_ingest.refused",
        )
    return True


def ingest_routes(settings: Settings, redis: Redis) -> list[APIRouter]:
    """The routes ingest adds beside health and metrics: POST /articles when HTTP ingest is enabled."""
    return [ingest_router(settings, redis)] if http_ingest_enabled(settings) else []


def ingest_router(settings: Settings, redis: Redis) -> APIRouter:
    """The POST /articles route, bound to these settings and this Redis client."""
    router = APIRouter()
    streams = names(settings)
    token = settings.api_token.get_secret_value() if settings.api_token is not None else ""
    bearer = HTTPBearer(auto_error=False, description="NEWSFLOW_API_TOKEN")

    # A default, not an Annotated[...] hint: with postponed annotations FastAPI cannot see the local `bearer`.
    async def require_token(credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:  # noqa: B008
        if not token:
            return  # dev mode without a token (http_ingest_enabled refused anything else)
        if credentials is None:
            raise HTTPException(401, detail="missing bearer token", headers={"WWW-Authenticate": "Bearer"})
        if not secrets.compare_digest(credentials.credentials.encode(), token.encode()):
            raise HTTPException(
                401, detail="invalid bearer token", headers={"WWW-Authenticate": 'Bearer error="invalid_token"'}
            )

    @router.post(
        "/articles",
        status_code=202,
        response_model=IngestResult,
        summary="Queue raw articles for the pipeline",
        description=(
            "Body: one raw article as `application/json`, or a batch as `application/x-ndjson` (one article per "
            "line). Each is validated with the ingest stage's rules and queued on the raw stream; the response "
            "gives each queued article's stream entry id and stable article id, and each refused one's reason. "
            "202 when something was queued, 422 when nothing was, 413 over the size limits."
        ),
        responses={
            401: {"description": "missing or wrong bearer token"},
            408: {"description": "the body did not arrive within NEWSFLOW_HTTP_BODY_TIMEOUT_S"},
            413: {"description": "an article over NEWSFLOW_MAX_ARTICLE_BYTES, or a batch over its limits"},
            415: {"description": "neither JSON nor JSON lines"},
            422: {"model": IngestResult, "description": "no article in the body is valid"},
            429: {"description": "over NEWSFLOW_HTTP_MAX_CONNECTIONS open connections; retry after Retry-After"},
            503: {"description": "Redis is unavailable; retry later"},
        },
        openapi_extra={"requestBody": _raw_article_body()},
        dependencies=[Depends(require_token)],
    )
    async def post_articles(request: Request) -> JSONResponse:
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type in JSON_LINES_TYPES:
            body = await read_body(request, settings.max_batch_bytes, "the batch", settings.http_body_timeout_s)
            lines = [(n, line.rstrip(b"\r")) for n, line in enumerate(body.split(b"\n"), start=1)]
            payloads: list[tuple[int | None, bytes]] = [(n, line) for n, line in lines if line.strip()]
            if len(payloads) > settings.max_batch_articles:
                raise HTTPException(
                    413, detail=f"{len(payloads):,} articles in the batch; the limit is {settings.max_batch_articles:,}"
                )
        elif content_type in JSON_TYPES:
            body = await read_body(request, settings.max_article_bytes, "the article", settings.http_body_timeout_s)
            payloads = [(None, body)]
        else:
            raise HTTPException(415, detail="send application/json (one article) or application/x-ndjson (a batch)")

        accepted: list[tuple[int | None, bytes, str]] = []
        errors: list[ArticleError] = []
        now = datetime.now(UTC)
        for line, payload in payloads:
            try:
                raw = parse_raw_payload(payload, max_bytes=settings.max_article_bytes)
            except Rejected as rej:
                errors.append(ArticleError(line=line, reason=rej.reason, message=rej.message))
                continue
            accepted.append((line, payload, ingest_article(raw, origin="http", received_at=now).id))
        if not payloads:
            errors.append(ArticleError(reason="empty_body", message="the request body holds no article"))
        if not accepted:
            return JSONResponse(IngestResult(queued=[], errors=errors).model_dump(mode="json"), status_code=422)
        try:
            entry_ids = await enqueue_raw(redis, streams, [payload for _, payload, _ in accepted], origin="http")
        except (RedisError, OSError) as exc:
            raise HTTPException(
                503, detail="the queue is unavailable; retry later", headers={"Retry-After": "5"}
            ) from exc
        queued = [
            QueuedArticle(line=line, entry_id=entry_id, article_id=article_id)
            for (line, _, article_id), entry_id in zip(accepted, entry_ids, strict=True)
        ]
        return JSONResponse(IngestResult(queued=queued, errors=errors).model_dump(mode="json"), status_code=202)

    return router

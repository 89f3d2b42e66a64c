"""The operator console under /console: pipeline, dead letters and an article browser, rendered on the server."""

# No `from __future__ import annotations` here: FastAPI resolves the routes' Annotated[..., Depends(local)]
# hints at definition time, and string annotations could not see the dependencies local to console_router.
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

import orjson
from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from markupsafe import Markup, escape
from redis.asyncio import Redis

from services.api.access import LOGIN_COOKIE, LOGIN_TTL_S, SESSION_COOKIE, SESSION_TTL_S, Access, Role
from services.api.pipeline import STUCK_AFTER_S, LagHistory, lag_charts, stage_rows
from services.api.query import DEFAULT_PAGE_SIZE, article_filters, invalid
from services.api.reading import marked_paragraphs, timeline
from shared.observability.status import collect_status, format_age
from shared.storage import HIGHLIGHT_END, HIGHLIGHT_START, ArticleFilters, Storage
from shared.storage.paging import Sort
from shared.streams import STAGES, StreamNames
from shared.transport import dlq

TEMPLATES = Jinja2Templates(directory=Path(__file__).parent / "templates")
DLQ_PAGE = 200
# A dead letter's page shows this much of its payload (read with GETRANGE: never the whole of a large one).
PAYLOAD_SHOWN_BYTES = 20_000
# The filters the article browser carries from page to page (and the facet links add to).
FILTER_PARAMS = (
    "q", "source", "language", "country", "entity", "entity_label", "category", "content_type", "duplicates"
)
# Entity facets in the order a reader scans them; other labels follow alphabetically.
LABEL_ORDER = ("PERSON", "ORG", "GPE", "LOC", "NORP", "EVENT", "PRODUCT")
LIST_FIELDS = ["id", "title", "source_domain", "published_at", "language", "category", "summary", "near_duplicates"]


@dataclass(frozen=True, slots=True)
class Session:
    """Who is looking at the console, and the CSRF token their forms carry."""

    role: Role
    csrf: str
    nonce: str

    @property
    def operator(self) -> bool:
        return self.role == "operator"


class LoginRequired(Exception):
    """No valid session: the console answers with its login page."""


def highlight(snippet: str) -> Markup:
    """A search snippet, escaped, with its « » match markers as <mark> elements."""
    return Markup(str(escape(snippet)).replace(HIGHLIGHT_START, "<mark>").replace(HIGHLIGHT_END, "</mark>"))


def readable_payload(payload: bytes, limit: int = 20_000) -> str:
    """A DLQ payload for reading: indented when it is JSON, else the text as it came (cut at `limit`)."""
    try:
        text = orjson.dumps(orjson.loads(payload), option=orjson.OPT_INDENT_2).decode()
    except orjson.JSONDecodeError:
        text = payload.decode("utf-8", "replace")
    return text[:limit]


TEMPLATES.env.filters["age"] = format_age
TEMPLATES.env.filters["readable_payload"] = readable_payload
TEMPLATES.env.filters["highlight"] = highlight


def console_router(
    access: Access, storage: Storage, redis: Redis, streams: StreamNames, history: LagHistory
) -> APIRouter:
    """Every console page and action, bound to this API's storage, Redis and tokens."""
    router = APIRouter(prefix="/console", include_in_schema=False)

    def current_session(request: Request) -> Session:
        found = access.read_session(request.cookies.get(SESSION_COOKIE))
        if found is None:
            if not access.open:
                raise LoginRequired()
            # Dev mode without tokens: a session is issued on the first page, so forms still carry CSRF tokens.
            value = access.issue_session("operator")
            request.state.new_session = value
            found = access.read_session(value)
            assert found is not None
        role, nonce = found
        return Session(role=role, csrf=access.csrf_token(nonce), nonce=nonce)

    async def operator_form(request: Request, session: Annotated[Session, Depends(current_session)]) -> Session:
        """A mutating action: operator role, same-origin request, and the session's CSRF token in the form."""
        origin = request.headers.get("origin")
        if origin is not None and origin != f"{request.url.scheme}://{request.url.netloc}":
            raise HTTPException(403, detail="cross-origin form submission refused")
        form = await request.form()
        if not access.check_csrf(session.nonce, str(form.get("csrf", ""))):
            raise HTTPException(403, detail="missing or wrong CSRF token; reload the page and try again")
        if not session.operator:
            raise HTTPException(403, detail="this action needs the operator token (sign in with it)")
        return session

    def render(request: Request, template: str, session: Session | None, **context: Any) -> HTMLResponse:
        response = TEMPLATES.TemplateResponse(
            request, template, {"session": session, "streams": streams, "section": template.split(".")[0], **context}
        )
        new_session = getattr(request.state, "new_session", None)
        if new_session:
            set_session_cookie(request, response, new_session)
        return response

    # -- sign in -----------------------------------------------------------------------------------

    # Login CSRF: another site must not be able to sign a visitor's browser in (to a session of its choosing) or
    # try tokens through it. The form carries a token bound to a nonce cookie (SameSite=Strict, HttpOnly) that
    # only this login page hands out, and a cross-origin submission is refused, as for every mutating form.

    def login_form(request: Request, next: str, error: str | None, status_code: int = 200) -> HTMLResponse:
        nonce = request.cookies.get(LOGIN_COOKIE) or secrets.token_hex(16)
        response = render(
            request, "login.html", None, next=safe_next(next), error=error, csrf=access.login_csrf_token(nonce)
        )
        response.status_code = status_code
        response.set_cookie(
            LOGIN_COOKIE, nonce, httponly=True, samesite="strict", path="/console/login",
            secure=request.url.scheme == "https", max_age=LOGIN_TTL_S,
        )
        return response

    @router.get("/login", response_class=HTMLResponse)
    async def login_page(request: Request, next: str = "/console/pipeline") -> HTMLResponse:
        return login_form(request, next, None)

    @router.post("/login", response_model=None)
    async def login(
        request: Request,
        token: Annotated[str, Form()],
        next: Annotated[str, Form()] = "/console/pipeline",
        csrf: Annotated[str, Form()] = "",
    ) -> Response:
        origin = request.headers.get("origin")
        if origin is not None and origin != f"{request.url.scheme}://{request.url.netloc}":
            raise HTTPException(403, detail="cross-origin form submission refused")
        if not access.check_login_csrf(request.cookies.get(LOGIN_COOKIE), csrf):
            # An expired or foreign form: a fresh one, and the token is not even looked at.
            return login_form(request, next, "That sign-in form has expired; please sign in again.", 403)
        role = access.role_of_token(token.strip())
        if role is None:
            return login_form(request, next, "That token is not valid here.")
        response = RedirectResponse(safe_next(next), status_code=303)
        set_session_cookie(request, response, access.issue_session(role))
        response.delete_cookie(LOGIN_COOKIE, path="/console/login")
        return response

    @router.post("/logout")
    async def logout(session: Annotated[Session, Depends(current_session)], request: Request) -> RedirectResponse:
        form = await request.form()
        if not access.check_csrf(session.nonce, str(form.get("csrf", ""))):
            raise HTTPException(403, detail="missing or wrong CSRF token")
        response = RedirectResponse("/console/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/console")
        return response

    @router.get("", response_class=RedirectResponse)
    async def home() -> RedirectResponse:
        return RedirectResponse("/console/pipeline", status_code=303)

    # -- pipeline ----------------------------------------------------------------------------------

    async def pipeline_context() -> dict[str, Any]:
        status = await collect_status(redis, streams, stuck_after_s=STUCK_AFTER_S)
        now_ms = int(time.time() * 1000)
        return {
            "rows": stage_rows(status, streams),
            "charts": lag_charts(history.samples(), now_ms),
            "samples": len(history.samples()),
            "dlq_length": status.dlq_length,
            "dlq_by_reason": status.dlq_by_reason,
            "taken_at": time.strftime("%H:%M:%S", time.gmtime(status.taken_at_ms / 1000)),
        }

    @router.get("/pipeline", response_class=HTMLResponse)
    async def pipeline_page(request: Request, session: Annotated[Session, Depends(current_session)]) -> HTMLResponse:
        return render(request, "pipeline.html", session, **await pipeline_context())

    @router.get("/pipeline/live", response_class=HTMLResponse)
    async def pipeline_live(request: Request, session: Annotated[Session, Depends(current_session)]) -> HTMLResponse:
        """The page's live section alone, which the page's script swaps in every few seconds."""
        return render(request, "_pipeline_live.html", session, **await pipeline_context())

    # -- dead letters ------------------------------------------------------------------------------

    async def get_header_or_404(entry_id: str) -> dlq.DlqHeader:
        try:
            header = await dlq.get_header(redis, streams, entry_id)
        except dlq.BadEntryId as exc:
            raise HTTPException(404, detail=str(exc)) from exc
        if header is None:
            raise HTTPException(404, detail=f"no DLQ entry {entry_id}")
        return header

    async def get_entry_or_404(entry_id: str, *, limit: int) -> dlq.DlqEntry:
        try:
            entry = await dlq.get_entry(redis, streams, entry_id, limit=limit)
        except dlq.BadEntryId as exc:
            raise HTTPException(404, detail=str(exc)) from exc
        if entry is None:
            raise HTTPException(404, detail=f"no DLQ entry {entry_id}")
        return entry

    @router.get("/dlq", response_class=HTMLResponse)
    async def dlq_page(
        request: Request,
        session: Annotated[Session, Depends(current_session)],
        stage: str | None = None,
        reason: str | None = None,
        entry: str | None = None,
        notice: str | None = None,
    ) -> HTMLResponse:
        counts = await dlq.counts_by_reason(redis, streams)
        entries = await dlq.list_headers(redis, streams, stage=stage or None, reason=reason or None, limit=DLQ_PAGE)
        shown = None
        shown_id = entry or (entries[0].id if entries else None)
        if shown_id:
            # Only the payload's first bytes are read: what the page shows, whatever the payload's size.
            shown = await get_entry_or_404(shown_id, limit=PAYLOAD_SHOWN_BYTES)
        return render(
            request, "dlq.html", session, counts=sorted(counts.items()), entries=entries, shown=shown,
            stage=stage or "", reason=reason or "", notice=notice, limit=DLQ_PAGE, stages=STAGES,
        )

    @router.get("/dlq/{entry_id}/confirm", response_class=HTMLResponse)
    async def dlq_confirm(
        request: Request, entry_id: str, action: str, session: Annotated[Session, Depends(current_session)]
    ) -> HTMLResponse:
        if action not in ("replay", "delete"):
            raise invalid("action", "is replay or delete")
        entry = await get_entry_or_404(entry_id, limit=0)
        target = streams.input_of(entry.letter.stage) if entry.letter.stage in STAGES else None
        return render(request, "dlq_confirm.html", session, entry=entry, action=action, target=target)

    @router.post("/dlq/{entry_id}/replay")
    async def dlq_replay(entry_id: str, session: Annotated[Session, Depends(operator_form)]) -> RedirectResponse:
        header = await get_header_or_404(entry_id)
        (new_id,) = await dlq.replay(redis, streams, [header])
        if new_id is None:
            raise HTTPException(409, detail=f"DLQ entry {entry_id} was replayed or deleted meanwhile")
        notice = f"Replayed {entry_id} onto {streams.input_of(header.letter.stage)} as {new_id}."
        return RedirectResponse("/console/dlq?" + urlencode({"notice": notice}), status_code=303)

    @router.post("/dlq/{entry_id}/delete")
    async def dlq_delete(entry_id: str, session: Annotated[Session, Depends(operator_form)]) -> RedirectResponse:
        header = await get_header_or_404(entry_id)
        await dlq.delete(redis, streams, [header])
        return RedirectResponse("/console/dlq?" + urlencode({"notice": f"Deleted {entry_id}."}), status_code=303)

    # -- articles ----------------------------------------------------------------------------------

    @router.get("/articles", response_class=HTMLResponse)
    async def articles_page(
        request: Request,
        session: Annotated[Session, Depends(current_session)],
        filters: Annotated[ArticleFilters, Depends(article_filters)],
        cursor: str | None = None,
    ) -> HTMLResponse:
        sort = Sort.parse("relevance" if filters.query and filters.query.strip() else "-published_at")
        try:
            page = await storage.query_articles(
                filters, sort=sort, limit=DEFAULT_PAGE_SIZE, cursor=cursor, fields=LIST_FIELDS
            )
        except ValueError as error:
            raise invalid("cursor", str(error)) from error
        facets = await storage.facets(filters, size=8)
        current = {name: request.query_params[name] for name in FILTER_PARAMS if request.query_params.get(name)}
        labels = sorted(facets.entities, key=lambda label: (*LABEL_ORDER, label).index(label))
        return render(
            request, "articles.html", session, page=page, facets=facets, current=current,
            entity_facets=[(label, facets.entities[label]) for label in labels],
            with_param=lambda name, value: "?" + urlencode({**current, name: value}),
            without_param=lambda name: "?" + urlencode({k: v for k, v in current.items() if k != name}),
            next_link="?" + urlencode({**current, "cursor": page.next_cursor}) if page.next_cursor else None,
        )

    @router.get("/articles/{article_id}", response_class=HTMLResponse)
    async def article_page(
        request: Request, article_id: str, session: Annotated[Session, Depends(current_session)]
    ) -> HTMLResponse:
        record = await storage.get_article(article_id)
        if record is None:
            raise HTTPException(404, detail=f"no article with id {article_id}")
        duplicates = await storage.near_duplicates(article_id, fields=["id", "title", "source_domain", "published_at"])
        steps, total_ms = timeline(record)
        by_label: dict[str, list[str]] = {}
        for entity in record.entities:
            by_label.setdefault(entity.label, []).append(entity.name)
        return render(
            request, "article.html", session, record=record, paragraphs=marked_paragraphs(record),
            duplicates=duplicates, steps=steps, total_ms=total_ms, by_label=sorted(by_label.items()),
        )

    return router


def safe_next(target: str) -> str:
    """Only a console path: a login link must not send anyone to another site."""
    return target if target.startswith("/console/") and not target.startswith("//") else "/console/pipeline"


def set_session_cookie(request: Request, response: Response, value: str) -> None:
    """HttpOnly, SameSite=Strict, scoped to the console; Secure when served over HTTPS."""
    response.set_cookie(
        SESSION_COOKIE, value, httponly=True, samesite="strict", path="/console",
        secure=request.url.scheme == "https", max_age=SESSION_TTL_S,
    )

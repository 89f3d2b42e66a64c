"""The read API as a client uses it: `newsflow serve api` as a real process over SQLite and PostgreSQL, httpx calls.

On PostgreSQL the API connects as its own read-only role, created by deploy/postgres/api-role.sql (the same SQL
the compose file's postgres runs).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg
import pytest

from shared.storage import open_storage
from tests.conftest import ServiceProcess
from tests.integration.test_storage import make_record
from tests.integration.test_storage_query import fill
from tests.servers import on_free_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
READ_TOKEN = "read-" + uuid.uuid4().hex
OPERATOR_TOKEN = "operator-" + uuid.uuid4().hex
INGEST_TOKEN = "ingest-" + uuid.uuid4().hex


@dataclass
class RunningApi:
    """A `newsflow serve api` process and a client holding the read token."""

    service: ServiceProcess
    url: str
    client: httpx.Client
    storage_url: str

    def output(self) -> str:
        self.service.stop()
        return self.service.output()


def start_api(env: dict[str, str], timeout: float = 60.0) -> ServiceProcess:
    """Start the API on a free port of its own (another one should it be taken meanwhile); `.base_url` is where.

    It binds its port before it logs `api.started`, so what answers there is this process, not another one that
    took the port first; its output is read all along (a pipe left unread blocks a process that logs every request).
    """
    return on_free_port(
        lambda port: ServiceProcess("api", {**env, "NEWSFLOW_HTTP_PORT": str(port)}).start(timeout=timeout)
    )


def console_login(client: httpx.Client, token: str) -> httpx.Response:
    """Sign a client in to the console as a browser does: the login page (its CSRF token and cookie), then the form."""
    page = client.get("/console/login")
    csrf = page.text.split('name="csrf" value="')[1].split('"')[0]
    return client.post("/console/login", data={"token": token, "csrf": csrf})


def api_env(storage_url: str, **extra: str) -> dict[str, str]:
    """The API's environment: its storage, the three tokens, a private key prefix (start_api picks the port)."""
    env = dict(os.environ)
    env.update({
        "NEWSFLOW_STORAGE_URL": storage_url,
        "NEWSFLOW_KEY_PREFIX": f"nftest-{uuid.uuid4().hex[:10]}",
        "NEWSFLOW_READ_TOKEN": READ_TOKEN,
        "NEWSFLOW_OPERATOR_TOKEN": OPERATOR_TOKEN,
        "NEWSFLOW_API_TOKEN": INGEST_TOKEN,
        "NEWSFLOW_LOG_FORMAT": "json",
        "NEWSFLOW_STATUS_SAMPLE_S": "60",
    })
    env.update(extra)
    return env


async def populate(url: str) -> None:
    storage = open_storage(url)
    try:
        await storage.migrate()
        await fill(storage)
        await storage.upsert_articles([make_record("brief-1", title="Short item", content_type="brief",
                                                   body="A brief. Putin spoke briefly.")])
    finally:
        await storage.close()


def with_search_path(url: str, schema: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{schema}"


def readonly_role(owner_url: str, schema: str) -> tuple[str, str]:
    """Create the API's role with deploy/postgres/api-role.sql for this schema; (role, its URL)."""
    role = f"nf_api_{uuid.uuid4().hex[:10]}"
    sql = (ROOT / "deploy" / "postgres" / "api-role.sql").read_text()
    parts = urlsplit(owner_url)
    values = {"api_role": role, "database": parts.path.lstrip("/"), "schema": schema, "owner": parts.username or ""}
    for name, value in values.items():
        sql = sql.replace(f':"{name}"', f'"{value}"')
    sql = sql.replace(":'api_password'", "'not-used-with-trust'")
    with psycopg.connect(owner_url, autocommit=True) as admin:
        for statement in (part.strip() for part in sql.split(";")):
            lines = [line for line in statement.splitlines() if not line.lstrip().startswith("--")]
            if "".join(lines).strip():
                admin.execute("\n".join(lines).encode())
    host = parts.netloc.rpartition("@")[2]
    role_url = urlunsplit((parts.scheme, f"{role}@{host}", parts.path, parts.query, ""))
    return role, with_search_path(role_url, schema)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def api(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApi]:
    """The API over a filled database on each backend (PostgreSQL: through the read-only role)."""
    role = schema = None
    postgres_url = ""
    if request.param == "sqlite":
        owner_url = api_url = f"sqlite:///{tmp_path_factory.mktemp('api')}/store.db"
    else:
        # The session's PostgreSQL (the machine's, or a private cluster), asked for only by this half.
        postgres_url = str(request.getfixturevalue("postgres_url"))
        schema = f"nf_test_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            admin.execute(f"CREATE SCHEMA {schema}".encode())
        owner_url = with_search_path(postgres_url, schema)
    try:
        asyncio.run(populate(owner_url))
        if request.param == "postgres":
            assert schema is not None
            role, api_url = readonly_role(postgres_url, schema)
        service = start_api(api_env(api_url))
        client = httpx.Client(base_url=service.base_url, headers={"Authorization": f"Bearer {READ_TOKEN}"},
                              timeout=30)
        try:
            yield RunningApi(service, service.base_url, client, api_url)
        finally:
            client.close()
            service.stop()
    finally:
        if schema is not None:
            with psycopg.connect(postgres_url, autocommit=True) as admin:
                admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE".encode())
                if role is not None:
                    admin.execute(f'DROP OWNED BY "{role}"'.encode())
                    admin.execute(f'DROP ROLE "{role}"'.encode())


def ids(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


def test_tokens_guard_everything_but_health_and_docs(api: RunningApi) -> None:
    assert httpx.get(f"{api.url}/healthz").json() == {"status": "ok", "service": "api"}
    assert httpx.get(f"{api.url}/articles").status_code == 401
    for token in ("wrong", INGEST_TOKEN):  # the ingest token does not read
        response = httpx.get(f"{api.url}/articles", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401 and response.json()["detail"] == "invalid bearer token"
    operator = httpx.get(f"{api.url}/articles?limit=1", headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"})
    assert operator.status_code == 200
    assert "swagger" in httpx.get(f"{api.url}/docs").text.lower()
    paths = httpx.get(f"{api.url}/openapi.json").json()["paths"]
    routes = {"/articles", "/articles/facets", "/articles/{article_id}", "/articles/{article_id}/duplicates"}
    assert routes <= set(paths)


def test_search_is_ranked_and_filtered(api: RunningApi) -> None:
    hits = api.client.get("/articles", params={"q": "putin"}).json()
    assert hits["sort"] == "relevance"
    assert sorted(item["id"] for item in hits["items"]) == ["a0", "a2", "a4", "brief-1"]
    assert all(item["score"] > 0 and "«" in item["snippet"] for item in hits["items"])
    assert ids(api.client.get("/articles", params={"q": "putin", "content_type": "brief"})) == ["brief-1"]
    assert ids(api.client.get("/articles", params={"q": "putin", "source": "two.example"})) == ["a4"]
    assert ids(api.client.get("/articles", params={"country": "Germany", "language": "en"})) == ["a3", "a1"]
    assert ids(api.client.get("/articles", params={"entity": "scholz", "entity_label": "PERSON",
                                                   "sort": "published_at"})) == ["a1", "a3", "a5"]
    assert ids(api.client.get("/articles", params={"category": "business", "published_since": "2024-06-02",
                                                   "published_until": "2024-06-03T00:00:00Z"})) == ["a3"]
    assert ids(api.client.get("/articles", params={"duplicates": "yes"})) == ["a2"]
    assert "a2" not in ids(api.client.get("/articles", params={"duplicates": "no"}))
    assert ids(api.client.get("/articles", params={"received_since": "2024-06-11T12:04:00+00:00",
                                                   "sort": "-received_at", "content_type": "article"})) == ["a5", "a4"]


def test_pages_follow_the_cursor_and_project_fields(api: RunningApi) -> None:
    seen: list[str] = []
    params: dict[str, str | int] = {"limit": 2, "fields": "id,external_id,title"}
    while True:
        page = api.client.get("/articles", params=params).json()
        assert all(set(item) == {"id", "external_id", "title"} for item in page["items"])
        seen += [item["id"] for item in page["items"]]
        if page["next_cursor"] is None:
            break
        params["cursor"] = page["next_cursor"]
    assert len(seen) == len(set(seen)) == 7


def test_facets_count_the_same_filters(api: RunningApi) -> None:
    facets = api.client.get("/articles/facets", params={"q": "putin", "content_type": "article"}).json()
    assert facets["total"] == 3
    assert facets["countries"] == [{"value": "RU", "count": 3}]
    assert facets["sources"] == [{"value": "one.example", "count": 2}, {"value": "two.example", "count": 1}]
    assert facets["entities"]["PERSON"] == [{"value": "Vladimir Putin", "count": 3}]
    assert [day["value"] for day in facets["days"]] == ["2024-06-01", "2024-06-02", "2024-06-03"]
    assert api.client.get("/articles/facets").json()["content_types"] == [
        {"value": "article", "count": 6}, {"value": "brief", "count": 1}
    ]


def test_one_article_its_trace_and_its_duplicates(api: RunningApi) -> None:
    record = api.client.get("/articles/a2").json()
    assert record["external_id"] == "ext-a2" and record["trace"][0]["stage"] == "publish"
    assert api.client.get("/articles/a2", params={"fields": "id,trace"}).json().keys() == {"id", "trace"}
    duplicates = api.client.get("/articles/a2/duplicates", params={"fields": "id"}).json()
    assert duplicates == {"items": [{"id": "a0", "similarity": 0.91, "relation": "earlier"}]}
    missing = api.client.get("/articles/nope")
    assert missing.status_code == 404 and missing.json()["detail"] == "no article with id nope"
    assert api.client.get("/articles/nope/duplicates").status_code == 404


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 101}, "limit"),
        ({"q": "x" * 501}, "q"),
        ({"sort": "title"}, "sort"),
        ({"sort": "relevance"}, "sort"),
        ({"fields": "id,nope"}, "fields"),
        ({"cursor": "garbage"}, "cursor"),
        ({"published_since": "last tuesday"}, "published_since"),
        ({"published_since": "2024-06-03", "published_until": "2024-06-01"}, "published_until"),
        ({"content_type": "poem"}, "content_type"),
        ({"duplicates": "perhaps"}, "duplicates"),
    ],
)
def test_bad_parameters_name_the_field(api: RunningApi, params: dict[str, object], field: str) -> None:
    response = api.client.get("/articles", params=params)
    assert response.status_code == 422
    assert [error["loc"][-1] for error in response.json()["detail"]] == [field]


def test_a_cursor_only_works_for_its_own_query(api: RunningApi) -> None:
    cursor = api.client.get("/articles", params={"limit": 1}).json()["next_cursor"]
    response = api.client.get("/articles", params={"limit": 1, "cursor": cursor, "source": "one.example"})
    assert response.status_code == 422 and "another query" in response.json()["detail"][0]["msg"]


def test_the_postgres_role_cannot_write(api: RunningApi) -> None:
    if not api.storage_url.startswith("postgresql"):
        pytest.skip("PostgreSQL only: SQLite has no roles")
    with psycopg.connect(api.storage_url, autocommit=True) as connection:
        assert connection.execute(b"SELECT count(*) FROM articles").fetchone() == (7,)
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            connection.execute(b"DELETE FROM articles")
        connection.execute(b"SET default_transaction_read_only = off")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            connection.execute(b"DELETE FROM articles")


def test_refuses_to_start_without_a_read_token(tmp_path: Path) -> None:
    env = api_env(f"sqlite:///{tmp_path}/x.db", NEWSFLOW_READ_TOKEN="", NEWSFLOW_OPERATOR_TOKEN="")
    done = subprocess.run([sys.executable, "-m", "newsflow.cli", "serve", "api"], cwd=ROOT, env=env, text=True,
                          capture_output=True, timeout=60)
    assert done.returncode == 2
    assert '"api.refused"' in done.stdout and "Traceback" not in done.stdout + done.stderr


def test_the_console_login_form_carries_a_csrf_token(api: RunningApi) -> None:
    """Another site cannot sign a visitor's browser in, nor try tokens through it: the form's token is bound to a
    cookie only the login page sets, and cross-origin submissions are refused."""
    with httpx.Client(base_url=api.url, follow_redirects=False) as browser, \
            httpx.Client(base_url=api.url, follow_redirects=False) as other:
        page = browser.get("/console/login")
        assert page.status_code == 200
        cookie = page.headers["set-cookie"]
        assert cookie.startswith("newsflow_console_login=") and "HttpOnly" in cookie
        assert "SameSite=strict" in cookie and "Path=/console/login" in cookie
        csrf = page.text.split('name="csrf" value="')[1].split('"')[0]
        # A form posted from elsewhere: no token, a forged one, or this page's token without its cookie.
        for client, data in ((browser, {}), (browser, {"csrf": "forged"}), (other, {"csrf": csrf})):
            refused = client.post("/console/login", data={"token": READ_TOKEN, **data})
            assert refused.status_code == 403 and "expired" in refused.text, refused.text
            assert "newsflow_console=" not in refused.headers.get("set-cookie", "")
        cross = browser.post("/console/login", data={"token": READ_TOKEN, "csrf": csrf},
                             headers={"Origin": "https://evil.example"})
        assert cross.status_code == 403 and "newsflow_console=" not in cross.headers.get("set-cookie", "")
        # The page's own form: a wrong token is told so, the right one signs in and retires the login cookie.
        wrong = browser.post("/console/login", data={"token": "nope", "csrf": csrf})
        assert wrong.status_code == 200 and "not valid" in wrong.text
        signed_in = browser.post("/console/login", data={"token": READ_TOKEN, "csrf": csrf})
        assert signed_in.status_code == 303, signed_in.text
        assert browser.get("/console/pipeline").status_code == 200
        assert "newsflow_console_login" not in browser.cookies

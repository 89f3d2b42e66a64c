"""HTTP ingest against the running ingest service: auth, size limits, validation, batches, what is echoed back."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from typing import Any

import httpx
import orjson
import pytest
import redis

from shared.events import IngestedArticle
from tests.conftest import ROOT, SEED, ServiceProcess, wait_for

pytestmark = pytest.mark.integration

TOKEN = "test-token-5b1d0c"
ARTICLE = {"id": "seed-000", "url": "https://example.com/news/1?utm_source=x", "text": SEED.read_text()}


def http_env(service_env: dict[str, str], **extra: str) -> dict[str, str]:
    return {**service_env, **extra}


@pytest.fixture
def ingest_api(service_env: dict[str, str], start_service: Callable[..., ServiceProcess]) -> tuple[str, ServiceProcess]:
    env = http_env(
        service_env,
        NEWSFLOW_API_TOKEN=TOKEN,
        NEWSFLOW_MAX_ARTICLE_BYTES="20000",
        NEWSFLOW_MAX_BATCH_BYTES="60000",
        NEWSFLOW_MAX_BATCH_ARTICLES="5",
    )
    service = start_service("ingest", env, http=True)
    return service.base_url, service


def auth(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def stream(redis_url: str, name: str) -> list[tuple[bytes, dict[bytes, bytes]]]:
    return list(redis.Redis.from_url(redis_url).xrange(name))


def test_token_is_required_and_checked(ingest_api: tuple[str, ServiceProcess], redis_url: str, key_prefix: str) -> None:
    base, _ = ingest_api
    missing = httpx.post(f"{base}/articles", json=ARTICLE)
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"].startswith("Bearer")
    wrong = httpx.post(f"{base}/articles", json=ARTICLE, headers=auth("not-the-token"))
    assert wrong.status_code == 401
    basic = httpx.post(f"{base}/articles", json=ARTICLE, headers={"Authorization": f"Basic {TOKEN}"})
    assert basic.status_code == 401
    assert stream(redis_url, f"{key_prefix}:raw") == [], "nothing is queued without the right token"

    # What `curl -H "Authorization: Bearer …" --data @article.json` sends (no JSON content type).
    right = httpx.post(
        f"{base}/articles",
        content=orjson.dumps(ARTICLE),
        headers={**auth(), "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert right.status_code == 202, right.text
    [queued] = right.json()["queued"]
    assert right.json()["errors"] == []
    [(entry_id, fields)] = stream(redis_url, f"{key_prefix}:raw")
    assert entry_id.decode() == queued["entry_id"]
    assert fields[b"origin"] == b"http"
    assert orjson.loads(fields[b"data"]) == ARTICLE

    # The ingest stage picks it up; the id the API answered is the article's stable id.
    def ingested() -> list[IngestedArticle]:
        return [IngestedArticle.model_validate_json(f[b"data"]) for _, f in stream(redis_url, f"{key_prefix}:ingested")]

    [article] = wait_for(ingested, timeout=30, what="the ingest stage to process the HTTP article")  # type: ignore[misc]
    assert article.id == queued["article_id"]
    assert article.ingest.origin == "http"
    assert article.ingest.external_id == "seed-000"


def test_size_limits_answer_413(ingest_api: tuple[str, ServiceProcess], redis_url: str, key_prefix: str) -> None:
    base, _ = ingest_api
    big = {"text": "word " * 5000}  # 25 kB > NEWSFLOW_MAX_ARTICLE_BYTES=20000
    one = httpx.post(f"{base}/articles", json=big, headers=auth())
    assert one.status_code == 413
    assert "20,000" in one.json()["detail"]

    small = orjson.dumps({"text": "word " * 2000})  # 10 kB each
    too_many_bytes = b"\n".join([small] * 5 + [small])  # 60 kB+ > 60000 batch bytes
    batch = httpx.post(
        f"{base}/articles", content=too_many_bytes, headers={**auth(), "Content-Type": "application/x-ndjson"}
    )
    assert batch.status_code == 413
    too_many_articles = b"\n".join([orjson.dumps({"text": f"article {i}"}) for i in range(6)])
    count = httpx.post(
        f"{base}/articles", content=too_many_articles, headers={**auth(), "Content-Type": "application/x-ndjson"}
    )
    assert count.status_code == 413
    assert "limit is 5" in count.json()["detail"]
    assert stream(redis_url, f"{key_prefix}:raw") == []


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"text": "x", "html": "<p>x</p>"}, "both_text_and_html"),
        ({"title": "no content"}, "no_text_or_html"),
        ({"text": "   \n\t "}, "empty_content"),
        ({"text": "fine", "surprise": 1}, "invalid_shape"),
        ({"text": "fine", "schema_version": 7}, "unknown_schema_version"),
        ([{"text": "a list, not an article"}], "invalid_shape"),
    ],
)
def test_invalid_articles_answer_422_with_the_reason(
    ingest_api: tuple[str, ServiceProcess], body: Any, reason: str, redis_url: str, key_prefix: str
) -> None:
    base, _ = ingest_api
    response = httpx.post(f"{base}/articles", json=body, headers=auth())
    assert response.status_code == 422, response.text
    assert response.json()["queued"] == []
    [error] = response.json()["errors"]
    assert error["reason"] == reason
    assert error["message"]
    assert stream(redis_url, f"{key_prefix}:raw") == []


def test_invalid_json_and_wrong_content_type(ingest_api: tuple[str, ServiceProcess]) -> None:
    base, _ = ingest_api
    broken = httpx.post(
        f"{base}/articles", content=b'{"text": "unterminated', headers={**auth(), "Content-Type": "application/json"}
    )
    assert broken.status_code == 422
    assert broken.json()["errors"][0]["reason"] == "invalid_json"
    xml = httpx.post(f"{base}/articles", content=b"<a/>", headers={**auth(), "Content-Type": "text/xml"})
    assert xml.status_code == 415


def test_batch_queues_the_valid_lines_and_reports_the_others(
    ingest_api: tuple[str, ServiceProcess], redis_url: str, key_prefix: str
) -> None:
    base, _ = ingest_api
    lines = [
        orjson.dumps({"id": "a", "text": "First article body."}),
        orjson.dumps({"id": "b", "html": "<html><body><p>Second article.</p></body></html>"}),
        b"{not json",
        b"",  # blank lines are skipped, not errors
        orjson.dumps({"id": "c", "url": "https://example.org/c", "text": "Third article."}),
        orjson.dumps({"id": "d", "text": "x", "html": "y"}),
    ]
    response = httpx.post(
        f"{base}/articles",
        content=b"\n".join(lines) + b"\n",
        headers={**auth(), "Content-Type": "application/x-ndjson"},
    )
    assert response.status_code == 202, response.text
    result = response.json()
    assert [q["line"] for q in result["queued"]] == [1, 2, 5]
    assert [(e["line"], e["reason"]) for e in result["errors"]] == [(3, "invalid_json"), (6, "both_text_and_html")]
    raw = stream(redis_url, f"{key_prefix}:raw")
    assert [entry_id.decode() for entry_id, _ in raw] == [q["entry_id"] for q in result["queued"]]
    assert [orjson.loads(f[b"data"])["id"] for _, f in raw] == ["a", "b", "c"]
    assert len({q["article_id"] for q in result["queued"]}) == 3

    all_bad = httpx.post(
        f"{base}/articles", content=b"nope\n[]\n", headers={**auth(), "Content-Type": "application/x-ndjson"}
    )
    assert all_bad.status_code == 422
    assert [e["reason"] for e in all_bad.json()["errors"]] == ["invalid_json", "invalid_shape"]


def test_markup_is_never_echoed_back(ingest_api: tuple[str, ServiceProcess]) -> None:
    base, _ = ingest_api
    script = "<script>alert('x')</script>"
    for body in ({"text": script, "html": script}, {"text": "ok", "title": script, "bogus": script}):
        response = httpx.post(f"{base}/articles", json=body, headers=auth())
        assert response.status_code == 422
        assert response.headers["content-type"].startswith("application/json")
        assert response.headers["x-content-type-options"] == "nosniff"
        assert "<script" not in response.text


def test_openapi_documents_the_ingest_api(ingest_api: tuple[str, ServiceProcess]) -> None:
    base, _ = ingest_api
    assert httpx.get(f"{base}/docs").status_code == 200
    spec = httpx.get(f"{base}/openapi.json").json()
    post = spec["paths"]["/articles"]["post"]
    assert set(post["requestBody"]["content"]) == {"application/json", "application/x-ndjson"}
    assert {"202", "401", "413", "422"} <= set(post["responses"])
    assert "HTTPBearer" in spec["components"]["securitySchemes"]


def test_http_ingest_without_a_token_refuses_to_start(service_env: dict[str, str]) -> None:
    # It refuses before it binds anything: any port will do.
    env = http_env(service_env, NEWSFLOW_HTTP_INGEST="true", NEWSFLOW_HTTP_PORT="8000")
    env.pop("NEWSFLOW_API_TOKEN", None)
    env.pop("NEWSFLOW_DEV_MODE", None)
    run = subprocess.run(
        [sys.executable, "-m", "newsflow.cli", "serve", "ingest"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 2, run.stdout[-2000:]
    assert "Traceback" not in run.stdout + run.stderr
    assert "http_ingest.refused" in run.stdout + run.stderr
    assert '"stage.started"' not in run.stdout


def test_dev_mode_serves_http_ingest_without_a_token(
    service_env: dict[str, str], start_service: Callable[..., ServiceProcess]
) -> None:
    env = http_env(service_env, NEWSFLOW_HTTP_INGEST="true", NEWSFLOW_DEV_MODE="true")
    env.pop("NEWSFLOW_API_TOKEN", None)
    base = start_service("ingest", env, http=True).base_url
    assert httpx.post(f"{base}/articles", json={"text": "dev article"}).status_code == 202


def test_without_a_token_http_ingest_stays_off_by_default(
    service_env: dict[str, str], start_service: Callable[..., ServiceProcess]
) -> None:
    env = http_env(service_env)
    for name in ("NEWSFLOW_API_TOKEN", "NEWSFLOW_DEV_MODE", "NEWSFLOW_HTTP_INGEST"):
        env.pop(name, None)
    base = start_service("ingest", env, http=True).base_url
    assert httpx.get(f"{base}/healthz").json()["status"] == "ok"
    assert httpx.post(f"{base}/articles", json={"text": "x"}).status_code == 404

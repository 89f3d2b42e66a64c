"""Secrets never reach the logs; markup is never stored or echoed back.

Services run against a password-protected, test-owned redis-server; the run includes an outage (so the retry
warnings with their error messages are logged), bad input (DLQ lines), refused HTTP calls and `newsflow status`.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import orjson
import pytest
import redis

from shared.events import CleanedArticle
from tests.conftest import ROOT, SEED, ServiceProcess, wait_for
from tests.servers import PortTaken, RedisServer, on_free_port, redis_server_binary, redis_up

pytestmark = pytest.mark.integration

SCRIPTED_PAGE = """<!doctype html><html><head><title>Harbour <b>reopens</b></title>
<script>document.write('<img src=x onerror=alert(1)>')</script><style>p{color:red}</style></head>
<body><article><h1>Harbour <em>reopens</em> after the storm</h1>
<p>The harbour reopened on Monday after a week of repairs, the port authority said in a statement.</p>
<p>Fishing boats returned to their moorings and the ferry service resumed its
<a href="javascript:alert(1)">timetable</a> with the first crossing at dawn,
carrying more than two hundred passengers.</p>
<p>Repairs to the sea wall will continue through the spring, officials added.</p></article></body></html>"""


@pytest.fixture
def password_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A test-owned redis-server that requires a password (requirepass), restartable on the same port."""
    server = RedisServer(tmp_path / "redis", password=f"pw-{secrets.token_hex(12)}")
    server.start()
    yield server
    server.stop(kill=True)


def test_no_secret_in_any_log_line(
    password_redis: RedisServer,
    service_env: dict[str, str],
    key_prefix: str,
    start_service: Callable[..., ServiceProcess],
) -> None:
    token = f"tok-{secrets.token_hex(12)}"
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(port=password_redis.port, password="wrong").ping()
    env = {
        **service_env,
        "NEWSFLOW_REDIS_URL": password_redis.url,
        "NEWSFLOW_API_TOKEN": token,
        "NEWSFLOW_LOG_LEVEL": "DEBUG",
    }
    services = {stage: start_service(stage, env, http=True) for stage in ("ingest", "clean")}
    api = services["ingest"].base_url

    auth = {"Authorization": f"Bearer {token}"}
    assert httpx.post(f"{api}/articles", json={"text": SEED.read_text()}, headers=auth).status_code == 202
    assert (
        httpx.post(
            f"{api}/articles", json={"html": SCRIPTED_PAGE, "url": "https://example.com/h"}, headers=auth
        ).status_code
        == 202
    )
    assert httpx.post(f"{api}/articles", json={"text": "x", "html": "y"}, headers=auth).status_code == 422
    assert (
        httpx.post(f"{api}/articles", json={"text": "x"}, headers={"Authorization": "Bearer " + token[:-1]}).status_code
        == 401
    )
    client = redis.Redis.from_url(password_redis.url)
    client.xadd(f"{key_prefix}:raw", {"data": b"\xff\xfe not utf-8"})
    wait_for(
        lambda: client.xlen(f"{key_prefix}:cleaned") == 2 and client.xlen(f"{key_prefix}:dlq") == 1,
        timeout=60,
        what="both articles cleaned and the bad one dead-lettered",
    )

    # Markup is never stored: the cleaned article (what enrich and storage build on) is plain text.
    cleaned = [CleanedArticle.model_validate_json(f[b"data"]) for _, f in client.xrange(f"{key_prefix}:cleaned")]
    harbour = next(a for a in cleaned if a.ingest.kind == "html")
    assert harbour.clean is not None
    for text in (harbour.clean.title, harbour.clean.body):
        assert "<" not in text and "alert(" not in text, text
    assert "Harbour reopens" in harbour.clean.title

    # An outage: the services log their retries (with the errors) and carry on when Redis returns.
    password_redis.stop()
    time.sleep(3)
    httpx.get(f"{api}/readyz")
    httpx.get(f"{api}/metrics")
    password_redis.start()
    wait_for(lambda: httpx.get(f"{api}/readyz").status_code == 200, timeout=30, what="ready again")
    assert (
        httpx.post(
            f"{api}/articles", json={"text": SEED.read_text(), "url": "https://example.com/again"}, headers=auth
        ).status_code
        == 202
    )
    try:
        wait_for(lambda: client.xlen(f"{key_prefix}:cleaned") == 3, timeout=60, what="processing after the outage")
    except AssertionError as exc:
        tails = "\n".join(f"--- {n}\n" + "\n".join(s.lines[-25:]) for n, s in services.items())
        raise AssertionError(f"{exc}; dlq={client.xlen(f'{key_prefix}:dlq')}\n{tails}") from None

    status_ok = subprocess.run(
        [sys.executable, "-m", "newsflow.cli", "status"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    password_redis.stop()
    status_down = subprocess.run(
        [sys.executable, "-m", "newsflow.cli", "status"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert status_down.returncode == 2
    for service in services.values():
        service.stop()

    logs = {stage: service.output() for stage, service in services.items()}
    logs["status"] = status_ok.stdout + status_ok.stderr + status_down.stdout + status_down.stderr
    assert "dependency.unavailable" in logs["ingest"] + logs["clean"], "the outage was logged"
    for where, text in logs.items():
        assert password_redis.password not in text, f"the Redis password appears in {where}'s output"
        assert token not in text, f"the API token appears in {where}'s output"


def make_certificates(directory: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate for 127.0.0.1 (openssl CLI)."""
    directory.mkdir(parents=True, exist_ok=True)

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True)

    openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=newsflow-test-ca",
    )
    openssl(
        "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1"
    )
    (directory / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl(
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    )
    return directory / "ca.pem", directory / "server.pem", directory / "server.key"


@pytest.fixture
def tls_redis_url(tmp_path: Path) -> Iterator[str]:
    """A password-protected redis-server that speaks only TLS; its rediss:// URL trusts the test CA."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make test certificates")
    ca, cert, key = make_certificates(tmp_path / "tls")
    password = f"pw-{secrets.token_hex(12)}"

    def start(port: int) -> tuple[subprocess.Popen[bytes], str]:
        process = subprocess.Popen(
            [
                redis_server_binary(),
                "--port",
                "0",
                "--tls-port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--tls-cert-file",
                str(cert),
                "--tls-key-file",
                str(key),
                "--tls-ca-cert-file",
                str(ca),
                "--tls-auth-clients",
                "no",
                "--requirepass",
                password,
                "--save",
                "",
                "--dir",
                str(tmp_path),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        url = f"rediss://:{password}@127.0.0.1:{port}/0?ssl_ca_certs={ca}"
        deadline = time.monotonic() + 10
        while not redis_up(url):
            if process.poll() is not None:
                output = process.stdout.read().decode(errors="replace") if process.stdout else ""
                if "Address already in use" in output:
                    raise PortTaken(f"port {port} was taken before the TLS redis-server bound it")
                pytest.skip(f"this redis-server does not speak TLS: {output[-300:]}")
            if time.monotonic() > deadline:
                process.kill()
                process.wait(timeout=10)
                raise AssertionError("TLS redis-server did not start")
            time.sleep(0.05)
        return process, url

    process, url = on_free_port(start)
    try:
        yield url
    finally:
        process.kill()
        process.wait(timeout=10)


def test_services_and_cli_work_over_tls(
    tls_redis_url: str, service_env: dict[str, str], key_prefix: str, start_service: Callable[..., ServiceProcess]
) -> None:
    ingest = start_service(
        "ingest", {**service_env, "NEWSFLOW_REDIS_URL": tls_redis_url, "NEWSFLOW_DEV_MODE": "true"}, http=True
    )
    env = ingest.env
    api = ingest.base_url
    assert httpx.get(f"{api}/readyz").status_code == 200
    assert httpx.post(f"{api}/articles", json={"text": SEED.read_text()}).status_code == 202
    client = redis.Redis.from_url(tls_redis_url)
    wait_for(lambda: client.xlen(f"{key_prefix}:ingested") == 1, timeout=30, what="ingest over TLS")
    status = subprocess.run(
        [sys.executable, "-m", "newsflow.cli", "status", "--json"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    # Read over TLS: only ingest runs here, so the verdict names the other stages' missing groups (exit 1).
    document = orjson.loads(status.stdout)
    assert status.returncode == 1, status.stderr
    assert {(p["stage"], p["reason"]) for p in document["problems"]} == {
        (stage, "group_missing") for stage in ("clean", "enrich", "publish")
    }
    ingest.stop()
    password = tls_redis_url.split("@")[0].rsplit(":", 1)[1]
    assert password not in ingest.output() + status.stdout + status.stderr

"""Operator faults against the real services: slow HTTP clients, a DLQ of large payloads, a DLQ that keeps growing.

Each test starts the real processes (`newsflow serve ingest`, the read API) on a private Redis or a private key
prefix, injects the fault while articles flow, and checks what an operator would: every article pushed is stored
onward or in the DLQ with a reason, nothing is left pending, the service is still alive, and what `newsflow
status`, `dlq list` and the console cost and say.
"""

from __future__ import annotations

import asyncio
import select
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import orjson
import pytest
import redis

from shared.storage import open_storage
from tests.conftest import ROOT, SEED, ServiceProcess, wait_for
from tests.integration.test_api import OPERATOR_TOKEN, READ_TOKEN, console_login, start_api
from tests.servers import RedisServer

TOKEN = "ops-fault-token"
HEADER_TIMEOUT_S = 2.0
BODY_TIMEOUT_S = 2.0
# Big enough that a command reading payloads would show it in its RSS many times over, small enough for CI.
LARGE_BYTES = 6_000_000
LARGE_COUNT = 20

# Run a command from a small process and print its peak RSS: a child's peak counts the pages of the process it was
# forked from, so forking the command from pytest (which holds the payloads it pushed) would measure pytest.
PEAK_RSS = (
    "import resource, subprocess, sys\n"
    "run = subprocess.run(sys.argv[1:], stdout=subprocess.PIPE, stderr=subprocess.PIPE)\n"
    "sys.stderr.buffer.write(run.stderr)\n"
    "print(run.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, len(run.stdout))\n"
)


def newsflow(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "newsflow.cli", *args], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=timeout,
    )


def peak_rss_mb(env: dict[str, str], *args: str) -> tuple[int, float, int]:
    """(exit status, peak RSS in MB, bytes printed) of one `newsflow` command."""
    run = subprocess.run(
        [sys.executable, "-c", PEAK_RSS, sys.executable, "-m", "newsflow.cli", *args], cwd=ROOT, env=env,
        capture_output=True, text=True, timeout=300,
    )
    code, rss_kb, printed = run.stdout.split()
    assert "Traceback" not in run.stderr, run.stderr
    return int(code), int(rss_kb) / 1024, int(printed)


def metric(base_url: str, name: str, **labels: str) -> float:
    """One sample of the service's /metrics (0 when absent)."""
    wanted = name + ("{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}" if labels else "")
    for line in httpx.get(f"{base_url}/metrics", timeout=10).text.splitlines():
        if line.startswith(wanted + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def pending(client: redis.Redis, stream: str, group: str) -> int:
    try:
        return int(client.xpending(stream, group)["pending"])
    except redis.ResponseError:
        return 0


# -- HTTP ingest and slow clients ----------------------------------------------------------------------


@pytest.fixture
def http_ingest(
    service_env: dict[str, str], start_service: Callable[..., ServiceProcess]
) -> Iterator[tuple[str, ServiceProcess, dict[str, str]]]:
    """The ingest service with POST /articles, short slow-client timeouts: (base URL, process, environment)."""
    env = {
        **service_env,
        "NEWSFLOW_API_TOKEN": TOKEN,
        "NEWSFLOW_HTTP_HEADER_TIMEOUT_S": str(HEADER_TIMEOUT_S),
        "NEWSFLOW_HTTP_BODY_TIMEOUT_S": str(BODY_TIMEOUT_S),
        "NEWSFLOW_HTTP_MAX_CONNECTIONS": "400",
    }
    service = start_service("ingest", env, http=True)
    yield service.base_url, service, service.env


def post_article(base: str, text: str) -> httpx.Response:
    return httpx.post(f"{base}/articles", json={"text": text}, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)


def test_slowloris_connections_are_closed_at_the_header_timeout_while_articles_flow(
    http_ingest: tuple[str, ServiceProcess, dict[str, str]], redis_url: str, key_prefix: str
) -> None:
    base, ingest, env = http_ingest
    port = int(base.rsplit(":", 1)[1])
    request = (
        b"POST /articles HTTP/1.1\r\nHost: ingest\r\nAuthorization: Bearer " + TOKEN.encode() + b"\r\n"
        b"Content-Type: application/json\r\nContent-Length: 100\r\nX-Padding: " + b"x" * 200 + b"\r\n\r\n"
    )
    attackers = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(200)]
    opened = time.monotonic()
    for sock in attackers:
        sock.setblocking(False)
    closed_after: dict[int, float] = {}
    answers: dict[int, bytes] = {}
    sent = 0
    queued = []
    try:
        # Headers a byte every 0.2 s each (never complete: the request is 280 bytes), and real articles meanwhile.
        while len(closed_after) < len(attackers) and time.monotonic() - opened < HEADER_TIMEOUT_S + 10:
            for index, sock in enumerate(attackers):
                if index in closed_after:
                    continue
                try:
                    sock.send(request[sent : sent + 1])
                except BlockingIOError:
                    pass
                except OSError:
                    closed_after.setdefault(index, time.monotonic() - opened)
            sent = min(sent + 1, len(request) - 5)
            if len(queued) < 5:
                answer = post_article(base, f"{SEED.read_text()}\n\nDuring the attack, article {len(queued)}.")
                assert answer.status_code == 202, answer.text
                queued.append(answer.json()["queued"][0]["article_id"])
            readable, _, _ = select.select([s for i, s in enumerate(attackers) if i not in closed_after], [], [], 0.2)
            for sock in readable:
                index = attackers.index(sock)
                try:
                    data = sock.recv(4096)
                except OSError:
                    data = b""
                answers[index] = answers.get(index, b"") + data
                if not data:
                    closed_after[index] = time.monotonic() - opened
    finally:
        for sock in attackers:
            sock.close()
    still_open = len(attackers) - len(closed_after)
    assert still_open == 0, f"{still_open} of 200 slow connections still open after {HEADER_TIMEOUT_S + 10:.0f} s"
    assert max(closed_after.values()) <= HEADER_TIMEOUT_S + 3, sorted(closed_after.values())[-5:]
    assert min(closed_after.values()) >= HEADER_TIMEOUT_S - 0.5
    timed_out = sum(1 for data in answers.values() if data.startswith(b"HTTP/1.1 408 Request Timeout"))
    assert timed_out == 200, {data[:40] for data in answers.values()}
    # The service is alive, counted what it cut off, and every article posted meanwhile went through ingest.
    assert ingest.process is not None and ingest.process.poll() is None
    assert httpx.get(f"{base}/healthz", timeout=5).status_code == 200
    assert metric(base, "newsflow_http_refused_total", reason="header_timeout") == 200
    client = redis.Redis.from_url(redis_url)
    ingested = f"{key_prefix}:ingested"
    wait_for(lambda: client.xlen(ingested) == len(queued), timeout=60, what="the articles posted during the attack")
    ids = {orjson.loads(fields[b"data"])["id"] for _, fields in client.xrange(ingested)}
    assert ids == set(queued) and client.xlen(f"{key_prefix}:dlq") == 0
    wait_for(lambda: pending(client, f"{key_prefix}:raw", "ingest") == 0, timeout=30, what="nothing pending")
    status = newsflow(env, "status", "--json")
    assert status.returncode == (0 if orjson.loads(status.stdout)["ok"] else 1), status.stderr


def test_a_connection_over_the_cap_gets_429_and_a_slow_body_408(
    service_env: dict[str, str], start_service: Callable[..., ServiceProcess]
) -> None:
    env = {**service_env, "NEWSFLOW_API_TOKEN": TOKEN,
           "NEWSFLOW_HTTP_HEADER_TIMEOUT_S": "30", "NEWSFLOW_HTTP_BODY_TIMEOUT_S": str(BODY_TIMEOUT_S),
           "NEWSFLOW_HTTP_MAX_CONNECTIONS": "20"}
    ingest = start_service("ingest", env, http=True)
    base = ingest.base_url
    port = int(ingest.env["NEWSFLOW_HTTP_PORT"])
    # A body promised and not sent: 408 at the body timeout, not a task held for ever.
    with socket.create_connection(("127.0.0.1", port), timeout=BODY_TIMEOUT_S + 10) as sock:
        started = time.monotonic()
        sock.sendall(b"POST /articles HTTP/1.1\r\nHost: i\r\nAuthorization: Bearer " + TOKEN.encode()
                     + b"\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"text\": \"")
        answer = b""
        while chunk := sock.recv(4096):
            answer += chunk
        waited = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408"), answer[:100]
    assert b"did not arrive within" in answer and BODY_TIMEOUT_S - 0.5 <= waited <= BODY_TIMEOUT_S + 3
    # Twenty connections held open (headers unfinished): the twenty-first is answered 429 at once.
    held = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(20)]
    try:
        for sock in held:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: i\r\n")
        time.sleep(0.5)
        started = time.monotonic()
        refused = httpx.get(f"{base}/healthz", timeout=5)
        assert refused.status_code == 429 and refused.headers["retry-after"] == "1"
        assert time.monotonic() - started < 2
    finally:
        for sock in held:
            sock.close()
    wait_for(lambda: httpx.get(f"{base}/healthz", timeout=5).status_code == 200, timeout=10, what="room again")
    assert post_article(base, SEED.read_text()).status_code == 202
    assert metric(base, "newsflow_http_refused_total", reason="too_many_connections") >= 1
    assert metric(base, "newsflow_http_refused_total", reason="body_timeout") == 1
    assert ingest.process is not None and ingest.process.poll() is None


# -- the DLQ: memory and retention -------------------------------------------------------------------


@pytest.fixture
def big_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A private redis-server without persistence: the test pushes a few hundred MB through it."""
    server = RedisServer(tmp_path / "redis", durable=False)
    try:
        server.start()
        yield server
    finally:
        server.stop(kill=True)


def large_article(number: int) -> bytes:
    """A raw article of LARGE_BYTES, over NEWSFLOW_MAX_ARTICLE_BYTES (5 MB): ingest dead-letters it (too_large)."""
    body = (f"Paragraph {number} of a page that is far too long. " * (LARGE_BYTES // 50))[:LARGE_BYTES]
    return orjson.dumps({"id": f"large-{number}", "text": body})


def test_status_dlq_list_and_the_console_read_no_payloads_of_a_dlq_of_large_entries(
    big_redis: RedisServer, service_env: dict[str, str], start_service: Callable[..., ServiceProcess], tmp_path: Path
) -> None:
    env = {**service_env, "NEWSFLOW_REDIS_URL": big_redis.url, "NEWSFLOW_HTTP_PORT": "0",
           "NEWSFLOW_TRIM_INTERVAL_S": "1"}
    client = redis.Redis.from_url(big_redis.url)
    prefix = env["NEWSFLOW_KEY_PREFIX"]
    baseline = {args: peak_rss_mb(env, *args.split()) for args in ("status --json", "dlq list", "dlq list --json")}
    ingest = start_service("ingest", env)
    for number in range(LARGE_COUNT):
        client.xadd(f"{prefix}:raw", {"data": large_article(number)})
    client.xadd(f"{prefix}:raw", {"data": b'{"text": "unterminated'})
    wait_for(lambda: client.xlen(f"{prefix}:dlq") == LARGE_COUNT + 1, timeout=120, what="every article dead-lettered")
    wait_for(lambda: client.xlen(f"{prefix}:raw") == 0, timeout=30, what="the raw stream trimmed")
    assert pending(client, f"{prefix}:raw", "ingest") == 0
    assert ingest.process is not None and ingest.process.poll() is None

    # Nothing lost: every article is in the DLQ with its reason and its payload byte for byte.
    exported = tmp_path / "dlq.jsonl"
    run = newsflow(env, "dlq", "export", "-o", str(exported))
    assert run.returncode == 0 and f"exported {LARGE_COUNT + 1} entries" in run.stderr, run.stderr
    lines = [orjson.loads(line) for line in exported.read_bytes().splitlines()]
    assert [line["reason"] for line in lines] == ["too_large"] * LARGE_COUNT + ["invalid_json"]
    assert all(line["payload"].encode() == large_article(n) for n, line in enumerate(lines[:LARGE_COUNT]))

    # status and dlq list cost what they cost with an empty DLQ, whatever the payloads (here 120 MB of them).
    for args, (code, before, _) in baseline.items():
        code_after, after, printed = peak_rss_mb(env, *args.split())
        assert code_after == code or args.startswith("status"), args
        assert after < before + 25, f"`newsflow {args}`: {before:.0f} MB with an empty DLQ, {after:.0f} MB now"
        assert printed < 100_000, f"`newsflow {args}` printed {printed:,} bytes"
    status = newsflow(env, "status", "--json")
    snapshot = orjson.loads(status.stdout)
    assert snapshot["dlq_length"] == LARGE_COUNT + 1
    assert snapshot["dlq_by_reason"] == {"ingest": {"too_large": LARGE_COUNT, "invalid_json": 1}}
    assert status.returncode == (0 if snapshot["ok"] else 1)

    # dlq show: the payload's first 2,000 bytes, unless --full.
    entry_id = lines[0]["id"]
    code, rss, printed = peak_rss_mb(env, "dlq", "show", entry_id)
    assert code == 0 and printed < 10_000 and rss < baseline["dlq list"][1] + 25
    shown = newsflow(env, "dlq", "show", entry_id)
    assert f"the first 2,000 of {len(large_article(0)):,} bytes" in shown.stdout
    full = subprocess.run([sys.executable, "-m", "newsflow.cli", "dlq", "show", entry_id, "--full"], cwd=ROOT, env=env,
                          capture_output=True, timeout=120)
    assert full.returncode == 0 and large_article(0) in full.stdout

    # The console's DLQ page reads a payload's first 20,000 bytes, not the payloads, and stays small.
    asyncio.run(_migrate(env["NEWSFLOW_STORAGE_URL"]))
    api = start_api({**env, "NEWSFLOW_READ_TOKEN": READ_TOKEN, "NEWSFLOW_OPERATOR_TOKEN": OPERATOR_TOKEN,
                     "NEWSFLOW_STATUS_SAMPLE_S": "60"})
    try:
        import psutil

        assert api.process is not None
        api_process = psutil.Process(api.process.pid)
        with httpx.Client(base_url=api.base_url, timeout=30) as console:
            console_login(console, READ_TOKEN)
            rss_before = api_process.memory_info().rss / 2**20
            for _ in range(3):
                page = console.get("/console/dlq")
                assert page.status_code == 200
                assert f"The first 20,000 of {len(large_article(0)):,} bytes" in page.text
                assert len(page.content) < 200_000
                assert console.get("/console/pipeline").status_code == 200
            growth = api_process.memory_info().rss / 2**20 - rss_before
            # A bad or unknown entry id is a 404, not a server error.
            assert [console.get(f"/console/dlq?entry={bad}").status_code for bad in ("abc", "1-0")] == [404, 404]
        assert growth < 40, f"the API grew {growth:.0f} MB serving the DLQ page"
    finally:
        api.stop()


async def _migrate(url: str) -> None:
    storage = open_storage(url)
    try:
        await storage.migrate()
    finally:
        await storage.close()


def test_the_dlq_is_held_at_its_maxlen_and_export_saves_entries_first(
    service_env: dict[str, str], start_service: Callable[..., ServiceProcess], redis_url: str, key_prefix: str,
    tmp_path: Path,
) -> None:
    maxlen = 10
    env = {**service_env, "NEWSFLOW_DLQ_MAXLEN": str(maxlen)}
    client = redis.Redis.from_url(redis_url)
    dlq = f"{key_prefix}:dlq"

    def payload_keys() -> int:
        return sum(1 for _ in client.scan_iter(match=f"{key_prefix}:dlq:payload:*", count=1000))

    def push_invalid(first: int, count: int) -> None:
        for number in range(first, first + count):
            client.xadd(f"{key_prefix}:raw", {"data": f'{{"id": "bad-{number}", "text": "no end'.encode()})

    ingest = start_service("ingest", env, http=True)
    # Below the limit: an operator saves what is there and empties the DLQ in one go.
    push_invalid(0, 8)
    wait_for(lambda: client.xlen(dlq) == 8, timeout=60, what="eight dead letters")
    saved = tmp_path / "saved.jsonl"
    run = newsflow(env, "dlq", "export", "-o", str(saved), "--delete")
    assert run.returncode == 0 and "exported 8 entries" in run.stderr and "deleted 8" in run.stderr, run.stderr
    assert [orjson.loads(line)["payload"] for line in saved.read_bytes().splitlines()] == [
        f'{{"id": "bad-{n}", "text": "no end' for n in range(8)
    ]
    assert client.xlen(dlq) == 0 and payload_keys() == 0

    # Past the limit: the oldest go, with their payloads; the newest `maxlen` stay; the service says so.
    push_invalid(100, 25)
    wait_for(lambda: client.xlen(f"{key_prefix}:ingested") == 0 and pending(client, f"{key_prefix}:raw", "ingest") == 0
             and client.xlen(dlq) == maxlen and metric(ingest.base_url, "newsflow_dlq_trimmed_total",
                                                        stage="ingest") == 25 - maxlen,
             timeout=60, what="the DLQ held at its maxlen")
    kept = [orjson.loads(line) for line in newsflow(env, "dlq", "list", "--json").stdout.splitlines()]
    assert len(kept) == maxlen and payload_keys() == maxlen
    exported = tmp_path / "kept.jsonl"
    assert newsflow(env, "dlq", "export", "-o", str(exported)).returncode == 0
    assert [orjson.loads(line)["payload"] for line in exported.read_bytes().splitlines()] == [
        f'{{"id": "bad-{n}", "text": "no end' for n in range(125 - maxlen, 125)
    ]
    assert '"dlq.trimmed"' in ingest.output()
    assert ingest.process is not None and ingest.process.poll() is None
    status = newsflow(env, "status", "--json")
    assert orjson.loads(status.stdout)["dlq_length"] == maxlen


def test_a_replayed_entry_leaves_no_payload_behind_and_a_second_replay_is_refused(
    service_env: dict[str, str], start_service: Callable[..., ServiceProcess], redis_url: str, key_prefix: str
) -> None:
    env = {**service_env, "NEWSFLOW_HTTP_PORT": "0"}
    client = redis.Redis.from_url(redis_url)
    client.xadd(f"{key_prefix}:raw", {"data": b'{"title": "no body"}', "origin": "ops-test"})
    ingest = start_service("ingest", env)
    wait_for(lambda: client.xlen(f"{key_prefix}:dlq") == 1, timeout=60, what="a dead letter")
    ingest.stop()
    entry_id = client.xrange(f"{key_prefix}:dlq")[0][0].decode()
    replay = newsflow(env, "dlq", "replay", entry_id)
    assert replay.returncode == 0 and "replayed 1 entry" in replay.stderr
    [(_, fields)] = client.xrevrange(f"{key_prefix}:raw", count=1)
    assert fields == {b"data": b'{"title": "no body"}', b"origin": b"ops-test"}
    assert client.xlen(f"{key_prefix}:dlq") == 0
    assert not list(client.scan_iter(match=f"{key_prefix}:dlq:payload:*"))
    again = newsflow(env, "dlq", "replay", entry_id)
    assert again.returncode == 2 and len(again.stderr.strip().splitlines()) == 1
    assert "Traceback" not in again.stderr

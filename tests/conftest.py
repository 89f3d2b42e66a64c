"""Shared fixtures: real Redis / PostgreSQL (the machine's or the session's own), test-started servers, services."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.httpsite import Site
from tests.servers import (
    POSTGRES_INSTALL,
    PortTaken,
    PostgresCluster,
    PostgresUnavailable,
    RedisServer,
    SessionServers,
    on_free_port,
    postgres_binaries_missing,
    release_reaper,
)

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
SEED = FIXTURES / "seed" / "article-000.txt"
# Used when they answer; otherwise the session starts private servers in their place (tests/servers.py).
TEST_REDIS_URL = os.environ.get("NEWSFLOW_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
TEST_POSTGRES_URL = os.environ.get("NEWSFLOW_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
SERVERS = SessionServers(TEST_REDIS_URL, TEST_POSTGRES_URL)


@pytest.fixture(scope="session")
def session_servers() -> Iterator[SessionServers]:
    """The session's Redis / PostgreSQL; private ones are stopped at the end, also after a failure or Ctrl-C."""
    try:
        yield SERVERS
    finally:
        SERVERS.stop()


@pytest.fixture(scope="session")
def redis_url(session_servers: SessionServers) -> str:
    """The machine's Redis at NEWSFLOW_TEST_REDIS_URL when it answers, else a private redis-server for the session."""
    return session_servers.redis()


@pytest.fixture(scope="session")
def postgres_url(session_servers: SessionServers) -> str:
    """A database tests may create private schemas in: the machine's at NEWSFLOW_TEST_POSTGRES_URL, else private."""
    try:
        return session_servers.postgres()
    except PostgresUnavailable as error:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{error} (CI must provide it)")
        pytest.skip(str(error))


@pytest.fixture
def postgres_schema_url(postgres_url: str) -> Iterator[str]:
    """`postgres_url` with a fresh private schema as its search_path; the schema is dropped afterwards."""
    import psycopg

    schema = f"nf_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {schema}")
    separator = "&" if "?" in postgres_url else "?"
    try:
        yield f"{postgres_url}{separator}options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


@pytest.fixture
def key_prefix(redis_url: str) -> Iterator[str]:
    """A private key prefix; every key under it is deleted afterwards (and nothing else)."""
    prefix = f"nftest-{uuid.uuid4().hex[:10]}"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
    if keys:
        client.delete(*keys)


@pytest.fixture
def postgres_cluster() -> Iterator[PostgresCluster]:
    """A private PostgreSQL cluster (UTF8, trust) the test may stop, kill and restart; removed afterwards."""
    reason = postgres_binaries_missing()
    if reason:
        pytest.skip(reason)
    cluster = PostgresCluster()
    try:
        cluster.init().start()
        yield cluster
    finally:
        cluster.destroy()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A private redis-server (AOF on) for tests that restart or own the whole server."""
    server = RedisServer(tmp_path / "redis")
    try:
        server.start()
        yield server
    finally:
        server.stop(kill=True)


def pytest_unconfigure(config: pytest.Config) -> None:
    """Every server was stopped by its fixture: let the reaper go (it stops them should pytest die instead)."""
    SERVERS.stop()
    release_reaper()


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """Say which real servers the run used: the machine's, private ones, or none (skipped, with the fix)."""
    skipped = sum(
        1
        for report in terminalreporter.stats.get("skipped", [])
        if isinstance(report.longrepr, tuple) and POSTGRES_INSTALL in str(report.longrepr[2])
    )
    lines = SERVERS.summary(postgres_skipped=skipped)
    if lines:
        terminalreporter.write_sep("-", "real servers")
        for line in lines:
            terminalreporter.write_line(line)


class ServiceProcess:
    """One service running as a real process (`python -m newsflow.cli serve NAME`), its output captured.

    Started means it said so: a stage logs `stage.started` once its HTTP side is up or has failed to bind; the API
    binds its port before `api.started`. A failed bind (`http.bind_failed`) is PortTaken, so that a caller on a
    free port (`start_service(..., http=True)`) can try another one.
    """

    def __init__(self, stage: str, env: dict[str, str], command: list[str] | None = None) -> None:
        self.stage = stage
        self.env = env
        self.command = command or [sys.executable, "-m", "newsflow.cli", "serve", stage]
        self.lines: list[str] = []
        self.process: subprocess.Popen[str] | None = None
        self._started = threading.Event()
        self._ended = threading.Event()

    @property
    def base_url(self) -> str:
        """The service's own HTTP address (NEWSFLOW_HTTP_PORT in its environment)."""
        return f"http://127.0.0.1:{self.env['NEWSFLOW_HTTP_PORT']}"

    def start(self, timeout: float = 90.0, *, wait: bool = True, require_http: bool = False) -> ServiceProcess:
        """Start the process; with `wait`, return once it said it started (fail when it exits or after `timeout`);
        `require_http`: a stage whose HTTP side failed to bind did not start."""
        self._started.clear()
        self._ended.clear()
        self.process = subprocess.Popen(
            self.command, cwd=ROOT, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        threading.Thread(target=self._pump, args=(self.process,), daemon=True).start()
        deadline = time.monotonic() + timeout
        if not wait:
            return self
        # Stop waiting as soon as the process exits: a service that crashed at start fails its test at once.
        while not (self._started.is_set() or self._ended.is_set()) and time.monotonic() < deadline:
            self._started.wait(0.1)
        bind_failed = any('"http.bind_failed"' in line for line in self.lines)
        if self._started.is_set() and not (bind_failed and require_http):
            return self
        self.stop(kill=True)
        if bind_failed:
            raise PortTaken(f"{self.stage}: port {self.env.get('NEWSFLOW_HTTP_PORT')} was taken")
        raise AssertionError(f"{self.stage} did not start:\n" + "\n".join(self.lines[-40:]))

    def _pump(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            self.lines.append(line.rstrip("\n"))
            if '"stage.started"' in line or '"api.started"' in line:
                self._started.set()
        self._ended.set()

    def stop(self, *, kill: bool = False, timeout: float = 30.0) -> int:
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        return self.process.wait(timeout=timeout)

    def output(self) -> str:
        return "\n".join(self.lines)


@pytest.fixture
def service_env(key_prefix: str, redis_url: str, tmp_path: Path) -> dict[str, str]:
    """Environment for service processes: private prefix and storage, JSON logs, quick claims."""
    env = dict(os.environ)
    env.update(
        {
            "NEWSFLOW_REDIS_URL": redis_url,
            "NEWSFLOW_KEY_PREFIX": key_prefix,
            "NEWSFLOW_STORAGE_URL": f"sqlite:///{tmp_path / 'newsflow.db'}",
            "NEWSFLOW_DATA_DIR": str(tmp_path / "data"),
            "NEWSFLOW_LOG_FORMAT": "json",
            "NEWSFLOW_CLAIM_IDLE_MS": "3000",
            "NEWSFLOW_CLAIM_INTERVAL_MS": "500",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


@pytest.fixture
def start_service(service_env: dict[str, str]) -> Iterator[Callable[..., ServiceProcess]]:
    """Start stages as processes; all are stopped at the end of the test."""
    started: list[ServiceProcess] = []

    def start(
        stage: str, env: dict[str, str] | None = None, command: list[str] | None = None, *, http: bool = False
    ) -> ServiceProcess:
        """`http=True`: on a free port of its own (NEWSFLOW_HTTP_PORT; another one if it was taken meanwhile)."""
        environment = env or service_env
        if not http:
            service = ServiceProcess(stage, environment, command).start()
        else:
            service = on_free_port(
                lambda port: ServiceProcess(stage, {**environment, "NEWSFLOW_HTTP_PORT": str(port)}, command).start(
                    require_http=True
                )
            )
        started.append(service)
        return service

    yield start
    for service in started:
        service.stop(kill=True)
        # Shown by pytest only when the test failed: the tail of each service's log.
        print(f"--- {service.stage} (pid {service.process.pid if service.process else '-'}) ---")
        print("\n".join(line[:400] for line in service.lines[-25:]))


def wait_for(condition: Callable[[], object], timeout: float = 60.0, interval: float = 0.2, what: str = "") -> object:
    """Poll `condition` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or condition}")
        time.sleep(interval)


@pytest.fixture
def cli_redis(monkeypatch: pytest.MonkeyPatch, redis_url: str, key_prefix: str) -> Iterator[redis.Redis]:
    """In-process CLI calls (typer's CliRunner) against the test's private prefix; yields a client to check with."""
    from shared.settings import get_settings

    monkeypatch.setenv("NEWSFLOW_REDIS_URL", redis_url)
    monkeypatch.setenv("NEWSFLOW_KEY_PREFIX", key_prefix)
    get_settings.cache_clear()
    yield redis.Redis.from_url(redis_url)
    get_settings.cache_clear()


@pytest.fixture
def site() -> Iterator[Site]:
    """A local web site (tests/httpsite.py) on 127.0.0.1: the test adds routes; stopped afterwards."""
    server = Site()
    yield server
    server.stop()


@pytest.fixture
def other_site() -> Iterator[Site]:
    """A second local web site, on 127.0.0.2 and its own port: another host, for politeness and redirects."""
    server = Site("127.0.0.2")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def wget() -> str:
    """The wget binary (its --warc-file makes real WARC records); required under CI, skipped locally when absent."""
    import shutil

    binary = shutil.which("wget")
    if binary is None:
        if os.environ.get("CI") == "true":
            pytest.fail("wget is not installed (.ci/run installs it)")
        pytest.skip("wget is not installed")
    return binary

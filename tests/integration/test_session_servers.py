"""The session's servers: private ones stand in when none answers, and go away after a failure, Ctrl-C or SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.conftest import ROOT, wait_for
from tests.servers import (
    POSTGRES_INSTALL,
    PostgresUnavailable,
    SessionServers,
    postgres_binaries_missing,
    process_alive,
    refused_port,
)

pytestmark = pytest.mark.integration
# The inner sessions below start a private PostgreSQL cluster.
needs_postgres_binaries = pytest.mark.skipif(
    postgres_binaries_missing() is not None, reason=postgres_binaries_missing() or ""
)

# Run by an inner pytest session with this suite's conftest: reports the servers it got, then fails, waits or passes.
INNER_TEST = """
import json, os, time
from pathlib import Path

import psycopg
import redis


def test_reports_its_servers(redis_url, postgres_url):
    client = redis.Redis.from_url(redis_url)
    with psycopg.connect(postgres_url) as connection:
        datadir = connection.execute("SHOW data_directory").fetchone()[0]
    report = {
        "redis_url": redis_url,
        "redis_pid": client.info("server")["process_id"],
        "redis_dir": client.config_get("dir")["dir"],
        "postgres_url": postgres_url,
        "postgres_dir": datadir,
        "postgres_pid": int(Path(datadir, "postmaster.pid").read_text().split()[0]),
    }
    Path(os.environ["INNER_REPORT"]).write_text(json.dumps(report))
    if os.environ["INNER_THEN"] == "wait":
        time.sleep(300)  # the outer test interrupts or kills this session meanwhile
    assert os.environ["INNER_THEN"] != "fail", "a failing test: the servers must be stopped all the same"
"""


def closed_redis_url() -> str:
    """A Redis URL on a local port nothing listens on (held by this process, so nothing else can take it)."""
    return f"redis://127.0.0.1:{refused_port()}/0"


def closed_postgres_url() -> str:
    """A PostgreSQL URL on a local port nothing listens on (held by this process, so nothing else can take it)."""
    return f"postgresql://postgres@127.0.0.1:{refused_port()}/test"


def inner_session(
    tmp_path: Path, *, redis_url: str, postgres_url: str, then: str
) -> tuple[subprocess.Popen[str], Path]:
    """Start a pytest session (in its own process group, like a terminal's job) running INNER_TEST."""
    test_file = tmp_path / "inner" / "test_inner.py"
    test_file.parent.mkdir()
    test_file.write_text(INNER_TEST)
    report = tmp_path / "report.json"
    env = {
        **os.environ,
        "NEWSFLOW_TEST_REDIS_URL": redis_url,
        "NEWSFLOW_TEST_POSTGRES_URL": postgres_url,
        "INNER_REPORT": str(report),
        "INNER_THEN": then,
    }
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "tests.conftest"]
    command += ["--rootdir", str(ROOT), "-c", str(ROOT / "pyproject.toml"), str(test_file)]
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        # A suite started in the background (`make test &`, some CI runners) inherits SIGINT ignored; the inner
        # session must hear Ctrl-C as a terminal's job would.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    return process, report


def private_servers_gone(report: dict[str, Any]) -> bool:
    """Both private servers' processes have exited and their directories are removed."""
    pids = (report["redis_pid"], report["postgres_pid"])
    dirs = (report["redis_dir"], report["postgres_dir"])
    return not any(process_alive(pid) for pid in pids) and not any(Path(d).exists() for d in dirs)


@needs_postgres_binaries
def test_private_postgres_stands_in_and_is_stopped_after_a_failing_test(redis_url: str, tmp_path: Path) -> None:
    process, report_file = inner_session(tmp_path, redis_url=redis_url, postgres_url=closed_postgres_url(), then="fail")
    output, _ = process.communicate(timeout=180)
    assert process.returncode == 1, output
    assert "1 failed" in output
    report = json.loads(report_file.read_text())
    # Redis answered at the test URL: used as it is, and left running.
    assert report["redis_url"] == redis_url
    assert f"Redis       the machine's, at {redis_url}" in output
    assert process_alive(report["redis_pid"]) and redis.Redis.from_url(redis_url).ping()
    # PostgreSQL did not: a private cluster on another port, stopped and removed at the end.
    assert (
        report["postgres_url"].startswith("postgresql://postgres@127.0.0.1:") and ":5432/" not in report["postgres_url"]
    )
    assert "PostgreSQL  private cluster" in output and "stopped" in output
    assert not process_alive(report["postgres_pid"])
    assert not Path(report["postgres_dir"]).exists()


@needs_postgres_binaries
def test_ctrl_c_stops_the_private_servers(tmp_path: Path) -> None:
    process, report_file = inner_session(
        tmp_path, redis_url=closed_redis_url(), postgres_url=closed_postgres_url(), then="wait"
    )
    try:
        wait_for(lambda: report_file.exists() and report_file.stat().st_size, timeout=120, what="the inner report")
        os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: the whole foreground group
        output, _ = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    report = json.loads(report_file.read_text())
    assert process.returncode == pytest.ExitCode.INTERRUPTED, output
    assert "KeyboardInterrupt" in output
    assert "Redis       private" in output and "PostgreSQL  private cluster" in output
    assert private_servers_gone(report), report


@needs_postgres_binaries
def test_a_killed_session_leaves_no_server_behind(tmp_path: Path) -> None:
    process, report_file = inner_session(
        tmp_path, redis_url=closed_redis_url(), postgres_url=closed_postgres_url(), then="wait"
    )
    try:
        wait_for(lambda: report_file.exists() and report_file.stat().st_size, timeout=120, what="the inner report")
        report = json.loads(report_file.read_text())
        assert process_alive(report["redis_pid"]) and process_alive(report["postgres_pid"])
        process.kill()  # SIGKILL to pytest alone, as the OOM killer would: no teardown runs; the reaper acts
        process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    wait_for(lambda: private_servers_gone(report), timeout=60, what="the reaper to stop the private servers")


def test_without_postgresql_binaries_the_run_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("tests.servers.postgres_binary", lambda name: None)
    servers = SessionServers(closed_redis_url(), closed_postgres_url())
    for _ in range(2):  # decided once per session, not retried per test
        with pytest.raises(PostgresUnavailable, match="initdb, pg_ctl"):
            servers.postgres()
    assert servers.cluster is None
    [line] = [line for line in servers.summary(postgres_skipped=3) if line.startswith("PostgreSQL")]
    assert line.startswith("PostgreSQL  none: 3 tests skipped") and line.endswith(POSTGRES_INSTALL)

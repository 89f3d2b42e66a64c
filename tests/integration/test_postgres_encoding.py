"""A PostgreSQL database that is not UTF8 is refused at start with one clear line (psycopg would return its text as
bytes, and publish failed on the first article with a bare KeyError)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import psycopg
import pytest

from shared.errors import ConfigurationError
from shared.storage.postgres import PostgresStorage
from tests.conftest import ROOT
from tests.servers import PostgresCluster

pytestmark = pytest.mark.integration


@pytest.fixture
def ascii_url(postgres_cluster: PostgresCluster) -> str:
    """A SQL_ASCII database, what a bare `initdb` makes on a minimal system without a UTF-8 locale."""
    with psycopg.connect(postgres_cluster.url, autocommit=True) as connection:
        connection.execute("CREATE DATABASE ascii ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0")
    return postgres_cluster.url.rsplit("/", 1)[0] + "/ascii"


async def test_storage_refuses_a_database_that_is_not_utf8(ascii_url: str, postgres_cluster: PostgresCluster) -> None:
    storage = PostgresStorage(ascii_url)
    with pytest.raises(ConfigurationError, match=r"'ascii' has server_encoding SQL_ASCII; newsflow needs UTF8") as err:
        await storage.migrate()
    assert err.value.event == "storage.refused"
    await storage.close()
    utf8 = PostgresStorage(postgres_cluster.url)  # the cluster's own database is UTF8
    try:
        assert await utf8.migrate()
    finally:
        await utf8.close()


@pytest.mark.parametrize("command", [["serve", "publish"], ["articles", "count"]])
def test_publish_and_the_cli_exit_2_with_one_line(ascii_url: str, key_prefix: str, command: list[str]) -> None:
    env = {
        **os.environ,
        "NEWSFLOW_STORAGE_URL": ascii_url,
        "NEWSFLOW_KEY_PREFIX": key_prefix,
        "NEWSFLOW_LOG_FORMAT": "json",
        "NEWSFLOW_HTTP_PORT": "0",
    }
    run = subprocess.run(
        [sys.executable, "-m", "newsflow.cli", *command], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 2, run.stdout + run.stderr
    assert "Traceback" not in run.stdout + run.stderr and "KeyError" not in run.stdout + run.stderr
    if command[0] == "serve":
        [line] = [json.loads(line) for line in run.stdout.splitlines() if line.strip()]
        assert line["event"] == "storage.refused" and line["level"] == "error"
        assert "server_encoding SQL_ASCII" in line["error"]
    else:
        assert "server_encoding SQL_ASCII; newsflow needs UTF8" in " ".join(run.stderr.split())

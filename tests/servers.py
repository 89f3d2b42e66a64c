"""Test-owned servers: a redis-server and a PostgreSQL cluster on free ports, which tests may stop and restart.

Each is started by the test (or session) that owns it, in a directory of its own, and stopped by PID; nothing
here touches the machine's own Redis or PostgreSQL.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from newsflow.localstack import free_port, redis_server_binary
from newsflow.localstack import redis_answers as redis_up

POSTGRES_BIN_DIRS = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)


class RedisServer:
    """A test-owned redis-server on a free port, with AOF, that can be stopped and restarted on the same files."""

    def __init__(self, workdir: Path, password: str | None = None, extra_args: Sequence[str] = ()) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.password = password
        self.extra_args = list(extra_args)
        self.url = f"redis://{f':{password}@' if password else ''}127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [
                redis_server_binary(),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.workdir),
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
                *(["--requirepass", self.password] if self.password else []),
                *self.extra_args,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not redis_up(self.url):
            assert time.monotonic() < deadline, "test redis-server did not start"
            time.sleep(0.05)

    def stop(self, *, kill: bool = False) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            self.process.wait(timeout=20)


def postgres_binary(name: str) -> str | None:
    """`initdb`, `pg_ctl`, … from PATH or Debian's /usr/lib/postgresql/<version>/bin; None when not installed."""
    found = shutil.which(name)
    if found:
        return found
    for directory in POSTGRES_BIN_DIRS:
        if (directory / name).exists():
            return str(directory / name)
    return None


def postgres_binaries_missing() -> str | None:
    """Why no private cluster can be started here (None when initdb and pg_ctl exist)."""
    missing = [name for name in ("initdb", "pg_ctl") if postgres_binary(name) is None]
    if missing:
        return f"no PostgreSQL server binaries ({', '.join(missing)}): apt-get install postgresql"
    return None


class PostgresCluster:
    """A private PostgreSQL cluster (initdb + pg_ctl) on a free port, UTF8, trust auth on 127.0.0.1.

    Run as the `postgres` OS user when the tests run as root (PostgreSQL refuses to run as root). `stop()`,
    `start()` and `restart()` act on this cluster only, by its data directory and postmaster PID.
    """

    def __init__(self, database: str = "test") -> None:
        reason = postgres_binaries_missing()
        if reason:
            raise RuntimeError(reason)
        # Its own directory under /tmp, not pytest's tmp_path: that one is root-only (0700), closed to `postgres`.
        self.workdir = Path(tempfile.mkdtemp(prefix="newsflow-pg-"))
        self.datadir = self.workdir / "pgdata"
        self.logfile = self.workdir / "postgres.log"
        self.port = free_port()
        self.database = database
        self.user = "postgres"
        self.url = f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"
        self._as_postgres = os.geteuid() == 0

    def _run(self, args: list[str], *, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        if self._as_postgres:
            # `runuser` keeps our environment out; the cluster's files belong to postgres.
            args = ["runuser", "-u", "postgres", "--", *args]
        return subprocess.run(args, capture_output=True, text=True, check=check, timeout=timeout)

    def init(self) -> PostgresCluster:
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self._as_postgres:
            shutil.chown(self.workdir, "postgres", "postgres")
        initdb = postgres_binary("initdb")
        assert initdb is not None
        self._run(
            [initdb, "-D", str(self.datadir), "-U", self.user, "--auth=trust", "--encoding=UTF8", "--locale=C.UTF-8"]
        )
        return self

    def start(self, timeout: float = 60) -> None:
        pg_ctl = postgres_binary("pg_ctl")
        assert pg_ctl is not None
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.workdir} -c fsync=off"
        wait = ["-w", "-t", str(int(timeout))]
        self._run([pg_ctl, "-D", str(self.datadir), "-l", str(self.logfile), "-o", options, *wait, "start"])
        self._ensure_database()

    def _ensure_database(self) -> None:
        import psycopg

        with psycopg.connect(f"postgresql://{self.user}@127.0.0.1:{self.port}/postgres", autocommit=True) as admin:
            if admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (self.database,)).fetchone() is None:
                admin.execute(f'CREATE DATABASE "{self.database}"')

    def stop(self, *, mode: str = "fast") -> None:
        """Stop the cluster (`fast`: disconnect clients; `immediate`: like a crash)."""
        pg_ctl = postgres_binary("pg_ctl")
        assert pg_ctl is not None
        if self.running():
            self._run([pg_ctl, "-D", str(self.datadir), "-m", mode, "-w", "stop"], check=False)

    def restart(self) -> None:
        self.stop()
        self.start()

    def pid(self) -> int | None:
        """The postmaster's PID while it runs."""
        pidfile = self.datadir / "postmaster.pid"
        try:
            return int(pidfile.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def running(self) -> bool:
        pid = self.pid()
        if pid is None:
            return False
        try:
            os.kill(pid, 0)
        except OSError:
            return False
        return True

    def destroy(self) -> None:
        """Stop and remove the cluster's files."""
        self.stop(mode="immediate")
        shutil.rmtree(self.workdir, ignore_errors=True)

"""Test-owned servers: a redis-server and a PostgreSQL cluster on free ports, which tests may stop and restart.

Each is started by the test (or session) that owns it, in a directory of its own, and stopped by PID; nothing
here touches the machine's own Redis or PostgreSQL.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any, TypeVar
from urllib.parse import urlsplit

import redis

from newsflow.localstack import free_port, redis_server_binary
from newsflow.localstack import redis_answers as redis_up

T = TypeVar("T")
PORT_ATTEMPTS = 5


class PortTaken(RuntimeError):
    """A server started on a free port could not bind it: another process took the port first."""


def on_free_port(start: Callable[[int], T], *, first: int | None = None, attempts: int = PORT_ATTEMPTS) -> T:
    """`start(port)` on a free port, and again on another one each time it raises PortTaken.

    A port found free (`free_port`: bound to 0, then closed) is free only at that instant: until the server binds
    it, any process on this shared machine may take it (another test run's server, or a client whose ephemeral
    port it becomes). No check beforehand can close that window, so the server's own bind decides, and `start`
    reports a failed bind as PortTaken (a server on the port that answers is not proof it is ours).
    """
    port = first if first is not None else free_port()
    for attempt in range(1, attempts + 1):
        try:
            return start(port)
        except PortTaken:
            if attempt == attempts:
                raise
            port = free_port()
    raise AssertionError("unreachable")


def _refused_socket() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))  # never listen(): connections are refused, and no one else can bind it
    return sock


_REFUSED = _refused_socket()


def refused_port() -> int:
    """A local port where a connection is always refused: held (bound, not listening) by this test process."""
    return int(_REFUSED.getsockname()[1])


POSTGRES_BIN_DIRS = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
POSTGRES_INSTALL = "apt-get install postgresql"
# How many servers this process created, for the end-of-run summary.
CREATED: Counter[str] = Counter()

# The reaper: a watchdog in its own session (so Ctrl-C does not reach it) that reads what this process started, one
# JSON line each. "done" means the session cleaned up itself; end-of-file without it means the test process died
# (SIGKILL, OOM, a second Ctrl-C during teardown), and it stops those servers by PID — only a PID whose command line
# still names the server's own address or data directory — then removes their directories, and deletes the
# test's network namespaces (tests/netns.py) after killing what still runs inside them.
REAPER = r"""
import json, os, shutil, signal, sys, time
entries = []
for line in sys.stdin:
    if line.strip() == "done":
        sys.exit(0)
    entries.append(json.loads(line))

def pid_of(entry):
    if entry.get("pidfile"):
        try:
            return int(open(entry["pidfile"]).read().split()[0])
        except (OSError, ValueError, IndexError):
            return None
    return entry.get("pid")

def ours(pid, match):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            return match.encode() in cmdline.read()
    except OSError:
        return False

def in_netns(name):
    # Every process in a test's own network namespace was started by that test.
    import subprocess
    done = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True)
    return [int(pid) for pid in done.stdout.split()]

signalled = []
for entry in entries:
    if entry.get("netns"):
        for pid in in_netns(entry["netns"]):
            os.kill(pid, signal.SIGKILL)
        continue
    pid = pid_of(entry)
    if pid and ours(pid, entry["match"]):
        os.kill(pid, entry["signal"])
        signalled.append((pid, entry["match"]))
deadline = time.monotonic() + 20
while any(ours(pid, match) for pid, match in signalled) and time.monotonic() < deadline:
    time.sleep(0.1)
for entry in entries:
    if entry.get("remove"):
        shutil.rmtree(entry["remove"], ignore_errors=True)
for entry in entries:
    if entry.get("netns"):
        import subprocess
        deadline = time.monotonic() + 10
        while in_netns(entry["netns"]) and time.monotonic() < deadline:
            time.sleep(0.1)
        subprocess.run(["ip", "netns", "delete", entry["netns"]], capture_output=True)
"""


class Reaper:
    """Stops this process's test servers by PID if it dies before stopping them itself."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", REAPER], stdin=subprocess.PIPE, text=True, start_new_session=True
        )
        assert self.process.stdin is not None
        self._stdin: IO[str] = self.process.stdin

    def watch(
        self,
        *,
        match: str,
        pid: int | None = None,
        pidfile: Path | None = None,
        sig: int = signal.SIGKILL,
        remove: Path | None = None,
        netns: str | None = None,
    ) -> None:
        """Kill `pid` (or the PID in `pidfile`) with `sig` and remove `remove` should this process die first.

        `netns`: kill every process in that (test-created) network namespace, then delete it.
        """
        entry: dict[str, Any] = {"match": match, "pid": pid, "signal": int(sig), "netns": netns}
        entry.update({"pidfile": str(pidfile) if pidfile else None, "remove": str(remove) if remove else None})
        self._stdin.write(json.dumps(entry) + "\n")
        self._stdin.flush()

    def release(self) -> None:
        """Everything was stopped in order: let the reaper go without acting."""
        if self.process.poll() is None:
            self._stdin.write("done\n")
            self._stdin.close()
            self.process.wait(timeout=10)


_reaper: Reaper | None = None


def reaper() -> Reaper:
    """This process's reaper, started on first use."""
    global _reaper
    if _reaper is None:
        _reaper = Reaper()
    return _reaper


def release_reaper() -> None:
    """Called once at the end of the session, after every server was stopped."""
    global _reaper
    if _reaper is not None:
        _reaper.release()
        _reaper = None


def process_alive(pid: int) -> bool:
    """True while `pid` runs (a zombie left unreaped by the container's init counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


class RedisServer:
    """A test-owned redis-server on a free port, with AOF, that can be stopped and restarted on the same files."""

    def __init__(
        self,
        workdir: Path,
        password: str | None = None,
        extra_args: Sequence[str] = (),
        *,
        durable: bool = True,
        netns: str | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.password = password
        self.extra_args = list(extra_args)
        self.durable = durable
        # In a network namespace (tests/netns.py) it listens on `host` there, and on a Unix socket in `workdir`,
        # which this process (outside the namespace) uses: `local_url`.
        self.netns = netns
        self.host = host
        self.binary = redis_server_binary()
        CREATED["redis-server"] += 1
        self.socket = workdir / "redis.sock"
        self.process: subprocess.Popen[bytes] | None = None
        self._started_once = False
        # `user:password` for its URL, when it is an ACL user's rather than the requirepass password.
        self.login: str | None = None

    @property
    def url(self) -> str:
        login = self.login or (f":{self.password}" if self.password else None)
        return f"redis://{f'{login}@' if login else ''}{self.host}:{self.port}/0"

    @property
    def local_url(self) -> str:
        """How this process reaches the server: `url`, or the Unix socket when it runs in a network namespace."""
        if not self.netns:
            return self.url
        auth = f":{self.password}@" if self.password else ""
        return f"unix://{auth}{self.socket}?db=0"

    def start(self) -> None:
        """Start the server; the first time on another free port should its port be taken meanwhile, later on the
        same port (a restart keeps its address, as a real server's does)."""
        if self._started_once:
            self._start_on(self.port)
        else:
            on_free_port(self._start_on, first=self.port)
            self._started_once = True

    @property
    def logfile(self) -> Path:
        return self.workdir / "redis-server.log"

    def _start_on(self, port: int) -> None:
        self.port = port
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.logfile.unlink(missing_ok=True)
        self.process = subprocess.Popen(
            [
                *(["ip", "netns", "exec", self.netns] if self.netns else []),
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                self.host,
                *(["--unixsocket", str(self.socket), "--unixsocketperm", "700"] if self.netns else []),
                "--dir",
                str(self.workdir),
                "--appendonly",
                "yes" if self.durable else "no",
                "--appendfsync",
                "always",
                "--save",
                "",
                "--logfile",
                str(self.logfile),
                *(["--requirepass", self.password] if self.password else []),
                *self.extra_args,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            # Its own session: Ctrl-C reaches pytest only, which then stops this server in order.
            start_new_session=True,
        )
        reaper().watch(pid=self.process.pid, match=f"{self.host}:{self.port}")
        deadline = time.monotonic() + 10
        while not self._answers():
            if self.process.poll() is not None:
                logged = self.logfile.read_text(errors="replace") if self.logfile.exists() else ""
                if "Address already in use" in logged:
                    raise PortTaken(f"port {self.port} was taken before this redis-server bound it")
                raise RuntimeError(
                    f"test redis-server exited with {self.process.returncode} (port {self.port}): {logged[-800:]}"
                )
            assert time.monotonic() < deadline, "test redis-server did not start"
            time.sleep(0.05)

    def _answers(self) -> bool:
        """True once this very process answers (not another server that took the free port meanwhile)."""
        if self.process is None or not redis_up(self.local_url):
            return False
        try:
            info = redis.Redis.from_url(self.local_url, socket_timeout=2).info("server")
        except redis.ResponseError:  # an ACL that allows the default user PING only: trust that ours still runs
            return self.process.poll() is None
        return info.get("process_id") == self.process.pid

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
        return f"no PostgreSQL server binaries ({', '.join(missing)}): {POSTGRES_INSTALL}"
    return None


class PostgresCluster:
    """A private PostgreSQL cluster (initdb + pg_ctl) on a free port, UTF8, trust auth on 127.0.0.1.

    Run as the `postgres` OS user when the tests run as root (PostgreSQL refuses to run as root). `stop()`,
    `start()` and `restart()` act on this cluster only, by its data directory and postmaster PID.
    """

    def __init__(
        self, database: str = "test", *, netns: str | None = None, host: str = "127.0.0.1", allow: str | None = None
    ) -> None:
        """`netns`: run in that network namespace, listening on `host` there, trusting clients from the `allow`
        network (CIDR); this process reaches it through its Unix socket (`local_url`)."""
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
        self.netns = netns
        self.host = host
        self.allow = allow
        self._started_once = False
        self._as_postgres = os.geteuid() == 0
        CREATED["PostgreSQL cluster"] += 1
        # SIGQUIT is PostgreSQL's immediate shutdown; the postmaster's command line names this data directory.
        reaper().watch(
            pidfile=self.datadir / "postmaster.pid", match=str(self.datadir), sig=signal.SIGQUIT, remove=self.workdir
        )

    def _run(
        self, args: list[str], *, check: bool = True, timeout: float = 120, own_session: bool = False
    ) -> subprocess.CompletedProcess[str]:
        if self._as_postgres:
            # `runuser` keeps our environment out; the cluster's files belong to postgres.
            args = ["runuser", "-u", "postgres", "--", *args]
        if self.netns:
            args = ["ip", "netns", "exec", self.netns, *args]
        done = subprocess.run(args, capture_output=True, text=True, timeout=timeout, start_new_session=own_session)
        if check and done.returncode != 0:
            output = (done.stderr or done.stdout).strip()[-1500:]
            command = args[(4 if self.netns else 0) + (4 if self._as_postgres else 0)]
            raise RuntimeError(f"{Path(command).name} failed ({done.returncode}): {output}")
        return done

    def init(self) -> PostgresCluster:
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self._as_postgres:
            shutil.chown(self.workdir, "postgres", "postgres")
        initdb = postgres_binary("initdb")
        assert initdb is not None
        self._run(
            [initdb, "-D", str(self.datadir), "-U", self.user, "--auth=trust", "--encoding=UTF8", "--locale=C.UTF-8"]
        )
        if self.allow:
            with (self.datadir / "pg_hba.conf").open("a") as hba:
                hba.write(f"host all all {self.allow} trust\n")
        return self

    @property
    def url(self) -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{self.database}"

    @property
    def local_url(self) -> str:
        """How this process reaches the cluster: `url`, or its Unix socket when it runs in a network namespace."""
        if not self.netns:
            return self.url
        return f"postgresql://{self.user}@/{self.database}?host={self.workdir}&port={self.port}"

    def start(self, timeout: float = 60) -> None:
        """Start the cluster; the first time on another free port should its port be taken meanwhile."""
        if self._started_once:
            self._start_on(self.port, timeout)
        else:
            on_free_port(lambda port: self._start_on(port, timeout), first=self.port)
            self._started_once = True
        self._ensure_database()

    def _start_on(self, port: int, timeout: float) -> None:
        self.port = port
        pg_ctl = postgres_binary("pg_ctl")
        assert pg_ctl is not None
        options = f"-p {self.port} -c listen_addresses={self.host} -k {self.workdir} -c fsync=off"
        wait = ["-w", "-t", str(int(timeout))]
        # The postmaster in a session of its own: Ctrl-C reaches pytest only, which then stops the cluster in order.
        start = [pg_ctl, "-D", str(self.datadir), "-l", str(self.logfile), "-o", options, *wait, "start"]
        logged = self.logfile.stat().st_size if self.logfile.exists() else 0
        try:
            self._run(start, own_session=True)
        except RuntimeError:
            with self.logfile.open("rb") as log:
                log.seek(logged)
                if b"Address already in use" in log.read():
                    raise PortTaken(f"port {port} was taken before this cluster's postmaster bound it") from None
            raise

    def _ensure_database(self) -> None:
        import psycopg

        where = f"@/postgres?host={self.workdir}&port={self.port}" if self.netns else f"@127.0.0.1:{self.port}/postgres"
        with psycopg.connect(f"postgresql://{self.user}{where}", autocommit=True) as admin:
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
        return pid is not None and process_alive(pid)

    def destroy(self) -> None:
        """Stop and remove the cluster's files."""
        self.stop(mode="immediate")
        shutil.rmtree(self.workdir, ignore_errors=True)


class SessionServers:
    """The session's Redis and PostgreSQL: the machine's when they answer at the test URLs, else private ones.

    Each is resolved on first use (a unit-test run starts nothing) and a private one runs until `stop()`; `summary()`
    says which was used, for the end of the run.
    """

    def __init__(self, redis_url: str, postgres_url: str) -> None:
        self.redis_wanted = redis_url
        self.postgres_wanted = postgres_url
        self.redis_server: RedisServer | None = None
        self.cluster: PostgresCluster | None = None
        self._redis_url: str | None = None
        self._postgres_url: str | None = None
        self._postgres_error: Exception | None = None
        self.used: dict[str, str] = {}
        self.created: Counter[str] = Counter()  # told apart from the servers tests start themselves

    def redis(self) -> str:
        """A Redis URL every test may use under its own key prefix."""
        if self._redis_url is None:
            if self.redis_server is not None:
                raise RuntimeError("the session's private redis-server did not start (see the first error)")
            if redis_up(self.redis_wanted):
                self.used["Redis"] = f"the machine's, at {_shown(self.redis_wanted)}"
                self._redis_url = self.redis_wanted
            else:
                # No AOF: this server lives for one session and is thrown away with its directory.
                server = RedisServer(Path(tempfile.mkdtemp(prefix="newsflow-redis-")), durable=False)
                self.redis_server = server
                self.created["redis-server"] += 1
                reaper().watch(pid=None, match=server.workdir.name, remove=server.workdir)
                self.used["Redis"] = (
                    f"private {server.binary} (nothing answered at {_shown(self.redis_wanted)}), did not start"
                )
                server.start()
                self.used["Redis"] = (
                    f"private {server.binary} on 127.0.0.1:{server.port} "
                    f"(nothing answered at {_shown(self.redis_wanted)})"
                )
                self._redis_url = server.url
        return self._redis_url

    def postgres(self) -> str:
        """A PostgreSQL URL of a database tests may create private schemas in; PostgresUnavailable when none can be."""
        if self._postgres_error is not None:
            raise self._postgres_error
        if self._postgres_url is None:
            try:
                self._postgres_url = self._resolve_postgres()
            except Exception as error:
                self._postgres_error = error  # one attempt per session, not one initdb per test
                raise
        return self._postgres_url

    def _resolve_postgres(self) -> str:
        import psycopg

        try:
            with psycopg.connect(self.postgres_wanted, connect_timeout=3):
                pass
            self.used["PostgreSQL"] = f"the machine's, at {_shown(self.postgres_wanted)}"
            return self.postgres_wanted
        except psycopg.Error as error:
            # psycopg nests the cause ("connection failed: … port 1 failed: Connection refused"): keep its last part.
            why = str(error).strip().splitlines()[0].rsplit(": ", 1)[-1] if str(error).strip() else type(error).__name__
        missing = postgres_binaries_missing()
        if missing:
            raise PostgresUnavailable(f"no PostgreSQL answers at {_shown(self.postgres_wanted)}, and {missing}")
        cluster = PostgresCluster(database=_database_name(self.postgres_wanted))
        self.cluster = cluster
        self.created["PostgreSQL cluster"] += 1
        where = f"private cluster ({postgres_binary('initdb')})"
        self.used["PostgreSQL"] = f"{where} (none answered at {_shown(self.postgres_wanted)}: {why}), did not start"
        cluster.init().start()
        self.used["PostgreSQL"] = (
            f"{where} on 127.0.0.1:{cluster.port} (none answered at {_shown(self.postgres_wanted)}: {why})"
        )
        return cluster.url

    def stop(self) -> None:
        """Stop and remove the private servers, by PID (the machine's are never touched)."""
        if self.redis_server is not None:
            self.redis_server.stop(kill=True)
            shutil.rmtree(self.redis_server.workdir, ignore_errors=True)
            self.used["Redis"] += ", stopped"
            self.redis_server = None
        if self.cluster is not None:
            self.cluster.destroy()
            self.used["PostgreSQL"] += ", stopped"
            self.cluster = None

    def summary(self, *, postgres_skipped: int = 0) -> list[str]:
        """One line per server kind: the machine's, private, or none (how many tests skipped, and the fix)."""
        used = dict(self.used)
        if postgres_skipped:
            missing = postgres_binaries_missing() or "no PostgreSQL"
            used["PostgreSQL"] = f"none: {postgres_skipped} tests skipped, {missing}"
        lines = [f"{kind:<11} {how}" for kind, how in used.items()]
        by_tests = [f"{count} {what}" for what, count in (CREATED - self.created).items()]
        if by_tests:
            lines.append(f"{'per-test':<11} {', '.join(by_tests)}, started and stopped by the tests that own them")
        return lines


class PostgresUnavailable(Exception):
    """No PostgreSQL answers at the test URL and none can be started here."""


def _shown(url: str) -> str:
    """The URL with its password (if any) masked, for the summary."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    return parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@")).geturl()


def _database_name(url: str) -> str:
    return urlsplit(url).path.lstrip("/") or "test"

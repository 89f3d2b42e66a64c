"""The compose stack of a copy of this checkout, driven through the `docker compose` CLI as a user drives it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import redis

from tests.conftest import ROOT

# Not `newsflow`, the compose file's own name: a user's real stack on this machine is never touched.
PROJECT = "newsflow-compose-test"
STAGE_SERVICES = ("ingest", "clean", "enrich", "publish")


def copy_checkout(target: Path) -> None:
    """The files git knows of (tracked or new, not ignored), as they are in the working tree."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)


class ComposeStack:
    """One compose project in `workdir`: `docker compose ...` with COMPOSE_FILE/COMPOSE_PROJECT_NAME set."""

    def __init__(self, workdir: Path, override: str | None) -> None:
        self.workdir = workdir
        files = ["docker-compose.yml", *([override] if override else [])]
        self.env = {**os.environ, "COMPOSE_PROJECT_NAME": PROJECT, "COMPOSE_FILE": os.pathsep.join(files)}

    # -- the CLI ------------------------------------------------------------------------------------------------

    def shell(self, command: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """A README command line, run as written in the project folder."""
        return subprocess.run(
            command, shell=True, cwd=self.workdir, env=self.env, capture_output=True, text=True, timeout=timeout
        )

    def compose(self, *args: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess[str]:
        run = subprocess.run(
            ["docker", "compose", *args],
            cwd=self.workdir,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and run.returncode != 0:
            raise AssertionError(f"docker compose {' '.join(args)} -> {run.returncode}\n{run.stderr[-3000:]}")
        return run

    def newsflow(self, service: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """`docker compose exec SERVICE newsflow ARGS` (the image's CLI, inside the stack's network)."""
        return self.compose("exec", "-T", service, "newsflow", *args, timeout=timeout)

    def host_cli(self, user: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """This checkout's `newsflow` on the host, through the published Redis port as ACL user `user`."""
        env = {**os.environ, "NEWSFLOW_REDIS_URL": self.redis_url(user), "NEWSFLOW_KEY_PREFIX": "newsflow"}
        return subprocess.run(
            [sys.executable, "-m", "newsflow.cli", *args],
            cwd=self.workdir,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    # -- what is running ----------------------------------------------------------------------------------------

    def dotenv(self) -> dict[str, str]:
        lines = (self.workdir / ".env").read_text().splitlines()
        return dict(line.split("=", 1) for line in lines if "=" in line and not line.startswith("#"))

    def set_env(self, **values: str) -> None:
        """Change settings in .env, as a user edits it."""
        path = self.workdir / ".env"
        lines = []
        for line in path.read_text().splitlines():
            name = line.split("=", 1)[0]
            lines.append(f"{name}={values.pop(name)}" if name in values else line)
        assert not values, f"not in .env: {sorted(values)}"
        path.write_text("\n".join(lines) + "\n")

    def services(self) -> list[str]:
        """Every service of the compose file (what a new one adds is checked along with the rest)."""
        return self.compose("config", "--services").stdout.split()

    def containers(self, service: str | None = None) -> list[dict[str, Any]]:
        """`docker compose ps --all --format json`: one object per container."""
        out = self.compose("ps", "--all", "--format", "json", *([service] if service else [])).stdout
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def inspect(self, container: str) -> dict[str, Any]:
        out = subprocess.run(
            ["docker", "inspect", container], capture_output=True, text=True, check=True, timeout=60
        ).stdout
        return dict(json.loads(out)[0])

    def redis_url(self, user: str) -> str:
        env = self.dotenv()
        return f"redis://{user}:{env[f'REDIS_{user.upper()}_PASSWORD']}@127.0.0.1:{env['REDIS_HOST_PORT']}/0"

    def redis(self, user: str) -> redis.Redis:
        return redis.Redis.from_url(self.redis_url(user), socket_timeout=10)

    def ingest_url(self) -> str:
        return f"http://127.0.0.1:{self.dotenv()['INGEST_HOST_PORT']}"

    def report(self) -> str:
        """What to look at when something fails: the containers and the end of every log."""
        ps = self.compose("ps", "--all", check=False).stdout
        logs = self.compose("logs", "--no-color", "--tail", "25", check=False).stdout
        return f"--- docker compose ps\n{ps}\n--- docker compose logs --tail 25\n{logs[-12000:]}"

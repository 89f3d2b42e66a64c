"""The real compose stack, for `make test-compose` (deploy/test/run.sh brings the engine and the images)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from newsflow.localstack import free_port
from tests.compose.stack import PROJECT, ComposeStack, copy_checkout

# Generous: a cold build installs every dependency from PyPI on a 2-core machine.
UP_TIMEOUT_S = 1800


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if os.environ.get("NEWSFLOW_COMPOSE_TEST") != "1":
        skip = pytest.mark.skip(reason="the real compose stack runs under `make test-compose` (Docker engine)")
        for item in items:
            if "tests/compose/" in str(item.fspath).replace(os.sep, "/"):
                item.add_marker(skip)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ComposeStack]:
    """A copy of this checkout brought up by the README's quick-start commands; taken down, volumes and all."""
    workdir: Path = tmp_path_factory.mktemp("compose") / "newsflow"
    copy_checkout(workdir)
    stack = ComposeStack(workdir, os.environ.get("NEWSFLOW_COMPOSE_OVERRIDE") or None)
    # What an earlier, interrupted run may have left (compose finds a project's containers by its name).
    stack.compose("-p", PROJECT, "down", "--volumes", "--remove-orphans", check=False)

    generated = stack.shell("sh deploy/gen-env.sh > .env")
    assert generated.returncode == 0, generated.stderr
    # This machine's 6379 and 8000 may be taken (the test suite's own Redis): the host ports are settings in .env.
    # Nothing else changes; a crashed consumer's entries are claimed after the default 30 s.
    stack.set_env(**{name: str(free_port()) for name in stack.dotenv() if name.endswith("_HOST_PORT")})
    started = time.monotonic()
    up = stack.shell("docker compose up -d --wait", timeout=UP_TIMEOUT_S)
    print(f"\ndocker compose up -d --wait: {time.monotonic() - started:.1f} s")
    try:
        assert up.returncode == 0, f"{up.stderr[-4000:]}\n{stack.report()}"
        yield stack
    finally:
        stack.compose("down", "--volumes", "--remove-orphans", "--timeout", "30", check=False)

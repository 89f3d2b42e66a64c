"""`newsflow up` (what `make run` starts): a private Redis when none answers, five services, a local feed followed,
clean Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.conftest import ROOT, SEED, wait_for
from tests.e2e.test_sources_pipeline import STORY
from tests.httpsite import Site
from tests.integration.test_fetch import rss
from tests.servers import free_port, redis_up

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_up_starts_a_private_redis_and_the_five_services_and_stops_cleanly(tmp_path: Path, site: Site) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    assert not redis_up(url)
    env = {**os.environ, "NEWSFLOW_REDIS_URL": url, "NEWSFLOW_DATA_DIR": str(tmp_path / "data"),
           "NEWSFLOW_STORAGE_URL": f"sqlite:///{tmp_path / 'data' / 'newsflow.db'}", "NEWSFLOW_HTTP_PORT": "0",
           "NEWSFLOW_LOG_FORMAT": "json", "PYTHONUNBUFFERED": "1"}
    stack = subprocess.Popen([sys.executable, "-m", "newsflow.cli", "up"], cwd=ROOT, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    assert stack.stdout is not None
    threading.Thread(target=lambda: lines.extend(line.rstrip() for line in stack.stdout), daemon=True).start()
    try:
        wait_for(lambda: sum('"stage.started"' in line for line in lines) == 5, timeout=120,
                 what="five services started")
        assert any(line.startswith("redis") and "started a private Redis" in line for line in lines)
        assert (tmp_path / "data" / "redis" / "appendonly.aof").exists()  # AOF on
        for stage in ("fetch", "ingest", "clean", "enrich", "publish"):
            assert any(line.startswith(f"{stage} ") for line in lines), f"no {stage}-prefixed lines"

        push = subprocess.run([sys.executable, "-m", "newsflow.cli", "push", str(SEED)], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=60)
        assert push.returncode == 0, push.stderr

        def shown() -> bool:
            result = subprocess.run([sys.executable, "-m", "newsflow.cli", "articles", "list", "--json"], cwd=ROOT,
                                    env=env, capture_output=True, text=True, timeout=60)
            return "Sergei Shoigu" in result.stdout

        wait_for(shown, timeout=90, interval=1, what="the seed listed")

        # The local stack lifts the fetch stage's address guard (NEWSFLOW_FETCH_ALLOW_PRIVATE is not set here):
        # a feed on this machine is followed.
        site.add("/story.html", STORY.format(title="Harbour plan approved"))
        site.add("/feed.xml", rss(site, [("/story.html", "Harbour")]), content_type="application/rss+xml")
        added = subprocess.run([sys.executable, "-m", "newsflow.cli", "sources", "add", site.url("/feed.xml")],
                               cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
        assert added.returncode == 0, added.stderr

        def followed() -> bool:
            result = subprocess.run([sys.executable, "-m", "newsflow.cli", "articles", "list", "--json"], cwd=ROOT,
                                    env=env, capture_output=True, text=True, timeout=60)
            return "Harbour plan approved" in result.stdout

        wait_for(followed, timeout=90, interval=1, what="the local feed's story listed")
    finally:
        stack.send_signal(signal.SIGINT)
        code = stack.wait(timeout=60)
    assert code == 0, "\n".join(lines[-30:])
    assert sum('"stage.stopped"' in line for line in lines) == 5
    assert not redis_up(url)  # the private Redis went down with the stack

"""A host's link to Redis and PostgreSQL goes dead for longer than any timeout, then returns: its clients work again
within a bound set by NEWSFLOW_LINK_TIMEOUT_S, not one that grows with the outage.

The client host runs tests/linkprobe.py (newsflow's own Redis client and PostgreSQL pool, requests one after another)
in a network namespace (tests/netns.py); its link is cut for PARTITION_S, far past the link timeout, and restored.
Left to TCP's defaults (before shared/links.py), a request sent into the dead link was retransmitted with a backoff
that doubled through the outage, and psycopg's pool reconnected with one too: after a 30 s cut the first request
through came ~20-30 s after the link's return, later the longer the cut.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import ROOT, wait_for
from tests.linkprobe import PAUSE_S, SERVER_WAIT_S
from tests.netns import TestNetwork, data_host, netns_unavailable

pytestmark = [pytest.mark.integration, pytest.mark.slow]

LINK_TIMEOUT_S = 4.0
PARTITION_S = 30.0
# A connection open from before the cut answers or is dropped within the link timeout; a new one, or the pool's
# next attempt (spaced at most the link timeout apart), takes up to that again. The probe waits 0.2 s between
# requests; a loaded 2-core machine may add a few seconds of scheduling.
RECOVERY_BOUND_S = 2 * LINK_TIMEOUT_S + 5.0


@pytest.fixture
def network() -> Iterator[TestNetwork]:
    reason = netns_unavailable()
    if reason:
        pytest.skip(reason)
    net = TestNetwork(["data", "client"])
    try:
        yield net.create()
    finally:
        left = net.destroy()
        assert not left, f"processes still running in the test's namespaces at the end: {left}"


class Probe:
    """tests/linkprobe.py running on the client host; its lines read as they come."""

    def __init__(self, network: TestNetwork, kind: str, url: str) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "NEWSFLOW_LINK_TIMEOUT_S": str(LINK_TIMEOUT_S)}
        command = [*network.exec_prefix("client"), sys.executable, "-m", "tests.linkprobe", kind, url]
        self.kind = kind
        self.process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
        self.lines: list[dict[str, Any]] = []

    def read(self) -> list[dict[str, Any]]:
        """Every line so far (reads what is ready without blocking)."""
        assert self.process.stdout is not None
        os.set_blocking(self.process.stdout.fileno(), False)
        while line := self.process.stdout.readline():
            self.lines.append(json.loads(line))
        return self.lines

    def waiting_on_server(self) -> bool:
        """Its last request succeeded, and the next has been on the server for a while, its reply not due yet."""
        lines = self.read()
        since = time.monotonic() - lines[-1]["at"]
        return bool(lines[-1]["ok"]) and PAUSE_S + 0.3 <= since <= PAUSE_S + SERVER_WAIT_S - 1

    def first_ok_after(self, moment: float) -> float | None:
        return next((line["at"] for line in self.read() if line["ok"] and line["at"] > moment), None)

    def stop(self) -> None:
        self.process.kill()
        self.process.wait(timeout=10)


def test_clients_work_again_within_the_link_bound_after_a_long_cut(network: TestNetwork) -> None:
    with data_host(network) as (server, storage_url, _):
        probes = [Probe(network, "redis", server.url)]
        if storage_url.startswith("postgresql"):
            probes.append(Probe(network, "postgres", storage_url))
        try:
            started = time.monotonic()
            for probe in probes:
                wait_for(lambda probe=probe: probe.first_ok_after(started), timeout=60, what=f"{probe.kind} answers")
            # Cut while every probe's request is on the server (sent, acknowledged, its reply not due yet).
            wait_for(
                lambda: all(p.waiting_on_server() for p in probes),
                timeout=120,
                interval=0.05,
                what="every probe's request on the server",
            )
            network.cut("client")
            cut_at = time.monotonic()
            time.sleep(PARTITION_S)
            during = {p.kind: [line for line in p.read() if line["at"] > cut_at + 1] for p in probes}
            network.restore("client")
            restored_at = time.monotonic()
            wait_for(
                lambda: all(p.first_ok_after(restored_at) for p in probes),
                timeout=180,
                interval=0.2,
                what="every probe through again",
            )
            # From the link's return to the server having the first request that went through (its reply came the
            # server's wait later).
            recovered = {
                p.kind: round(float(p.first_ok_after(restored_at) or 0) - SERVER_WAIT_S - restored_at, 1)
                for p in probes
            }
            print(
                "dead link figures:",
                json.dumps(
                    {
                        "partition_s": PARTITION_S,
                        "link_timeout_s": LINK_TIMEOUT_S,
                        "restore_to_first_request_on_server_s": recovered,
                    }
                ),
            )
        finally:
            for probe in probes:
                probe.stop()
    for kind, lines in during.items():
        assert not any(line["ok"] for line in lines), f"{kind} went through while cut off: the cut did not hold"
    for kind, seconds in recovered.items():
        assert seconds <= RECOVERY_BOUND_S, f"{kind}: {seconds} s after the link came back (bound {RECOVERY_BOUND_S})"

"""Test "hosts" on one machine: network namespaces joined by a bridge, whose links a test can cut and restore.

Each run gets namespaces of its own (`nf<suffix>-<host>`, the suffix unique per run) and one private /24 inside
them (10.231.N.0/24, N picked at random): the switch namespace holds a bridge, and each host namespace one veth
pair to it, the host side named eth0. Nothing is added to the machine's own namespace (no address, no route, no
interface), so nothing can collide with the machine's network. `cut(host)` sets the host's port on the switch
down — the host's processes keep running, and its packets go nowhere, like a pulled cable or a partition — and
`restore(host)` sets it up again. `destroy()` kills whatever still runs in the namespaces (only this run's
processes are in them) and deletes them; the reaper (tests/servers.py) does the same if the test process dies.
"""

from __future__ import annotations

import os
import random
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from tests.servers import PostgresCluster, RedisServer, postgres_binaries_missing, reaper

SUBNET_FIRST = "10.231"


def netns_unavailable() -> str | None:
    """Why no test network can be built here (None when it can): root and `ip netns` are needed."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "no `ip` command (apt-get install iproute2)"
    probe = f"nfprobe{secrets.token_hex(3)}"
    added = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if added.returncode != 0:
        return f"`ip netns add` failed: {added.stderr.strip() or added.returncode}"
    subprocess.run(["ip", "netns", "delete", probe], capture_output=True)
    return None


def ip(*args: str) -> None:
    """Run one `ip` command; a failure raises with its output."""
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} failed ({done.returncode}): {done.stderr.strip()}")


class TestNetwork:
    """A switch and hosts in network namespaces; host i is 10.231.N.(10 + i), the first host .10."""

    __test__ = False  # not a pytest class

    def __init__(self, hosts: Sequence[str]) -> None:
        self.suffix = secrets.token_hex(3)
        self.subnet = f"{SUBNET_FIRST}.{random.randint(1, 254)}"
        self.hosts = list(hosts)
        self.switch = f"nf{self.suffix}-switch"
        self.namespaces = {host: f"nf{self.suffix}-{host}" for host in self.hosts}
        self.addresses = {host: f"{self.subnet}.{10 + i}" for i, host in enumerate(self.hosts)}
        # Interface names are at most 15 characters: p<suffix><index> on the switch, eth0 in each host.
        self.ports = {host: f"p{self.suffix}{i}" for i, host in enumerate(self.hosts)}
        self.created: list[str] = []

    @property
    def cidr(self) -> str:
        return f"{self.subnet}.0/24"

    def create(self) -> TestNetwork:
        for name in [self.switch, *self.namespaces.values()]:
            ip("netns", "add", name)
            self.created.append(name)
            reaper().watch(match=name, netns=name)
            ip("-n", name, "link", "set", "lo", "up")
        ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
        ip("-n", self.switch, "link", "set", "br0", "up")
        for host, ns in self.namespaces.items():
            port = self.ports[host]
            # Both ends are created inside the namespaces: the machine's own namespace never holds them.
            ip("link", "add", port, "netns", self.switch, "type", "veth", "peer", "name", "eth0", "netns", ns)
            ip("-n", self.switch, "link", "set", port, "master", "br0", "up")
            ip("-n", ns, "addr", "add", f"{self.addresses[host]}/24", "dev", "eth0")
            ip("-n", ns, "link", "set", "eth0", "up")
        return self

    def exec_prefix(self, host: str) -> list[str]:
        """The command prefix that runs a program on `host`."""
        return ["ip", "netns", "exec", self.namespaces[host]]

    def cut(self, host: str) -> None:
        """Unplug `host`: its port on the switch goes down; its processes run on, cut off from every other host."""
        ip("-n", self.switch, "link", "set", self.ports[host], "down")

    def restore(self, host: str) -> None:
        ip("-n", self.switch, "link", "set", self.ports[host], "up")

    def pids(self, name: str) -> list[int]:
        done = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True)
        return [int(pid) for pid in done.stdout.split()]

    def destroy(self) -> list[int]:
        """Kill what still runs in this network's namespaces and delete them; returns the PIDs it had to kill."""
        killed: list[int] = []
        for name in self.created:
            for pid in self.pids(name):
                try:
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + 10
        while any(self.pids(name) for name in self.created) and time.monotonic() < deadline:
            time.sleep(0.1)
        for name in reversed(self.created):
            subprocess.run(["ip", "netns", "delete", name], capture_output=True)
        self.created.clear()
        return killed


@contextmanager
def data_host(network: TestNetwork, host: str = "data") -> Iterator[tuple[RedisServer, str, str]]:
    """Redis, and PostgreSQL (SQLite on the shared disk when PostgreSQL is not installed), on `host`.

    Yields the server, the storage URL the other hosts use, and the one the test process (outside) reads through.
    """
    workdir = Path(tempfile.mkdtemp(prefix="newsflow-netns-"))
    # Reached over the network, so with a password (and Redis's protected mode lets no one in without one).
    server = RedisServer(workdir / "redis", secrets.token_hex(16), durable=False, netns=network.namespaces[host],
                         host=network.addresses[host])
    cluster = None
    try:
        server.start()
        if postgres_binaries_missing():
            url = f"sqlite:///{workdir / 'newsflow.db'}"
            yield server, url, url
        else:
            cluster = PostgresCluster(netns=network.namespaces[host], host=network.addresses[host],
                                      allow=network.cidr)
            cluster.init().start()
            yield server, cluster.url, cluster.local_url
    finally:
        server.stop(kill=True)
        if cluster is not None:
            cluster.destroy()
        shutil.rmtree(workdir, ignore_errors=True)

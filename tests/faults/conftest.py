"""The fault suite: real services as processes against private servers, a fault injected while articles flow.

Every test here asserts the delivery promise after its fault: each article pushed is stored exactly once or in the
DLQ with a reason, nothing stays pending past the claim idle time plus a margin, every service is alive or exited
non-zero, and `newsflow status` exits and reports what is true. Fixtures shared by the fault tests live here;
`start_service`, `service_env` and the private servers come from tests/conftest.py and tests/servers.py.

The helpers know nothing of any one fault: `fault_pipeline(...)` starts the stages as processes (each with an
HTTP port of its own, for /metrics), `Pipeline.push` queues distinct articles, `Pipeline.account` says where each
one ended up, `Pipeline.assert_promise` checks the promise above, `Pipeline.status` runs `newsflow status --json`.
"""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis

from shared.settings import Settings
from shared.storage import open_storage
from shared.streams import STAGES, names
from tests.conftest import ROOT, ServiceProcess, wait_for
from tests.servers import RedisServer

# Short claim and sweep times keep each fault test to seconds; the promise is checked against these.
FAULT_ENV = {
    "NEWSFLOW_CLAIM_IDLE_MS": "1500",
    "NEWSFLOW_CLAIM_INTERVAL_MS": "300",
    "NEWSFLOW_MAX_DELIVERIES": "3",
    "NEWSFLOW_TRIM_INTERVAL_S": "2",
    "NEWSFLOW_BATCH_SIZE": "16",
}
# "Nothing pending past claim idle + margin": the sweep runs every claim interval, and a batch takes a while.
PENDING_MARGIN_MS = 5_000


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Everything under tests/faults is a fault test (`pytest -m faults` runs only these)."""
    for item in items:
        if "/tests/faults/" in str(item.path).replace("\\", "/"):
            item.add_marker(pytest.mark.faults)
            item.add_marker(pytest.mark.integration)


TOPICS = ["council budget", "harbour expansion", "school meals", "rail strike", "river flooding", "tech startup",
          "hospital waiting lists", "football final", "museum reopening", "court ruling"]
SENTENCES = [
    "Officials in {place} said on {day} that the {topic} plan would be reviewed by the end of the month.",
    "Residents told reporters the {topic} debate had divided the community for years.",
    "A spokesperson for the mayor of {place} declined to comment on the {topic} figures.",
    "Analysts expect the {topic} decision to shape the regional economy well into next year.",
    "The opposition called the {topic} proposal rushed and demanded an independent inquiry.",
]
PLACES = ["Leeds", "Lyon", "Porto", "Gdansk", "Malmo", "Bilbao", "Graz", "Turin", "Ghent", "Cork"]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"]


def fault_article(n: int, tag: str = "fault") -> dict[str, str]:
    """A distinct ~90-word raw article: client id `{tag}-{n}`, its own URL (so its own article id)."""
    rng = random.Random(f"{tag}-{n}")
    topic, place = rng.choice(TOPICS), rng.choice(PLACES)
    body = " ".join(s.format(place=place, day=rng.choice(DAYS), topic=topic) for s in rng.sample(SENTENCES, 4))
    return {"id": f"{tag}-{n}", "url": f"https://{tag}.example.net/{n}",
            "text": f"{place} {topic} update {n}\n\n{body} Case reference {n}-{rng.randint(1000, 9999)}."}


def external_id_of(payload: bytes) -> str | None:
    """The client id inside a DLQ payload: a raw article's `id`, or an event's `ingest.external_id`."""
    try:
        data = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(data, dict):
        return None
    ingest = data.get("ingest")
    if isinstance(ingest, dict):
        return ingest.get("external_id")
    value = data.get("id")
    return value if isinstance(value, str) else None


@dataclass(frozen=True)
class Accounting:
    """Where every pushed article ended up."""

    pushed: int
    stored: Counter[str]
    dead: dict[str, list[str]]  # external id -> DLQ reasons (one per letter)
    missing: list[str]

    @property
    def duplicates(self) -> dict[str, int]:
        return {key: n for key, n in self.stored.items() if n > 1}

    @property
    def settled(self) -> bool:
        return not self.missing

    def figures(self) -> dict[str, Any]:
        """The numbers a report quotes: stored, dead-lettered (by reason), missing, duplicates."""
        reasons = Counter(reason for letters in self.dead.values() for reason in letters)
        return {"pushed": self.pushed, "stored": len(self.stored), "duplicates": len(self.duplicates),
                "dead_lettered": len(self.dead), "dlq_reasons": dict(reasons), "missing": len(self.missing)}


@dataclass
class StatusRun:
    """One `newsflow status --json` run."""

    code: int
    data: dict[str, Any]
    stderr: str

    @property
    def problems(self) -> list[dict[str, Any]]:
        return list(self.data.get("problems", []))

    def reasons(self, stage: str | None = None) -> set[str]:
        return {p["reason"] for p in self.problems if stage is None or p.get("stage") == stage}


@dataclass
class Pipeline:
    """The stages running as processes on one Redis and one storage, and what a fault test asks of them."""

    env: dict[str, str]
    start_service: Callable[..., ServiceProcess]
    stages: Sequence[str] = STAGES
    services: dict[str, ServiceProcess] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)
    # Every process that ran (restarted ones too) and how it ended, for the "alive or non-zero" check.
    history: list[ServiceProcess] = field(default_factory=list)

    @property
    def prefix(self) -> str:
        return self.env["NEWSFLOW_KEY_PREFIX"]

    @property
    def redis_url(self) -> str:
        return self.env["NEWSFLOW_REDIS_URL"]

    @property
    def storage_url(self) -> str:
        return self.env["NEWSFLOW_STORAGE_URL"]

    @property
    def claim_idle_ms(self) -> int:
        return int(self.env["NEWSFLOW_CLAIM_IDLE_MS"])

    @property
    def streams(self) -> Any:
        return names(Settings(key_prefix=self.prefix))

    def client(self, **kwargs: Any) -> redis.Redis:
        return redis.Redis.from_url(self.redis_url, socket_timeout=10, **kwargs)

    def start(self, stage: str, extra_env: Mapping[str, str] | None = None) -> ServiceProcess:
        """Start (or start again) one stage; its HTTP side on a port of its own (for /metrics)."""
        service = self.start_service(stage, {**self.env, **(extra_env or {})}, http=True)
        self.ports[stage] = int(service.env["NEWSFLOW_HTTP_PORT"])
        self.services[stage] = service
        self.history.append(service)
        return service

    def start_all(self) -> Pipeline:
        """Start every stage at once (each loads its models in parallel) and wait until all have started."""
        failures: list[BaseException] = []

        def start(stage: str) -> None:
            try:
                self.start(stage)
            except BaseException as exc:  # reported below, in this thread
                failures.append(exc)

        threads = [threading.Thread(target=start, args=(stage,)) for stage in self.stages]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if failures:
            raise failures[0]
        return self

    def push(self, items: Sequence[Mapping[str, str]]) -> list[str]:
        """XADD the raw articles (as a producer would) and return their client ids."""
        pipe = self.client().pipeline(transaction=False)
        for item in items:
            pipe.xadd(f"{self.prefix}:raw", {"data": orjson.dumps(dict(item)), "origin": "fault-test"})
        pipe.execute()
        return [item["id"] for item in items]

    def stored(self) -> Counter[str]:
        """Stored records by client id (external_id); a count above 1 is a duplicate row."""

        async def read() -> Counter[str]:
            async with open_storage(self.storage_url) as storage:
                await storage.migrate()
                return Counter([r.external_id or r.id async for r in storage.iter_export()])

        return asyncio.run(read())

    def dlq(self) -> list[dict[str, Any]]:
        """Every DLQ entry: its letter (stage, reason, deliveries, …) and the client id of its payload."""
        client = self.client()
        letters = []
        for _, fields in client.xrange(self.streams.dlq):
            payload = fields.get(b"payload")  # inline in entries of the older layout, else a key of its own
            if payload is None and b"payload_key" in fields:
                payload = client.get(self.streams.dlq_payload(fields[b"payload_key"].decode()))
            letters.append({**orjson.loads(fields[b"data"]), "external_id": external_id_of(payload or b"")})
        return letters

    def account(self, pushed: Sequence[str]) -> Accounting:
        """Where each of `pushed` (client ids) is: stored (how often), dead-lettered (why), or nowhere yet."""
        wanted = set(pushed)
        stored = self.stored()
        dead: dict[str, list[str]] = {}
        for letter in self.dlq():
            if letter["external_id"] in wanted:
                dead.setdefault(letter["external_id"], []).append(letter["reason"])
        missing = [key for key in pushed if key not in stored and key not in dead]
        return Accounting(pushed=len(pushed), stored=Counter({k: n for k, n in stored.items() if k in wanted}),
                          dead=dead, missing=missing)

    def settle(self, pushed: Sequence[str], timeout: float = 90) -> Accounting:
        """Wait (at most `timeout`) until every pushed article is stored or dead-lettered; where they are then.

        It does not raise: a test reports the figures first, then asserts on them.
        """
        deadline = time.monotonic() + timeout
        while True:
            accounting = self.account(pushed)
            if accounting.settled or time.monotonic() > deadline:
                return accounting
            time.sleep(1)

    def pending(self, older_than_ms: int = 0) -> dict[str, int]:
        """Entries delivered and not acknowledged, per `stream/group`, idle at least `older_than_ms`."""
        client = self.client()
        found: dict[str, int] = {}
        for stream in self.streams.pipeline_streams:
            try:
                groups = client.xinfo_groups(stream)
            except redis.ResponseError:
                continue
            for group in groups:
                name = group["name"].decode()
                rows = client.xpending_range(stream, name, min="-", max="+", count=100_000, idle=older_than_ms or None)
                if rows:
                    found[f"{stream}/{name}"] = len(rows)
        return found

    def wait_nothing_pending(self, timeout: float | None = None) -> None:
        """Until no group holds an entry pending (claim idle + margin, by default)."""
        limit = timeout if timeout is not None else (self.claim_idle_ms + PENDING_MARGIN_MS) / 1000 + 10
        wait_for(lambda: not self.pending(), timeout=limit, interval=0.5, what="nothing pending")

    def diagnose(self) -> dict[str, Any]:
        """Where things stand, for a failure message: each stream's length, its groups' lag, pending, consumers."""
        client = self.client()
        found: dict[str, Any] = {}
        for stream in (*self.streams.pipeline_streams, self.streams.published, self.streams.dlq):
            try:
                groups = client.xinfo_groups(stream)
            except redis.ResponseError as exc:
                found[stream] = str(exc)
                continue
            found[stream] = {
                "length": client.xlen(stream),
                "groups": {
                    g["name"].decode(): {"lag": g.get("lag"), "pending": g["pending"],
                                         "consumers": {c["name"].decode(): (c["pending"], c["idle"])
                                                       for c in client.xinfo_consumers(stream, g["name"])}}
                    for g in groups
                },
            }
        found["alive"] = {f"{s.stage}:{s.process.pid}": s.process.poll() for s in self.history if s.process}
        return found

    def groups(self) -> dict[str, set[str]]:
        """stream -> the consumer groups on it."""
        client = self.client()
        found: dict[str, set[str]] = {}
        for stage in self.stages:
            stream = self.streams.input_of(stage)
            try:
                found[stream] = {g["name"].decode() for g in client.xinfo_groups(stream)}
            except redis.ResponseError:
                found[stream] = set()
        return found

    def status(self, *args: str, env: Mapping[str, str] | None = None) -> StatusRun:
        """`newsflow status --json ARGS` as an operator runs it."""
        run = subprocess.run(
            [sys.executable, "-m", "newsflow.cli", "status", "--json", *args],
            cwd=ROOT, env={**self.env, **(env or {})}, capture_output=True, text=True, timeout=60,
        )
        data = orjson.loads(run.stdout) if run.stdout.strip() else {}
        return StatusRun(code=run.returncode, data=data, stderr=run.stderr)

    def metrics(self, stage: str) -> str:
        """The stage's /metrics text."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.ports[stage]}/metrics", timeout=10) as answer:
            return str(answer.read().decode())

    def events(self, stage: str | None = None, event: str | None = None) -> list[dict[str, Any]]:
        """Parsed JSON log lines of every process of `stage` (all stages when None), filtered by event name."""
        found = []
        for service in self.history:
            if stage is not None and service.stage != stage:
                continue
            for line in list(service.lines):
                if not line.startswith("{"):
                    continue
                try:
                    data = json.loads(line)
                except ValueError:
                    continue
                if event is None or data.get("event") == event:
                    found.append(data)
        return found

    def exit_codes(self) -> dict[str, int | None]:
        """pid:stage -> exit status (None while it runs)."""
        return {f"{s.stage}:{s.process.pid}": s.process.poll() for s in self.history if s.process is not None}

    def assert_alive_or_failed(self) -> None:
        """A service runs, or it ended with a non-zero status (one a supervisor restarts); never a silent 0."""
        for service in self.history:
            assert service.process is not None
            code = service.process.poll()
            assert code is None or code != 0 or getattr(service, "asked_to_stop", False), (
                f"{service.stage} (pid {service.process.pid}) exited 0 without being asked to:\n"
                + "\n".join(service.lines[-15:])
            )

    def stop(self, stage: str) -> int:
        """SIGTERM one stage (asked to stop: exit 0 expected)."""
        service = self.services[stage]
        service.asked_to_stop = True  # type: ignore[attr-defined]
        return service.stop()

    def assert_promise(self, pushed: Sequence[str], *, allow_lost: Sequence[str] = ()) -> Accounting:
        """Each article stored exactly once or in the DLQ with a reason; nothing pending; services alive.

        `allow_lost`: articles Redis itself may have lost (pushed to a server that then lost its data): those
        may be missing, never duplicated.
        """
        accounting = self.account(pushed)
        assert not accounting.duplicates, f"stored more than once: {accounting.duplicates}"
        assert set(accounting.missing) <= set(allow_lost), f"neither stored nor dead-lettered: {accounting.missing}"
        for key, reasons in accounting.dead.items():
            assert all(reasons), f"{key} dead-lettered without a reason"
            assert key not in accounting.stored, f"{key} both stored and dead-lettered ({reasons})"
        stale = self.pending(older_than_ms=self.claim_idle_ms + PENDING_MARGIN_MS)
        assert not stale, f"pending past claim idle + margin: {stale}"
        self.assert_alive_or_failed()
        return accounting


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[Callable[..., RedisServer]]:
    """Start private redis-servers the test owns (AOF or none, extra arguments); each stopped by PID afterwards."""
    servers: list[RedisServer] = []

    def start(*, durable: bool = True, extra_args: Sequence[str] = ()) -> RedisServer:
        server = RedisServer(tmp_path / f"redis-{len(servers)}", extra_args=extra_args, durable=durable)
        servers.append(server)
        server.start()
        return server

    yield start
    for server in servers:
        server.stop(kill=True)


@pytest.fixture
def fault_pipeline(
    start_service: Callable[..., ServiceProcess], service_env: dict[str, str]
) -> Callable[..., Pipeline]:
    """`fault_pipeline(redis_url=…, storage_url=…, env={…}, stages=…)`: the stages started as processes."""

    def start(
        *,
        redis_url: str | None = None,
        storage_url: str | None = None,
        env: Mapping[str, str] | None = None,
        stages: Sequence[str] = STAGES,
        started: bool = True,
    ) -> Pipeline:
        merged = {**service_env, **FAULT_ENV, **(env or {})}
        if redis_url is not None:
            merged["NEWSFLOW_REDIS_URL"] = redis_url
        if storage_url is not None:
            merged["NEWSFLOW_STORAGE_URL"] = storage_url
        pipeline = Pipeline(env=merged, start_service=start_service, stages=stages)
        return pipeline.start_all() if started else pipeline

    return start


def report(name: str, **figures: Any) -> None:
    """One line of measured figures per fault (pytest -s, or -rP, shows it): what the closing note quotes."""
    print(f"FAULT {name}: {json.dumps(figures, sort_keys=True, default=str)}")

"""`docker compose up` for real: the README's quick start, HTTP and CLI ingest into PostgreSQL, two enrich replicas
and a crash, volumes across down/up, the logs, the users. The tests run in order on one stack."""

from __future__ import annotations

import json
import os
import signal
from collections import Counter
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
import redis

from tests.compose.stack import STAGE_SERVICES, ComposeStack
from tests.conftest import FIXTURES, SEED, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# 200 articles: the 40 hand-written text pages five times over, each copy its own article (its own URL).
BATCH = [
    {"text": page["text"], "url": f"https://compose.test/{copy}/{page['id']}"}
    for copy in range(5)
    for page in map(json.loads, (FIXTURES / "text-holdout" / "pages.jsonl").read_text().splitlines())
]
PUSHED_FILE = FIXTURES / "clean" / "reuters-style.txt"
STORED_BEFORE_BATCH = 2  # the seed over HTTP, PUSHED_FILE with `newsflow push`


def published(stack: ComposeStack) -> list[dict[str, Any]]:
    """Every newsflow:published event (no consumer group reads it, so it is never trimmed)."""
    entries = cast(list[tuple[bytes, dict[bytes, bytes]]], stack.redis("operator").xrange("newsflow:published"))
    return [json.loads(fields[b"data"]) for _, fields in entries]


def stored_count(stack: ComposeStack) -> int:
    return int(stack.newsflow("publish", "articles", "count").stdout.split()[-1])


def postgres_rows(stack: ComposeStack, sql: str) -> list[str]:
    """`psql` in the postgres container, as the compose file's database owner: one line per row."""
    out = stack.compose("exec", "-T", "postgres", "psql", "-U", "newsflow", "-d", "newsflow", "-qtAc", sql).stdout
    return out.splitlines()


def claims_logged(stack: ComposeStack, service: str) -> list[str]:
    """The `entries.claimed` lines of a service's log (what a replica took over from another)."""
    out = stack.compose("logs", "--no-log-prefix", service, check=False).stdout
    return [line for line in out.splitlines() if '"entries.claimed"' in line or '"batch.hold' in line]


def search_ids(stack: ComposeStack, query: str) -> list[str]:
    out = stack.newsflow("publish", "articles", "search", query, "--json").stdout
    return [json.loads(line)["id"] for line in out.splitlines() if line.strip()]


def wait_published(stack: ComposeStack, count: int, timeout: float = 300) -> None:
    try:
        wait_for(lambda: len(published(stack)) >= count, timeout=timeout, interval=0.5, what=f"{count} published")
    except AssertionError as exc:
        raise AssertionError(f"{exc} (have {len(published(stack))})\n{stack.report()}") from None


def quiet(operator: redis.Redis) -> bool:
    """Every stage's group has acknowledged everything it was given."""
    streams = ("newsflow:raw", "newsflow:ingested", "newsflow:cleaned", "newsflow:enriched")
    return all(int(operator.xpending(s, g)["pending"]) == 0 for s, g in zip(streams, STAGE_SERVICES, strict=True))


def process_uid(pid: int) -> int:
    """The real uid of a process, read on the host."""
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1])


def test_quick_start_brings_every_service_up_healthy(stack: ComposeStack) -> None:
    containers = {c["Service"]: c for c in stack.containers()}
    assert set(containers) == set(stack.services()) >= {"redis", "postgres", *STAGE_SERVICES}, stack.report()
    for service, container in containers.items():
        assert (container["State"], container["Health"]) == ("running", "healthy"), (service, stack.report())
    # One image, built once, runs every newsflow service.
    ours = [s for s, c in containers.items() if c["Image"] == "newsflow:latest"]
    assert set(STAGE_SERVICES) <= set(ours)
    assert len({stack.inspect(containers[s]["ID"])["Image"] for s in ours}) == 1


def test_no_container_runs_as_root(stack: ComposeStack) -> None:
    for container in stack.containers():
        info = stack.inspect(container["ID"])
        # `docker top`: every process of the container, as the host sees it (the PID column).
        header, *rows = stack.compose("top", container["Service"]).stdout.splitlines()
        column = header.split().index("PID")
        pids = [info["State"]["Pid"]] + [int(row.split()[column]) for row in rows if row.strip()]
        uids = {pid: process_uid(pid) for pid in pids if Path(f"/proc/{pid}").exists()}
        # redis and postgres start as root and drop to their own user, as their upstream images do.
        assert uids and 0 not in uids.values(), (container["Service"], uids)
        if container["Image"] == "newsflow:latest":
            assert info["Config"]["User"] == "newsflow"


def test_http_ingest_needs_the_token_and_stores_in_postgresql(stack: ComposeStack) -> None:
    article = {"text": SEED.read_text()}
    url = f"{stack.ingest_url()}/articles"
    assert httpx.post(url, json=article, timeout=30).status_code == 401
    assert httpx.post(url, json=article, headers={"Authorization": "Bearer wrong"}, timeout=30).status_code == 401
    token = stack.dotenv()["NEWSFLOW_API_TOKEN"]
    response = httpx.post(url, json=article, headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert response.status_code == 202, response.text
    [queued] = response.json()["queued"]
    wait_published(stack, 1, timeout=180)
    assert search_ids(stack, "Shoigu") == [queued["article_id"]]
    # In PostgreSQL itself (the compose file's database, not a SQLite file in the container).
    assert postgres_rows(stack, "SELECT id FROM articles") == [queued["article_id"]]
    record = json.loads(stack.newsflow("publish", "articles", "show", queued["article_id"], "--json").stdout)
    assert record["origin"] == "http" and record["title"].startswith("Sergei Shoigu")
    assert [stamp["stage"] for stamp in record["trace"]] == list(STAGE_SERVICES)


def test_newsflow_push_as_the_producer_user(stack: ComposeStack) -> None:
    pushed = stack.host_cli("producer", "push", str(PUSHED_FILE))
    assert pushed.returncode == 0, pushed.stderr
    assert "queued 1 article" in pushed.stdout + pushed.stderr
    # The producer may append to newsflow:raw and do nothing else.
    with pytest.raises(redis.exceptions.NoPermissionError):
        stack.redis("producer").xrange("newsflow:raw")
    wait_published(stack, STORED_BEFORE_BATCH, timeout=180)
    [event] = [e for e in published(stack) if e["id"] not in search_ids(stack, "Shoigu")]
    record = json.loads(stack.newsflow("publish", "articles", "show", event["id"], "--json").stdout)
    assert record["origin"] == "cli" and record["external_id"] == PUSHED_FILE.stem
    assert search_ids(stack, "defence spending") == [event["id"]]
    assert stored_count(stack) == STORED_BEFORE_BATCH
    assert sorted(postgres_rows(stack, "SELECT origin FROM articles")) == ["cli", "http"]


def test_two_enrich_replicas_share_the_work_and_survive_a_crash(stack: ComposeStack) -> None:
    stack.shell("docker compose up -d --wait --scale enrich=2", timeout=300).check_returncode()
    replicas = {c["ID"]: stack.inspect(c["ID"]) for c in stack.containers("enrich")}
    assert len(replicas) == 2
    hostnames = {info["Config"]["Hostname"]: cid for cid, info in replicas.items()}

    token = stack.dotenv()["NEWSFLOW_API_TOKEN"]
    response = httpx.post(
        f"{stack.ingest_url()}/articles",
        content="\n".join(json.dumps(a) for a in BATCH).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/x-ndjson"},
        timeout=120,
    )
    assert response.status_code == 202 and len(response.json()["queued"]) == len(BATCH), response.text

    # Crash a replica while it holds entries it has read and not yet acknowledged: SIGKILL to its main process
    # from the host (`docker kill` counts as a manual stop, to which no restart policy applies).
    operator = stack.redis("operator")

    def holder() -> tuple[str, int] | None:
        for consumer in operator.xpending("newsflow:cleaned", "enrich")["consumers"]:
            name, pending = consumer["name"].decode(), int(consumer["pending"])
            if pending and name.split("-")[0] in hostnames:
                return name, pending
        return None

    found = wait_for(holder, timeout=300, interval=0.05, what="an enrich replica holding entries")
    victim_consumer, held = cast(tuple[str, int], found)
    victim = hostnames[victim_consumer.split("-")[0]]
    os.kill(replicas[victim]["State"]["Pid"], signal.SIGKILL)

    def restarted() -> bool:
        state = stack.inspect(victim)
        return bool(state["RestartCount"] >= 1 and state["State"]["Running"])

    wait_for(restarted, timeout=120, interval=0.5, what="the restart policy to bring the replica back")
    total = STORED_BEFORE_BATCH + len(BATCH)
    wait_published(stack, total)
    wait_for(lambda: quiet(operator), timeout=300, interval=0.5, what="every group to acknowledge everything")

    # Nothing lost, nothing stored twice: one row per article, each at its first revision.
    assert stored_count(stack) == total
    events = published(stack)
    assert len({e["id"] for e in events}) == total and {e["revision"] for e in events} == {1}
    # Redelivery is at least once, so an event could repeat (same id, same revision); but only the crashed
    # replica's entries may be claimed — a live replica keeps its batch in hand however slow the machine is — and
    # those it never committed, so nothing repeats.
    repeats = len(events) - total
    claims = claims_logged(stack, "enrich")
    print(f"\ncrash: replica held {held} entries; {repeats} published event(s) repeated; claims: {claims}")
    assert repeats == 0, (
        [e["id"] for e in events if sum(x["id"] == e["id"] for x in events) > 1][:10],
        claims,
        claims_logged(stack, "publish"),
    )
    assert operator.xlen("newsflow:dlq") == 0
    # What the killed consumer held went to a live one.
    left = {c["name"].decode(): int(c["pending"]) for c in operator.xpending("newsflow:cleaned", "enrich")["consumers"]}
    assert left.get(victim_consumer, 0) == 0, (held, left)

    # Both replicas consumed: distinct consumer names in `newsflow status`, and in the stored records' lineage.
    status = stack.host_cli("operator", "status", "--json")
    assert status.returncode == 0, status.stderr
    [cleaned] = [s for s in json.loads(status.stdout)["streams"] if s["name"] == "newsflow:cleaned"]
    consumers = {c["name"] for c in cleaned["groups"][0]["consumers"]}
    assert len({name.split("-")[0] for name in consumers}) == 2, consumers
    export = stack.newsflow("publish", "articles", "export", "--format", "jsonl").stdout
    workers = Counter(
        stamp["worker"].split("-")[0]
        for record in map(json.loads, export.splitlines())
        for stamp in record["trace"]
        if stamp["stage"] == "enrich"
    )
    assert set(hostnames) <= set(workers), workers


def test_logs_are_one_json_object_per_line(stack: ComposeStack) -> None:
    for service in STAGE_SERVICES:
        lines = [line for line in stack.compose("logs", "--no-log-prefix", service).stdout.splitlines() if line]
        events = []
        for line in lines:
            event = json.loads(line)
            assert isinstance(event, dict), (service, line)
            events.append(event)
        per_article = [e for e in events if str(e["event"]).startswith("article.")]
        assert per_article, service
        assert all(e.get("article_id") for e in per_article), service
        if service == "enrich":
            # Both replicas' lines, the crashed one's from before and after its restart.
            enriched = {e["article_id"] for e in per_article if e["event"] == "article.enriched"}
            assert len(enriched) == STORED_BEFORE_BATCH + len(BATCH)


def test_down_and_up_keep_the_articles(stack: ComposeStack) -> None:
    stack.shell("docker compose down", timeout=300).check_returncode()
    assert not [c for c in stack.containers() if c["State"] == "running"]
    up = stack.shell("docker compose up -d --wait", timeout=300)
    assert up.returncode == 0, f"{up.stderr[-3000:]}\n{stack.report()}"
    total = STORED_BEFORE_BATCH + len(BATCH)
    assert stored_count(stack) == total  # PostgreSQL's volume
    # Redis's append-only file on its volume: the streams, and the groups with nothing left pending.
    assert len({e["id"] for e in published(stack)}) == total
    assert quiet(stack.redis("operator"))
    assert search_ids(stack, "Shoigu")

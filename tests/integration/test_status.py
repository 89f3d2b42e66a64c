"""`newsflow status` against real Redis: a deliberately stuck group, lag, consumers, DLQ by reason, exit codes.

The fault suite (tests/faults/test_status_truth.py) shows the verdict against real services; here each rule on
its own, from states written directly into Redis.
"""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
import redis

from shared.events import DeadLetter
from tests.conftest import ROOT
from tests.servers import refused_port

pytestmark = pytest.mark.integration


def newsflow_status(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "newsflow.cli", "status", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def letter(stage: str, reason: str) -> bytes:
    return DeadLetter(
        stage=stage,
        reason=reason,
        error="test",
        deliveries=1,
        failed_at=datetime.now(UTC),
        stream=f"x:{stage}",
        msg_id="1-0",
    ).to_json()


@pytest.fixture
def stuck_pipeline(redis_url: str, key_prefix: str) -> dict[str, Any]:
    """raw: 5 entries; group ingest: consumer `hung` read 2 and never acked, 3 not delivered. DLQ: 3 letters.

    Every stage's group exists (clean's and publish's on empty streams).
    """
    client = redis.Redis.from_url(redis_url)
    raw, cleaned, dlq = (f"{key_prefix}:{n}" for n in ("raw", "cleaned", "dlq"))
    client.xgroup_create(f"{key_prefix}:ingested", "clean", id="0", mkstream=True)
    client.xgroup_create(f"{key_prefix}:enriched", "publish", id="0", mkstream=True)
    client.xgroup_create(raw, "ingest", id="0", mkstream=True)
    for i in range(5):
        client.xadd(raw, {"data": orjson.dumps({"text": f"article {i}"})})
    client.xreadgroup("ingest", "hung", {raw: ">"}, count=2)
    client.xgroup_create(cleaned, "enrich", id="0", mkstream=True)
    client.xadd(cleaned, {"data": b"{}"})
    client.xreadgroup("enrich", "healthy", {cleaned: ">"}, count=1)
    client.xack(cleaned, "enrich", client.xrange(cleaned)[0][0])
    for stage, reason in (("ingest", "invalid_json"), ("ingest", "invalid_json"), ("clean", "too_short")):
        client.xadd(dlq, {"data": letter(stage, reason), "payload": b"{}"})
    return {"raw": raw, "cleaned": cleaned}


def test_status_json_shows_lag_pending_consumers_dlq_and_throughput(
    stuck_pipeline: dict[str, Any], service_env: dict[str, str]
) -> None:
    # Liveness is judged against the claim idle time: a slow machine between the fixture's reads and this call
    # must not turn the consumers it set up into dead ones (that case has its own tests).
    service_env = {**service_env, "NEWSFLOW_CLAIM_IDLE_MS": "60000"}
    run = newsflow_status(service_env, "--json", "--stuck-after", "600", "--dlq-window", "0")
    assert run.returncode == 0, run.stderr
    status = orjson.loads(run.stdout)
    streams = {s["name"]: s for s in status["streams"]}
    raw = streams[stuck_pipeline["raw"]]
    assert (raw["length"], raw["last_minute"]) == (5, 5)
    [group] = raw["groups"]
    assert (group["name"], group["lag"], group["pending"], group["stuck"]) == ("ingest", 3, 2, False)
    assert 0 <= group["oldest_pending_age_s"] < 60
    assert [(c["name"], c["pending"]) for c in group["consumers"]] == [("hung", 2)]
    [enrich] = streams[stuck_pipeline["cleaned"]]["groups"]
    assert (enrich["lag"], enrich["pending"]) == (0, 0)
    assert status["dlq_length"] == 3
    assert status["dlq_by_reason"] == {"clean": {"too_short": 1}, "ingest": {"invalid_json": 2}}
    assert status["ok"] is True and status["stuck_groups"] == [] and status["problems"] == []


def test_status_exits_1_when_a_group_is_stuck(stuck_pipeline: dict[str, Any], service_env: dict[str, str]) -> None:
    # `hung` counts as live for a minute (it read recently); its entries are stuck after a second.
    service_env = {**service_env, "NEWSFLOW_CLAIM_IDLE_MS": "60000"}
    time.sleep(1.2)  # the hung consumer's entries are now pending for more than a second
    run = newsflow_status(service_env, "--json", "--stuck-after", "1", "--dlq-window", "0")
    assert run.returncode == 1
    status = orjson.loads(run.stdout)
    assert status["ok"] is False
    assert status["stuck_groups"] == [{"stream": stuck_pipeline["raw"], "group": "ingest"}]
    [group] = next(s for s in status["streams"] if s["name"] == stuck_pipeline["raw"])["groups"]
    assert group["stuck_entries"] == 2
    [problem] = status["problems"]
    assert (problem["stage"], problem["reason"], problem["entries"]) == ("ingest", "pending_past_claim", 2)

    table = newsflow_status(service_env, "--stuck-after", "1", "--dlq-window", "0")
    assert table.returncode == 1
    assert "NOT OK" in table.stdout and "ingest: pending past claim" in table.stdout
    assert "hung" in table.stdout and "invalid_json" in table.stdout

    # Once the hung consumer's entries are acknowledged (and the rest read by a live one), all is well again.
    client = redis.Redis.from_url(service_env["NEWSFLOW_REDIS_URL"])
    pending = client.xpending_range(stuck_pipeline["raw"], "ingest", min="-", max="+", count=10)
    client.xack(stuck_pipeline["raw"], "ingest", *[row["message_id"] for row in pending])
    rest = client.xreadgroup("ingest", "healthy", {stuck_pipeline["raw"]: ">"}, count=10)
    client.xack(stuck_pipeline["raw"], "ingest", *[mid for _, rows in rest for mid, _ in rows])
    assert newsflow_status(service_env, "--stuck-after", "1", "--dlq-window", "0").returncode == 0


def test_status_exits_2_when_redis_is_unreachable_without_printing_the_password(service_env: dict[str, str]) -> None:
    secret = "s3cret-never-printed"
    env = {**service_env, "NEWSFLOW_REDIS_URL": f"redis://operator:{secret}@127.0.0.1:{refused_port()}/0"}
    run = newsflow_status(env)
    assert run.returncode == 2
    assert "cannot read Redis" in run.stderr
    assert secret not in run.stdout + run.stderr


def test_status_watch_json_emits_a_snapshot_per_refresh(
    stuck_pipeline: dict[str, Any], service_env: dict[str, str]
) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "newsflow.cli", "status", "--watch", "--json", "--interval", "0.2"],
        cwd=ROOT,
        env=service_env,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    snapshots = [orjson.loads(process.stdout.readline()) for _ in range(3)]
    process.terminate()
    process.wait(timeout=10)
    assert len({s["taken_at_ms"] for s in snapshots}) == 3
    assert all(s["dlq_length"] == 3 for s in snapshots)


def test_status_names_missing_groups_backlogs_without_a_live_consumer_and_new_dead_letters(
    redis_url: str, key_prefix: str, service_env: dict[str, str]
) -> None:
    client = redis.Redis.from_url(redis_url)
    env = {**service_env, "NEWSFLOW_CLAIM_IDLE_MS": "500"}
    # Nothing at all: no stage ever started here (or Redis lost everything) — fetch is optional, the four are not.
    nothing = orjson.loads(newsflow_status(env, "--json").stdout)
    assert not nothing["ok"]
    assert {(p["stage"], p["reason"]) for p in nothing["problems"]} == {
        (stage, "group_missing") for stage in ("ingest", "clean", "enrich", "publish")
    }
    for stream, group in (("raw", "ingest"), ("ingested", "clean"), ("cleaned", "enrich"), ("enriched", "publish")):
        client.xgroup_create(f"{key_prefix}:{stream}", group, id="0", mkstream=True)
    assert newsflow_status(env, "--json").returncode == 0

    # A backlog on ingested; clean's only consumer last read over half a second ago (the claim idle time here).
    client.xadd(f"{key_prefix}:ingested", {"data": b"{}"})
    [(_, [(first, _)])] = client.xreadgroup("clean", "clean-1", {f"{key_prefix}:ingested": ">"}, count=1)
    client.xack(f"{key_prefix}:ingested", "clean", first)
    for i in range(4):
        client.xadd(f"{key_prefix}:ingested", {"data": orjson.dumps({"n": i})})
    time.sleep(0.7)
    run = newsflow_status(env, "--json", "--stuck-after", "600")
    assert run.returncode == 1
    [problem] = orjson.loads(run.stdout)["problems"]
    assert (problem["stage"], problem["reason"], problem["waiting"]) == ("clean", "no_live_consumer", 4)
    client.xreadgroup("clean", "clean-2", {f"{key_prefix}:ingested": ">"}, count=10)  # a live one takes them
    assert newsflow_status(env, "--json", "--stuck-after", "600").returncode == 0

    # Dead letters within the window: not ok, per stage; outside it (or --dlq-window 0) ok again.
    client.xadd(f"{key_prefix}:dlq", {"data": letter("enrich", "processing_error"), "payload": b"{}"})
    client.xadd(f"{key_prefix}:dlq", {"data": letter("enrich", "processing_error"), "payload": b"{}"})
    run = newsflow_status(env, "--json", "--stuck-after", "600", "--dlq-window", "60")
    [problem] = orjson.loads(run.stdout)["problems"]
    assert (run.returncode, problem["stage"], problem["reason"], problem["count"]) == (1, "enrich", "dlq_grew", 2)
    assert newsflow_status(env, "--json", "--stuck-after", "600", "--dlq-window", "0").returncode == 0
    time.sleep(1.1)
    assert newsflow_status(env, "--json", "--stuck-after", "600", "--dlq-window", "1").returncode == 0

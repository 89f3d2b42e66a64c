"""Redis faults while articles flow: state lost (empty restart, deleted stream, destroyed group) with trims racing
the reads, commits refused (an ACL change, a key of another type), writes refused for a while (out of memory,
read-only replica, failed snapshot).

Each test runs the four stages as processes on a private redis-server, injects its faults one after the other
(one pipeline per test keeps the suite to minutes), and checks the promise after each (tests/faults/conftest.py):
stored exactly once or dead-lettered with a reason, nothing pending past claim idle + margin, every service alive
(or exited non-zero), `newsflow status` right. Each fault prints one `FAULT name: {figures}` line (pytest -s).
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import redis

from newsflow.localstack import redis_server_binary
from shared.streams import STAGES
from tests.conftest import ROOT, wait_for
from tests.faults.conftest import Pipeline, fault_article, report
from tests.servers import RedisServer, free_port


def redis_major() -> int:
    """The major version of the redis-server the tests start."""
    version = subprocess.run([redis_server_binary(), "--version"], capture_output=True, text=True).stdout
    return int(re.search(r"v=(\d+)", version).group(1))  # type: ignore[union-attr]


def recreated_metric(text: str, stream: str, group: str) -> float:
    """newsflow_groups_recreated_total for one stream and group, from a /metrics page (0 when absent)."""
    for line in text.splitlines():
        if line.startswith("newsflow_groups_recreated_total{") and f'stream="{stream}"' in line and (
            f'group="{group}"' in line
        ):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def recreated(pipeline: Pipeline) -> dict[str, int]:
    """group_recreated events logged so far, per stage."""
    return {stage: len(pipeline.events(stage, "group_recreated")) for stage in STAGES}


def test_lost_redis_state_every_stage_recreates_its_group_and_goes_on(
    fault_pipeline: Callable[..., Pipeline], private_redis: Callable[..., RedisServer]
) -> None:
    server = private_redis(durable=False)  # no AOF, no snapshot: a restart comes back empty
    # Every stage also trims its input 50 times a second, racing its own reads and acknowledgements.
    pipeline = fault_pipeline(redis_url=server.url, env={"NEWSFLOW_TRIM_INTERVAL_S": "0.02"})
    before = pipeline.push([fault_article(n, "before") for n in range(40)])
    wait_for(lambda: len(pipeline.stored()) >= 5, timeout=60, what="articles flowing")

    # 1. Redis restarted without persistence. The stages reconnect within milliseconds and recreate their
    # streams, so "everything is gone" is shown by a key of the test's own that nothing writes again.
    sentinel = f"{pipeline.prefix}:test-sentinel"
    pipeline.client().set(sentinel, "before the restart")
    server.stop(kill=True)
    server.start()
    assert not pipeline.client().exists(sentinel)  # every key went: streams, groups and pending lists with it
    after = pipeline.push([fault_article(n, "after") for n in range(40)])
    accounting = pipeline.settle(after, timeout=60)
    lost_by_redis = [key for key in before if key not in pipeline.stored()]
    after_restart = recreated(pipeline)
    report("redis_restarted_empty", after=accounting.figures(), before_lost_with_redis=len(lost_by_redis),
           group_recreated_events=after_restart, exit_codes=pipeline.exit_codes())
    assert accounting.settled, f"not processed after the restart: {accounting.missing[:5]}… {pipeline.diagnose()}"
    pipeline.assert_promise([*before, *after], allow_lost=lost_by_redis)
    assert after_restart == {stage: 1 for stage in STAGES}
    for stage in STAGES:
        [event] = pipeline.events(stage, "group_recreated")
        assert event["level"] == "error" and event["group"] == stage
        assert recreated_metric(pipeline.metrics(stage), pipeline.streams.input_of(stage), stage) == 1.0
    pipeline.wait_nothing_pending()
    assert pipeline.status().code == 0

    # 2. An operator deletes enrich's input (its group and what it held go with it) and destroys ingest's group
    # (its stream stays, and is read again from id 0).
    client = pipeline.client()
    first = pipeline.push([fault_article(n, "first") for n in range(40)])
    wait_for(lambda: len(pipeline.stored()) >= len(after) + 5, timeout=60, what="articles flowing")
    client.delete(pipeline.streams.cleaned)
    client.xgroup_destroy(pipeline.streams.raw, "ingest")
    second = pipeline.push([fault_article(n, "second") for n in range(40)])
    # What the destroyed group's stream still held is read again from id 0 first: give it the time.
    accounting = pipeline.settle(second, timeout=150)
    deleted_with_the_stream = [key for key in first if key not in pipeline.stored()]
    trim_failures = [e for e in pipeline.events(event="background_job.failed") if e.get("job") == "trim_input"]
    report("operator_deletes_stream_and_group", second=accounting.figures(),
           first_deleted_with_the_stream=len(deleted_with_the_stream), group_recreated_events=recreated(pipeline),
           exit_codes=pipeline.exit_codes(), trim_failures=len(trim_failures))
    assert accounting.settled, f"not processed after the deletion: {accounting.missing[:5]}… {pipeline.diagnose()}"
    pipeline.assert_promise([*before, *after, *first, *second], allow_lost=[*lost_by_redis, *deleted_with_the_stream])
    assert recreated(pipeline) == {"ingest": 2, "clean": 1, "enrich": 2, "publish": 1}
    pipeline.wait_nothing_pending()
    assert pipeline.status().code == 0
    assert not trim_failures, trim_failures[0]  # was: AttributeError when an acknowledgement raced the trim
    for stage in STAGES:
        assert pipeline.stop(stage) == 0


def test_refused_commits_are_swept_then_dead_lettered_and_an_unreadable_input_stops_its_stage(
    fault_pipeline: Callable[..., Pipeline], private_redis: Callable[..., RedisServer]
) -> None:
    server = private_redis()
    admin = redis.Redis.from_url(server.url)
    pipeline = fault_pipeline(redis_url=server.url, started=False)
    prefix = pipeline.prefix
    cap = int(pipeline.env["NEWSFLOW_MAX_DELIVERIES"])
    # Delivered, refused, swept again after the claim idle time each time: until the delivery cap, then the DLQ.
    sweep_s = (cap + 2) * pipeline.claim_idle_ms / 1000 + 30
    # clean logs in as a user of its own, so that an operator's ACL change can refuse its commits.
    admin.acl_setuser("clean", enabled=True, passwords=["+clean-pw"], commands=["+@all"], keys=[f"{prefix}:*"],
                      channels=["*"])
    clean_url = server.url.replace("redis://", "redis://clean:clean-pw@")
    for stage in STAGES:
        pipeline.start(stage, {"NEWSFLOW_REDIS_URL": clean_url} if stage == "clean" else None)
    ok_before = pipeline.push([fault_article(n, "ok-before") for n in range(20)])
    pipeline.settle(ok_before, timeout=60)

    # 1. clean may no longer write its output stream: NOPERM inside its commit, nothing written or acknowledged.
    admin.acl_setuser("clean", enabled=True, reset_keys=True,
                      keys=[f"{prefix}:ingested", f"{prefix}:dlq", f"{prefix}:dlq:payload:*"])
    refused = pipeline.push([fault_article(n, "refused") for n in range(20)])
    accounting = pipeline.settle(refused, timeout=sweep_s)
    admin.acl_setuser("clean", enabled=True, keys=[f"{prefix}:cleaned"])  # the operator puts it back
    ok_after = pipeline.push([fault_article(n, "ok-after") for n in range(20)])
    after = pipeline.settle(ok_after, timeout=60)
    letters = [letter for letter in pipeline.dlq() if letter["external_id"] in set(refused)]
    report("refused_commits_left_pending", refused=accounting.figures(), ok_after=after.figures(),
           deliveries=sorted({letter["deliveries"] for letter in letters}), exit_codes=pipeline.exit_codes())
    assert accounting.settled and len(accounting.dead) == len(refused), accounting.figures()
    assert {letter["reason"] for letter in letters} == {"max_deliveries_exceeded"}
    assert all(letter["stage"] == "clean" and letter["deliveries"] > cap for letter in letters)
    assert after.settled and len(after.stored) == len(ok_after)
    pipeline.assert_promise([*ok_before, *refused, *ok_after])
    assert [e for e in pipeline.events("clean", "entries.claimed") if e.get("own")], "never swept"

    # 2. An operator's mistake: enrich's input becomes a string. No retry can read it: enrich exits 1; clean's
    # commits (XADD to it) are refused, swept and dead-lettered like the ones above.
    admin.set(pipeline.streams.cleaned, "oops")
    typed = pipeline.push([fault_article(n, "typed") for n in range(10)])
    enrich = pipeline.services["enrich"]
    assert enrich.process is not None
    exit_code = enrich.process.wait(timeout=60)
    accounting = pipeline.settle(typed, timeout=sweep_s)
    broken = pipeline.status()
    admin.delete(pipeline.streams.cleaned)  # the operator repairs it; the supervisor restarts enrich
    pipeline.start("enrich")
    replay = subprocess.run(
        [sys.executable, "-m", "newsflow.cli", "dlq", "replay", "--reason", "max_deliveries_exceeded", "--stage",
         "clean"], cwd=ROOT, env=pipeline.env, capture_output=True, text=True, timeout=60,
    )
    replayed = pipeline.settle([*refused, *typed], timeout=60)
    report("stream_key_of_another_type", enrich_exit=exit_code, typed=accounting.figures(),
           status=(broken.code, sorted(broken.reasons("enrich"))), after_replay=replayed.figures())
    assert exit_code == 1
    assert pipeline.events("enrich", "stream_unreadable") and pipeline.events("enrich", "service.stopped_unexpectedly")
    assert accounting.settled and {r for rs in accounting.dead.values() for r in rs} == {"max_deliveries_exceeded"}
    assert (broken.code, broken.reasons("enrich")) == (1, {"stream_unreadable"})
    assert replay.returncode == 0, replay.stderr
    assert replayed.settled and not replayed.dead and len(replayed.stored) == len(refused) + len(typed)
    pipeline.assert_promise([*ok_before, *refused, *ok_after, *typed])


def refuse_writes(admin: redis.Redis, fault: str, workdir: Path) -> None:
    """Make the server refuse writes: out of memory, a read-only replica, or a snapshot that fails (MISCONF)."""
    if fault == "oom":
        admin.config_set("maxmemory-policy", "noeviction")
        admin.config_set("maxmemory", "1")  # every write that needs memory: OOM command not allowed
    elif fault == "readonly":
        admin.execute_command("REPLICAOF", "127.0.0.1", str(free_port()))  # a master that never answers
    else:
        gone = workdir / "gone"
        gone.mkdir()
        admin.config_set("save", "3600 1")
        admin.config_set("dir", str(gone))
        shutil.rmtree(gone)
        admin.bgsave()  # fails: the directory is gone, so writes are refused
        wait_for(lambda: admin.info("persistence")["rdb_last_bgsave_status"] == "err", timeout=10)


def accept_writes(admin: redis.Redis, fault: str, workdir: Path) -> None:
    """Undo `refuse_writes`: memory freed, the replica promoted, the snapshot directory back."""
    if fault == "oom":
        admin.config_set("maxmemory", "0")
    elif fault == "readonly":
        admin.execute_command("REPLICAOF", "NO", "ONE")
    else:
        (workdir / "gone").mkdir()
        admin.config_set("dir", str(workdir / "gone"))
        admin.bgsave()
        wait_for(lambda: admin.info("persistence")["rdb_last_bgsave_status"] == "ok", timeout=10)
        admin.config_set("save", "")


def test_redis_refusing_writes_is_retried_until_it_accepts_them(
    fault_pipeline: Callable[..., Pipeline], private_redis: Callable[..., RedisServer], tmp_path: Path
) -> None:
    # MISCONF needs a snapshot that fails: its directory is moved away under a running server (CONFIG SET dir is a
    # protected setting from Redis 7 on; older servers allow it without asking).
    server = private_redis(durable=False, extra_args=["--enable-protected-configs", "yes"] if redis_major() >= 7
                           else [])
    admin = redis.Redis.from_url(server.url)
    pipeline = fault_pipeline(redis_url=server.url)
    pushed: list[str] = []
    for fault, error in (("oom", "OutOfMemoryError"), ("readonly", "ReadOnlyError"), ("misconf", "MISCONF")):
        since = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())  # log timestamps are ISO 8601, UTC
        early = pipeline.push([fault_article(n, f"{fault}-early") for n in range(20)])
        wait_for(lambda ids=early: len(pipeline.account(ids).stored) >= 3, timeout=60, what="articles flowing")
        ingest = pipeline.services["ingest"].process
        assert ingest is not None
        ingest.send_signal(signal.SIGSTOP)  # so that it reads these only once Redis refuses writes
        late = pipeline.push([fault_article(n, f"{fault}-late") for n in range(20)])
        refuse_writes(admin, fault, tmp_path)
        ingest.send_signal(signal.SIGCONT)
        time.sleep(4)  # the stages meet the refusal: in their reads, their processing, their commits
        during = pipeline.account([*early, *late])
        pending_during = pipeline.pending()
        accept_writes(admin, fault, tmp_path)
        accounting = pipeline.settle([*early, *late], timeout=90)
        pushed += [*early, *late]
        retried = [e for e in pipeline.events(event="dependency.unavailable")
                   if e.get("stage") in STAGES and e["timestamp"] >= since]
        steps = Counter(f"{e['stage']}:{e['step']}" for e in retried)
        report(f"redis_{fault}", during={"stored": len(during.stored), "pending": pending_during},
               after=accounting.figures(), retried_steps=dict(steps), exit_codes=pipeline.exit_codes())
        assert accounting.settled, f"{fault}: never stored after the fault: {accounting.missing[:5]}…"
        assert not accounting.dead and len(accounting.stored) == len(early) + len(late), accounting.figures()
        assert any(error in e["error"] for e in retried), steps
        # ingest met it in its commit (what it read while stopped: its blocked read was answered) or in its next
        # read (a read-only replica and a failed snapshot refuse XREADGROUP too: it writes the group's state).
        assert steps["ingest:commit"] + steps["ingest:read"] > 0, steps
        pipeline.wait_nothing_pending()
        pipeline.assert_promise(pushed)

"""Redis faults while articles flow: state lost (empty restart, deleted keys, destroyed groups), commits refused
(ACL, out of memory, read-only, failed snapshot), and trims racing the stages' reads.

Each test runs the four stages as processes on a private redis-server, injects its fault, and checks the promise
(tests/faults/conftest.py): stored exactly once or dead-lettered with a reason, nothing pending past claim idle +
margin, every service alive (or exited non-zero), `newsflow status` right.
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

import pytest
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


def test_redis_restarted_empty_every_stage_recreates_its_group_and_goes_on(
    fault_pipeline: Callable[..., Pipeline], private_redis: Callable[..., RedisServer]
) -> None:
    server = private_redis(durable=False)  # no AOF, no snapshot: a restart comes back empty
    pipeline = fault_pipeline(redis_url=server.url)
    before = pipeline.push([fault_article(n, "before") for n in range(40)])
    wait_for(lambda: len(pipeline.stored()) >= 5, timeout=60, what="articles flowing")

    server.stop(kill=True)
    server.start()
    assert pipeline.client().dbsize() == 0  # every stream, group and pending list is gone
    after = pipeline.push([fault_article(n, "after") for n in range(40)])
    accounting = pipeline.settle(after, timeout=60)
    lost_by_redis = [key for key in before if key not in pipeline.stored()]

    recreated = {stage: len(pipeline.events(stage, "group_recreated")) for stage in STAGES}
    report("redis_restarted_empty", after=accounting.figures(), before_lost_with_redis=len(lost_by_redis),
           group_recreated_events=recreated, exit_codes=pipeline.exit_codes(), pending=pipeline.pending())
    assert accounting.settled, f"not processed after the restart: {accounting.missing[:5]}…"
    pipeline.assert_promise([*before, *after], allow_lost=lost_by_redis)
    for stage in STAGES:
        assert recreated[stage] == 1, f"{stage}: {recreated[stage]} group_recreated events"
        [event] = pipeline.events(stage, "group_recreated")
        assert event["level"] == "error" and event["group"] == stage
        stream = pipeline.streams.input_of(stage)
        assert recreated_metric(pipeline.metrics(stage), stream, stage) == 1.0
    pipeline.wait_nothing_pending()
    status = pipeline.status()
    assert (status.code, status.data["ok"]) == (0, True), status.problems
    for stage in STAGES:
        assert pipeline.stop(stage) == 0


def test_operator_deletes_a_stream_and_destroys_a_group_while_articles_flow(
    fault_pipeline: Callable[..., Pipeline], private_redis: Callable[..., RedisServer]
) -> None:
    pipeline = fault_pipeline(redis_url=private_redis().url)
    client = pipeline.client()
    first = pipeline.push([fault_article(n, "first") for n in range(40)])
    wait_for(lambda: len(pipeline.stored()) >= 5, timeout=60, what="articles flowing")
    client.delete(pipeline.streams.cleaned)  # enrich's input, its group and whatever it held: gone
    client.xgroup_destroy(pipeline.streams.raw, "ingest")  # the stream stays: read again from id 0
    second = pipeline.push([fault_article(n, "second") for n in range(40)])
    accounting = pipeline.settle(second, timeout=60)
    deleted_with_the_stream = [key for key in first if key not in pipeline.stored()]

    report("operator_deletes_stream_and_group", second=accounting.figures(),
           first_deleted_with_the_stream=len(deleted_with_the_stream),
           group_recreated={s: len(pipeline.events(s, "group_recreated")) for s in STAGES},
           exit_codes=pipeline.exit_codes())
    assert accounting.settled, f"not processed after the deletion: {accounting.missing[:5]}…"
    pipeline.assert_promise([*first, *second], allow_lost=deleted_with_the_stream)
    assert len(pipeline.events("enrich", "group_recreated")) == 1
    assert len(pipeline.events("ingest", "group_recreated")) == 1
    assert not pipeline.events("clean", "group_recreated")  # its group was never touched
    pipeline.wait_nothing_pending()
    assert pipeline.status().code == 0


def test_a_stream_key_overwritten_with_another_type_stops_its_reader_non_zero_and_loses_nothing(
    fault_pipeline: Callable[..., Pipeline], private_redis: Callable[..., RedisServer]
) -> None:
    pipeline = fault_pipeline(redis_url=private_redis().url)
    client = pipeline.client()
    first = pipeline.push([fault_article(n, "typed-first") for n in range(20)])
    pipeline.settle(first, timeout=60)
    client.set(pipeline.streams.cleaned, "oops")  # an operator's mistake: enrich's input is a string now
    second = pipeline.push([fault_article(n, "typed-second") for n in range(10)])
    enrich = pipeline.services["enrich"]
    assert enrich.process is not None
    exit_code = enrich.process.wait(timeout=60)  # no retry can read a string as a stream
    # clean's commits are refused (nothing written, nothing acknowledged): swept, then dead-lettered past the cap.
    cap = int(pipeline.env["NEWSFLOW_MAX_DELIVERIES"])
    accounting = pipeline.settle(second, timeout=(cap + 2) * pipeline.claim_idle_ms / 1000 + 30)
    broken = pipeline.status()

    client.delete(pipeline.streams.cleaned)  # the operator repairs it, the supervisor restarts enrich
    pipeline.start("enrich")
    replay = subprocess.run(
        [sys.executable, "-m", "newsflow.cli", "dlq", "replay", "--reason", "max_deliveries_exceeded"],
        cwd=ROOT, env=pipeline.env, capture_output=True, text=True, timeout=60,
    )
    replayed = pipeline.settle(second, timeout=60)
    report("stream_key_of_another_type", enrich_exit=exit_code, second=accounting.figures(),
           status=(broken.code, sorted(broken.reasons("enrich"))), after_replay=replayed.figures())
    assert exit_code == 1
    assert pipeline.events("enrich", "stream_unreadable") and pipeline.events("enrich", "service.stopped_unexpectedly")
    assert accounting.settled and {r for rs in accounting.dead.values() for r in rs} == {"max_deliveries_exceeded"}
    assert (broken.code, broken.reasons("enrich")) == (1, {"stream_unreadable"})
    assert replay.returncode == 0, replay.stderr
    assert replayed.settled and not replayed.dead and len(replayed.stored) == len(second)
    pipeline.assert_promise([*first, *second])


def test_entries_left_pending_by_refused_commits_are_retried_then_dead_lettered(
    fault_pipeline: Callable[..., Pipeline], private_redis: Callable[..., RedisServer]
) -> None:
    server = private_redis()
    admin = redis.Redis.from_url(server.url)
    pipeline = fault_pipeline(redis_url=server.url, started=False)
    prefix = pipeline.prefix
    # clean logs in as a user of its own: an operator's ACL change refuses its commits (XADD to cleaned) for a while.
    admin.acl_setuser("clean", enabled=True, passwords=["+clean-pw"], commands=["+@all"], keys=[f"{prefix}:*"],
                      channels=["*"])
    clean_url = server.url.replace("redis://", "redis://clean:clean-pw@")
    for stage in STAGES:
        pipeline.start(stage, {"NEWSFLOW_REDIS_URL": clean_url} if stage == "clean" else None)
    ok_before = pipeline.push([fault_article(n, "ok-before") for n in range(20)])
    pipeline.settle(ok_before, timeout=60)

    admin.acl_setuser("clean", enabled=True, reset_keys=True,
                      keys=[f"{prefix}:ingested", f"{prefix}:dlq"])  # cleaned: NOPERM inside the MULTI
    refused = pipeline.push([fault_article(n, "refused") for n in range(20)])
    # Delivered, refused, swept again after the claim idle time: until the delivery cap, then the DLQ.
    cap = int(pipeline.env["NEWSFLOW_MAX_DELIVERIES"])
    accounting = pipeline.settle(refused, timeout=(cap + 2) * pipeline.claim_idle_ms / 1000 + 30)
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
    swept = [e for e in pipeline.events("clean", "entries.claimed") if e.get("own")]
    assert swept, "the sweep never retried clean's own pending entries"


@pytest.mark.parametrize("fault", ["oom", "readonly", "misconf"])
def test_redis_refusing_writes_is_retried_until_it_accepts_them(
    fault: str, fault_pipeline: Callable[..., Pipeline], private_redis: Callable[..., RedisServer], tmp_path: Path
) -> None:
    # MISCONF needs a snapshot that fails: its directory is moved away under a running server (CONFIG SET dir is a
    # protected setting from Redis 7 on; older servers allow it without asking).
    server = private_redis(durable=False, extra_args=["--enable-protected-configs", "yes"] if fault == "misconf" and
                           redis_major() >= 7 else [])
    admin = redis.Redis.from_url(server.url)
    pipeline = fault_pipeline(redis_url=server.url)
    early = pipeline.push([fault_article(n, f"{fault}-early") for n in range(30)])
    wait_for(lambda: len(pipeline.stored()) >= 3, timeout=60, what="articles flowing")  # enrich is mid-batch
    ingest = pipeline.services["ingest"].process
    assert ingest is not None
    ingest.send_signal(signal.SIGSTOP)  # so that it reads these only once Redis refuses writes
    late = pipeline.push([fault_article(n, f"{fault}-late") for n in range(30)])
    gone = tmp_path / "gone"
    if fault == "oom":
        admin.config_set("maxmemory-policy", "noeviction")
        admin.config_set("maxmemory", "1")  # every write that needs memory: OOM command not allowed
    elif fault == "readonly":
        admin.execute_command("REPLICAOF", "127.0.0.1", str(free_port()))  # a master that never answers
    else:
        gone.mkdir()
        admin.config_set("save", "3600 1")
        admin.config_set("dir", str(gone))
        shutil.rmtree(gone)
        admin.bgsave()  # fails: the directory is gone, so writes are refused (MISCONF)
        wait_for(lambda: admin.info("persistence")["rdb_last_bgsave_status"] == "err", timeout=10)
    ingest.send_signal(signal.SIGCONT)
    time.sleep(4)  # the stages meet the refusal: in their reads, their processing, their commits
    during = pipeline.account([*early, *late])
    pending_during = pipeline.pending()
    if fault == "oom":
        admin.config_set("maxmemory", "0")
    elif fault == "readonly":
        admin.execute_command("REPLICAOF", "NO", "ONE")
    else:
        gone.mkdir()
        admin.config_set("dir", str(gone))
        admin.bgsave()
        wait_for(lambda: admin.info("persistence")["rdb_last_bgsave_status"] == "ok", timeout=10)
    accounting = pipeline.settle([*early, *late], timeout=90)
    retried = [e for e in pipeline.events(event="dependency.unavailable") if e.get("stage") in STAGES]
    steps = Counter(f"{e['stage']}:{e['step']}" for e in retried)
    report(f"redis_{fault}", during={"stored": len(during.stored), "pending": pending_during},
           after=accounting.figures(), retried_steps=dict(steps), exit_codes=pipeline.exit_codes())
    assert accounting.settled, f"never stored after the fault: {accounting.missing[:5]}…"
    assert not accounting.dead and len(accounting.stored) == len(early) + len(late)
    error = {"oom": "OutOfMemoryError", "readonly": "ReadOnlyError", "misconf": "MISCONF"}[fault]
    assert any(error in e["error"] for e in retried), steps
    # Under OOM Redis still serves reads, and ingest's commit (its MULTI) is what it refuses; a read-only replica
    # and a failed snapshot refuse the read itself (XREADGROUP writes the group's state).
    assert steps[f"ingest:{'commit' if fault == 'oom' else 'read'}"] > 0, steps
    pipeline.wait_nothing_pending()
    pipeline.assert_promise([*early, *late])


def test_trims_racing_reads_and_acknowledgements_never_fail(
    fault_pipeline: Callable[..., Pipeline], private_redis: Callable[..., RedisServer]
) -> None:
    # Every stage trims its input 50 times a second while it reads and acknowledges it.
    pipeline = fault_pipeline(redis_url=private_redis(durable=False).url, env={"NEWSFLOW_TRIM_INTERVAL_S": "0.02",
                                                                              "NEWSFLOW_BATCH_SIZE": "4"})
    articles: list[str] = []
    for round_ in range(6):
        articles += pipeline.push([fault_article(n, f"trim{round_}") for n in range(30)])
        time.sleep(0.5)
    accounting = pipeline.settle(articles, timeout=90)
    failures = [e for e in pipeline.events() if e.get("event") == "background_job.failed"]
    report("trim_racing_reads", accounting=accounting.figures(), trim_failures=len(failures),
           errors=sorted({re.sub(r"0x[0-9a-f]+", "", str(e.get("exception", "")))[-120:] for e in failures}))
    assert accounting.settled and len(accounting.stored) == len(articles)
    assert not failures, failures[0]
    pipeline.wait_nothing_pending()
    pipeline.assert_promise(articles)
    assert all(pipeline.client().xlen(s) < 200 for s in pipeline.streams.pipeline_streams)  # it did trim

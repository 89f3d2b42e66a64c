"""`newsflow status` tells the truth: ok only when it is, and otherwise the reason, per stage, with exit status 1.

A stage killed while its input backs up, a group gone, a stage hung (SIGSTOP) on a batch it holds, dead letters
arriving: each is named; once the fault is gone the verdict is ok again and the exit status 0.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Callable

from tests.conftest import ROOT, wait_for
from tests.faults.conftest import Pipeline, StatusRun, fault_article, report


def wait_status(pipeline: Pipeline, accept: Callable[[StatusRun], bool], *args: str, timeout: float = 45) -> StatusRun:
    """Run `newsflow status --json` until its answer satisfies `accept`; that answer."""
    found: list[StatusRun] = []

    def check() -> bool:
        found.append(pipeline.status(*args))
        return accept(found[-1])

    try:
        wait_for(check, timeout=timeout, interval=0.5, what="the expected status")
    except AssertionError as exc:
        raise AssertionError(f"{exc}: last answer {found[-1].code} {found[-1].problems}") from None
    return found[-1]


def healthy(run: StatusRun) -> bool:
    return run.code == 0 and run.data.get("ok") is True and not run.problems


def test_status_names_a_dead_stage_with_a_backlog_and_a_missing_group(fault_pipeline: Callable[..., Pipeline]) -> None:
    pipeline = fault_pipeline()
    first = pipeline.push([fault_article(n, "live") for n in range(10)])
    pipeline.settle(first, timeout=60)
    ok = wait_status(pipeline, healthy)

    pipeline.services["clean"].stop(kill=True)  # crashed: no restart policy here
    backlog = pipeline.push([fault_article(n, "backlog") for n in range(10)])
    dead = wait_status(pipeline, lambda run: "no_live_consumer" in run.reasons("clean"))
    [problem] = [p for p in dead.problems if p["stage"] == "clean"]
    table = subprocess.run([sys.executable, "-m", "newsflow.cli", "status"], cwd=ROOT, env=pipeline.env,
                           capture_output=True, text=True, timeout=60)

    pipeline.start("clean")
    pipeline.settle([*first, *backlog], timeout=60)
    back = wait_status(pipeline, healthy)

    pipeline.stop("publish")
    pipeline.client().xgroup_destroy(pipeline.streams.enriched, "publish")
    missing = pipeline.status()
    pipeline.start("publish")  # creates its group again at start (id 0)
    recovered = wait_status(pipeline, healthy)
    report("status_dead_stage_and_missing_group",
           healthy=(ok.code, ok.data["ok"]), dead_clean=(dead.code, dead.data["ok"], sorted(dead.reasons())),
           table_exit=table.returncode, after_restart=(back.code, back.data["ok"]),
           group_missing=(missing.code, missing.data["ok"], sorted(missing.reasons("publish"))),
           after_publish_restart=(recovered.code, recovered.data["ok"]))
    assert (dead.code, dead.data["ok"]) == (1, False)
    assert problem["group"] == "clean" and problem["stream"] == pipeline.streams.ingested
    assert problem["waiting"] > 0 and "no live consumer" in problem["detail"]
    assert dead.reasons("ingest") == set() and dead.reasons("publish") == set()
    assert table.returncode == 1 and "clean" in table.stdout and "no live consumer" in table.stdout
    assert (missing.code, missing.data["ok"], missing.reasons("publish")) == (1, False, {"group_missing"})
    pipeline.assert_promise([*first, *backlog])


def test_status_names_a_hung_stage_entries_past_the_claim_time_and_new_dead_letters(
    fault_pipeline: Callable[..., Pipeline],
) -> None:
    pipeline = fault_pipeline()
    warm = pipeline.push([fault_article(n, "warm") for n in range(5)])
    pipeline.settle(warm, timeout=60)

    # 1. enrich hangs (SIGSTOP): it holds what it read and answers nothing.
    enrich = pipeline.services["enrich"]
    assert enrich.process is not None
    enrich.process.send_signal(signal.SIGSTOP)
    try:
        held = pipeline.push([fault_article(n, "held") for n in range(10)])
        hung = wait_status(pipeline, lambda run: "no_live_consumer" in run.reasons("enrich"))
    finally:
        enrich.process.send_signal(signal.SIGCONT)
    pipeline.settle(held, timeout=60)
    wait_status(pipeline, healthy)

    # 2. ingest's only replica read two entries and died without acknowledging them (no replica to claim them).
    pipeline.stop("ingest")
    stuck = pipeline.push([fault_article(n, "stuck") for n in range(4)])
    pipeline.client().xreadgroup("ingest", "crashed-replica", {pipeline.streams.raw: ">"}, count=2)
    past = wait_status(pipeline, lambda run: "pending_past_claim" in run.reasons("ingest"))
    [problem] = [p for p in past.problems if p["reason"] == "pending_past_claim"]
    pipeline.start("ingest")  # a live replica claims them
    pipeline.settle(stuck, timeout=60)
    wait_status(pipeline, healthy)

    # 3. Dead letters arrive: not ok while they are within the window, ok again after it.
    bad = pipeline.push([{"id": f"bad-{n}", "text": "x", "html": "<p>x</p>"} for n in range(3)])
    grew = wait_status(pipeline, lambda run: "dlq_grew" in run.reasons("ingest"), "--dlq-window", "6")
    [letters] = [p for p in grew.problems if p["reason"] == "dlq_grew"]
    quiet = wait_status(pipeline, healthy, "--dlq-window", "6", timeout=30)
    report("status_hung_pending_past_claim_dlq_window", hung=(hung.code, sorted(hung.reasons())),
           pending_past_claim=(past.code, problem["entries"]), dlq_grew=(grew.code, letters["count"]),
           after_window=(quiet.code, quiet.data["ok"]))
    assert hung.code == 1 and hung.data["ok"] is False
    assert (past.code, problem["entries"], problem["group"]) == (1, 2, "ingest")
    assert letters["stage"] == "ingest" and letters["count"] == 3
    accounting = pipeline.assert_promise([*warm, *held, *stuck, *bad])
    assert accounting.dead == {k: ["both_text_and_html"] for k in bad}

"""`newsflow bench` on a tiny corpus: a sound corpus, and every part of the report measured (no timing asserts)."""

from __future__ import annotations

import orjson
import pytest

from shared.settings import Settings
from shared.streams import STAGES
from tools.bench.pipeline import BenchOptions, build_corpus, corpus_fingerprint, render_markdown, run_bench

pytestmark = pytest.mark.integration


def test_corpus_is_deterministic_distinct_english_articles_of_about_500_words() -> None:
    first, again = build_corpus(40), build_corpus(40)
    assert first == again
    assert corpus_fingerprint(first) == corpus_fingerprint(again)
    assert len({a["id"] for a in first}) == len({a["url"] for a in first}) == len({a["text"] for a in first}) == 40
    for article in first:
        assert 480 <= len(article["text"].split()) <= 600
        assert article["text"].count(" the ") >= 10
    paced = build_corpus(5, tag="paced")
    assert not {a["id"] for a in paced} & {a["id"] for a in first}


def test_bench_measures_every_baseline_and_the_deployed_pipeline() -> None:
    settings = Settings(batch_size=8, poll_ms=50, consumer="bench-test")
    options = BenchOptions(articles=20, rounds=2, replicas=(1,), latency_articles=6, timeout_s=300)
    report = run_bench(settings, options)

    assert report.failures == {}
    assert set(report.runs) == {"passthrough", "inprocess", "pipeline-1"}
    for name, run in report.runs.items():
        # passthrough moves the corpus 10 times over per round; the others once per round (fresh articles)
        assert run.published == (200 if name == "passthrough" else 20) and run.dead == 0
        assert run.seconds > 0 and run.rate > 0
        assert len(run.round_rates) == 2 and max(run.round_rates) == round(run.rate, 2)
        assert run.own_cores is not None and run.own_cores > 0
    assert set(report.ratios()) == {
        "pipeline-1/inprocess",
        "pipeline-1/passthrough",
        "pipeline-1/inprocess per CPU-s",
    }

    costs = {cost.stage: cost for cost in report.stages["pipeline-1"]}
    assert list(costs) == list(STAGES)
    for cost in costs.values():
        assert cost.batches >= 1 and cost.mean_batch is not None and cost.mean_batch <= 8
        assert cost.overhead_ms is not None and cost.overhead_ms >= 0
    # NLP is the expensive stage; ingest only validates and hashes.
    assert costs["enrich"].logic_ms > costs["ingest"].logic_ms > 0

    latency = report.latency
    assert latency is not None and latency.articles == 6
    assert 0 < latency.p50_ms <= latency.p95_ms <= latency.p99_ms <= latency.max_ms
    assert set(latency.handoff_p50_ms) == {"raw→ingest", "ingest→clean", "clean→enrich", "enrich→publish"}

    assert set(report.peak_rss_mb["pipeline-1"]) == set(STAGES)
    assert all(mb > 20 for mb in report.peak_rss_mb["pipeline-1"].values())

    data = orjson.loads(orjson.dumps(report.to_dict()))
    assert data["runs"]["pipeline-1"]["rate"] > 0
    assert {"p99_ms", "pipeline-1/inprocess"} <= set(data["targets"]) | set(data["ratios"])
    table = render_markdown(report)
    for name in ("passthrough", "inprocess", "pipeline-1", "p99", "peak RSS"):
        assert name in table

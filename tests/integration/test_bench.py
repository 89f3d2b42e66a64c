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


def test_scale_bench_measures_every_cost_at_every_size(postgres_url: str) -> None:
    from tools.bench.scale import ScaleOptions, render_scale, run_scale

    options = ScaleOptions(
        levels=(150, 300),
        postgres_url=postgres_url,
        probes=32,
        queries=10,
        stage_sample=4,
        hot_copies=(10, 60),
        hot_probes=5,
        rounds=2,
    )
    report = run_scale(Settings(), options)

    assert report.failures == {}
    assert [level.stored for level in report.levels] == [150, 300]
    assert [r.order for r in report.rounds] == [[150, 300], [300, 150]]
    assert all(len(r.load_avg) == 3 and r.seconds > 0 for r in report.rounds)
    assert all(len(level.rounds) == 2 for level in report.levels)
    for level in report.levels:
        assert set(level.stage_ms) == {"ingest", "clean", "enrich_nlp", "enrich_dedup", "publish"}
        assert all(ms > 0 for ms in level.stage_ms.values())
        assert set(level.upsert_ms) == set(level.search_p95_ms) == {"sqlite", "postgresql"}
        assert 0 < level.dedup_p50_ms <= level.dedup_p95_ms and level.dedup_script_us > 0
        # ~1.5 kB of index per article, well under the 2.7 kB the old layout took
        assert 500 < level.index_bytes_per_article < 2_700
        assert level.status_ms > 0 and level.load_s["index"] >= 0
    assert [hot.copies for hot in report.hot] == [10, 60]
    # Each probe finds most of the story's earlier copies (copies of copies are ~0.75 alike: a few fall short).
    assert report.hot[0].listed >= 5 and report.hot[1].listed >= report.hot[0].listed
    growth = report.growth()
    assert {"stage:enrich_nlp", "upsert:postgresql", "dedup_lookup_p95", "index_bytes"} <= set(growth)
    assert "search_p95_ms[postgresql@300]" in report.targets()
    data = orjson.loads(orjson.dumps(report.to_dict()))
    assert data["levels"][1]["stored"] == 300 and data["growth"]
    assert all(len(ratios) == 2 for ratios in report.round_growth().values())
    table = render_scale(report)
    expected = ("stage: enrich_nlp", "search p95 (postgresql)", "copies in the index", "in each round", "load average")
    for text in expected:
        assert text in table


def test_bench_api_measures_both_endpoints_on_a_small_corpus(tmp_path: object) -> None:
    """`python -m tools bench-api` at 300 articles: every query kind timed on both endpoints (no timing asserts)."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    database = Path(str(tmp_path)) / "api.db"
    done = subprocess.run(
        [sys.executable, "-m", "tools", "bench-api", "--articles", "300", "--rounds", "1", "--sqlite", str(database),
         "--json"],
        cwd=root, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    (report,) = orjson.loads(done.stdout)
    assert report["backend"] == "sqlite" and report["articles"] == 300
    for endpoint in ("search", "facets"):
        measured = report[endpoint]
        assert measured["requests"] == 42 and 0 < measured["p50_ms"] <= measured["p95_ms"] <= measured["max_ms"]
        assert set(measured["p95_by_kind_ms"]) == {"common word", "middle word", "rare word", "entity name",
                                                   "two words", "word + filters", "filters only"}

"""`bench --scale`'s report: sizes measured in interleaved rounds, combined per size, compared within a round."""

from __future__ import annotations

import orjson

from tools.bench.scale import LevelResult, ScaleReport, ScaleRound, combine_rounds, render_scale, round_orders


def _measured(stored: int, upsert: float, upsert_cpu: float, nlp: float, dedup: float) -> LevelResult:
    return LevelResult(
        stored=stored,
        stage_ms={"enrich_nlp": nlp, "enrich_dedup": dedup, "publish": upsert},
        upsert_ms={"sqlite": upsert},
        upsert_cpu_ms={"sqlite": upsert_cpu},
        search_p95_ms={"sqlite": 10 * upsert},
        dedup_p95_ms=dedup,
        dedup_cpu_ms=upsert_cpu,
        dedup_redis_cpu_ms=0.2,
    )


def test_sizes_are_measured_up_then_down_so_a_drifting_load_falls_on_each_alike() -> None:
    assert round_orders([100_000, 1_000, 10_000], 3) == [
        [1_000, 10_000, 100_000],
        [100_000, 10_000, 1_000],
        [1_000, 10_000, 100_000],
    ]
    assert round_orders([5], 2) == [[5], [5]]


def test_a_size_keeps_the_median_of_wall_times_and_the_least_cpu_time() -> None:
    rounds = [_measured(1_000, 1.0, 0.9, 130.0, 1.0), _measured(1_000, 5.0, 2.0, 110.0, 3.0)]
    rounds.append(_measured(1_000, 1.2, 1.1, 120.0, 1.1))

    combined = combine_rounds(1_000, rounds)

    assert combined.upsert_ms == {"sqlite": 1.2}  # the busy round's 5.0 does not count
    assert combined.stage_ms["publish"] == 1.2 and combined.stage_ms["enrich_dedup"] == 1.1
    assert combined.upsert_cpu_ms == {"sqlite": 0.9} and combined.dedup_cpu_ms == 0.9
    assert combined.stage_ms["enrich_nlp"] == 110.0  # CPU time of the NLP: the least
    assert combined.search_p95_ms == {"sqlite": 12.0} and combined.dedup_p95_ms == 1.1
    assert combined.rounds == rounds and combined.stored == 1_000


def test_growth_compares_sizes_measured_in_the_same_rounds() -> None:
    small = [_measured(1_000, 1.0, 1.0, 100.0, 1.0), _measured(1_000, 2.0, 1.0, 100.0, 2.0)]
    large = [_measured(100_000, 1.1, 1.2, 100.0, 1.0), _measured(100_000, 2.6, 1.3, 100.0, 2.0)]
    report = ScaleReport(levels=[combine_rounds(1_000, small), combine_rounds(100_000, large)])
    report.levels[0].index_bytes_per_article, report.levels[1].index_bytes_per_article = 1_800.0, 1_818.0
    report.rounds = [ScaleRound(1, [1_000, 100_000], (1.0, 1.5, 2.0), 1.1, 30.0)]
    report.rounds.append(ScaleRound(2, [100_000, 1_000], (4.0, 2.0, 2.0), 1.9, 40.0))

    per_round = report.round_growth()

    assert [round(v, 2) for v in per_round["upsert:sqlite"]] == [1.1, 1.3]
    assert [round(v, 2) for v in per_round["upsert_cpu:sqlite"]] == [1.2, 1.3]
    assert "index_bytes" not in per_round  # measured once, after loading
    growth = report.growth()
    assert round(growth["upsert:sqlite"], 3) == round(1.85 / 1.5, 3)
    assert growth["upsert_cpu:sqlite"] == 1.2 and round(growth["index_bytes"], 2) == 1.01
    table = render_scale(report)
    assert "| 2 | 100,000, 1,000 | 4.00 / 2.00 / 2.00 | 1.90 | 40 |" in table
    assert "| upsert (sqlite, batches of 32) | 1.500 | 1.850 | 1.23× | 1.10×, 1.30× |" in table
    data = orjson.loads(orjson.dumps(report.to_dict()))
    assert data["rounds"][1]["load_avg"] == [4.0, 2.0, 2.0]
    assert data["round_growth"]["upsert:sqlite"] == [1.1, 1.3]
    assert len(data["levels"][1]["rounds"]) == 2

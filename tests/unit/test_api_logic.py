"""The read API's pure parts: cursors and projection, tokens and console sessions, marked bodies, the timeline."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from pydantic import SecretStr

from services.api.access import Access
from services.api.pipeline import LagHistory, lag_charts, stage_rows
from services.api.reading import marked_paragraphs, timeline
from shared.errors import ConfigurationError
from shared.events import Entity, Mention, Stamp
from shared.observability.status import ConsumerStatus, GroupStatus, PipelineStatus, StreamStatus
from shared.settings import Settings
from shared.storage.paging import Cursor, Sort, check_fields, project
from shared.streams import StreamNames
from tests.integration.test_storage import BASE_TIME, make_record


def test_cursors_round_trip_and_refuse_other_queries() -> None:
    cursor = Cursor("abc", "2024-06-01T12:00:00+00:00", 7, 42)
    assert Cursor.decode(cursor.encode(), "abc") == cursor
    with pytest.raises(ValueError, match="another query"):
        Cursor.decode(cursor.encode(), "xyz")
    with pytest.raises(ValueError, match="not one this API returned"):
        Cursor.decode("not-a-cursor!", "abc")
    assert str(Sort.parse("-received_at")) == "-received_at" and Sort.parse("relevance").descending
    with pytest.raises(ValueError, match="sort is one of"):
        Sort.parse("title")


def test_projection_keeps_the_record_field_names() -> None:
    record = make_record("x1")
    assert check_fields(["id", " title", "id", ""]) == ("id", "title")
    with pytest.raises(ValueError, match="unknown field"):
        check_fields(["id", "score"])
    assert project(record.model_dump_json(), ("id", "external_id"), {"score": 1.5}) == {
        "id": "x1", "external_id": "ext-x1", "score": 1.5,
    }
    assert project(record.model_dump_json(), None) == record.model_dump(mode="json")


def test_tokens_roles_and_sessions() -> None:
    access = Access.from_settings(Settings(read_token=SecretStr("r"), operator_token=SecretStr("o")))
    roles = [access.role_of_token(token) for token in ("r", "o", "x")]
    assert roles == ["read", "operator", None]
    session = access.issue_session("read", now=1000.0)
    role, nonce = access.read_session(session, now=1001.0) or ("", "")
    assert role == "read"
    assert access.check_csrf(nonce, access.csrf_token(nonce))
    assert not access.check_csrf(nonce, access.csrf_token("another-session"))
    assert access.read_session(session, now=1000.0 + 13 * 3600) is None  # expired
    payload, _, signature = session.rpartition(".")
    assert access.read_session(payload.replace("A", "B", 1) + "." + signature, now=1001.0) is None  # tampered
    other = Access.from_settings(Settings(read_token=SecretStr("r2"), operator_token=SecretStr("o")))
    assert other.read_session(session, now=1001.0) is None  # a changed token ends every session


def test_the_api_refuses_unsafe_token_settings() -> None:
    with pytest.raises(ConfigurationError, match="NEWSFLOW_READ_TOKEN"):
        Access.from_settings(Settings(read_token=None, operator_token=None, dev_mode=False))
    with pytest.raises(ConfigurationError, match="must differ"):
        Access.from_settings(Settings(read_token=SecretStr("same"), operator_token=SecretStr("same")))
    assert Access.from_settings(Settings(dev_mode=True, read_token=None, operator_token=None)).open


def test_mentions_are_marked_within_their_paragraphs() -> None:
    body = "Olaf Scholz spoke.\n\nIn Berlin, Scholz left."
    record = make_record("m1", body=body, entities=[
        Entity(name="Olaf Scholz", label="PERSON", mentions=[
            Mention(text="Olaf Scholz", start=0, end=11, field="body"),
            Mention(text="Scholz", start=31, end=37, field="body"),
            Mention(text="Scholz", start=0, end=6, field="title"),
        ]),
        Entity(name="Berlin", label="GPE", mentions=[Mention(text="Berlin", start=23, end=29, field="body")]),
    ])
    paragraphs = marked_paragraphs(record)
    assert [[(s.text, s.label) for s in p] for p in paragraphs] == [
        [("Olaf Scholz", "PERSON"), (" spoke.", None)],
        [("In ", None), ("Berlin", "GPE"), (", ", None), ("Scholz", "PERSON"), (" left.", None)],
    ]


def test_the_trace_becomes_a_timeline_with_queue_waits() -> None:
    def stamp(stage: str, start_ms: int, duration_ms: int) -> Stamp:
        start = BASE_TIME + timedelta(milliseconds=start_ms)
        return Stamp(stage=stage, version="1", worker="w", started_at=start,
                     finished_at=start + timedelta(milliseconds=duration_ms), duration_ms=duration_ms)

    steps, total = timeline(make_record("t1", trace=[stamp("ingest", 0, 10), stamp("clean", 30, 20)]))
    assert total == 50
    assert [(s.stage, s.left_pct, s.width_pct, s.waited_ms) for s in steps] == [
        ("ingest", 0.0, 20.0, 0.0), ("clean", 60.0, 40.0, 20.0),
    ]


def test_stage_rows_and_the_lag_chart() -> None:
    streams = StreamNames("t")
    group = GroupStatus(name="clean", lag=5, pending=2, oldest_pending_age_s=3.0, stuck_entries=0,
                        consumers=[ConsumerStatus("c1", 2, 0.1)])
    # fetch reads newsflow:discovered through its group like the other stages (two replicas, one page in hand).
    fetch_group = GroupStatus(name="fetch", lag=6, pending=1, oldest_pending_age_s=1.5, stuck_entries=0,
                              consumers=[ConsumerStatus("f1", 1, 0.2), ConsumerStatus("f2", 0, 0.3)])

    def status(at_ms: int, lag: int) -> PipelineStatus:
        return PipelineStatus(
            taken_at_ms=at_ms, stuck_after_s=300, dlq_length=0, dlq_last_minute=0, dlq_by_reason={},
            streams=[StreamStatus("t:discovered", 7, 0, [fetch_group]),
                     StreamStatus("t:raw", 3, 0, []),
                     StreamStatus("t:ingested", 9, 0, [replace(group, lag=lag)]),
                     StreamStatus("t:cleaned", 4, 4, [])],
        )

    rows = {row.stage: row for row in stage_rows(status(1_000, 5), streams)}
    assert list(rows) == ["fetch", "ingest", "clean", "enrich", "publish"]
    fetch = rows["fetch"]
    assert (fetch.stream, fetch.consumers, fetch.lag, fetch.pending, fetch.oldest_pending_age_s) == (
        "t:discovered", 2, 6, 1, 1.5)
    assert fetch.per_minute is None  # raw grows with every producer's pushes too: not fetch's output rate
    assert (rows["clean"].lag, rows["clean"].pending, rows["clean"].consumers, rows["clean"].per_minute) == (5, 2, 1, 4)
    assert (rows["ingest"].group_exists, rows["ingest"].lag) == (False, 3)  # never started: all of it waits
    history = LagHistory(window_s=3600)
    for at, lag in ((0, 0), (30_000, 8), (60_000, 2)):
        history.add(status(at, lag), streams)
    history.add(status(3_700_000, 1), streams)  # an hour later: the first samples fall out
    assert [s.at_ms for s in history.samples()] == [3_700_000]
    chart = {c.stage: c for c in lag_charts([*LagHistory().samples(), *history.samples()], 3_700_000)}["clean"]
    assert (chart.peak, chart.latest) == (3, 3)

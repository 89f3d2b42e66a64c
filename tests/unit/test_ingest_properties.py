"""Property-based: raw-input validation never fails in an undocumented way."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.ingest.validate import parse_raw_payload, validate_raw_article
from shared.errors import Rejected
from shared.events import RawArticle

LIMIT = 50_000
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False) | st.text(max_size=50),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
raw_like = st.fixed_dictionaries(
    {},
    optional={
        "id": st.one_of(st.none(), st.text(max_size=20), st.integers(0, 10**6)),
        "url": st.one_of(st.none(), st.text(max_size=40)),
        "text": st.one_of(st.none(), st.text(max_size=300), st.integers(0, 10**6)),
        "html": st.one_of(st.none(), st.text(max_size=300)),
        "title": st.one_of(st.none(), st.text(max_size=40)),
        "metadata": json_values,
        "schema_version": st.one_of(st.just(1), st.integers(-5, 5), st.text(max_size=3)),
        "extra": json_values,
    },
)


def accepted_or_rejected(call: Any) -> None:
    try:
        result = call()
    except Rejected as rej:
        assert rej.reason and rej.message
    else:
        assert isinstance(result, RawArticle)
        assert (result.text is None) != (result.html is None)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2000))
def test_any_bytes_are_accepted_or_rejected(payload: bytes) -> None:
    accepted_or_rejected(lambda: parse_raw_payload(payload, max_bytes=LIMIT))


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(raw_like)
def test_any_raw_shaped_object_is_accepted_or_rejected(data: dict[str, Any]) -> None:
    accepted_or_rejected(lambda: parse_raw_payload(orjson.dumps(data), max_bytes=LIMIT))
    accepted_or_rejected(lambda: validate_raw_article(dict(data)))


@settings(max_examples=200)
@given(json_values)
def test_any_json_document_is_accepted_or_rejected(value: Any) -> None:
    accepted_or_rejected(lambda: parse_raw_payload(orjson.dumps(value), max_bytes=LIMIT))

"""docs/asyncapi.json is what FastStream generates from the contracts today (`make docs` refreshes it)."""

from __future__ import annotations

import json
from pathlib import Path

from shared.streams import SERVICES
from tools.asyncapi import app

DOCUMENT = Path(__file__).resolve().parents[2] / "docs" / "asyncapi.json"


def generated() -> dict[str, object]:
    return dict(app.schema.to_specification().to_jsonable())


def test_committed_asyncapi_document_is_current() -> None:
    committed = json.loads(DOCUMENT.read_text())
    assert committed == generated(), "docs/asyncapi.json is stale: run `make docs` and commit it"


def test_document_covers_every_stream_and_contract() -> None:
    document = generated()
    channels = document["channels"]
    assert isinstance(channels, dict)
    addresses = {channel["address"] for channel in channels.values()}
    expected = ("discovered", "raw", "ingested", "cleaned", "enriched", "published", "dlq")
    assert addresses == {f"newsflow:{s}" for s in expected}
    groups = {c["bindings"]["redis"].get("groupName") for c in channels.values()} - {None}
    assert groups == set(SERVICES)
    schemas = document["components"]["schemas"]  # type: ignore[index]
    models = ("FetchJob", "RawArticle", "IngestedArticle", "CleanedArticle", "EnrichedArticle", "PublishedEvent")
    for model in (*models, "DeadLetter"):
        assert model in schemas
    assert "password" not in json.dumps(document).lower()

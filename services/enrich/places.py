"""Places: GPE/LOC entities resolved to ISO countries through the gazetteer; countries ranked by prominence."""

from __future__ import annotations

from collections.abc import Sequence

from services.enrich.gazetteer import Gazetteer
from shared.events import Entity, Place

PLACE_LABELS = frozenset({"GPE", "LOC", "FAC"})
# A nationality ("North Korean troops") says less about where a story is than a place name does.
NORP_WEIGHT = 0.5
TITLE_WEIGHT = 2.0


def resolve_places(entities: Sequence[Entity], gazetteer: Gazetteer) -> tuple[list[Place], list[str]]:
    """(places with country code and coordinates where known, ISO codes most prominent first)."""
    places: list[Place] = []
    prominence: dict[str, float] = {}
    for entity in entities:
        weight = sum(TITLE_WEIGHT if m.field == "title" else 1.0 for m in entity.mentions)
        if entity.label == "NORP":
            _, code = gazetteer.demonym_country(entity.name)
            if code:
                prominence[code] = prominence.get(code, 0.0) + NORP_WEIGHT * weight
            continue
        if entity.label not in PLACE_LABELS:
            continue
        info = gazetteer.place(entity.name)
        if info is None:
            if entity.label != "FAC":
                places.append(Place(name=entity.name, mentions=len(entity.mentions)))
            continue
        code = info.country_code
        places.append(
            Place(
                name=entity.name,
                country_code=code,
                country=gazetteer.country_name(code) if code else None,
                latitude=info.latitude,
                longitude=info.longitude,
                mentions=len(entity.mentions),
            )
        )
        if code:
            prominence[code] = prominence.get(code, 0.0) + weight
    countries = [code for code, _ in sorted(prominence.items(), key=lambda item: (-item[1], item[0]))]
    return places, countries

"""Topic category: one of ten top-level news topics, by a weighted stem lexicon plus entity-type cues.

Method. Each category has a lexicon of word stems with weights (2 = strong cue such as "missile" or
"goalkeeper", 1 = supporting cue such as "vote" or "market"). A lower-cased token matches a stem when it starts
with it (stems are at least four letters unless written as whole words), so "militar" covers military and
militarily. Title tokens count three times, body tokens once. Entity types add evidence a lexicon cannot:
MONEY/PERCENT mentions lean towards economy/business, LAW towards crime/law, EVENT names containing "Cup",
"Olympic" or "Open" towards sport. Scores are normalised by article length; the category with the highest
total wins, and `score` is its share of all category evidence (0..1, higher = less ambiguous). An article
with no evidence at all gets no category rather than a guess.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from functools import lru_cache

from spacy.tokens import Doc

CATEGORIES = (
    "politics",
    "conflict/war/defence",
    "economy/business",
    "science/technology",
    "health",
    "sport",
    "culture",
    "crime/law",
    "environment",
    "lifestyle",
)

# "=word" matches that word exactly; anything else is a stem (prefix) of at least four letters.
LEXICON: dict[str, dict[str, float]] = {
    "politics": {
        "elect": 2, "parliament": 2, "senat": 1.5, "congress": 1.5, "minister": 1.5, "president": 1,
        "governm": 1.5, "polit": 2, "party": 1, "=vote": 1.5, "voter": 2, "votes": 1.5, "campaign": 1,
        "diploma": 1.5, "summit": 1, "legislat": 1.5, "opposition": 1.5, "coalition": 1.5, "ballot": 2,
        "referend": 2, "democra": 1, "sanction": 1, "treaty": 1, "policy": 1, "cabinet": 1.5, "mp": 1,
        "=mps": 1.5, "lawmaker": 2, "governor": 1, "mayor": 1, "candidate": 1.5, "poll": 1, "bilateral": 1,
        "ambassador": 1, "foreign": 0.5, "talks": 0.5, "=visit": 0.5, "partnership": 0.5, "kremlin": 1,
    },
    "conflict/war/defence": {
        "=war": 2, "wars": 2, "warfare": 2, "militar": 2, "troop": 2, "army": 2, "armies": 2, "soldier": 2,
        "missile": 2, "weapon": 2, "artiller": 2, "defen": 1, "attack": 1.5, "airstrike": 2, "strike": 0.5,
        "bomb": 1.5, "combat": 2, "invasion": 2, "invad": 2, "offensive": 1.5, "ceasefire": 2, "rebel": 1.5,
        "insurg": 2, "milit": 1.5, "=navy": 2, "naval": 2, "drone": 1, "conflict": 1.5, "deploy": 1.5,
        "frontline": 2, "shelling": 2, "killed": 1, "casualt": 1.5, "nuclear": 1, "security": 0.5,
        "guerrilla": 2, "fighter": 1, "battle": 1, "tank": 1, "=nato": 2, "pentagon": 2, "ballistic": 2,
    },
    "economy/business": {
        "econom": 2, "market": 1.5, "=stock": 1.5, "stocks": 1.5, "shares": 1.5, "investor": 2, "invest": 1.5,
        "profit": 2, "revenue": 2, "earning": 2, "inflation": 2, "bank": 1, "interest rate": 2, "=rate": 0.5,
        "compan": 1, "business": 1.5, "trade": 1, "tariff": 2, "export": 1.5, "import": 1, "currenc": 1.5,
        "dollar": 1, "price": 1, "=gdp": 2, "growth": 1, "recession": 2, "budget": 1, "=tax": 1, "taxes": 1,
        "industr": 1, "merger": 2, "acquisition": 2, "ceo": 1.5, "quarter": 1, "percent": 0.5, "bond": 1,
        "=oil": 1, "crude": 1.5, "retail": 1.5, "consumer": 1, "startup": 1, "sales": 1.5, "unemploy": 1.5,
    },
    "science/technology": {
        "scien": 2, "research": 1.5, "technolog": 2, "softwar": 2, "comput": 1.5, "internet": 1.5,
        "digital": 1, "artificial intelligence": 2, "=ai": 2, "algorithm": 2, "robot": 2, "space": 1,
        "=nasa": 2, "satellite": 1.5, "rocket": 1, "physic": 2, "chemist": 2, "biolog": 1.5, "laborator": 1.5,
        "experiment": 1.5, "smartphone": 2, "=app": 1, "apps": 1, "cyber": 1.5, "=data": 1, "chip": 1,
        "semiconductor": 2, "quantum": 2, "astronom": 2, "telescope": 2, "genom": 1.5, "innovat": 1,
        "engineer": 1, "discover": 1, "study": 0.5, "university": 0.5, "online": 0.5, "platform": 0.5,
    },
    "health": {
        "health": 2, "hospital": 2, "patient": 2, "doctor": 2, "nurse": 1.5, "diseas": 2, "virus": 2,
        "vaccin": 2, "pandemic": 2, "covid": 2, "infect": 2, "cancer": 2, "medic": 1.5, "drug": 1,
        "treatment": 1.5, "clinic": 1.5, "symptom": 2, "surgery": 2, "mental": 1, "obesity": 2,
        "diabet": 2, "outbreak": 1.5, "epidemic": 2, "therap": 1.5, "pharma": 1.5, "=who": 1, "death": 0.5,
    },
    "sport": {
        "match": 1, "tournament": 2, "championship": 2, "league": 1.5, "=cup": 1.5, "goal": 1.5, "scored": 2,
        "striker": 2, "midfield": 2, "goalkeeper": 2, "coach": 1.5, "=team": 1, "teams": 1, "player": 1.5,
        "season": 1, "olympic": 2, "medal": 2, "football": 2, "soccer": 2, "tennis": 2, "cricket": 2,
        "rugby": 2, "basketball": 2, "baseball": 2, "golf": 2, "athlet": 1.5, "innings": 2, "wicket": 2,
        "=win": 0.5, "beat": 1, "defeat": 1, "=race": 1, "stadium": 2, "fixture": 2, "semifinal": 2,
        "=final": 1, "finals": 1, "=fans": 1, "=club": 1, "title": 0.5, "victory": 0.5, "draw": 1, "=nba": 2,
    },
    "culture": {
        "film": 2, "movie": 2, "cinema": 2, "music": 2, "album": 2, "=song": 2, "songs": 2, "singer": 2,
        "concert": 2, "festival": 1.5, "=art": 1.5, "artist": 2, "museum": 2, "exhibit": 1.5, "theatre": 2,
        "theater": 2, "novel": 1.5, "=book": 1.5, "books": 1.5, "author": 1, "actor": 2, "actress": 2,
        "director": 0.5, "oscar": 2, "grammy": 2, "televis": 1, "=show": 1, "series": 0.5, "celebrit": 1.5,
        "=band": 1.5, "gallery": 1.5, "poet": 1.5, "literat": 1.5, "dance": 1, "opera": 2, "heritage": 1,
    },
    "crime/law": {
        "police": 2, "arrest": 2, "court": 2, "judge": 2, "trial": 2, "prosecut": 2, "murder": 2,
        "crime": 2, "criminal": 2, "convict": 2, "sentenc": 1.5, "prison": 2, "jail": 2, "lawsuit": 2,
        "=sued": 2, "lawyer": 1.5, "attorney": 1.5, "charged": 1.5, "charges": 1, "fraud": 2, "theft": 2,
        "robber": 2, "suspect": 2, "investigat": 1, "verdict": 2, "guilty": 2, "legal": 1, "=law": 1,
        "laws": 1, "supreme court": 2, "homicide": 2, "smuggl": 1.5, "corrupt": 1.5, "victim": 1,
    },
    "environment": {
        "climat": 2, "environment": 2, "emission": 2, "carbon": 2, "pollut": 2, "wildlife": 2, "species": 1.5,
        "biodivers": 2, "forest": 1.5, "deforest": 2, "renewable": 2, "=solar": 1.5, "=wind": 1,
        "fossil fuel": 2, "warming": 2, "flood": 1.5, "drought": 2, "wildfire": 2, "hurricane": 1.5,
        "storm": 1, "ocean": 1, "conservation": 2, "recycl": 2, "plastic": 1.5, "glacier": 2, "weather": 1,
        "earthquake": 1, "ecosystem": 2, "endangered": 2, "greenhouse": 2,
    },
    "lifestyle": {
        "fashion": 2, "recipe": 2, "=food": 1.5, "cooking": 2, "restaurant": 2, "travel": 2, "holiday": 1.5,
        "wellness": 2, "fitness": 2, "diet": 1.5, "beauty": 2, "wedding": 2, "parenting": 2, "relationship": 1,
        "=home": 0.5, "garden": 2, "shopping": 1.5, "style": 1, "hotel": 1.5, "tourism": 1.5, "=wine": 2,
        "lifestyle": 2, "dating": 2, "pets": 1.5, "=dog": 1, "dogs": 1, "vacation": 2, "skincare": 2,
    },
}

TITLE_WEIGHT = 3.0
ENTITY_CUES: dict[str, tuple[str, float]] = {
    "MONEY": ("economy/business", 1.0),
    "PERCENT": ("economy/business", 0.5),
    "LAW": ("crime/law", 1.0),
}
SPORT_EVENT_WORDS = ("cup", "olympic", "open", "championship", "grand prix", "league")
WORD = re.compile(r"[a-z][a-z'’-]*")


def classify(
    title: str, body: str, entity_labels: Mapping[str, int] | None = None, entity_events: Iterable[str] = ()
) -> tuple[str | None, float]:
    """(category, share of evidence 0..1) for an English article; (None, 0.0) without evidence."""
    scores: dict[str, float] = dict.fromkeys(CATEGORIES, 0.0)
    for text, weight in ((title, TITLE_WEIGHT), (body, 1.0)):
        lowered = text.lower()
        for word in WORD.findall(lowered):
            for category, cue in _categories_of(word):
                scores[category] += cue * weight
        for category, phrase, cue in _PHRASES:
            if phrase in lowered:
                scores[category] += cue * weight * lowered.count(phrase)
    for label, count in (entity_labels or {}).items():
        if label in ENTITY_CUES:
            category, cue = ENTITY_CUES[label]
            scores[category] += cue * count
    for event in entity_events:
        if any(word in event.lower() for word in SPORT_EVENT_WORDS):
            scores["sport"] += 2.0
    total = sum(scores.values())
    if total <= 0:
        return None, 0.0
    category, best = max(scores.items(), key=lambda item: item[1])
    return category, round(best / total, 3)


_PHRASES = [
    (category, stem, weight) for category, cues in LEXICON.items() for stem, weight in cues.items() if " " in stem
]
_EXACT: dict[str, list[tuple[str, float]]] = {}
_STEMS: list[tuple[str, str, float]] = []
for _category, _cues in LEXICON.items():
    for _stem, _weight in _cues.items():
        if " " in _stem:
            continue
        if _stem.startswith("=") or len(_stem) < 4:
            _EXACT.setdefault(_stem.lstrip("="), []).append((_category, _weight))
        else:
            _STEMS.append((_stem, _category, _weight))


@lru_cache(maxsize=50_000)
def _categories_of(word: str) -> tuple[tuple[str, float], ...]:
    """Lexicon hits of one lower-case word (cached: news vocabulary repeats)."""
    hits = list(_EXACT.get(word, ()))
    hits += [(category, weight) for stem, category, weight in _STEMS if word.startswith(stem)]
    return tuple(hits)


def is_sport(text: str, doc: Doc | None = None) -> bool:
    """True when an English text is mainly about sport (decides whether town names mean clubs)."""
    labels = Counter(ent.label_ for ent in doc.ents) if doc is not None else None
    category, _ = classify("", text, labels)
    return category == "sport"

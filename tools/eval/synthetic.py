"""Seeded generator of scraped-text pages: a reference article wrapped in varied chrome, with the expected result.

Every draw comes from `random.Random(seed)`, so the same references and seed always give the same pages.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import ftfy.bad_codecs  # noqa: F401  (registers the "sloppy-windows-1252" codec used to make mojibake)

_TOP_CHROME = [
    "Loading Now",
    "Skip to main content",
    "Skip to content",
    "Sign in",
    "Log In",
    "Menu",
    "Search",
    "Home | World | Business | Tech | Sport",
    "Subscribe",
    "Toggle navigation",
    "Breaking News",
    "Sign In | Register",
    "Home » News » World",
    "Accept cookies",
    "Loading...",
]
_BOTTOM_CHROME = [
    "Post Comment",
    "Leave a Reply",
    "Share this:",
    "Share on Facebook",
    "Share on X",
    "Tweet",
    "Print",
    "Comments (12)",
    "12 Comments",
    "Back to top",
    "Related Articles",
    "You might also like",
    "Privacy Policy | Terms of Use | Contact Us",
    "Follow us on Twitter",
    "Email this article",
    "© 2024 {site}. All rights reserved.",
    "Copyright © 2023 {site}",
    "Cancel reply",
    "Tags: politics, world",
    "Most Popular",
    "Trending Now",
    "Next article",
    "Load comments",
]
_INTERSTITIALS = [
    "Advertisement",
    "ADVERTISEMENT",
    "Story continues below advertisement",
    "Read More",
    "READ MORE",
    "Read more: {other}",
    "RELATED: {other}",
    "Also read: {other}",
    "Related Articles",
    "Sign up for our daily newsletter to get the latest news delivered to your inbox.",
    "Subscribe to our newsletter",
    "Get the best of {site} delivered to your inbox every morning.",
    "Sponsored",
    "Continue reading below",
    "Watch: {other}",
    "Don't miss: {other}",
    "Click here to subscribe",
    "Join our WhatsApp channel for the latest updates.",
]
_FIRST_NAMES = [
    "Jane",
    "Ethan",
    "Maria",
    "David",
    "Aisha",
    "Tom",
    "Laura",
    "Kenji",
    "Sofia",
    "Michael",
    "Priya",
    "Lucas",
    "Hannah",
    "Omar",
    "Chloe",
    "Daniel",
    "Elena",
    "Samuel",
    "Grace",
    "Mateo",
]
_LAST_NAMES = [
    "Doe",
    "Kim",
    "Garcia",
    "Nguyen",
    "Okafor",
    "Schmidt",
    "Rossi",
    "Tanaka",
    "Müller",
    "O'Brien",
    "Patel",
    "Johnson",
    "Fernández",
    "Kowalski",
    "Brooks",
    "Hughes",
    "Lindqvist",
    "Moreau",
    "Adeyemi",
    "Silva",
]
_ROLES = ["Staff Writer", "Senior Correspondent", "Reporter", "Contributing Editor", "Political Correspondent"]
_BIO_TEMPLATES = [
    "{name} is an award-winning journalist covering {topic}. {pronoun} has over {years} years of reporting "
    "experience and previously worked as a correspondent in {city}.",
    "{name} is a staff writer at {site}, where {lower} covers {topic}. {pronoun} holds a degree in journalism "
    "from the University of {city}.",
    "{name} has been a reporter for {years} years. {pronoun} writes about {topic} and is based in {city}. "
    "Follow {object} on Twitter.",
    "About the author: {name} is a freelance writer and editor based in {city} who covers {topic}.",
    "{name} is a senior correspondent specializing in {topic}. {pronoun} joined the newsroom in 2015 after "
    "graduating from college.",
]
_TOPICS = ["politics", "technology", "climate and energy", "business", "health", "culture", "foreign affairs"]
_CITIES = ["Berlin", "Nairobi", "Chicago", "Lisbon", "Seoul", "Toronto", "Melbourne"]
_DATE_FORMS = [
    "Published {month} {day}, {year}",
    "Posted: {year}-{mm}-{dd} 10:30",
    "{month} {day}, {year}",
    "{day} {month} {year}",
    "Published on {month} {day}, {year} at 6:01 am",
    "{month} {day}, {year} · 5 min read",
]
_MONTH_NAMES = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]


@dataclass(frozen=True)
class Reference:
    """One reference article the generator wraps."""

    id: str
    title: str
    paragraphs: list[str]
    domain: str
    site: str


@dataclass
class SyntheticPage:
    """A generated page and what a perfect cleaner returns for it."""

    id: str
    text: str
    title: str
    body: str
    authors: list[str]
    source_domain: str | None
    source_name: str | None
    published_on: str | None
    features: list[str] = field(default_factory=list)


def generate_pages(references: list[Reference], *, seed: int = 20241126, variants: int = 3) -> list[SyntheticPage]:
    """`variants` pages per reference, each with its own draw of chrome, byline, source line, bio and breaks."""
    rng = random.Random(seed)
    pages: list[SyntheticPage] = []
    titles = [reference.title for reference in references]
    for reference in references:
        for variant in range(variants):
            pages.append(_wrap(reference, f"{reference.id}#{variant}", rng, titles))
    return pages


def _wrap(reference: Reference, page_id: str, rng: random.Random, titles: list[str]) -> SyntheticPage:
    features: list[str] = []
    authors = _draw_authors(rng)
    other = rng.choice(titles)
    fill = {"site": reference.site, "other": other}
    lines: list[str] = []
    lines += [rng.choice(_TOP_CHROME).format(**fill) for _ in range(rng.randint(0, 3))]
    if rng.random() < 0.2:
        lines.append("Loading Now")
    lines.append(reference.title)

    byline_form = rng.randrange(7)
    if byline_form == 0:
        lines.append("By " + " and ".join(authors))
    elif byline_form == 1:
        lines.append("By " + ", ".join(author.upper() for author in authors))
    elif byline_form == 2:
        lines.append(f"{authors[0]} | {rng.choice(_ROLES)}")
    elif byline_form == 3:
        lines.append(f"Written by {authors[0]}")
    elif byline_form == 4:
        lines.append(f"{authors[0]}, {rng.choice(_ROLES)}")
    elif byline_form == 5:
        lines.append(f"Author: {authors[0]}")
    # byline_form 6: no byline line, the author is only named in the bio.
    features.append(f"byline{byline_form}")

    published_on: str | None = None
    if rng.random() < 0.6:
        year, month, day = rng.randint(2015, 2025), rng.randint(1, 12), rng.randint(1, 28)
        published_on = f"{year:04d}-{month:02d}-{day:02d}"
        lines.append(
            rng.choice(_DATE_FORMS).format(
                month=_MONTH_NAMES[month - 1], day=day, year=year, mm=f"{month:02d}", dd=f"{day:02d}"
            )
        )
        features.append("date")

    body_lines: list[str] = []
    mojibake = rng.random() < 0.25
    for index, paragraph in enumerate(reference.paragraphs):
        text = paragraph
        if mojibake and rng.random() < 0.5:
            text = text.encode("utf-8").decode("sloppy-windows-1252")
        body_lines.append(text)
        if index < len(reference.paragraphs) - 1 and rng.random() < 0.18:
            body_lines.append(rng.choice(_INTERSTITIALS).format(**fill))
    if len(reference.paragraphs) > 3 and rng.random() < 0.15:
        # A scraper that caught a paragraph twice (a pull quote, a pager overlap): expected once.
        repeated = rng.randrange(len(reference.paragraphs))
        insert_at = (
            min(len(body_lines), body_lines.index(reference.paragraphs[repeated]) + 2)
            if (reference.paragraphs[repeated] in body_lines)
            else len(body_lines)
        )
        body_lines.insert(insert_at, reference.paragraphs[repeated])
        features.append("repeat")
    if mojibake:
        features.append("mojibake")
    lines += body_lines

    source_line, source_domain, source_name = _draw_source(reference, rng)
    bio = _draw_bio(authors[0], reference.site, rng) if byline_form == 6 or rng.random() < 0.5 else None
    if bio and rng.random() < 0.5:
        lines += [bio, source_line] if source_line else [bio]
        features.append("bio-before-source")
    else:
        lines += [source_line] if source_line else []
        lines += [bio] if bio else []
        if bio:
            features.append("bio-after-source")
    lines += [rng.choice(_BOTTOM_CHROME).format(**fill) for _ in range(rng.randint(0, 3))]
    lines.append("Post Comment") if rng.random() < 0.3 else None

    separator = "\n\n" if rng.random() < 0.6 else "\n"
    features.append("blank-breaks" if separator == "\n\n" else "single-breaks")
    return SyntheticPage(
        id=page_id,
        text=separator.join(lines) + "\n",
        title=reference.title,
        body="\n\n".join(dict.fromkeys(reference.paragraphs)),
        authors=authors if byline_form in (0, 1) else authors[:1],
        source_domain=source_domain,
        source_name=source_name,
        published_on=published_on,
        features=features,
    )


def _draw_authors(rng: random.Random) -> list[str]:
    count = 2 if rng.random() < 0.2 else 1
    names: list[str] = []
    while len(names) < count:
        name = f"{rng.choice(_FIRST_NAMES)} {rng.choice(_LAST_NAMES)}"
        if name not in names:
            names.append(name)
    return names


def _draw_source(reference: Reference, rng: random.Random) -> tuple[str | None, str | None, str | None]:
    """(line, expected domain, expected name) for one of several attribution forms."""
    domain = reference.domain
    form = rng.randrange(8)
    if form == 0:
        return f"Original Source: www.{domain}", domain, None
    if form == 1:
        return f"Source: {domain}", domain, None
    if form == 2:
        return f"Originally published at https://www.{domain}/news/article-{rng.randint(1000, 9999)}", domain, None
    if form == 3:
        line = f"This article originally appeared on {reference.site}."
        return (line, domain, None) if reference.site == domain else (line, None, reference.site)
    if form == 4:
        return f"Source: {reference.site} ({domain})", domain, reference.site
    if form == 5:
        return f"This story was first published on {domain}.", domain, None
    if form == 6:
        return f"Original Source: https://{domain}/", domain, None
    return None, None, None


def _draw_bio(name: str, site: str, rng: random.Random) -> str:
    pronoun = rng.choice(["He", "She", "They"])
    objects = {"He": "him", "She": "her", "They": "them"}
    template = rng.choice(_BIO_TEMPLATES)
    if pronoun == "They":
        template = template.replace("{pronoun} has", "{pronoun} have").replace("{pronoun} holds", "{pronoun} hold")
        template = template.replace("{pronoun} writes", "{pronoun} write")
        template = template.replace("{lower} covers", "{lower} cover")
    return template.format(
        name=name,
        pronoun=pronoun,
        lower=pronoun.lower(),
        object=objects[pronoun],
        topic=rng.choice(_TOPICS),
        years=rng.randint(5, 25),
        city=rng.choice(_CITIES),
        site=site,
    )

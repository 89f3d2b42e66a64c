"""HTML mode: trafilatura for the article, a tree-free fallback, and text-mode post-cleaning of leftover chrome."""

from __future__ import annotations

import logging
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import trafilatura

from services.clean.htmltext import html_to_text
from services.clean.lines import is_chrome, is_interstitial, normalise_domain, parse_byline, parse_datetime, words_of
from services.clean.text import extract_text, split_units
from services.clean.unicode import matching_form, repair_text

# trafilatura logs every page it cannot handle at WARNING/ERROR; the clean stage reports outcomes itself.
logging.getLogger("trafilatura").setLevel(logging.CRITICAL)
logging.getLogger("htmldate").setLevel(logging.CRITICAL)

# Measured on the dev set (services/clean/evaluate.py): see the module docstring there for the numbers.
TRAFILATURA_OPTIONS: dict[str, Any] = {
    "include_comments": False,
    "include_tables": True,
    "favor_precision": False,
    "favor_recall": False,
}
# Below this many words trafilatura's output is treated as a miss and the fallback gets a chance.
_SUSPICIOUS_WORDS = 40
_LANG_ATTR = re.compile(r"<html\b[^>]*?\blang\s*=\s*[\"']?\s*([A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{2,8})*)", re.I)
_META_LANG = re.compile(
    r"<meta\b[^>]*?(?:http-equiv\s*=\s*[\"']?content-language[\"']?[^>]*?content\s*=\s*[\"']?([A-Za-z-]{2,12})"
    r"|property\s*=\s*[\"']og:locale[\"'][^>]*?content\s*=\s*[\"']?([A-Za-z_-]{2,12}))",
    re.I,
)


@dataclass
class HtmlExtraction:
    """What HTML mode found; `paragraphs` is the body in reading order."""

    title: str | None
    paragraphs: list[str]
    extractor: str
    authors: list[str] = field(default_factory=list)
    published_at: datetime | None = None
    site_name: str | None = None
    url: str | None = None
    language_declared: str | None = None
    dropped: Counter[str] = field(default_factory=Counter)


def declared_language(html: str) -> str | None:
    """The page's declared language (`<html lang>`, Content-Language, og:locale), as a lowercase BCP 47 tag."""
    head = html[:20_000]
    match = _LANG_ATTR.search(head)
    value = match.group(1) if match else None
    if value is None:
        meta = _META_LANG.search(head)
        value = (meta.group(1) or meta.group(2)) if meta else None
    if not value:
        return None
    return value.replace("_", "-").lower()


def extract_html(html: str, *, url: str | None = None) -> HtmlExtraction:
    """Extract the article of an HTML page; never raises on malformed markup (empty result instead)."""
    document = _run_trafilatura(html, url)
    result = HtmlExtraction(title=None, paragraphs=[], extractor="trafilatura", language_declared=declared_language(html))
    if document is not None:
        result.title = _clean_meta(document.title)
        result.site_name = _clean_meta(document.sitename)
        result.url = _clean_meta(document.url)
        result.published_at = parse_datetime(document.date) if document.date else None
        result.authors = _split_authors(document.author)
        result.paragraphs = _post_clean(repair_text(document.text or ""), result.title, result.dropped)

    if count_words("\n".join(result.paragraphs)) < _SUSPICIOUS_WORDS:
        _apply_fallback(html, result)
    return result


def _run_trafilatura(html: str, url: str | None) -> Any:
    try:
        return trafilatura.bare_extraction(html, url=url, with_metadata=True, **TRAFILATURA_OPTIONS)
    except (RecursionError, MemoryError, ValueError, TypeError, AttributeError, IndexError, KeyError, LookupError):
        # lxml and trafilatura raise a zoo of errors on hostile markup; the fallback handles those pages.
        return None
    except Exception:  # noqa: BLE001 - any other library failure must still end in a result, not a crash
        return None


def _apply_fallback(html: str, result: HtmlExtraction) -> None:
    """Tree-free text conversion classified by the text-mode rules; used when it finds more than trafilatura."""
    page_title, text = html_to_text(html)
    fallback = extract_text(text, title_hint=result.title or _strip_site_suffix(page_title))
    # The fallback sees the whole page, furniture included, so it must find clearly more text to be trusted.
    if count_words("\n".join(fallback.paragraphs)) < 2 * count_words("\n".join(result.paragraphs)) + 20:
        return
    result.paragraphs = fallback.paragraphs
    result.dropped = fallback.dropped
    result.extractor = "trafilatura+fallback"
    result.title = result.title or fallback.title or _strip_site_suffix(page_title)
    result.authors = result.authors or fallback.authors
    result.published_at = result.published_at or fallback.published_at


def _post_clean(text: str, title: str | None, dropped: Counter[str]) -> list[str]:
    """Drop chrome and interstitial lines trafilatura kept, repeated paragraphs and a repeated title."""
    paragraphs: list[str] = []
    seen: set[str] = set()
    title_key = matching_form(title) if title else None
    # Some pages hard-wrap paragraphs with <br>; trafilatura then emits one line per visual line.
    for line in split_units(text):
        key = matching_form(line)
        if key == title_key and not paragraphs:
            dropped["title"] += 1
        elif key in seen and len(words_of(line)) > 3:
            dropped["duplicate"] += 1
        elif is_interstitial(line):
            dropped["interstitial"] += 1
        elif is_chrome(line):
            dropped["chrome"] += 1
        else:
            seen.add(key)
            paragraphs.append(line)
    return paragraphs


def _clean_meta(value: str | None) -> str | None:
    if not value:
        return None
    cleaned = repair_text(value).strip()
    return cleaned or None


def _split_authors(author: str | None) -> list[str]:
    """trafilatura joins several authors with "; "; each is cleaned of a leading "By"."""
    if not author:
        return []
    authors: list[str] = []
    for part in re.split(r"\s*;\s*", repair_text(author)):
        part = part.strip()
        if not part:
            continue
        parsed = parse_byline(part) if part.lower().startswith("by ") else None
        for name in parsed or [re.sub(r"^by\s+", "", part, flags=re.I)]:
            if name not in authors:
                authors.append(name)
    return authors


def _strip_site_suffix(title: str | None) -> str | None:
    """`Headline | Site Name` -> `Headline` (the longest side of the last separator)."""
    if not title:
        return None
    parts = re.split(r"\s+[|–—-]\s+", title)
    return max(parts, key=len).strip() if len(parts) > 1 else title.strip()


def source_domain_of(url: str | None) -> str | None:
    """The source's domain from a page URL (no `www.`)."""
    return normalise_domain(url) if url else None

"""Both new sources end to end: a followed feed and a pushed wget WARC, through all five services into storage."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from shared.events import ArticleRecord
from shared.streams import SERVICES
from tests.conftest import ROOT, ServiceProcess, wait_for
from tests.httpsite import Site
from tests.integration.test_fetch import FAST, rss
from tests.integration.test_pipeline import stored
from tests.integration.test_push_warc import crawl_with_wget

pytestmark = [pytest.mark.integration, pytest.mark.slow]

STORY = (
    "<html><head><title>{title}</title><meta name='author' content='Ada Reporter'></head><body><article>"
    "<h1>{title}</h1>"
    + "".join(
        f"<p>The harbour authority in Rotterdam said on Monday that paragraph {i} of the plan would widen the "
        "channel, and the port's operators welcomed the decision after months of talks.</p>"
        for i in range(6)
    )
    + "</article></body></html>"
)


def test_a_feed_and_a_warc_file_end_up_stored_with_their_origin_and_fetch_time(
    site: Site, service_env: dict[str, str], start_service: Callable[..., ServiceProcess], wget: str,
    tmp_path: Path,
) -> None:
    env = {**service_env, **FAST}
    site.add("/story-one.html", STORY.format(title="Port plan approved"))
    site.add("/story-two.html", STORY.format(title="Channel works to start"))
    site.add("/feed.xml", rss(site, [("/story-one.html", "One"), ("/story-two.html", "Two")]),
             content_type="application/rss+xml")
    subprocess.run([sys.executable, "-m", "newsflow.cli", "sources", "add", site.url("/feed.xml")], cwd=ROOT,
                   env=env, check=True, capture_output=True, timeout=60)
    services = {name: start_service(name, env) for name in SERVICES}

    warc = crawl_with_wget(wget, site, tmp_path)
    pushed = subprocess.run([sys.executable, "-m", "newsflow.cli", "push", str(warc)], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert pushed.returncode == 0, pushed.stderr

    def records_by_path() -> dict[str, ArticleRecord] | None:
        records = {urlsplit(r.url or "").path: r for r in stored(env)}
        return records if {"/story-one.html", "/story-two.html", "/news/one.html"} <= set(records) else None

    records = wait_for(records_by_path, timeout=180, interval=1, what="the feed's and the WARC's stories stored")
    assert isinstance(records, dict)
    one = records["/story-one.html"]
    # The site serves only http: the record keeps the http URL the feed gave (the article id ignores the scheme).
    assert one.url == site.url("/story-one.html")
    assert one.origin == site.url("/feed.xml") and one.fetched_at is not None
    assert one.title == "Port plan approved"
    assert [s.stage for s in one.trace] == ["ingest", "clean", "enrich", "publish"]
    from_warc = records["/news/one.html"]
    assert from_warc.origin == "warc:crawl.warc.gz" and from_warc.fetched_at is not None
    for service in services.values():
        assert service.stop() == 0, service.output()[-2000:]

"""`newsflow push FILE.warc[.gz]` onto a real Redis: a wget crawl of a local site, damage, --resume."""

from __future__ import annotations

import subprocess
from pathlib import Path

import orjson
import pytest
import redis
from typer.testing import CliRunner

from newsflow.cli import app
from shared.streams import names
from tests.httpsite import Site
from tests.warcfiles import WarcBuilder, article_html, damage, stories

pytestmark = pytest.mark.integration


def crawl_with_wget(wget: str, site: Site, directory: Path) -> Path:
    """`wget --warc-file` over the site's front page and what it links to: real request/response/metadata records."""
    site.add("/", '<html><body><a href="/news/one.html">one</a> <a href="/news/two.html">two</a>'
                  ' <a href="/logo.png">logo</a> <a href="/missing.html">gone</a></body></html>')
    site.add("/news/one.html", article_html("First story"))
    # Declared only in the page's <meta>, in a legacy charset.
    site.add("/news/two.html", ('<html><head><meta charset="windows-1252"><title>Caf\u00e9</title></head>'
                                "<body><p>\u201cCaf\u00e9 society\u201d returns.</p></body></html>").encode("cp1252"),
             content_type="text/html")
    site.add("/logo.png", b"\x89PNG\r\n\x1a\n", content_type="image/png")
    site.add("/robots.txt", "User-agent: *\nAllow: /\n", content_type="text/plain")
    subprocess.run(
        [wget, "--quiet", "--recursive", "--level=1", "--no-directories", "--delete-after",
         f"--directory-prefix={directory / 'tmp'}", f"--warc-file={directory / 'crawl'}", site.url("/")],
        check=False, timeout=60,  # exit 8: the 404 wget met on the way; the archive is complete
    )
    path = directory / "crawl.warc.gz"
    assert path.exists()
    return path


def test_a_wget_crawl_is_pushed_as_raw_articles(
    cli_redis: redis.Redis, site: Site, wget: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEWSFLOW_DATA_DIR", str(tmp_path / "data"))
    path = crawl_with_wget(wget, site, tmp_path)
    result = CliRunner().invoke(app, ["push", str(path)])
    assert result.exit_code == 0, result.output
    assert "queued 3 article(s)" in result.output  # the front page and the two stories
    entries = cli_redis.xrange(names().raw)
    articles = {orjson.loads(f[b"data"])["url"]: (orjson.loads(f[b"data"]), f[b"origin"]) for _, f in entries}
    assert set(articles) == {site.url("/"), site.url("/news/one.html"), site.url("/news/two.html")}
    two, origin = articles[site.url("/news/two.html")]
    assert origin == b"warc:crawl.warc.gz"
    assert "\u201cCaf\u00e9 society\u201d" in two["html"] and two["metadata"]["charset"]["from"] == "meta"
    assert two["fetched_at"] and two["id"].startswith("urn:uuid:")
    # wget's own records and the 404 and image are counted, not queued.
    for reason in ("request", "metadata", "resource", "warcinfo", "not_html", "http_4xx"):
        assert reason in result.output


def test_damage_is_listed_and_resume_skips_what_redis_already_has(
    cli_redis: redis.Redis, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEWSFLOW_DATA_DIR", str(tmp_path / "data"))
    path = stories(tmp_path / "news.warc.gz", 4)
    damage(path, 2, 40, b"\x00" * 50)

    first = CliRunner().invoke(app, ["push", str(path)])
    assert first.exit_code == 1  # something could not be read
    assert "queued 3 article(s)" in first.output and "damaged record" in first.output
    assert cli_redis.xlen(names().raw) == 3

    again = CliRunner().invoke(app, ["push", "--resume", str(path)])
    assert again.exit_code == 0 and "already pushed to the end" in again.output
    assert cli_redis.xlen(names().raw) == 3

    other = tmp_path / "other.warc.gz"
    other_builder = WarcBuilder(other)
    other_builder.response("https://news.example/x", article_html("X"))
    other_builder.close()
    checkpoint = next((tmp_path / "data" / "checkpoints").glob("news.warc.gz.*.json"))
    refused = CliRunner().invoke(app, ["push", "--resume", "--checkpoint", str(checkpoint), str(other)])
    assert refused.exit_code == 2 and "another file" in refused.output

"""The operator console in a real headless Chromium (Debian's chromium + chromium-driver, driven by Selenium).

One module-wide stack: the machine's Redis under a private prefix, a SQLite file, the API as a process, and the
stages started and stopped as each test needs them. The run leaves screenshots of the three pages in docs/.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import orjson
import pytest
import redis

from shared.storage import open_storage
from shared.streams import StreamNames, ensure_group
from shared.transport.producer import enqueue_raw
from tests.conftest import ROOT, SEED, ServiceProcess, wait_for
from tests.integration.test_api import OPERATOR_TOKEN, READ_TOKEN, api_env, console_login, start_api
from tests.integration.test_storage_query import fill

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.common.exceptions import WebDriverException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
DOCS = ROOT / "docs"
HOLDOUT = ROOT / "tests" / "fixtures" / "text-holdout" / "pages.jsonl"


@dataclass
class Stack:
    """What the console tests share: the API, its environment, Redis and the stages started so far."""

    url: str
    env: dict[str, str]
    redis: redis.Redis
    streams: StreamNames
    storage_url: str
    services: list[ServiceProcess]

    def start(self, stage: str, **overrides: str) -> ServiceProcess:
        service = ServiceProcess(stage, {**self.env, **overrides}).start()
        self.services.append(service)
        return service


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[Stack]:
    url = redis_url
    client = redis.Redis.from_url(url)
    folder = tmp_path_factory.mktemp("console")
    storage_url = f"sqlite:///{folder}/newsflow.db"
    # The stages started from this environment serve no HTTP; the API gets a port of its own.
    env = api_env(storage_url, NEWSFLOW_REDIS_URL=url, NEWSFLOW_STATUS_SAMPLE_S="1",
                  NEWSFLOW_HTTP_PORT="0", NEWSFLOW_DATA_DIR=str(folder / "data"), PYTHONUNBUFFERED="1",
                  NEWSFLOW_CLAIM_IDLE_MS="3000", NEWSFLOW_CLAIM_INTERVAL_MS="500")
    asyncio.run(_migrate_and_fill(storage_url))
    api = start_api(env)
    built = Stack(api.base_url, env, client, StreamNames(env["NEWSFLOW_KEY_PREFIX"]), storage_url, [])
    try:
        yield built
    finally:
        for service in built.services:
            service.stop(kill=True)
        api.stop()
        keys = list(client.scan_iter(match=f"{built.streams.prefix}:*", count=1000))
        if keys:
            client.delete(*keys)


async def _migrate_and_fill(url: str) -> None:
    storage = open_storage(url)
    try:
        await storage.migrate()
        await fill(storage)
    finally:
        await storage.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        message = "Debian's chromium and chromium-driver are not installed (apt-get install chromium chromium-driver)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    profile = tempfile.mkdtemp(prefix="newsflow-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                     "--disable-component-update", "--no-first-run", "--disable-sync", "--window-size=1400,1000",
                     f"--user-data-dir={profile}"):
        options.add_argument(argument)
    # An explicit driver path: Selenium Manager (which would download one) never runs.
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    driver.implicitly_wait(0)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def sign_in(browser: WebDriver, stack: Stack, token: str, page: str = "/console/pipeline") -> None:
    browser.delete_all_cookies()
    browser.get(stack.url + page)
    field = browser.find_element(By.ID, "token")  # redirected to the login page
    field.send_keys(token, Keys.ENTER)
    wait_until(browser, lambda: browser.current_url.endswith(page), what=f"signed in and on {page}")


def wait_until(browser: WebDriver, condition: Callable[[], object], what: str, timeout: float = 60.0) -> object:
    def check() -> object:
        try:
            return condition()
        except WebDriverException:
            return False

    return wait_for(check, timeout=timeout, interval=0.25, what=what)


def cell(browser: WebDriver, stage: str, field: str) -> str:
    return str(browser.find_element(By.CSS_SELECTOR, f"#stage-{stage} [data-field={field}]").text)


def screenshot(browser: WebDriver, name: str) -> None:
    """The page as a PNG; into docs/ when it is missing there or NEWSFLOW_UPDATE_SCREENSHOTS=1 asks for it.

    Every run's picture differs (times, key prefixes): rewriting docs/ each run would leave every checkout that
    runs the suite with changed files.
    """
    png = browser.get_screenshot_as_png()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000, "a blank or broken screenshot"
    target = DOCS / name
    if os.environ.get("NEWSFLOW_UPDATE_SCREENSHOTS") == "1" or not target.exists():
        DOCS.mkdir(exist_ok=True)
        target.write_bytes(png)


def test_pipeline_page_shows_the_lag_of_a_stopped_stage(browser: WebDriver, stack: Stack) -> None:
    asyncio.run(_create_ingest_group(stack))  # as a started, then stopped, ingest leaves it
    sign_in(browser, stack, READ_TOKEN)
    assert cell(browser, "ingest", "lag") == "0"
    pages = HOLDOUT.read_text(encoding="utf-8").splitlines()[:6]
    asyncio.run(_push([orjson.dumps({"text": orjson.loads(line)["text"]}) for line in pages], stack))
    # No reload: the page's own refresh brings the new figure in.
    wait_until(browser, lambda: cell(browser, "ingest", "lag") == "6", what="ingest lag 6 on the page")
    assert cell(browser, "ingest", "pending") == "0"
    wait_until(browser, lambda: browser.find_elements(By.CSS_SELECTOR, "#stage-ingest polyline"),
               what="the lag chart has samples")
    screenshot(browser, "console-pipeline.png")


def test_pipeline_page_shows_the_fetch_stage(browser: WebDriver, stack: Stack) -> None:
    # Three pages found in a feed, on newsflow:discovered; a fetch replica has read one and not finished it.
    asyncio.run(_queue_fetch_jobs(stack, 3, read_by="fetch-replica-1"))
    sign_in(browser, stack, READ_TOKEN)
    row = browser.find_element(By.ID, "stage-fetch")
    assert stack.streams.discovered in row.text
    assert browser.find_elements(By.CSS_SELECTOR, "tbody tr")[0].get_attribute("id") == "stage-fetch"  # first stage
    wait_until(browser, lambda: [cell(browser, "fetch", f) for f in ("consumers", "lag", "pending")] == ["1", "2", "1"],
               what="fetch: 1 consumer, lag 2, 1 pending")
    assert cell(browser, "fetch", "rate") == "–"  # raw's growth is every producer's, not fetch's
    wait_until(browser, lambda: browser.find_elements(By.CSS_SELECTOR, "#stage-fetch polyline"),
               what="the fetch lag chart has samples")


async def _queue_fetch_jobs(stack: Stack, count: int, read_by: str) -> None:
    from redis.asyncio import Redis

    from shared.events import FetchJob

    client = Redis.from_url(stack.env["NEWSFLOW_REDIS_URL"])
    try:
        await ensure_group(client, stack.streams.discovered, "fetch")
        for number in range(count):
            job = FetchJob(url=f"https://news.example/{number}", source_id="s1", source_url="https://news.example/feed",
                           discovered_at=datetime.now(UTC))
            await client.xadd(stack.streams.discovered, {"data": job.to_json()})
        await client.xreadgroup("fetch", read_by, {stack.streams.discovered: ">"}, count=1)
    finally:
        await client.aclose()


async def _create_ingest_group(stack: Stack) -> None:
    from redis.asyncio import Redis

    client = Redis.from_url(stack.env["NEWSFLOW_REDIS_URL"])
    try:
        await ensure_group(client, stack.streams.raw, "ingest")
    finally:
        await client.aclose()


async def _push(payloads: list[bytes], stack: Stack) -> list[str]:
    from redis.asyncio import Redis

    client = Redis.from_url(stack.env["NEWSFLOW_REDIS_URL"])
    try:
        return await enqueue_raw(client, stack.streams, payloads, origin="test")
    finally:
        await client.aclose()


def test_a_dead_letter_is_replayed_from_the_page_and_then_stored(browser: WebDriver, stack: Stack) -> None:
    stack.start("ingest")
    # A clean stage that finds every body too short dead-letters what ingest hands it.
    picky = stack.start("clean", NEWSFLOW_MIN_BODY_WORDS="100000")
    asyncio.run(_push([orjson.dumps({"text": SEED.read_text(encoding="utf-8")})], stack))
    wait_for(lambda: stack.redis.xlen(stack.streams.dlq) >= 7, timeout=120, what="seven dead letters")
    picky.stop()
    for stage in ("clean", "enrich", "publish"):
        stack.start(stage)
    sign_in(browser, stack, OPERATOR_TOKEN, "/console/dlq")
    browser.find_element(By.LINK_TEXT, "clean · too_short").click()
    # Each click loads a page: wait for the new one rather than read the old one on a loaded machine.
    wait_until(browser, lambda: "reason=too_short" in browser.current_url, what="the reason filter applied")
    rows = browser.find_elements(By.CSS_SELECTOR, "table.entries tbody tr")
    assert len(rows) == 7
    seed_entry = next(
        row.find_element(By.TAG_NAME, "a").text for row in rows
        if "Shoigu" in _payload_of(browser, stack, row.find_element(By.TAG_NAME, "a").text)
    )
    browser.get(f"{stack.url}/console/dlq?stage=clean&reason=too_short&entry={seed_entry}")
    assert "Shoigu" in browser.find_element(By.CSS_SELECTOR, "pre.payload").text
    screenshot(browser, "console-dlq.png")
    browser.find_element(By.LINK_TEXT, "Replay…").click()
    wait_until(browser, lambda: "/confirm" in browser.current_url, what="the confirmation page")
    assert browser.find_element(By.TAG_NAME, "h1").text == f"Replay entry {seed_entry}?"
    browser.find_element(By.CSS_SELECTOR, "form.confirm button[type=submit]").click()
    wait_until(browser, lambda: browser.find_elements(By.CSS_SELECTOR, ".notice"), what="the replay's notice")
    notice = browser.find_element(By.CSS_SELECTOR, ".notice").text
    assert notice.startswith(f"Replayed {seed_entry} onto {stack.streams.ingested}")
    assert seed_entry not in browser.page_source.split("By stage and reason")[1]
    headers = {"Authorization": f"Bearer {READ_TOKEN}"}

    def stored() -> bool:
        found = httpx.get(f"{stack.url}/articles", params={"q": "Shoigu"}, headers=headers).json()["items"]
        return bool(found) and found[0]["title"].startswith("Sergei Shoigu")

    wait_for(stored, timeout=180, interval=1, what="the replayed seed stored and searchable")


def _payload_of(browser: WebDriver, stack: Stack, entry_id: str) -> str:
    fields = stack.redis.xrange(stack.streams.dlq, min=entry_id, max=entry_id)[0][1]
    payload = stack.redis.get(stack.streams.dlq_payload(fields[b"payload_key"].decode()))
    return payload.decode("utf-8", "replace")


def test_a_reader_sees_no_replay_and_forged_forms_are_refused(browser: WebDriver, stack: Stack) -> None:
    entries = stack.redis.xrange(stack.streams.dlq, count=1)
    assert entries, "the previous test leaves dead letters"
    entry_id = entries[0][0].decode()
    sign_in(browser, stack, READ_TOKEN, "/console/dlq")
    browser.get(f"{stack.url}/console/dlq?entry={entry_id}")
    assert not browser.find_elements(By.LINK_TEXT, "Replay…")
    assert "need the operator token" in browser.page_source
    # The reader's own session and CSRF token still cannot replay; an operator without the token cannot either.
    with httpx.Client(base_url=stack.url, follow_redirects=False) as client:
        console_login(client, READ_TOKEN)
        page = client.get(f"/console/dlq/{entry_id}/confirm", params={"action": "replay"}).text
        csrf = page.split('name="csrf" value="')[1].split('"')[0]
        assert client.post(f"/console/dlq/{entry_id}/replay", data={"csrf": csrf}).status_code == 403
    with httpx.Client(base_url=stack.url, follow_redirects=False) as client:
        console_login(client, OPERATOR_TOKEN)
        assert client.post(f"/console/dlq/{entry_id}/replay", data={}).status_code == 403
        assert client.post(f"/console/dlq/{entry_id}/delete", data={"csrf": "forged"}).status_code == 403
        cross = client.post(f"/console/dlq/{entry_id}/delete", headers={"Origin": "https://evil.example"})
        assert cross.status_code == 403
    assert stack.redis.xrange(stack.streams.dlq, min=entry_id, max=entry_id)  # still there


def test_searching_and_clicking_a_facet_narrows_the_list(browser: WebDriver, stack: Stack) -> None:
    sign_in(browser, stack, READ_TOKEN, "/console/articles")
    box = browser.find_element(By.ID, "q")
    box.send_keys("Putin", Keys.ENTER)
    wait_until(browser, lambda: "q=Putin" in browser.current_url, what="the search submitted")
    # Three stored for the module, and the seed the pipeline stored.
    wait_until(browser, lambda: browser.find_element(By.ID, "total").text == "4", what="four matches")
    total = "4"
    assert len(browser.find_elements(By.CSS_SELECTOR, "ol.hits > li")) == 4
    assert browser.find_elements(By.CSS_SELECTOR, "ol.hits mark")  # the matches are highlighted
    browser.find_element(By.CSS_SELECTOR, "[data-facet=source] a[href*='two.example']").click()
    wait_until(browser, lambda: "source=two.example" in browser.current_url, what="the facet applied")
    wait_until(browser, lambda: browser.find_element(By.ID, "total").text == "1", what="the narrowed count")
    titles = [a.text for a in browser.find_elements(By.CSS_SELECTOR, "ol.hits a.title")]
    assert titles == ["Putin in Moscow"]
    assert browser.find_element(By.CSS_SELECTOR, ".chips a").text.startswith("source: two.example")
    browser.find_element(By.CSS_SELECTOR, ".chips a").click()  # removing the filter widens it again
    wait_until(browser, lambda: browser.find_element(By.ID, "total").text == total, what="the filter removed")


def test_keyboard_alone_reaches_search_facets_and_an_article(browser: WebDriver, stack: Stack) -> None:
    browser.delete_all_cookies()
    browser.get(stack.url + "/console/articles")
    active = browser.switch_to.active_element
    assert active.get_attribute("id") == "token"  # the login field has the focus
    active.send_keys(READ_TOKEN, Keys.ENTER)
    wait_until(browser, lambda: browser.current_url.endswith("/console/articles"), what="signed in")

    def tab_to(matches: Callable[[object], bool], what: str, limit: int = 80) -> None:
        for _ in range(limit):
            browser.switch_to.active_element.send_keys(Keys.TAB)
            if matches(browser.switch_to.active_element):
                return
        raise AssertionError(f"Tab never reached {what}")

    tab_to(lambda e: e.get_attribute("id") == "q", "the search box")  # type: ignore[attr-defined]
    browser.switch_to.active_element.send_keys("economy", Keys.ENTER)
    wait_until(browser, lambda: "q=economy" in browser.current_url, what="search by keyboard")
    wait_until(browser, lambda: browser.find_element(By.ID, "total").text == "3", what="three matches")
    tab_to(lambda e: "language=de" in (e.get_attribute("href") or ""), "the de language facet")  # type: ignore[attr-defined]
    browser.switch_to.active_element.send_keys(Keys.ENTER)
    wait_until(browser, lambda: browser.find_element(By.ID, "total").text == "1", what="facet by keyboard")
    tab_to(lambda e: "/console/articles/a5" in (e.get_attribute("href") or ""), "the result")  # type: ignore[attr-defined]
    browser.switch_to.active_element.send_keys(Keys.ENTER)
    wait_until(browser, lambda: browser.current_url.endswith("/console/articles/a5"), what="article by keyboard")
    assert browser.find_element(By.TAG_NAME, "h1").text == "Scholz on the economy"
    marks = browser.find_elements(By.CSS_SELECTOR, ".body p:not(.legend) mark.PERSON")
    assert [m.text for m in marks] == ["Olaf Scholz"]
    assert browser.find_elements(By.CSS_SELECTOR, "ol.timeline li")
    # Back to the list, for the screenshot of a search with its facets.
    browser.get(stack.url + "/console/articles?q=Putin")
    screenshot(browser, "console-articles.png")

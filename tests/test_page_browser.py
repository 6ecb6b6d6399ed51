"""The live page (`GET /`) in a real browser: Debian's chromium, headless, driven by selenium.

One worker on the embedded broker and one browser session serve every test of this module
(module-scoped fixtures, in order): the page loads without script errors, draws every
zone, shows the API's counts, filters incidents by a zone clicked on the map (and by the
keyboard from the zone table), shows an incident's reports, and shows a critical report
fed during the test as an alert within 10 seconds.
"""

from __future__ import annotations

import math
import os
import shutil
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import Select

from streams.classify.zones import ZoneCatalogue
from streams.kafka.broker import EmbeddedBroker, free_port
from tests.harness import Worker, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


#: The zone clicked on the map (big enough to click beside its incidents' points), the one
#: chosen from the table with the keyboard, and the one a critical report arrives in.
CLICKED, KEYED, CRITICAL = "loc-east", "lachin-corridor", "syunik-border"
ALERT_DEADLINE = 10.0


def zone_points(catalogue: ZoneCatalogue, zone_id: str) -> list[tuple[float, float]]:
    """(lat, lon) points of a grid over the zone that `locate` places in it, the ones
    nearest its middle first."""
    zone = next(z for z in catalogue.zones if z.id == zone_id)
    w, s, e, n = zone.bbox
    steps = 24
    inside = [
        (s + (n - s) * i / steps, w + (e - w) * j / steps)
        for i in range(1, steps)
        for j in range(1, steps)
        if catalogue.locate(s + (n - s) * i / steps, w + (e - w) * j / steps) == zone_id
    ]
    mid = ((s + n) / 2, (w + e) / 2)
    return sorted(inside, key=lambda p: math.dist(p, mid))


def report(
    n: int, lat: float, lon: float, ago: timedelta, category: str, **extra: Any
) -> dict[str, Any]:
    return {
        "report_id": f"page-{n}",
        "source": "pkf-op-7",  # one source: no two of its reports link, one incident each
        "source_type": "observation_post",
        "occurred_at": (datetime.now(UTC) - ago).isoformat(),
        "location": {"lat": round(lat, 5), "lon": round(lon, 5)},
        "category": category,
        "perpetrator": "az" if n % 2 else "am",
        **extra,
    }


@pytest.fixture(scope="module")
def catalogue() -> ZoneCatalogue:
    return ZoneCatalogue.load()


@pytest.fixture(scope="module")
def worker(tmp_path_factory: pytest.TempPathFactory, catalogue: ZoneCatalogue) -> Iterator[Worker]:
    """A worker holding incidents in three zones: two in the last hour, more in the last
    24 h and one only in the last 7 days, none near the middle of the zone clicked."""
    tmp = tmp_path_factory.mktemp("page")
    with EmbeddedBroker("127.0.0.1", free_port(), log=tmp / "tansu.log") as broker:
        w = Worker(broker, tmp).start()
        try:
            clicked = zone_points(catalogue, CLICKED)[-3:]  # far from the middle
            keyed = zone_points(catalogue, KEYED)
            critical = zone_points(catalogue, CRITICAL)
            h = timedelta(hours=1)
            reports = [
                report(1, *clicked[0], 0.2 * h, "small_arms_fire"),
                report(2, *clicked[1], 5 * h, "engineering_works"),
                report(3, *clicked[2], 3 * 24 * h, "small_arms_fire"),
                report(4, *keyed[0], 0.5 * h, "heavy_weapons_fire"),  # a high alert
                report(5, *keyed[5], 9 * h, "airspace_violation"),
                report(6, *critical[0], 12 * h, "mine_incident"),
            ]
            status, body = w.post("/api/v1/reports", reports)
            assert status == 202 and len(body["accepted"]) == len(reports), body
            expected = {CLICKED: 2, KEYED: 2, CRITICAL: 1}
            wait_for(
                lambda: {r["zone"]: r["incidents"] for r in w.tallies("24h") or []} == expected,
                timeout=60,
                what="the fed incidents in the tallies",
            )
            yield w
        finally:
            w.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    chromium, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    if chromium is None or driver_path is None:
        missing = "chromium and chromedriver are not installed (apt chromium chromium-driver)"
        if os.environ.get("CI"):
            pytest.fail(missing + ": .ci/run installs them")
        pytest.skip(missing)
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = chromium
    for arg in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1280,900",
        "--no-first-run",
        "--disable-extensions",
        "--disable-background-networking",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    driver.set_page_load_timeout(30)
    driver.set_script_timeout(10)
    try:
        yield driver
    finally:
        driver.quit()


class Page:
    """The page in the browser, and everything its console said."""

    def __init__(self, driver: WebDriver, url: str) -> None:
        self.driver = driver
        self.url = url
        self.console: list[dict[str, Any]] = []

    def errors(self) -> list[str]:
        self.console += self.driver.get_log("browser")  # type: ignore[no-untyped-call]
        return [str(e["message"]) for e in self.console if e["level"] == "SEVERE"]

    def refreshes(self) -> int:
        return int(
            self.driver.find_element(By.TAG_NAME, "body").get_attribute("data-refreshed") or 0
        )

    def wait_refreshed(self, timeout: float = 15.0) -> None:
        """Until the page has completed a refresh that started after now."""
        start = self.refreshes()
        wait_for(lambda: self.refreshes() >= start + 2, timeout=timeout, what="two refreshes")

    def table_counts(self) -> dict[str, int]:
        counts = {}
        for row in self.driver.find_elements(By.CSS_SELECTOR, "#zone-rows tr[data-zone]"):
            cell = row.find_element(By.CSS_SELECTOR, 'td[data-field="incidents"]')
            counts[str(row.get_attribute("data-zone"))] = int(cell.text)
        return counts

    def incident_items(self) -> list[WebElement]:
        return self.driver.find_elements(By.CSS_SELECTOR, "#incidents li[data-incident-id]")

    def listed_zones(self) -> list[str]:
        return [str(li.get_attribute("data-zone")) for li in self.incident_items()]


@pytest.fixture(scope="module")
def page(worker: Worker, browser: WebDriver) -> Page:
    p = Page(browser, worker.url)
    browser.get(f"{worker.url}/")
    wait_for(lambda: p.refreshes() >= 1, timeout=30, what="the page's first refresh")
    return p


def api_counts(worker: Worker, window: str) -> dict[str, int]:
    return {r["zone"]: r["incidents"] for r in worker.tallies(window) or []}


def test_page_loads_without_script_errors_and_draws_every_zone(page: Page, worker: Worker) -> None:
    status, zones = worker.get("/api/v1/zones")
    assert status == 200
    ids = {f["properties"]["id"] for f in zones["features"]}
    drawn = page.driver.find_elements(By.CSS_SELECTOR, "#map path[data-zone]")
    assert {p.get_attribute("data-zone") for p in drawn} == ids
    assert len(drawn) == len(ids)  # one path each, none drawn twice
    # the table lists every zone too, readable without the map
    assert set(page.table_counts()) >= ids
    assert page.errors() == []


def test_counts_equal_the_apis_in_each_window(page: Page, worker: Worker) -> None:
    select = Select(page.driver.find_element(By.ID, "window"))
    offered = [str(o.get_attribute("value")) for o in select.options]
    status, _ = worker.get("/api/v1/tallies?window=all&by=zone")
    assert offered == ["1h", "24h", "7d", "30d", *(["all"] if status == 200 else [])]
    for window in ("24h", "1h", *offered[offered.index("30d") + 1 :], "7d"):
        select.select_by_value(window)
        page.wait_refreshed()
        want = api_counts(worker, window)
        shown = {z: n for z, n in page.table_counts().items() if n}
        assert shown == want, window
    assert want == {CLICKED: 3, KEYED: 2, CRITICAL: 1}  # the 7-day window counts the older one
    assert "all" in offered, "the tallies answer window=all: the page offers it"
    select.select_by_value("24h")
    page.wait_refreshed()
    # The latest incidents are points on the map, one each.
    listed = {li.get_attribute("data-incident-id") for li in page.incident_items()}
    assert len(listed) == 5

    def drawn() -> set[str | None] | None:
        points = page.driver.find_elements(By.CSS_SELECTOR, "#map path[data-incident-id]")
        return {p.get_attribute("data-incident-id") for p in points} or None

    wait_for(lambda: drawn() == listed, timeout=15, what="a point for each listed incident")
    assert page.errors() == []


def test_clicking_a_zone_on_the_map_filters_the_incidents(
    page: Page, catalogue: ZoneCatalogue
) -> None:
    driver = page.driver
    assert set(page.listed_zones()) == {CLICKED, KEYED, CRITICAL}
    lat, lon = zone_points(catalogue, CLICKED)[0]
    map_el = driver.find_element(By.ID, "map")
    x, y, hit = driver.execute_script(
        "const p = window.ceasefireMap.latLngToContainerPoint([arguments[0], arguments[1]]);"
        "const r = document.getElementById('map').getBoundingClientRect();"
        "const hit = document.elementFromPoint(r.left + p.x, r.top + p.y);"
        "return [p.x, p.y, hit && hit.getAttribute('data-zone')];",
        lat,
        lon,
    )
    assert hit == CLICKED, f"the map shows {hit!r} at a point of {CLICKED}"
    size = map_el.size
    ActionChains(driver).move_to_element_with_offset(
        map_el, int(x - size["width"] / 2), int(y - size["height"] / 2)
    ).click().perform()
    wait_for(
        lambda: page.listed_zones() == [CLICKED, CLICKED],
        timeout=10,
        what=f"only the incidents of {CLICKED}",
    )
    row = driver.find_element(By.CSS_SELECTOR, f'#zone-rows tr[data-zone="{CLICKED}"] button')
    assert row.get_attribute("aria-pressed") == "true"

    # The keyboard reaches the same filter from the zone table.
    button = driver.find_element(By.CSS_SELECTOR, f'#zone-rows tr[data-zone="{KEYED}"] button')
    button.send_keys(Keys.ENTER)
    wait_for(lambda: page.listed_zones() == [KEYED, KEYED], timeout=10, what=f"{KEYED} only")
    driver.find_element(By.ID, "filter-clear").send_keys(Keys.ENTER)
    wait_for(lambda: len(page.listed_zones()) == 5, timeout=10, what="every zone again")
    assert page.errors() == []


def test_clicking_an_incident_shows_its_reports(page: Page) -> None:
    driver = page.driver
    item = driver.find_element(By.CSS_SELECTOR, f'#incidents li[data-zone="{KEYED}"] button')
    item.click()
    dialog = driver.find_element(By.ID, "incident-dialog")

    def reports() -> set[str] | None:
        rows = dialog.find_elements(By.CSS_SELECTOR, "tr[data-report-id]")
        return {str(r.get_attribute("data-report-id")) for r in rows} or None

    ids = wait_for(reports, timeout=10, what="the incident's reports")
    assert len(ids) == 1 and ids <= {"page-4", "page-5"}, dialog.text
    assert "pkf-op-7" in dialog.text
    driver.find_element(By.ID, "incident-close").click()
    wait_for(lambda: not dialog.is_displayed(), timeout=5, what="the dialog to close")
    assert page.errors() == []


def test_keyboard_focus_survives_refreshes(page: Page) -> None:
    """The lists are rebuilt on each refresh; a keyboard user keeps their place in them."""
    driver = page.driver
    items = driver.find_elements(By.CSS_SELECTOR, "#incidents li[data-incident-id]")
    chosen = str(items[1].get_attribute("data-incident-id"))
    items[1].find_element(By.TAG_NAME, "button").send_keys(Keys.NULL)  # focus it
    page.wait_refreshed()
    focused = driver.execute_script(
        "const li = document.activeElement.closest('li[data-incident-id]');"
        "return li && document.activeElement.tagName === 'BUTTON' ? li.dataset.incidentId : null;"
    )
    assert focused == chosen
    driver.execute_script("document.activeElement.blur()")


def test_a_critical_report_appears_as_an_alert_within_10_seconds(
    page: Page, worker: Worker, catalogue: ZoneCatalogue
) -> None:
    driver = page.driver
    selector = f'#alerts li[data-severity="critical"][data-zone="{CRITICAL}"]'
    assert driver.find_elements(By.CSS_SELECTOR, selector) == []
    lat, lon = zone_points(catalogue, CRITICAL)[3]
    killed = report(9, lat, lon, timedelta(minutes=2), "small_arms_fire", casualties={"killed": 1})
    fed = time.monotonic()
    status, body = worker.post("/api/v1/reports", [killed])
    assert status == 202 and body["accepted"], body
    wait_for(
        lambda: driver.find_elements(By.CSS_SELECTOR, selector) or None,  # [] is not None
        timeout=ALERT_DEADLINE - (time.monotonic() - fed),
        interval=0.1,
        what="the critical alert on the page",
    )
    assert time.monotonic() - fed <= ALERT_DEADLINE
    # Newest first: the critical alert before the earlier heavy-weapons one.
    alerts = driver.find_elements(By.CSS_SELECTOR, "#alerts li[data-alert-id]")
    assert [a.get_attribute("data-severity") for a in alerts] == ["critical", "high"]
    assert "sev-critical" in str(
        alerts[0].find_element(By.TAG_NAME, "button").get_attribute("class")
    )

    # Clicking the alert filters the incidents to its zone.
    alerts[0].find_element(By.TAG_NAME, "button").click()
    wait_for(
        lambda: page.listed_zones() == [CRITICAL, CRITICAL],
        timeout=10,
        what=f"the incidents of {CRITICAL}",
    )
    assert page.errors() == []


def test_works_in_a_narrow_window(page: Page) -> None:
    driver = page.driver
    # A phone's width (a window cannot be made this narrow: Chrome keeps it at 500 or more).
    metrics = {"width": 360, "height": 740, "deviceScaleFactor": 1, "mobile": True}
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
    try:
        assert driver.execute_script("return window.innerWidth") == 360
        page.wait_refreshed()
        overflow = driver.execute_script(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, "the page scrolls sideways in a narrow window"
        table = driver.find_element(By.CSS_SELECTOR, "#zones table")
        map_el = driver.find_element(By.ID, "map")
        assert table.is_displayed() and map_el.is_displayed()
        assert table.location["y"] > map_el.location["y"]  # one column: the table below the map
        # Each zone's incident count is on screen without scrolling sideways.
        cell = table.find_element(By.CSS_SELECTOR, 'td[data-field="incidents"]')
        assert cell.location["x"] + cell.size["width"] <= 360
    finally:
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    assert page.errors() == []

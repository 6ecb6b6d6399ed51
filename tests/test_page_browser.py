"""The live page (`GET /`) in a real browser: Debian's chromium, headless, driven by selenium.

One worker on the embedded broker and one browser session serve every test of this module
(module-scoped fixtures, in order): the page loads without script errors, draws every
zone, shows the API's counts, filters incidents by a zone clicked on the map (and by the
keyboard from the zone table), shows an incident's reports, and shows a critical report
fed during the test as an alert within 10 seconds; then that the list and the map cover
exactly the span the zone table counts (not an incident before the ceasefire nor one after
the tallies' `as_of`), that a time known only to the day shows as the theatre's day, and
that a report's names that matched no party and its named place reach the drill-down.
Last, over an API stand-in (no worker): a theatre-wide alert; a window or zone chosen while
the tallies fail shows no figure of the old one; a worker that stops answering is said,
and a filter chosen then still takes effect; the incident dialog shows only the one chosen.
"""

from __future__ import annotations

import math
import os
import shutil
import signal
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from functools import partial
from typing import Any

import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
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
#: Zones of the reports fed late: one before the ceasefire, one a few minutes ahead of the
#: clock (within the validator's allowance for skew), one known only to the day, one
#: naming parties no alias matches and a gazetteer place.
BEFORE, AHEAD, DAY, NAMED = "aghdam-district", "loc-north", "shusha", "stepanakert"
#: How the page words each window after "incidents".
PHRASES = {
    "1h": "in the last hour",
    "24h": "in the last 24 hours",
    "7d": "in the last 7 days",
    "30d": "in the last 30 days",
    "all": "since the ceasefire",
}
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
#: The theatre's UTC offset: the linking rule's default day_utc_offset_hours.
THEATRE = timezone(timedelta(hours=4))


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
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    tmp = tmp_path_factory.mktemp("page-broker")
    with EmbeddedBroker("127.0.0.1", free_port(), log=tmp / "tansu.log") as b:
        yield b


@pytest.fixture(scope="module")
def worker(
    tmp_path_factory: pytest.TempPathFactory, catalogue: ZoneCatalogue, broker: EmbeddedBroker
) -> Iterator[Worker]:
    """A worker holding incidents in three zones: two in the last hour, more in the last
    24 h and one only in the last 7 days, none near the middle of the zone clicked."""
    tmp = tmp_path_factory.mktemp("page")
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
        # Each window's phrase reads after "incidents" ("in the last hour", "since the
        # ceasefire"), never "in since the ceasefire".
        caption = page.driver.find_element(By.ID, "zones-caption").text
        assert caption == f"Incidents by zone {PHRASES[window]}, by event time"
        title = page.driver.find_element(By.ID, "incidents-title").text
        assert title == f"Latest incidents {PHRASES[window]}"
        chosen = select.first_selected_option.text
        assert chosen == PHRASES[window]
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
    # The most severe first (and newest): the critical alert before the heavy-weapons one.
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
        # Each zone's counts are on screen without scrolling sideways: the table was 475 px
        # wide in its 344 px section, Killed and Wounded behind a scrollbar phones hide
        for field in ("incidents", "wounded"):
            cell = table.find_element(By.CSS_SELECTOR, f'td[data-field="{field}"]')
            assert cell.location["x"] + cell.size["width"] <= 360, field
        section = driver.find_element(By.ID, "zones")
        assert table.size["width"] <= section.size["width"]
    finally:
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    assert page.errors() == []


def test_a_long_label_leaves_the_facts_their_width_on_a_phone(page: Page) -> None:
    """An incident naming a party that matched none: its label "Perpetrators named (no
    party)" took 229 of the dialog's 300 px, and every value broke inside its words."""
    driver = page.driver
    metrics = {"width": 360, "height": 740, "deviceScaleFactor": 1, "mobile": True}
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
    try:
        widths = driver.execute_script(
            """
            const dl = document.createElement("dl");
            dl.className = "facts";
            dl.style.width = "300px";
            for (const [k, v] of [["Perpetrators named (no party)", "Wagner"],
                                  ["Verification", "observed"]]) {
              const dt = document.createElement("dt"); dt.textContent = k;
              const dd = document.createElement("dd"); dd.textContent = v;
              dl.append(dt, dd);
            }
            document.body.append(dl);
            const dts = [...dl.querySelectorAll("dt")].map((e) => e.getBoundingClientRect().width);
            const dds = [...dl.querySelectorAll("dd")].map((e) => e.getBoundingClientRect().width);
            dl.remove();
            return {dt: Math.max(...dts), dd: Math.min(...dds)};
            """
        )
    finally:
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    assert widths["dt"] <= 0.4 * 300 + 1, widths
    assert widths["dd"] >= 0.5 * 300, widths


# -- the span, the precision of times and the names of the reports ---------------------------
def click_current(driver: WebDriver, selector: str) -> None:
    """Click the element `selector` finds now: the page redraws its lists as it refreshes,
    and an element found just before a redraw is stale when clicked (seen in CI)."""
    for _ in range(10):
        try:
            driver.find_element(By.CSS_SELECTOR, selector).click()
            return
        except StaleElementReferenceException:
            time.sleep(0.1)
    raise AssertionError(f"{selector} went stale at every click")


def micro_iso(moment: datetime) -> str:
    """A time as the page sends it: UTC to the microsecond."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def zone_at_pointer(page: Page, catalogue: ZoneCatalogue, zone: str) -> None:
    """Move the pointer over a point of `zone` near its middle (no incident of the fixture
    is there), which opens the zone's tooltip."""
    driver = page.driver
    lat, lon = zone_points(catalogue, zone)[0]
    x, y = driver.execute_script(
        "const p = window.ceasefireMap.latLngToContainerPoint([arguments[0], arguments[1]]);"
        "return [p.x, p.y];",
        lat,
        lon,
    )
    map_el = driver.find_element(By.ID, "map")
    size = map_el.size
    ActionChains(driver).move_to_element_with_offset(
        map_el, int(x - size["width"] / 2), int(y - size["height"] / 2)
    ).perform()


def drawn_points(page: Page) -> set[str]:
    """The incidents drawn on the map."""
    points = page.driver.find_elements(By.CSS_SELECTOR, "#map path[data-incident-id]")
    return {str(p.get_attribute("data-incident-id")) for p in points}


def draws_exactly(page: Page, incident_ids: set[str]) -> bool:
    return drawn_points(page) == incident_ids


def show_all_zones(page: Page) -> None:
    clear = page.driver.find_element(By.ID, "filter-clear")
    if clear.is_displayed():
        clear.click()
        page.wait_refreshed()


def incident_of(worker: Worker, report_id: str, query: str) -> dict[str, Any] | None:
    """The open incident holding `report_id`, from `GET /api/v1/incidents?{query}`."""
    status, body = worker.get(f"/api/v1/incidents?limit=1000&{query}")
    if status != 200:
        return None
    for incident in body["incidents"]:
        if any(r["report_id"] == report_id for r in incident["reports"]):
            return dict(incident)
    return None


def test_the_list_and_the_map_cover_the_span_the_table_counts(
    page: Page, worker: Worker, catalogue: ZoneCatalogue
) -> None:
    """Since the ceasefire, the list and the map leave out an incident before it, as the
    zone table (`window=all`) does; in every window they leave out one after the tallies'
    `as_of`. The list is asked for exactly the tallies' span."""
    driver = page.driver
    before = report(
        10,
        *zone_points(catalogue, BEFORE)[0],
        timedelta(0),
        "small_arms_fire",
        occurred_at="2020-11-05T10:00:00+04:00",
    )
    ahead = report(11, *zone_points(catalogue, AHEAD)[0], -timedelta(minutes=4), "mine_incident")
    status, body = worker.post("/api/v1/reports", [before, ahead])
    assert status == 202 and len(body["accepted"]) == 2, body
    old = wait_for(
        lambda: incident_of(worker, "page-10", "to=2020-11-09T21:00:00Z"),
        timeout=30,
        what="the incident from before the ceasefire in the API's list",
    )
    new = wait_for(
        lambda: incident_of(worker, "page-11", f"zone={AHEAD}"),
        timeout=30,
        what="the incident ahead of the clock in the API's list",
    )
    hidden = {old["incident_id"], new["incident_id"]}
    show_all_zones(page)
    select = Select(driver.find_element(By.ID, "window"))
    for window in ("all", "24h"):
        select.select_by_value(window)
        page.wait_refreshed()
        counts = {z: n for z, n in page.table_counts().items() if n}
        assert 0 < sum(counts.values()) < 50, counts  # the whole window fits in the list
        assert dict(Counter(page.listed_zones())) == counts, window
        listed = {str(li.get_attribute("data-incident-id")) for li in page.incident_items()}
        assert not listed & hidden, window
        # The span asked for is the tallies': [as_of - window, as_of), or [since, as_of).
        rows = driver.find_element(By.ID, "zone-rows")
        as_of = datetime.fromisoformat(str(rows.get_attribute("data-as-of")))
        incidents = driver.find_element(By.ID, "incidents")
        assert incidents.get_attribute("data-to") == micro_iso(as_of)
        start = (
            datetime.fromisoformat(str(rows.get_attribute("data-since")))
            if window == "all"
            else as_of - timedelta(days=1)
        )
        assert incidents.get_attribute("data-from") == micro_iso(start), window
        wait_for(
            partial(draws_exactly, page, listed),
            timeout=15,
            what=f"a point for each listed incident ({window})",
        )
    # The zone's tooltip words the window as the caption does.
    select.select_by_value("all")
    page.wait_refreshed()
    zone_at_pointer(page, catalogue, CLICKED)
    n = page.table_counts()[CLICKED]
    tip = wait_for(
        lambda: (
            " ".join(
                t.text for t in driver.find_elements(By.CSS_SELECTOR, ".leaflet-tooltip")
            ).strip()
            or None
        ),
        timeout=10,
        what="the zone's tooltip",
    )
    assert tip.endswith(f"{n} incidents since the ceasefire"), tip
    ActionChains(driver).move_by_offset(0, 0).move_to_element(
        driver.find_element(By.ID, "status")
    ).perform()
    assert page.errors() == []


@pytest.fixture(scope="module")
def late_reports(worker: Worker, catalogue: ZoneCatalogue) -> dict[str, dict[str, Any]]:
    """A report known only to the day (of the theatre, UTC+4: its midnight is 20:00 UTC of
    the day before), and one that names parties no alias matches and a gazetteer place;
    each incident holding them, by report id."""
    midnight = datetime.now(THEATRE).replace(hour=0, minute=0, second=0, microsecond=0)
    day = report(
        12,
        *zone_points(catalogue, DAY)[0],
        timedelta(0),
        "engineering_works",
        occurred_at=midnight.isoformat(),
        time_precision="day",
    )
    lat, lon = zone_points(catalogue, NAMED)[0]
    named = report(
        13,
        lat,
        lon,
        timedelta(hours=2),
        "heavy_weapons_fire",
        location={"lat": round(lat, 5), "lon": round(lon, 5), "place": "Stepanakert"},
        perpetrator="Wagner mercenaries",
        target="local farmers",
        claimant="Some NGO",
    )
    status, body = worker.post("/api/v1/reports", [day, named])
    assert status == 202 and len(body["accepted"]) == 2, body
    found = {}
    for report_id, zone in (("page-12", DAY), ("page-13", NAMED)):
        listed = wait_for(
            partial(incident_of, worker, report_id, f"zone={zone}"),
            timeout=30,
            what=f"the incident of {report_id}",
        )
        status, detail = worker.get(f"/api/v1/incidents/{listed['incident_id']}")
        assert status == 200, detail
        found[report_id] = detail
    return found


def open_listed(page: Page, zone: str, incident_id: str) -> dict[str, str]:
    """Show the incidents of `zone` in the last 24 hours, open `incident_id` from the list
    and answer its list item's time line and its report row's cells, by field."""
    driver = page.driver
    show_all_zones(page)
    Select(driver.find_element(By.ID, "window")).select_by_value("24h")
    click_current(driver, f'#zone-rows tr[data-zone="{zone}"] button')
    selector = f'#incidents li[data-incident-id="{incident_id}"]'
    item = wait_for(
        lambda: driver.find_elements(By.CSS_SELECTOR, selector) or None,
        timeout=15,
        what=f"incident {incident_id} in the list",
    )[0]
    meta = item.find_element(By.CSS_SELECTOR, ".meta").text
    item.find_element(By.TAG_NAME, "button").click()
    dialog = driver.find_element(By.ID, "incident-dialog")
    rows = wait_for(
        lambda: dialog.find_elements(By.CSS_SELECTOR, "tr[data-report-id]") or None,
        timeout=10,
        what="the incident's reports",
    )
    cells = {
        str(td.get_attribute("data-field")): td.text
        for td in rows[0].find_elements(By.CSS_SELECTOR, "td[data-field]")
    }
    cells["list"] = meta
    cells["occurred"] = dialog.find_element(By.CSS_SELECTOR, "dl.facts dd").text
    driver.find_element(By.ID, "incident-close").click()
    wait_for(lambda: not dialog.is_displayed(), timeout=5, what="the dialog to close")
    return cells


def test_a_time_known_to_the_day_shows_the_theatres_day(
    page: Page, late_reports: dict[str, dict[str, Any]]
) -> None:
    detail = late_reports["page-12"]
    (entry,) = detail["reports"]
    assert entry["time_precision"] == "day"
    day = datetime.fromisoformat(entry["occurred_at"]).astimezone(THEATRE)
    assert (day.hour, day.minute) == (0, 0)  # 20:00 UTC of the day before
    as_day = f"{day.day} {MONTHS[day.month - 1]} {day.year} (day)"
    cells = open_listed(page, DAY, detail["incident_id"])
    assert cells["occurred_at"] == as_day, cells
    # The incident's own time: as precise as its document says (an older worker's
    # document has no time_precision: exact).
    occurred = datetime.fromisoformat(detail["occurred_at"]).astimezone(UTC)
    exact = occurred.strftime("%Y-%m-%d %H:%M UTC")
    want = as_day if detail.get("time_precision", "exact") == "day" else exact
    assert cells["occurred"] == want, cells
    assert cells["list"].startswith(f"{want} · "), cells
    assert page.errors() == []


def shown_party(code: str | None, raw: str | None) -> str:
    """How the page shows a party of a report: its code, and the name it gave when that
    matched no party."""
    if not raw:
        return code or ""
    return f"{code} (named: {raw})" if code else f"named: {raw}"


def test_the_drill_down_shows_the_names_and_the_place_as_given(
    page: Page, late_reports: dict[str, dict[str, Any]]
) -> None:
    detail = late_reports["page-13"]
    (entry,) = detail["reports"]
    cells = open_listed(page, NAMED, detail["incident_id"])
    for field in ("perpetrator", "target", "claimant"):
        assert cells[field] == shown_party(entry.get(field), entry.get(f"{field}_raw")), cells
    # as sent (late_reports): no alias matches these names, so the API keeps them
    assert cells["perpetrator"] == "unknown (named: Wagner mercenaries)", cells
    assert cells["target"] == "named: local farmers", cells  # a target has no "unknown" code
    assert cells["claimant"] == "unknown (named: Some NGO)", cells
    point = f"{entry['lat']:.4f}, {entry['lon']:.4f} (point)"
    assert entry.get("place") == "Stepanakert", entry
    assert cells["place"] == f"Stepanakert · {point}", cells
    assert not any(v in ("null", "undefined") or "null" in v.split() for v in cells.values())
    assert page.errors() == []


def test_the_map_s_zones_are_named_buttons_and_its_points_no_tab_stops(page: Page) -> None:
    """A review tabbed through a dozen unnamed zones and every incident point before the
    table, Enter on a zone did nothing, and a focused point lost its focus each refresh."""
    driver = page.driver
    show_all_zones(page)
    zone = driver.find_element(By.CSS_SELECTOR, f'#map path[data-zone="{KEYED}"]')
    assert zone.get_attribute("role") == "button" and zone.get_attribute("tabindex") == "0"
    label = str(zone.get_attribute("aria-label"))
    name = driver.find_element(By.CSS_SELECTOR, f'#zone-rows tr[data-zone="{KEYED}"] button').text
    assert label.startswith(f"{name.strip()}: ") and " incident" in label, label
    driver.execute_script("arguments[0].focus()", zone)
    ActionChains(driver).send_keys(Keys.ENTER).perform()
    wait_for(lambda: set(page.listed_zones()) == {KEYED}, timeout=10, what=f"{KEYED} only")
    assert zone.get_attribute("aria-pressed") == "true"
    ActionChains(driver).send_keys(Keys.SPACE).perform()  # again: every zone
    wait_for(lambda: len(set(page.listed_zones())) > 1, timeout=10, what="every zone again")
    points = driver.find_elements(By.CSS_SELECTOR, "#map path[data-incident-id]")
    assert points, "no incident point drawn"
    for point in points:
        assert point.get_attribute("tabindex") == "-1"
        assert point.get_attribute("aria-hidden") == "true"
    assert page.errors() == []


def test_the_most_severe_alerts_come_first(
    page: Page, worker: Worker, catalogue: ZoneCatalogue
) -> None:
    """A critical alert sat below eight high ones: the list was by time alone. A death
    2 h ago: its critical alert starts before the high one of half an hour ago."""
    driver = page.driver
    lat, lon = zone_points(catalogue, KEYED)[2]
    earlier = report(20, lat, lon, timedelta(hours=2), "small_arms_fire", casualties={"killed": 1})
    status, body = worker.post("/api/v1/reports", [earlier])
    assert status == 202 and body["accepted"], body
    selector = f'#alerts li[data-severity="critical"][data-zone="{KEYED}"]'
    wait_for(
        lambda: driver.find_elements(By.CSS_SELECTOR, selector) or None,
        timeout=15,
        what="the critical alert on the page",
    )
    rank = {"critical": 0, "high": 1, "medium": 2, "low": 3}
    items = driver.find_elements(By.CSS_SELECTOR, "#alerts li[data-alert-id]")
    severities = [str(li.get_attribute("data-severity")) for li in items]
    assert severities.index("critical") < severities.index("high"), severities
    assert severities == sorted(severities, key=rank.__getitem__), severities


def test_the_list_says_how_many_of_the_window_s_incidents_it_shows(
    page: Page, worker: Worker
) -> None:
    """It stopped at 50 without a word where the window held 689."""
    driver = page.driver
    show_all_zones(page)
    total = sum(api_counts(worker, "24h").values())
    note = driver.find_element(By.ID, "incidents-note")
    wait_for(lambda: note.text == f"All {total} shown.", timeout=10, what="all shown")
    try:
        driver.get(f"{worker.url}/?limit=2")
        wait_for(lambda: page.refreshes() >= 1, timeout=30, what="the page's first refresh")
        note = driver.find_element(By.ID, "incidents-note")
        wait_for(
            lambda: note.text.startswith(f"The latest 2 of {total} shown"),
            timeout=10,
            what="the count",
        )
        assert len(page.incident_items()) == 2
        link = note.find_element(By.TAG_NAME, "a")
        assert link.text == f"all {total} as CSV"
        href = str(link.get_attribute("href"))
        assert "format=csv" in href and "from=" in href and "to=" in href, href
        got = driver.execute_async_script(
            "fetch(arguments[0]).then(r => r.text()).then(arguments[1])", href
        )
        assert len(str(got).strip().splitlines()) == total + 1, got  # a header and each
    finally:
        driver.get(f"{worker.url}/")
        wait_for(lambda: page.refreshes() >= 1, timeout=30, what="the page's first refresh")
    assert page.errors() == []


def test_the_status_says_the_figures_are_not_live_while_the_broker_does_not_answer(
    page: Page, broker: EmbeddedBroker
) -> None:
    """Frozen broker: the page said "Updated" for a minute while no report could arrive.
    Its spoken form changes only when what it says does. (Last: it freezes the module's
    broker.)"""
    driver = page.driver
    status = driver.find_element(By.ID, "status")
    live = driver.find_element(By.ID, "status-live")
    page.wait_refreshed()
    said = live.get_attribute("textContent")
    assert str(said).startswith("Live · "), said
    page.wait_refreshed()
    assert live.get_attribute("textContent") == said  # not spoken again with each refresh
    pid = broker.pid
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)
    try:
        wait_for(
            lambda: status.text.startswith("Not live since ") or None,
            timeout=40,
            what="the page to say it is not live",
        )
        assert "the worker is waiting for broker" in status.text, status.text
        # said once, not again as the worker's count of unanswered probes rises
        spoken = live.get_attribute("textContent")
        assert spoken == "Not live: the worker is waiting for broker.", spoken
        checks = {status.text}

        def refreshed_thrice() -> bool:
            checks.add(status.text)  # each refresh says when it checked
            return len(checks) >= 4

        wait_for(refreshed_thrice, timeout=30, interval=0.5, what="three more refreshes")
        assert live.get_attribute("textContent") == spoken
    finally:
        os.kill(pid, signal.SIGCONT)
    wait_for(
        lambda: status.text.startswith("Updated ") or None,
        timeout=60,
        what="the page to be live again",
    )
    # what the browser logs of the 503s of /readyz (and of the tallies, while it joins)
    assert [e for e in page.errors() if "status of 503" not in e] == []


#: Incidents per zone the stand-in's tallies count in each window.
STUB_COUNTS = {"1h": 1, "24h": 1, "7d": 7, "30d": 30, "all": 90}


def stub_api(
    alerts: list[dict[str, Any]], asked: list[str], faults: dict[str, Any] | None = None
) -> Any:
    """The page (`page.register`) over an API stand-in that answers what the page asks
    with fixed figures, and refuses an unknown zone as the incidents API does. `asked`:
    the query strings of the incident lists the page asked for. `faults`, changed by the
    test as it goes: `tallies_503` (the tallies answer 503), `hang` (a request arriving
    meanwhile gets no answer until `released`, or for 30 s), `detail_delay` (incident id ->
    seconds before its detail answers), `detail_503` (ids whose detail answers 503),
    `incidents` (the open incidents, newest first, in place of one in each zone), `gone`
    (incident id -> the 404's body, as the API's for one merged or withdrawn);
    `tallies_asked` and `details_answered` count and list what was answered. The list
    answers its newest `limit`, as the API does."""
    import asyncio

    from aiohttp import web

    from streams.config import Settings
    from streams.web import page as page_module

    zones = {"zone-a": (46.0, 39.0), "zone-b": (46.2, 39.0)}
    now = datetime.now(UTC)
    incidents = [
        {
            "incident_id": f"inc-{zone}",
            "zone": zone,
            "severity": "high",
            "category": "small_arms_fire",
            "attribution": "az",
            "verification": "observed",
            "killed": 3,
            "wounded": 0,
            "reports": [{"source": "pkf-op-1", "report_id": zone, "revision": 0}],
            "occurred_at": (now - timedelta(hours=n + 1)).isoformat(),
            "time_precision": "exact",
        }
        for n, zone in enumerate(zones)
    ]

    faults = {} if faults is None else faults

    async def held() -> None:
        """A worker that stops answering: what it was asked meanwhile gets no answer."""
        if faults.get("hang"):
            deadline = time.monotonic() + 30
            while not faults.get("released") and time.monotonic() < deadline:
                await asyncio.sleep(0.1)

    async def zones_(request: web.Request) -> web.Response:
        features = [
            {
                "type": "Feature",
                "properties": {"id": z, "name": z.replace("-", " ").title()},
                "geometry": {
                    "type": "Polygon",
                    "coordinates": [
                        [[x, y], [x + 0.1, y], [x + 0.1, y + 0.1], [x, y + 0.1], [x, y]]
                    ],
                },
            }
            for z, (x, y) in zones.items()
        ]
        return web.json_response({"type": "FeatureCollection", "features": features})

    async def tallies(request: web.Request) -> web.Response:
        await held()
        faults["tallies_asked"] = faults.get("tallies_asked", 0) + 1
        if faults.get("tallies_503"):
            return web.json_response({"error": "tallies are not complete, retry"}, status=503)
        window = request.query.get("window", "24h")
        n = STUB_COUNTS[window]
        rows = [{"zone": z, "incidents": n, "reports": n, "killed": 3, "wounded": 0} for z in zones]
        rows += faults.get("extra_rows", [])
        body: dict[str, Any] = {"window": window, "by": ["zone"], "as_of": now.isoformat()}
        if window == "all":
            body["since"] = (now - timedelta(days=900)).isoformat()
        return web.json_response({**body, "rows": rows})

    async def alerts_(request: web.Request) -> web.Response:
        await held()
        return web.json_response({"alerts": alerts})

    async def incident_list(request: web.Request) -> web.Response:
        await held()
        asked.append(request.query_string)
        zone = request.query.get("zone")
        if zone is not None and zone not in zones:
            return web.json_response({"error": f"unknown zone {zone!r}"}, status=400)
        found = [i for i in faults.get("incidents", incidents) if zone in (None, i["zone"])]
        limit = int(request.query.get("limit", "50"))
        return web.json_response({"incidents": found[:limit], "next_cursor": None})

    async def one(request: web.Request) -> web.Response:
        await held()
        incident_id = request.match_info["id"]
        await asyncio.sleep(faults.get("detail_delay", {}).get(incident_id, 0))
        faults.setdefault("details_answered", []).append(incident_id)
        if incident_id in faults.get("detail_503", ()):
            return web.json_response({"error": "incidents are not complete, retry"}, status=503)
        if incident_id in faults.get("gone", {}):
            return web.json_response(faults["gone"][incident_id], status=404)
        found = [i for i in faults.get("incidents", incidents) if i["incident_id"] == incident_id]
        if not found:
            return web.json_response({"error": "unknown"}, status=404)
        return web.json_response(found[0])

    async def ready(request: web.Request) -> web.Response:
        await held()
        return web.json_response({"status": "ready"})

    app = web.Application()
    page_module.register(app, Settings())
    app.router.add_get("/api/v1/zones", zones_)
    app.router.add_get("/api/v1/tallies", tallies)
    app.router.add_get("/api/v1/alerts", alerts_)
    app.router.add_get("/api/v1/incidents", incident_list)
    app.router.add_get("/api/v1/incidents/{id}", one)
    app.router.add_get("/readyz", ready)
    return app


def test_a_theatre_wide_alert_shows_every_zone_with_its_incidents_marked(
    browser: WebDriver,
) -> None:
    """A theatre-wide rule's alert carries the zone label `theatre`: chosen, it set the
    incident list's zone filter to `theatre`, which the API refuses (400) at every refresh,
    and the list stayed empty. It shows every zone's incidents, its own marked."""
    from tests.api_server import serve_app

    now = datetime.now(UTC)
    alert = {
        "alert_id": "alert-theatre",
        "rule": "fatality-peak-theatre-1y",
        "severity": "high",
        "labels": {"zone": "theatre"},
        "summary": "Deaths in the whole theatre over 30 days at their highest in a year",
        "starts_at": (now - timedelta(hours=1)).isoformat(),
        "value": 6,
        "threshold": 5,
        "window": "30d",
        "incident_ids": ["inc-zone-b"],
    }
    asked: list[str] = []
    with serve_app(lambda url: stub_api([alert], asked)) as url:
        p = Page(browser, url)
        browser.get(f"{p.url}/")
        wait_for(lambda: p.refreshes() >= 1, timeout=30, what="the stand-in page's refresh")
        button = browser.find_element(
            By.CSS_SELECTOR, '#alerts li[data-alert-id="alert-theatre"] button'
        )
        assert "the whole theatre" in button.text, button.text
        button.click()
        p.wait_refreshed()
        status = browser.find_element(By.ID, "status").text
        assert status.startswith("Updated "), status
        assert asked and all("zone=" not in q for q in asked), asked
        assert sorted(p.listed_zones()) == ["zone-a", "zone-b"]
        marked = browser.find_elements(By.CSS_SELECTOR, "#incidents li.selected")
        assert [li.get_attribute("data-incident-id") for li in marked] == ["inc-zone-b"]
        text = browser.find_element(By.ID, "filter-text").text
        assert "the whole theatre" in text, text
        browser.find_element(By.ID, "filter-clear").click()
        p.wait_refreshed()
        assert browser.find_elements(By.CSS_SELECTOR, "#incidents li.selected") == []
        assert not browser.find_element(By.ID, "filter").is_displayed()


# -- figures never shown as another filter's, a worker that stops answering, the dialog ------
def open_stub(browser: WebDriver, url: str, query: str = "") -> Page:
    p = Page(browser, url)
    browser.get(f"{url}/{query}")
    wait_for(lambda: p.refreshes() >= 1, timeout=30, what="the stand-in page's refresh")
    return p


def zone_cells(driver: WebDriver) -> list[str]:
    return [c.text for c in driver.find_elements(By.CSS_SELECTOR, "#zone-rows td[data-field]")]


def test_a_new_window_or_zone_shows_no_figure_of_the_old_one_while_the_tallies_fail(
    browser: WebDriver,
) -> None:
    """Switched to 7 days while the tallies answered 503, the page showed the 24 hours'
    rows under "Incidents by zone in the last 7 days", "No incident in the last 7 days."
    and a CSV link to the 24 hours' span. Figures not known are said to be not known."""
    from tests.api_server import serve_app

    faults: dict[str, Any] = {}
    with serve_app(lambda url: stub_api([], [], faults)) as url:
        p = open_stub(browser, url)
        driver = p.driver
        assert set(zone_cells(driver)) == {"1", "3", "0"}  # the 24 hours' rows
        status = driver.find_element(By.ID, "status")
        faults["tallies_503"] = True
        Select(driver.find_element(By.ID, "window")).select_by_value("7d")
        wait_for(
            lambda: status.text.startswith(("Not all figures", "Not updated")) or None,
            timeout=10,
            what="the failed refresh of the 7 days",
        )

        def shows_nothing_known(where: str) -> None:
            assert set(zone_cells(driver)) == {"—"}, where  # not the 24 hours', not 0
            caption = driver.find_element(By.ID, "zones-caption").text
            assert caption.startswith("Incidents by zone in the last 7 days"), caption
            assert "loading" in caption, caption
            items = driver.find_elements(By.CSS_SELECTOR, "#incidents li")
            assert [li.text for li in items] == ["Loading…"], where  # not "No incident"
            note = driver.find_element(By.ID, "incidents-note")
            assert note.find_elements(By.TAG_NAME, "a") == [], note.text  # no CSV of 24 h
            assert driver.find_element(By.ID, "incidents").get_attribute("data-from") == ""
            for path in driver.find_elements(By.CSS_SELECTOR, "#map path[data-zone]"):
                label = str(path.get_attribute("aria-label"))
                assert "in the last 7 days" in label and "not known" in label, label
            assert driver.find_elements(By.CSS_SELECTOR, "#map path[data-incident-id]") == []

        shows_nothing_known("7 days chosen")
        # A zone chosen meanwhile: its list is not known either ("No incident in Zone B"
        # with the old span's CSV link).
        asked = faults.get("tallies_asked", 0)
        click_current(driver, '#zone-rows tr[data-zone="zone-b"] button')
        # the refresh the click started has ended once the next one asks
        wait_for(
            lambda: faults.get("tallies_asked", 0) >= asked + 2,
            timeout=10,
            what="a refresh after the click",
        )
        title = driver.find_element(By.ID, "incidents-title").text
        assert title == "Latest incidents in Zone B in the last 7 days", title
        shows_nothing_known("zone B chosen")
        # The tallies answer again: the 7 days' figures and zone B's incidents.
        faults["tallies_503"] = False
        wait_for(
            lambda: set(zone_cells(driver)) == {"7", "3", "0"} and p.listed_zones() == ["zone-b"],
            timeout=10,
            what="the 7 days' figures",
        )
        assert [e for e in p.errors() if "status of 503" not in e] == []


def test_a_worker_that_stops_answering_is_said_and_a_filter_change_still_works(
    browser: WebDriver,
) -> None:
    """Requests without a deadline and one refresh at a time: a worker that stopped
    answering left the page saying "Live" over frozen figures, and no click took effect."""
    from tests.api_server import serve_app

    faults: dict[str, Any] = {}
    with serve_app(lambda url: stub_api([], [], faults)) as url:
        try:
            p = open_stub(browser, url)
            driver = p.driver
            status = driver.find_element(By.ID, "status")
            live = driver.find_element(By.ID, "status-live")
            wait_for(lambda: status.text.startswith("Updated ") or None, timeout=10, what="live")
            faults["hang"] = True
            hung = time.monotonic()
            wait_for(
                lambda: status.text.startswith("Not updated since ") or None,
                timeout=12,  # two polls (6 s), and the page checks every second
                what="the page to say that its figures are not updated",
            )
            assert "error" in str(status.get_attribute("class"))
            said = str(live.get_attribute("textContent"))
            assert said.startswith("Not updated since "), said
            # every request has a deadline (10 s): the page says the worker did not answer
            wait_for(
                lambda: "did not answer within" in status.text or None,
                timeout=max(1.0, 16 - (time.monotonic() - hung)),
                what="the requests' deadline",
            )
            # The worker answers new requests again (those it held stay unanswered): a
            # zone chosen now is shown at once, not after the held refresh.
            faults["hang"] = False
            click_current(driver, '#zone-rows tr[data-zone="zone-b"] button')
            wait_for(
                lambda: p.listed_zones() == ["zone-b"],
                timeout=5,  # less than the requests' deadline
                what="the incidents of zone B",
            )
            wait_for(lambda: status.text.startswith("Updated ") or None, timeout=5, what="live")
            assert str(live.get_attribute("textContent")).startswith("Live · ")
        finally:
            faults["released"] = True


def test_a_zone_gone_from_the_catalogue_and_a_withdrawn_incident_are_said_plainly(
    browser: WebDriver,
) -> None:
    """Incidents the tallies count under a zone id the catalogue no longer has (a renamed
    id keeps its earlier incidents) were in the list's "of N" and nowhere in the table; a
    withdrawn incident's dialog ended with the word "null"."""
    from tests.api_server import serve_app

    old = {"zone": "old-zone", "incidents": 7, "reports": 9, "killed": 1, "wounded": 0}
    faults: dict[str, Any] = {
        "extra_rows": [old],
        "gone": {"inc-zone-a": {"error": "incident inc-zone-a is not open"}},
    }
    with serve_app(lambda url: stub_api([], [], faults)) as url:
        p = open_stub(browser, url)
        driver = p.driver
        rows = wait_for(
            lambda: (
                driver.find_elements(By.CSS_SELECTOR, '#zone-rows tr[data-zone="old-zone"]') or None
            ),
            timeout=10,
            what="the old zone's row",
        )
        assert rows[0].text.split() == ["old-zone", "7", "9", "1", "0"]
        click_current(driver, '#incidents li[data-incident-id="inc-zone-a"] button')
        body = driver.find_element(By.ID, "incident-body")
        wait_for(lambda: "no longer open" in body.text or None, timeout=5, what="the gone dialog")
        assert body.text == (
            "Incident inc-zone-a is no longer open: it was withdrawn, or merged into another "
            "incident."
        ), body.text
        # the 404 itself is the browser's one line; no script error
        assert [e for e in p.errors() if "Failed to load resource" not in e] == []


def test_the_incident_dialog_shows_only_the_incident_chosen(browser: WebDriver) -> None:
    """A slow answer for an incident closed meanwhile replaced the one opened after it, and
    a drill-down that failed kept the previous incident's title."""
    from tests.api_server import serve_app

    faults: dict[str, Any] = {"detail_delay": {}, "detail_503": set()}
    with serve_app(lambda url: stub_api([], [], faults)) as url:
        p = open_stub(browser, url)
        driver = p.driver
        dialog = driver.find_element(By.ID, "incident-dialog")
        title = driver.find_element(By.ID, "incident-title")

        def open_(incident_id: str) -> None:
            selector = f'#incidents li[data-incident-id="{incident_id}"] button'
            click_current(driver, selector)

        def close() -> None:
            driver.find_element(By.ID, "incident-close").click()
            wait_for(lambda: not dialog.is_displayed(), timeout=5, what="the dialog to close")

        answered = faults.setdefault("details_answered", [])
        before = answered.count("inc-zone-a")
        faults["detail_delay"]["inc-zone-a"] = 2.0
        open_("inc-zone-a")  # slow: closed before it answers
        close()
        open_("inc-zone-b")
        b = "small arms fire · Zone B"
        wait_for(lambda: title.text == b or None, timeout=5, what="incident B's title")
        wait_for(
            lambda: answered.count("inc-zone-a") > before,
            timeout=5,
            what="incident A's late answer",
        )
        time.sleep(0.5)  # for the page to handle it
        assert title.text == b
        body = driver.find_element(By.ID, "incident-body").text
        assert "inc-zone-b" in body and "inc-zone-a" not in body, body
        close()
        # A drill-down that fails keeps no title of another incident.
        faults["detail_delay"].clear()
        faults["detail_503"].add("inc-zone-a")
        open_("inc-zone-a")
        body_el = driver.find_element(By.ID, "incident-body")
        wait_for(lambda: "503" in body_el.text or None, timeout=5, what="the failure")
        assert title.text == "Incident", title.text
        close()

"""The live page (`GET /`) as it refreshes, in headless chromium over the API stand-in of
tests/test_page_browser.py (no worker): a chosen alert shows its own incidents, however
old, and says which are no longer open, asking for those once, not on every refresh; an
open incident follows its changes and says when it is no longer open (and then stops
asking); a refresh moves neither the scroll nor the focus, and closing the
dialog after one gives the focus back to the incident; a right-to-left place name leaves
the coordinates in order; one long unbroken name does not widen a phone's page; the view
is kept in the page's address.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select

from tests.api_server import serve_app
from tests.harness import wait_for
from tests.test_page_browser import (  # the module's browser fixture, one for this module
    Page,
    browser,  # noqa: F401
    click_current,
    open_stub,
    stub_api,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

#: A name in Persian script (Shusha), and a report's coordinates.
RTL_PLACE, LAT, LON = "شوشی", 39.7601, 46.7502


def incident(n: int, zone: str, hours_ago: float, **extra: Any) -> dict[str, Any]:
    """An open incident as the API gives it (the list's item and the detail alike)."""
    return {
        "incident_id": f"inc-{n}",
        "version": 1,
        "zone": zone,
        "severity": "high",
        "category": "small_arms_fire",
        "attribution": "az",
        "verification": "observed",
        "killed": 1,
        "wounded": 0,
        "reports": [{"source": "pkf-op-1", "report_id": f"r-{n}", "revision": 0}],
        "occurred_at": (datetime.now(UTC) - timedelta(hours=hours_ago)).isoformat(),
        "time_precision": "exact",
        **extra,
    }


def alert(alert_id: str, zone: str, incident_ids: list[str], **extra: Any) -> dict[str, Any]:
    return {
        "alert_id": alert_id,
        "rule": "incident-rate-zone-24h",
        "severity": "high",
        "labels": {"zone": zone},
        "summary": f"Incidents in {zone}",
        "starts_at": (datetime.now(UTC) - timedelta(hours=1)).isoformat(),
        "value": len(incident_ids),
        "threshold": 1,
        "window": "24h",
        "incident_ids": incident_ids,
        **extra,
    }


@pytest.fixture
def stub(browser: WebDriver) -> Iterator[tuple[dict[str, Any], list[dict[str, Any]]]]:  # noqa: F811
    """The stand-in's `faults` (its incidents, those gone) and its alerts, both changed by
    the test as it goes; the page is opened by `serve`."""
    faults: dict[str, Any] = {"incidents": [], "gone": {}}
    alerts: list[dict[str, Any]] = []
    yield faults, alerts
    browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def active_key(driver: WebDriver) -> str | None:
    """The focus key of the element that has the focus ("incident:ID", "alert:ID"), its id,
    or its tag."""
    return str(
        driver.execute_script(
            "const a = document.activeElement;"
            "return a.dataset.focusKey || (a.id ? '#' + a.id : a.tagName);"
        )
    )


def dialog_closed(driver: WebDriver) -> None:
    dialog = driver.find_element(By.ID, "incident-dialog")
    wait_for(lambda: not dialog.is_displayed(), timeout=5, what="the dialog to close")


def test_an_alert_shows_its_own_incidents_however_old(
    browser: WebDriver,  # noqa: F811
    stub: tuple[dict[str, Any], list[dict[str, Any]]],
) -> None:
    """Chosen, an alert filtered the list by its zone and marked those of its incidents
    among the newest 50: an older one, or one of another zone, could not be reached. Its
    incidents are under it, fetched by id; one merged since is said to be."""
    faults, alerts = stub
    faults["incidents"] += [
        incident(1, "zone-a", 1),
        incident(2, "zone-a", 2),
        incident(3, "zone-a", 30),  # older than the list's newest (limit=1)
    ]
    faults["gone"]["inc-9"] = {
        "error": "incident inc-9 is no longer open: it was merged into incident inc-2",
        "incident_id": "inc-9",
        "version": 2,
        "merged_into": "inc-2",
    }
    alerts.append(alert("alert-a", "zone-a", ["inc-3", "inc-9", "inc-1"]))
    with serve_app(lambda url: stub_api(alerts, [], faults)) as url:
        p = open_stub(browser, url, "?limit=1")
        click_current(browser, '#alerts li[data-alert-id="alert-a"] button')
        box = '#alerts li[data-alert-id="alert-a"] .alert-incidents'

        def shown() -> dict[str, str] | None:
            items = browser.find_elements(By.CSS_SELECTOR, f"{box} li[data-incident-id]")
            got = {str(li.get_attribute("data-incident-id")): li.text for li in items}
            return got if "no longer open" in got.get("inc-9", "") else None

        got = wait_for(shown, timeout=10, what="the alert's incidents under it")
        assert list(got) == ["inc-1", "inc-3", "inc-9"], got  # newest first, the gone last
        assert "inc-2" in got["inc-9"], got
        for n in (1, 3):
            item = browser.find_element(By.CSS_SELECTOR, f'{box} li[data-incident-id="inc-{n}"]')
            assert "selected" in str(item.get_attribute("class"))  # marked
            assert "small arms fire · Zone A" in item.text, item.text
        # the list: its newest one only, marked as the alert's
        assert p.listed_zones() == ["zone-a"]
        marked = browser.find_elements(By.CSS_SELECTOR, "#incidents li.selected")
        assert [li.get_attribute("data-incident-id") for li in marked] == ["inc-1"]
        status = browser.find_element(By.ID, "status").text
        assert status.startswith("Updated "), status
        # The old one opens from under the alert.
        click_current(browser, f'{box} li[data-incident-id="inc-3"] button')
        body = browser.find_element(By.ID, "incident-body")
        wait_for(lambda: "inc-3 (version 1)" in body.text or None, timeout=5, what="inc-3")
        browser.find_element(By.ID, "incident-close").click()
        dialog_closed(browser)
        assert active_key(browser) == "alert-incident:inc-3"
        assert [e for e in p.errors() if "status of 404" not in e] == []  # inc-9's


def asked_for(faults: dict[str, Any], incident_id: str) -> int:
    """How many times the stand-in answered the detail of `incident_id`."""
    return list(faults.get("details_answered", [])).count(incident_id)


def console_404s(p: Page, incident_id: str) -> int:
    """The 404s of `incident_id`'s detail that the browser's console logged."""
    p.errors()  # collects the console
    return sum(
        1
        for e in p.console
        if f"/api/v1/incidents/{incident_id} " in str(e["message"])
        and "status of 404" in str(e["message"])
    )


def test_a_gone_incident_of_an_alert_is_not_asked_for_on_every_refresh(
    browser: WebDriver,  # noqa: F811
    stub: tuple[dict[str, Any], list[dict[str, Any]]],
) -> None:
    """A chosen alert's incident merged into another (404) was asked for again on every
    refresh, every 3 s, each time a 404 in the browser's console. It is asked for once and
    said to be merged; again when the alert's incidents change (it may head an incident
    again by then)."""
    faults, alerts = stub
    faults["incidents"] += [incident(1, "zone-a", 1), incident(3, "zone-a", 30)]
    faults["gone"]["inc-9"] = {
        "error": "incident inc-9 is no longer open: it was merged into incident inc-1",
        "incident_id": "inc-9",
        "version": 2,
        "merged_into": "inc-1",
    }
    alerts.append(alert("alert-a", "zone-a", ["inc-3", "inc-9", "inc-1"]))
    with serve_app(lambda url: stub_api(alerts, [], faults)) as url:
        p = open_stub(browser, url, "?limit=1")
        click_current(browser, '#alerts li[data-alert-id="alert-a"] button')
        box = '#alerts li[data-alert-id="alert-a"] .alert-incidents'

        def item(incident_id: str) -> str:
            found = browser.find_elements(
                By.CSS_SELECTOR, f'{box} li[data-incident-id="{incident_id}"]'
            )
            return str(found[0].text) if found else ""

        wait_for(lambda: "no longer open" in item("inc-9") or None, timeout=10, what="inc-9")
        assert "merged into incident inc-1" in item("inc-9"), item("inc-9")
        assert browser.find_elements(By.CSS_SELECTOR, f'{box} li[data-incident-id="inc-9"] button')
        once, logged = asked_for(faults, "inc-9"), console_404s(p, "inc-9")
        assert once >= 1 and logged >= 1, (once, logged)
        p.wait_refreshed()
        p.wait_refreshed()  # four refreshes or more, 12 s
        assert asked_for(faults, "inc-9") == once, faults["details_answered"]
        assert console_404s(p, "inc-9") == logged, p.console
        assert "merged into incident inc-1" in item("inc-9")  # still said
        # The alert's incidents change, and inc-9 heads an incident again: asked, and shown.
        del faults["gone"]["inc-9"]
        faults["incidents"].append(incident(9, "zone-a", 40))
        alerts[0] = alert("alert-a", "zone-a", ["inc-3", "inc-9", "inc-1", "inc-4"])
        wait_for(
            lambda: "small arms fire · Zone A" in item("inc-9") or None,
            timeout=10,
            what="inc-9 open again under the alert",
        )
        assert asked_for(faults, "inc-9") > once
        assert console_404s(p, "inc-9") == logged, p.console
        assert [e for e in p.errors() if "status of 404" not in e] == []  # inc-4's


def test_the_open_incident_follows_its_changes_until_it_is_no_longer_open(
    browser: WebDriver,  # noqa: F811
    stub: tuple[dict[str, Any], list[dict[str, Any]]],
) -> None:
    """The dialog was filled once: a revised report, a new one, a new version or the
    incident's withdrawal never reached it."""
    faults, alerts = stub
    faults["incidents"] += [incident(1, "zone-a", 1), incident(2, "zone-b", 2)]
    with serve_app(lambda url: stub_api(alerts, [], faults)) as url:
        p = open_stub(browser, url)
        click_current(browser, '#incidents li[data-incident-id="inc-1"] button')
        body = browser.find_element(By.ID, "incident-body")
        title = browser.find_element(By.ID, "incident-title")
        wait_for(lambda: "inc-1 (version 1)" in body.text or None, timeout=5, what="version 1")

        def facts() -> dict[str, str]:
            return {
                str(dt.text): str(dt.find_element(By.XPATH, "following-sibling::dd[1]").text)
                for dt in body.find_elements(By.CSS_SELECTOR, "dl.facts dt")
            }

        def reports() -> list[str]:
            rows = body.find_elements(By.CSS_SELECTOR, "tr[data-report-id]")
            return [f"{r.get_attribute('data-report-id')}/{r.text.split()[2]}" for r in rows]

        assert facts()["Killed"] == "1" and reports() == ["r-1/0"], body.text
        revised = incident(
            1,
            "zone-a",
            1,
            version=2,
            killed=4,
            attribution="am",
            reports=[
                {"source": "pkf-op-1", "report_id": "r-1", "revision": 1},
                {"source": "pkf-op-2", "report_id": "r-1b", "revision": 0},
            ],
        )
        faults["incidents"][0] = revised
        wait_for(
            lambda: "inc-1 (version 2)" in body.text or None,
            timeout=10,
            what="the new version in the open dialog",
        )
        assert facts()["Killed"] == "4" and facts()["Attribution"] == "am", body.text
        assert reports() == ["r-1/1", "r-1b/0"], body.text
        # Withdrawn: said, and none of its last figures left as if current.
        faults["incidents"].pop(0)
        faults["gone"]["inc-1"] = {
            "error": "incident inc-1 is no longer open: it was merged into another incident "
            "or withdrawn (its last version is 3)",
            "incident_id": "inc-1",
            "version": 3,
        }
        wait_for(lambda: "no longer open" in body.text or None, timeout=10, what="the withdrawal")
        assert body.find_elements(By.CSS_SELECTOR, "dl.facts, tr[data-report-id]") == []
        assert title.text == "Incident no longer open", title.text
        # Said once: not asked for again on every refresh (a 404 in the console each time).
        gone, logged = asked_for(faults, "inc-1"), console_404s(p, "inc-1")
        assert logged >= 1, p.console
        p.wait_refreshed()
        p.wait_refreshed()
        assert asked_for(faults, "inc-1") == gone, faults["details_answered"]
        assert console_404s(p, "inc-1") == logged, p.console
        assert title.text == "Incident no longer open", title.text
        assert browser.find_element(By.ID, "incident-dialog").is_displayed()
        browser.find_element(By.ID, "incident-close").click()
        dialog_closed(browser)
        assert [e for e in p.errors() if "status of 404" not in e] == []


def test_a_refresh_neither_scrolls_nor_moves_the_focus(
    browser: WebDriver,  # noqa: F811
    stub: tuple[dict[str, Any], list[dict[str, Any]]],
) -> None:
    """The lists are rebuilt on every refresh and the focused item focused again: the page
    scrolled back to the alert chosen, or the incident clicked, every 3 seconds."""
    faults, alerts = stub
    faults["incidents"] += [incident(n, f"zone-{'ab'[n % 2]}", n) for n in range(1, 16)]
    alerts += [alert(f"alert-{n}", "zone-a", ["inc-2"]) for n in range(1, 6)]
    # a short window: the alerts and most incidents are below the fold
    metrics = {"width": 1280, "height": 420, "deviceScaleFactor": 1, "mobile": False}
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
    with serve_app(lambda url: stub_api(alerts, [], faults)) as url:
        p = open_stub(browser, url)

        def stays_put(key: str) -> None:
            browser.execute_script("window.scrollTo(0, 0)")
            p.wait_refreshed()
            assert browser.execute_script("return window.scrollY") == 0, key
            assert active_key(browser) == key  # the same one, rebuilt: still focused

        button = browser.find_element(By.CSS_SELECTOR, '#alerts li[data-alert-id="alert-4"] button')
        browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", button)
        button.click()  # a click focuses the button
        p.wait_refreshed()
        stays_put("alert:alert-4")
        click_current(browser, "#filter-clear")
        p.wait_refreshed()
        selector = '#incidents li[data-incident-id="inc-14"] button'
        button = browser.find_element(By.CSS_SELECTOR, selector)
        browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", button)
        click_current(browser, selector)
        browser.find_element(By.ID, "incident-close").click()
        dialog_closed(browser)
        stays_put("incident:inc-14")
        # Focus elsewhere is not taken by a refresh.
        browser.execute_script("document.getElementById('window').focus()")
        stays_put("#window")
        assert p.errors() == []


def test_closing_the_dialog_after_a_refresh_gives_the_focus_back_to_the_incident(
    browser: WebDriver,  # noqa: F811
    stub: tuple[dict[str, Any], list[dict[str, Any]]],
) -> None:
    """The button that opened the dialog was detached by the refresh that rebuilt its list
    meanwhile: closing it left the keyboard focus nowhere (on the body)."""
    faults, alerts = stub
    faults["incidents"] += [incident(1, "zone-a", 1), incident(2, "zone-b", 2)]
    with serve_app(lambda url: stub_api(alerts, [], faults)) as url:
        p = open_stub(browser, url)
        button = browser.find_element(
            By.CSS_SELECTOR, '#incidents li[data-incident-id="inc-2"] button'
        )
        button.send_keys(Keys.NULL)  # focus it
        button.send_keys(Keys.ENTER)
        body = browser.find_element(By.ID, "incident-body")
        wait_for(lambda: "inc-2 (version 1)" in body.text or None, timeout=5, what="inc-2")
        p.wait_refreshed()  # the list rebuilt: the opener is gone
        ActionChains(browser).send_keys(Keys.ESCAPE).perform()
        dialog_closed(browser)
        assert active_key(browser) == "incident:inc-2"
        assert p.errors() == []


def test_a_right_to_left_place_name_leaves_the_coordinates_in_order(
    browser: WebDriver,  # noqa: F811
    stub: tuple[dict[str, Any], list[dict[str, Any]]],
) -> None:
    """ "شوشی · 39.7601, 46.7502 (point)" showed as "46.7502 ,39.7601 · شوشی": the
    latitude read as the longitude."""
    faults, alerts = stub
    report = {
        "source": "media-ir",
        "report_id": "h-rtl",
        "revision": 0,
        "place": RTL_PLACE,
        "lat": LAT,
        "lon": LON,
        "location_precision": "point",
        "perpetrator": "unknown",
        "perpetrator_raw": "گروه ۲",
    }
    faults["incidents"].append(incident(1, "zone-a", 1, reports=[report]))
    with serve_app(lambda url: stub_api(alerts, [], faults)) as url:
        p = open_stub(browser, url)
        click_current(browser, '#incidents li[data-incident-id="inc-1"] button')
        cell = wait_for(
            lambda: (
                browser.find_elements(
                    By.CSS_SELECTOR, 'tr[data-report-id="h-rtl"] td[data-field="place"]'
                )
                or None
            ),
            timeout=5,
            what="the report's place",
        )[0]
        # Where each part is drawn on one line (no wrapping, only for the measure).
        left = browser.execute_script(
            "const td = arguments[0]; td.style.whiteSpace = 'nowrap';"
            "const at = {};"
            "const walk = document.createTreeWalker(td, NodeFilter.SHOW_TEXT);"
            "for (let t = walk.nextNode(); t; t = walk.nextNode()) {"
            "  for (const part of arguments[1]) {"
            "    const i = t.data.indexOf(part); if (i < 0) continue;"
            "    const r = document.createRange(); r.setStart(t, i); r.setEnd(t, i + part.length);"
            "    at[part] = r.getBoundingClientRect().left; } }"
            "return at;",
            cell,
            [RTL_PLACE, f"{LAT:.4f}", f"{LON:.4f}", "(point)"],
        )
        assert len(left) == 4, left
        assert left[RTL_PLACE] < left[f"{LAT:.4f}"] < left[f"{LON:.4f}"] < left["(point)"], left
        browser.find_element(By.ID, "incident-close").click()
        dialog_closed(browser)
        assert p.errors() == []


def test_one_long_unbroken_name_does_not_widen_a_phone_s_page(
    browser: WebDriver,  # noqa: F811
    stub: tuple[dict[str, Any], list[dict[str, Any]]],
) -> None:
    """A 128-character place name in an alert's summary made a phone's page 1,204 pixels
    wide; a long perpetrator's name widened the dialog's facts."""
    faults, alerts = stub
    long = "P" * 128
    faults["incidents"].append(incident(1, "zone-a", 1, perpetrator_raw=long))
    alerts.append(alert("alert-a", "zone-a", ["inc-1"], summary=f"Incidents at {long} peaked"))
    browser.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": 360, "height": 740, "deviceScaleFactor": 1, "mobile": True},
    )
    with serve_app(lambda url: stub_api(alerts, [], faults)) as url:
        p = open_stub(browser, url)

        def overflow(selector: str) -> int:
            return int(
                browser.execute_script(
                    "const e = document.querySelector(arguments[0]);"
                    "return e.scrollWidth - e.clientWidth;",
                    selector,
                )
            )

        width = browser.execute_script("return document.documentElement.scrollWidth")
        assert width <= 360, f"the page is {width} pixels wide"
        assert long in str(browser.find_element(By.ID, "alerts").get_attribute("textContent"))
        assert overflow("html") <= 0, "the page scrolls sideways"
        click_current(browser, '#alerts li[data-alert-id="alert-a"] button')  # its incidents
        wait_for(
            lambda: browser.find_elements(By.CSS_SELECTOR, ".alert-incidents li") or None,
            timeout=10,
            what="the alert's incidents",
        )
        assert overflow("html") <= 0, "the page scrolls sideways with the alert's incidents"
        click_current(browser, '#incidents li[data-incident-id="inc-1"] button')
        body = browser.find_element(By.ID, "incident-body")
        wait_for(lambda: long in body.text.replace("\n", "") or None, timeout=5, what="facts")
        assert overflow("#incident-body dl.facts") <= 0, "the facts are wider than the dialog"
        assert overflow("#incident-dialog") <= 0, "the dialog scrolls sideways"
        assert overflow("html") <= 0
        browser.find_element(By.ID, "incident-close").click()
        dialog_closed(browser)
        assert p.errors() == []


def test_the_view_is_kept_in_the_address(
    browser: WebDriver,  # noqa: F811
    stub: tuple[dict[str, Any], list[dict[str, Any]]],
) -> None:
    """A reload showed the last 24 hours of every zone again, with no incident open, and a
    view could not be shared."""
    faults, alerts = stub
    faults["incidents"] += [incident(1, "zone-a", 1), incident(2, "zone-b", 2)]
    with serve_app(lambda url: stub_api(alerts, [], faults)) as url:
        p = open_stub(browser, url, "?limit=5")
        Select(browser.find_element(By.ID, "window")).select_by_value("7d")
        click_current(browser, '#zone-rows tr[data-zone="zone-b"] button')
        wait_for(lambda: p.listed_zones() == ["zone-b"], timeout=10, what="zone B's incidents")
        click_current(browser, '#incidents li[data-incident-id="inc-2"] button')
        title = browser.find_element(By.ID, "incident-title")
        wait_for(lambda: title.text == "small arms fire · Zone B" or None, timeout=10, what="B")
        query = browser.current_url.split("?", 1)[1]
        assert sorted(query.split("&")) == ["incident=inc-2", "limit=5", "window=7d", "zone=zone-b"]
        browser.refresh()
        wait_for(lambda: p.refreshes() >= 1, timeout=30, what="the reloaded page's refresh")
        assert (
            Select(browser.find_element(By.ID, "window")).first_selected_option.get_attribute(
                "value"
            )
            == "7d"
        )
        heading = browser.find_element(By.ID, "incidents-title").text
        assert heading == "Latest incidents in Zone B in the last 7 days", heading
        assert p.listed_zones() == ["zone-b"]
        title = browser.find_element(By.ID, "incident-title")
        wait_for(lambda: title.text == "small arms fire · Zone B" or None, timeout=10, what="B")
        browser.find_element(By.ID, "incident-close").click()
        dialog_closed(browser)
        assert "incident=" not in browser.current_url, browser.current_url
        click_current(browser, "#filter-clear")
        wait_for(lambda: "zone=" not in browser.current_url or None, timeout=5, what="no zone")
        assert browser.current_url.endswith("?limit=5&window=7d"), browser.current_url
        assert p.errors() == []

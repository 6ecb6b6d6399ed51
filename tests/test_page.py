"""The live page's Python side, without a broker: routes, static files and their types, the
settings rendered into the page, the vendored Leaflet and its packaging, and the zone info
metric. The page in a real browser is tests/test_page_browser.py."""

from __future__ import annotations

import fnmatch
import json
import re
import tomllib
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from streams import metrics
from streams.classify.zones import ZoneCatalogue
from streams.config import Settings
from streams.tallies import windows
from streams.tallies.windows import WINDOWS
from streams.web import page, zone_info

pytestmark = pytest.mark.timeout(30)

ROOT = Path(__file__).resolve().parents[1]
STATIC = ROOT / "streams" / "web" / "static"
LEAFLET = STATIC / "vendor" / "leaflet"


async def client_for(settings: Settings) -> TestClient[web.Request, web.Application]:
    app = web.Application()
    page.register(app, settings)
    client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    return client


@pytest.fixture
async def client() -> AsyncIterator[TestClient[web.Request, web.Application]]:
    c = await client_for(Settings())
    try:
        yield c
    finally:
        await c.close()


async def test_root_serves_the_page(client: TestClient[web.Request, web.Application]) -> None:
    resp = await client.get("/")
    assert resp.status == 200
    assert resp.content_type == "text/html"
    assert resp.charset == "utf-8"
    body = await resp.text()
    assert '<div id="map"' in body and '<tbody id="zone-rows">' in body
    assert "{{" not in body  # every mark filled in
    csp = resp.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp
    assert "img-src 'self' data:;" in csp  # no tiles configured: nothing from elsewhere
    assert resp.headers["Cache-Control"] == "no-cache"
    head = await client.head("/")
    assert head.status == 200


@pytest.mark.parametrize(
    ("path", "types"),
    [
        ("/static/app.js", {"text/javascript", "application/javascript"}),
        ("/static/page.css", {"text/css"}),
        ("/static/vendor/leaflet/leaflet.js", {"text/javascript", "application/javascript"}),
        ("/static/vendor/leaflet/leaflet.css", {"text/css"}),
        ("/static/vendor/leaflet/images/layers.png", {"image/png"}),
    ],
)
async def test_static_files_with_their_types(
    client: TestClient[web.Request, web.Application], path: str, types: set[str]
) -> None:
    resp = await client.get(path)
    assert resp.status == 200, path
    assert resp.content_type in types
    assert await resp.read() == (STATIC / path.removeprefix("/static/")).read_bytes()


@pytest.mark.parametrize(
    "path", ["/static/../page.py", "/static/%2e%2e/page.py", "/static/nope.js", "/static/"]
)
async def test_nothing_else_is_served_from_static(
    client: TestClient[web.Request, web.Application], path: str
) -> None:
    resp = await client.get(path)
    assert resp.status in (403, 404), path
    assert b"render_index" not in await resp.read()


@pytest.mark.parametrize(
    "path",
    [
        "/static/index.html",
        "/static/%69ndex.html",
        "/static//index.html",
        "/static/./index.html",
        "/static/vendor/../index.html",
        "/static/../templates/index.html",
    ],
)
async def test_the_page_s_template_is_not_a_static_file(
    client: TestClient[web.Request, web.Application], path: str
) -> None:
    """A review: /static/index.html served the page without the headers of `/` (its content
    security policy and `frame-ancestors 'none'`): the page could be framed there."""
    resp = await client.get(path)
    assert resp.status in (403, 404), path
    assert b'<div id="map"' not in await resp.read()


@pytest.mark.parametrize(
    "path",
    ["/static/app.js", "/static/page.css", "/static/vendor/leaflet/images/layers.png"],
)
async def test_static_files_are_not_sniffed(
    client: TestClient[web.Request, web.Application], path: str
) -> None:
    for resp in (await client.get(path), await client.head(path)):
        assert resp.status == 200, path
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert (await client.get("/")).headers["X-Content-Type-Options"] == "nosniff"


def test_the_page_s_template_is_package_data() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["streams.web"]
    assert page.INDEX.is_file() and page.INDEX.parent != page.STATIC
    template = page.INDEX.relative_to(STATIC.parent).as_posix()
    assert any(fnmatch.fnmatch(template, pat) for pat in patterns)


async def test_every_resource_the_page_names_is_served(
    client: TestClient[web.Request, web.Application],
) -> None:
    """No CDN: every script and stylesheet is a local /static/ file that answers 200."""
    html = (await (await client.get("/")).text()).replace("\n", " ")
    refs = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert refs, html
    for ref in refs:
        if ref.startswith("#") or ref.startswith("data:"):
            continue
        assert ref.startswith("/static/"), ref
        assert (await client.get(ref)).status == 200, ref


async def test_tile_setting_reaches_the_page_escaped() -> None:
    tiles = 'https://tiles.example.org/{z}/{x}/{y}.png?k="><script>'
    client = await client_for(Settings(map_tiles=tiles, map_tiles_attribution="© <b>OSM</b>"))
    try:
        resp = await client.get("/")
        body = await resp.text()
    finally:
        await client.close()
    assert '<script>"' not in body and '"><script>' not in body
    assert 'content="https://tiles.example.org/{z}/{x}/{y}.png?k=&quot;&gt;&lt;script&gt;"' in body
    assert 'content="© &lt;b&gt;OSM&lt;/b&gt;"' in body
    assert "img-src 'self' data: https: http:" in resp.headers["Content-Security-Policy"]


def test_tile_setting_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CEASEFIRE_MAP_TILES", "https://t.example/{z}/{x}/{y}.png")
    assert Settings().map_tiles == "https://t.example/{z}/{x}/{y}.png"
    assert Settings(map_tiles=None).map_tiles is None


def test_windows_offered_are_those_the_tallies_accept(monkeypatch: pytest.MonkeyPatch) -> None:
    offered = page.tally_windows()
    assert offered[: len(WINDOWS)] == list(WINDOWS)
    assert offered == list(getattr(windows, "TALLY_WINDOWS", WINDOWS))
    body = page.render_index(Settings()).decode()
    assert f'name="ceasefire-windows" content="{" ".join(offered)}"' in body
    # Once the tallies answer `window=all`, the page offers it; without, it does not.
    monkeypatch.setattr(windows, "TALLY_WINDOWS", (*WINDOWS, "all"), raising=False)
    assert page.tally_windows() == [*WINDOWS, "all"]
    assert 'content="1h 24h 7d 30d all"' in page.render_index(Settings()).decode()
    monkeypatch.delattr(windows, "TALLY_WINDOWS")
    assert page.tally_windows() == list(WINDOWS)


def test_ceasefire_start_and_theatre_offset_reach_the_page() -> None:
    """The page asks the list for what `window=all` counts (from the ceasefire start) and
    shows a time known only to the day as the theatre's day (the linking rule's UTC
    offset; none when days are windows: the page then says UTC)."""
    body = page.render_index(Settings()).decode()
    assert 'name="ceasefire-start" content="2020-11-10T00:00:00+03:00"' in body
    assert 'name="ceasefire-day-utc-offset-hours" content="4"' in body
    start = datetime(2021, 1, 1, tzinfo=timezone(timedelta(hours=-5, minutes=-30)))
    body = page.render_index(
        Settings(ceasefire_start=start, link_day_utc_offset_hours=5.5)
    ).decode()
    assert 'name="ceasefire-start" content="2021-01-01T00:00:00-05:30"' in body
    assert 'name="ceasefire-day-utc-offset-hours" content="5.5"' in body
    body = page.render_index(Settings(link_day_as_window=True)).decode()
    assert 'name="ceasefire-day-utc-offset-hours" content=""' in body
    assert "{{" not in body


def test_the_script_writes_api_values_as_text_only() -> None:
    """Zone names and report fields come from outside: never parsed as markup."""
    script = (STATIC / "app.js").read_text(encoding="utf-8")
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in script, sink


#: The severities the page shows as badges (`badge sev-<severity>`), as app.js ranks them.
SEVERITIES = ("critical", "high", "medium", "low")


def css_declarations(css: str) -> dict[str, dict[str, str]]:
    """Each selector of a style sheet (rules inside @media too) and its declarations, later
    rules over earlier ones."""
    css = re.sub(r"/\*.*?\*/", "", css, flags=re.S)
    found: dict[str, dict[str, str]] = {}
    for selectors, body in re.findall(r"([^{}]+)\{([^{}]*)\}", css):
        pairs = (d.partition(":") for d in body.split(";") if ":" in d)
        declarations = {name.strip(): value.strip() for name, _, value in pairs}
        for selector in selectors.split(","):
            found.setdefault(" ".join(selector.split()), {}).update(declarations)
    return found


def relative_luminance(colour: str) -> float:
    """WCAG 2's relative luminance of a #rgb or #rrggbb colour."""
    assert re.fullmatch(r"#([0-9a-fA-F]{3}){1,2}", colour), colour
    digits = colour[1:] if len(colour) == 7 else "".join(c * 2 for c in colour[1:])
    r, g, b = (int(digits[i : i + 2], 16) / 255 for i in (0, 2, 4))

    def linear(c: float) -> float:
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    return 0.2126 * linear(r) + 0.7152 * linear(g) + 0.0722 * linear(b)


def contrast_ratio(a: str, b: str) -> float:
    light, dark = sorted((relative_luminance(a), relative_luminance(b)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def test_contrast_ratio_as_wcag_defines_it() -> None:
    assert contrast_ratio("#000000", "#ffffff") == pytest.approx(21)
    assert contrast_ratio("#fff", "#fff") == pytest.approx(1)
    assert contrast_ratio("#ffffff", "#e6820e") == pytest.approx(2.78, abs=0.01)


def test_every_severity_badge_is_readable() -> None:
    """White on the medium orange was 2.78:1: WCAG AA asks 4.5:1 of text this small."""
    rules = css_declarations((STATIC / "page.css").read_text(encoding="utf-8"))
    variables = rules[":root"]
    script = (STATIC / "app.js").read_text(encoding="utf-8")
    assert re.search(r"SEVERITY_RANK = \{ critical: 0, high: 1, medium: 2, low: 3 \}", script)

    def resolve(value: str) -> str:
        while (m := re.fullmatch(r"var\((--[\w-]+)\)", value)) is not None:
            value = variables[m[1]]
        return value

    for severity in SEVERITIES:
        # a badge is `<span class="badge sev-{severity}">`: these rules, least specific first
        style: dict[str, str] = {}
        for selector in (".sev-" + severity, ".badge", f".badge.sev-{severity}"):
            style.update(rules.get(selector, {}))
        text = resolve(style["color"])
        background = resolve(style.get("background-color") or style["background"])
        ratio = contrast_ratio(text, background)
        assert ratio >= 4.5, f"{severity}: {text} on {background} is {ratio:.2f}:1"


# -- the vendored library and its packaging ----------------------------------------------
def test_leaflet_is_pinned_vendored_and_licensed() -> None:
    package = json.loads((ROOT / "web" / "package.json").read_text())
    pinned = package["dependencies"]["leaflet"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", pinned), "an exact version, not a range"
    lock = json.loads((ROOT / "web" / "package-lock.json").read_text())
    assert lock["packages"]["node_modules/leaflet"]["version"] == pinned
    assert (LEAFLET / "VERSION").read_text().strip() == pinned
    assert f"Leaflet {pinned}" in (LEAFLET / "leaflet.js").read_text()[:200]
    assert "Copyright" in (LEAFLET / "LICENSE").read_text()


def test_every_static_file_is_package_data() -> None:
    """`pip install .` ships every file under static/ (pyproject.toml package-data)."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["streams.web"]
    files = [p.relative_to(STATIC.parent).as_posix() for p in STATIC.rglob("*") if p.is_file()]
    assert len(files) >= 8
    # setuptools' globs: `*` stays within one folder
    unmatched = [
        f
        for f in files
        if not any(fnmatch.fnmatch(f, pat) and f.count("/") == pat.count("/") for pat in patterns)
    ]
    assert unmatched == []
    assert "static/vendor/leaflet/LICENSE" in files


# -- the zone info metric -------------------------------------------------------------------
def test_zone_info_has_one_series_per_zone_at_its_centroid() -> None:
    catalogue = ZoneCatalogue.load()
    zone_info.publish(catalogue)
    text = generate_latest(metrics.REGISTRY).decode()
    family = next(
        f for f in text_string_to_metric_families(text) if f.name == "ceasefire_zone_info"
    )
    series = {s.labels["zone"]: s for s in family.samples}
    assert set(series) == {z.id for z in catalogue.zones}
    for zone in catalogue.zones:
        s = series[zone.id]
        assert s.value == 1 and s.labels["name"] == zone.name
        lat, lon = float(s.labels["lat"]), float(s.labels["lon"])
        w, south, e, n = zone.bbox
        assert south <= lat <= n and w <= lon <= e, zone.id
    # Publishing another catalogue leaves no series of the first behind.
    zone_info.publish(ZoneCatalogue(list(catalogue.zones[:1]), {}))
    again = generate_latest(metrics.REGISTRY).decode()
    assert again.count("ceasefire_zone_info{") == 1
    zone_info.publish(catalogue)


def test_centroid_of_a_square_and_of_two(tmp_path: Path) -> None:
    square = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "properties": {"id": "sq"},
                "geometry": {
                    "type": "Polygon",
                    "coordinates": [[[46, 39], [47, 39], [47, 40], [46, 40], [46, 39]]],
                },
            },
            {
                "type": "Feature",
                "properties": {"id": "two"},
                "geometry": {
                    "type": "MultiPolygon",
                    "coordinates": [
                        [[[0, 0], [0, 1], [1, 1], [1, 0], [0, 0]]],  # clockwise
                        [[[2, 0], [3, 0], [3, 1], [2, 1], [2, 0]]],
                    ],
                },
            },
        ],
    }
    path = tmp_path / "zones.geojson"
    path.write_text(json.dumps(square))
    zones = {z.id: z for z in ZoneCatalogue.load(path).zones}
    assert zone_info.centroid(zones["sq"]) == pytest.approx((39.5, 46.5))
    assert zone_info.centroid(zones["two"]) == pytest.approx((0.5, 1.5))

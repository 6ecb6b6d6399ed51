"""The live page for people (`GET /`) and its static files (`GET /static/...`).

The page is plain HTML, CSS and JavaScript shipped in this package (its HTML template in
streams/web/templates/, its other files in streams/web/static/):
it reads the public GET endpoints (zones, tallies, alerts, incidents) and polls them, so
the server renders nothing but a few settings into the HTML (the windows, the ceasefire
start, the theatre's UTC offset and the optional base map). Leaflet is
vendored from npm under static/vendor/ (web/package.json pins it; `cd web && npm ci &&
npm run vendor` refreshes it), so the page needs no CDN and no build step.
"""

from __future__ import annotations

import html
from pathlib import Path

from aiohttp import web

from streams.config import Settings
from streams.tallies import windows

#: The page's files, installed as package data (pyproject.toml). The page's template is
#: kept out of the static files: served as one (`/static/index.html`), it came without
#: the headers of `/` (its content security policy, `frame-ancestors`).
STATIC = Path(__file__).resolve().parent / "static"
INDEX = Path(__file__).resolve().parent / "templates" / "index.html"
#: On every answer under /static/ too: a browser takes a file for what it is said to be.
STATIC_HEADERS = {"X-Content-Type-Options": "nosniff"}
#: Marks in index.html that `render_index` fills in.
_TILES = "{{map_tiles}}"
_TILES_ATTRIBUTION = "{{map_tiles_attribution}}"
_WINDOWS = "{{windows}}"
_CEASEFIRE_START = "{{ceasefire_start}}"
_DAY_OFFSET = "{{day_utc_offset_hours}}"


def tally_windows() -> list[str]:
    """The windows the page offers: those `GET /api/v1/tallies` accepts, in order. That is
    `TALLY_WINDOWS` (the rolling windows and `all`, since the ceasefire) where the tallies
    define it, else the rolling windows alone."""
    accepted: tuple[str, ...] = getattr(windows, "TALLY_WINDOWS", None) or tuple(windows.WINDOWS)
    return list(accepted)


def day_utc_offset(settings: Settings) -> str:
    """The theatre's UTC offset in hours as the page reads it: the linking rule's
    `day_utc_offset_hours` (a time known to the day stands for that calendar day there),
    or empty when the rule has none (`CEASEFIRE_LINK_DAY_AS_WINDOW`): days are then UTC's."""
    hours = settings.link_rule().day_utc_offset_hours
    return "" if hours is None else format(hours, "g")


def render_index(settings: Settings) -> bytes:
    """index.html with the settings in its meta tags, escaped for an attribute: the windows,
    the ceasefire start (what `window=all` counts from), the theatre's UTC offset (the day of
    a time known only to the day, week or month) and the base map."""
    text = INDEX.read_text(encoding="utf-8")
    text = text.replace(_WINDOWS, html.escape(" ".join(tally_windows()), quote=True))
    start = settings.ceasefire_start.isoformat()
    text = text.replace(_CEASEFIRE_START, html.escape(start, quote=True))
    text = text.replace(_DAY_OFFSET, html.escape(day_utc_offset(settings), quote=True))
    text = text.replace(_TILES, html.escape(settings.map_tiles or "", quote=True))
    text = text.replace(_TILES_ATTRIBUTION, html.escape(settings.map_tiles_attribution, quote=True))
    return text.encode("utf-8")


def content_security_policy(settings: Settings) -> str:
    """Everything from this worker, except tile images when a base map is configured:
    data injected into the page by a report (a zone name, a description) cannot load or
    run anything."""
    images = "'self' data:" + (" https: http:" if settings.map_tiles else "")
    return "; ".join(
        (
            "default-src 'self'",
            "script-src 'self'",
            "connect-src 'self'",
            f"img-src {images}",
            # Leaflet positions its panes with style attributes.
            "style-src 'self' 'unsafe-inline'",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        )
    )


def register(app: web.Application, settings: Settings) -> None:
    """Add `GET /` and `GET /static/...` to the API's application."""
    body = render_index(settings)  # once: the settings do not change while a worker runs
    headers = {
        "Content-Security-Policy": content_security_policy(settings),
        "Cache-Control": "no-cache",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
    }

    async def index(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="text/html", charset="utf-8", headers=headers)

    async def static_headers(request: web.Request, response: web.StreamResponse) -> None:
        if request.path.startswith("/static/"):
            response.headers.update(STATIC_HEADERS)

    app.router.add_get("/", index)
    app.router.add_static("/static/", STATIC, name="static")
    app.on_response_prepare.append(static_headers)

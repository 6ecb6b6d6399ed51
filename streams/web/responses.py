"""What the API's handlers answer with: JSON and CSV responses, the JSON error and the
401 challenge, and the middleware that makes every error under the API's paths JSON, also
those aiohttp answers itself (no route, wrong method, a handler's crash)."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Mapping
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

log = logging.getLogger(__name__)

#: Paths whose every error is JSON; the live page and its static files keep aiohttp's own.
JSON_PATHS = ("/api/", "/healthz", "/readyz")


#: On an answer whose form (JSON or CSV) the Accept header chose: a cache keeps one per form.
NEGOTIATED = {"Vary": "Accept"}
JSON_TYPE = "application/json; charset=utf-8"
CSV_TYPE = "text/csv; charset=utf-8; header=present"


def csv_bytes_response(
    body: bytes, filename: str, headers: dict[str, str] | None = None
) -> web.Response:
    """A CSV download (RFC 4180 with a header line), its text encoded (UTF-8)."""
    return web.Response(
        body=body,
        headers={
            **(headers or {}),
            "Content-Type": CSV_TYPE,
            "Content-Disposition": f'attachment; filename="{filename}"',
        },
    )


def json_bytes(doc: Any) -> bytes:
    """A document as `web.json_response` writes it (`json.dumps`' defaults), encoded."""
    return json.dumps(doc).encode()


async def json_off_loop(doc: Any, headers: Mapping[str, str] | None = None) -> web.Response:
    """`web.json_response(doc)`, its serialisation on a thread: a large answer's (a series
    of 10,000 buckets is about 2 MB) took the event loop the stages and health checks share.
    `doc` is plain data built for this answer alone (nothing the state holds), so nothing
    changes it meanwhile."""
    body = await asyncio.to_thread(json_bytes, doc)
    return web.Response(body=body, headers={**(headers or {}), "Content-Type": JSON_TYPE})


def error(status: int, message: str, **extra: Any) -> web.Response:
    return web.json_response({"error": message, **extra}, status=status)


def with_headers(response: web.Response, headers: Mapping[str, str]) -> web.Response:
    response.headers.update(headers)
    return response


def unauthorized(header: str | None, *, scoped: bool = False) -> web.Response:
    """401 with the challenge of RFC 6750: `error="invalid_token"` when a bearer token was
    sent but is not the one configured, a bare `Bearer` when none was sent. `scoped`: the
    tokens of CEASEFIRE_API_TOKENS_FILE are taken too."""
    scheme, _, credentials = (header or "").strip().partition(" ")
    which = "CEASEFIRE_API_TOKEN, or one of CEASEFIRE_API_TOKENS_FILE" if scoped else ""
    which = which or "CEASEFIRE_API_TOKEN"
    how = f"send the token this worker is configured with ({which}) as "
    how += "Authorization: Bearer <token>"
    if scheme.lower() == "bearer" and credentials.strip(" \t"):
        challenge = {"WWW-Authenticate": 'Bearer error="invalid_token"'}
        return with_headers(error(401, f"wrong bearer token; {how}"), challenge)
    if scheme.lower() == "bearer":
        sent = "the bearer token is empty"
    elif scheme:  # not echoed: it may be the token itself, sent without a scheme
        sent = "Authorization is not of the Bearer scheme"
    else:
        sent = "no Authorization header"
    return with_headers(error(401, f"{sent}; {how}"), {"WWW-Authenticate": "Bearer"})


# -- errors aiohttp answers itself (no route, wrong method, a handler's crash) --------------
def api_endpoints(app: web.Application) -> list[str]:
    """`METHOD path` of each route under /api/, for the answer to an unknown path."""
    return [
        f"{route.method} {route.resource.canonical}"
        for route in app.router.routes()
        if route.resource is not None
        and route.resource.canonical.startswith("/api/")
        and route.method != "HEAD"  # aiohttp adds one to each GET
    ]


def _without_slash(app: web.Application, path: str) -> str | None:
    """`path` without its trailing slashes when that is a route (`/api/v1/incidents/`)."""
    bare = path.rstrip("/")
    if bare == path or not bare:
        return None
    for resource in app.router.resources():
        pattern = re.sub(r"\\\{[^}]*\\\}", "[^/]+", re.escape(resource.canonical))
        if re.fullmatch(pattern, bare):
            return bare
    return None


def json_error_for(request: web.Request, exc: web.HTTPException) -> web.Response:
    """aiohttp's own error (text/plain) as the API's JSON error, with its headers (Allow)."""
    headers = {
        k: v for k, v in exc.headers.items() if k.lower() not in ("content-type", "content-length")
    }
    path = request.path[:200]
    if isinstance(exc, web.HTTPMethodNotAllowed):
        allowed = sorted(set(exc.allowed_methods) - {"HEAD"}) or sorted(exc.allowed_methods)
        message = f"{request.method[:20]} is not allowed on {path}; use {' or '.join(allowed)}"
        return with_headers(error(405, message, allowed=allowed), headers)
    if isinstance(exc, web.HTTPNotFound) and path.startswith("/api/"):
        bare = _without_slash(request.app, request.path)
        if bare is not None:
            message = f"no endpoint at {path}; did you mean {bare[:200]}?"
            return with_headers(error(404, message), headers)
        message = (
            f"no endpoint at {path}; the API's endpoints are listed in 'endpoints' "
            "(README.md, HTTP API)"
        )
        return with_headers(error(404, message, endpoints=api_endpoints(request.app)), headers)
    return with_headers(error(exc.status, exc.text or exc.reason), headers)


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error under JSON_PATHS as JSON, also those aiohttp answers itself (404, 405,
    500), so that clients read one shape; other paths keep aiohttp's answers."""
    if not request.path.startswith(JSON_PATHS):
        return await handler(request)
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return json_error_for(request, exc)
    except Exception:
        log.exception("error answering %s %s", request.method, request.path[:200])
        return error(500, "internal error; the worker's log has the details. Retry, or report it")

"""Asking a worker's API: a GET with its errors as one line, the URL it is at, and
whether the worker that answered is ready."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any, NoReturn

from streams.cli import common
from streams.cli.common import CliError
from streams.config import Settings


def api_get(base: str, path: str, params: dict[str, str], *, patience: float = 0.0) -> Any:
    """GET a worker's API, JSON back; an answer other than 200, or no worker, is a
    CliError (one line). A 503 is asked again after its Retry-After (at most 10 s) for up
    to `patience` seconds: an export's pages are large requests, which a worker answers a
    few at a time."""
    import urllib.error
    import urllib.parse
    import urllib.request

    query = f"?{urllib.parse.urlencode(params)}" if params else ""
    full = f"{base.rstrip('/')}{path}{query}"
    give_up = time.monotonic() + patience
    while True:
        try:
            with urllib.request.urlopen(full, timeout=30) as resp:
                return json.load(resp)
        except urllib.error.HTTPError as exc:
            wait = _retry_after(exc)
            if exc.code != 503 or time.monotonic() + wait > give_up:
                _api_error(full, exc)
            exc.close()
            time.sleep(wait)
        except (urllib.error.URLError, OSError) as exc:
            raise CliError(
                f"no monitor API at {base} ({exc}); is `ceasefire-monitor run` up? A worker "
                "on another port: pass --url or set CEASEFIRE_WEB_PORT"
            ) from exc


def _retry_after(exc: Any) -> float:
    try:
        return min(max(float(exc.headers.get("Retry-After", 1)), 0.1), 10.0)
    except (TypeError, ValueError):
        return 1.0


def _api_error(full: str, exc: Any) -> NoReturn:
    body = exc.read().decode(errors="replace")
    try:
        message = json.loads(body)["error"]
    except (ValueError, LookupError, TypeError):
        # another server's page (Prometheus and Grafana sit beside the workers): its
        # HTML is no message for this terminal
        message = (
            f"{exc.reason}; the answer is not the monitor API's: is the URL a worker's "
            "(`ceasefire-monitor run`, default http://127.0.0.1:6066)?"
        )
    raise CliError(f"{full}: {exc.code} {message}") from exc


def api_url(args: argparse.Namespace, settings: Settings) -> str:
    """The worker API the command asks: --url, else the settings' (`web_url`). A --url
    without http:// or https:// is said so (`localhost:6066` read as a URL of scheme
    `localhost`, and the error asked whether `run` was up)."""
    url: str = args.url or settings.web_url()
    if not url.lower().startswith(("http://", "https://")):
        example = f" (http://{url})" if "://" not in url else ""
        raise CliError(f"--url {url}: the URL needs http:// or https://{example}")
    from urllib.parse import urlsplit

    try:  # a port that is none, or an IPv6 host left open, said as such, not as a bug
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise CliError(f"--url {url}: {exc} (e.g. http://127.0.0.1:6066)") from None
    if not parts.hostname or port == 0:
        raise CliError(f"--url {url}: no host and port to ask (e.g. http://127.0.0.1:6066)")
    return url


def say_if_not_ready(base: str) -> None:
    """A note on stderr when the worker that answered is not ready: its tallies are exact
    for what its stages applied, which can be behind what was sent (a backlog, a recovery,
    a stalled partition, its broker gone), and a table alone did not say so."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"{base.rstrip('/')}/readyz", timeout=3):
            return  # 200: ready
    except urllib.error.HTTPError as exc:
        try:
            waits = json.loads(exc.read()).get("waiting_for") or []
        except (ValueError, AttributeError):
            waits = []
        finally:
            exc.close()
        if exc.code != 503:
            return
        why = f" (waiting for {', '.join(str(w) for w in waits)})" if waits else ""
        common.console.print(
            f"note: the worker is not ready{why}: these figures can lag what was sent",
            markup=False,
            soft_wrap=True,
        )
    except (urllib.error.URLError, OSError):
        return  # it answered the tallies: a readiness it does not say is no news

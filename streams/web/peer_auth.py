"""How a worker proves to another that a `scope=local` query comes from a worker: a
signature made with CEASEFIRE_API_TOKEN, never the token itself.

Workers find each other by the URLs the members of their consumer group advertise (the
partition assignor's metadata), and whoever may join that group may advertise any URL. A
worker that sent its token there would hand a stranger the token that posts reports for
every source and fires alerts. A signature is good for one worker (the URL it advertises),
one request (method, path, query) and a few minutes, and tells nothing of the token: taken
anywhere else, or later, it is refused.

    Authorization: Ceasefire-Peer t=1733390000, sig=<hex HMAC-SHA256>

The key is derived from the token (HMAC of a fixed label), so a signature is never a MAC
made with the token a POST presents. The workers' clocks must agree within `MAX_SKEW`.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping
from urllib.parse import urlencode

from yarl import URL

#: The scheme's name in the Authorization header (compared case-insensitively, RFC 7235).
SCHEME = "Ceasefire-Peer"
#: Seconds between two log lines of refused peer queries, on either side (the refusing
#: worker, `api.py`; the asking one, `fanout.py`): a refusal repeats on every query.
REFUSAL_LOG_EVERY = 60.0
#: How far a signature's time may be from the receiver's clock, either way (seconds).
MAX_SKEW = 300
_LABEL = b"ceasefire-monitor peer query v1"
_CREDENTIALS = re.compile(r"t=(-?\d{1,12}),\s*sig=([0-9a-f]{64})")


def peer_url(url: str) -> str:
    """A worker's URL as both ends sign it: as yarl writes it (the assignor's metadata
    carries a yarl URL: a host in lower case, a default port dropped), no final slash."""
    return str(URL(url)).rstrip("/")


def _key(token: str) -> bytes:
    return hmac.new(token.encode("utf-8", "surrogatepass"), _LABEL, hashlib.sha256).digest()


def _signature(token: str, url: str, path: str, query: Iterable[tuple[str, str]], at: int) -> str:
    canonical = urlencode(sorted(query), errors="surrogatepass")
    text = "\n".join(("GET", peer_url(url), path, canonical, str(at)))
    message = text.encode("utf-8", "surrogatepass")
    return hmac.new(_key(token), message, hashlib.sha256).hexdigest()


def peer_authorization(
    token: str, url: str, path: str, query: Mapping[str, str], now: float
) -> str:
    """The Authorization header of a GET of `path` with `query` sent to the worker at
    `url` (the URL it advertises) at `now` (epoch seconds)."""
    at = int(now)
    return f"{SCHEME} t={at}, sig={_signature(token, url, path, query.items(), at)}"


def is_peer_scheme(header: str | None) -> bool:
    scheme, _, _ = (header or "").strip().partition(" ")
    return scheme.lower() == SCHEME.lower()


def peer_refusal(
    header: str | None,
    token: str,
    my_url: str,
    path: str,
    query: Iterable[tuple[str, str]],
    now: float,
) -> str | None:
    """Why a `Ceasefire-Peer` header does not prove a GET of `path` with `query` to the
    worker advertising `my_url` at `now`, in one line (never a signature or the token);
    None when it does."""
    if not is_peer_scheme(header):
        return f"Authorization is not of the {SCHEME} scheme"
    credentials = (header or "").strip().partition(" ")[2].strip(" \t")
    found = _CREDENTIALS.fullmatch(credentials)
    if found is None:
        return f"a {SCHEME} header is `t=<epoch seconds>, sig=<64 hex digits>`"
    at, given = int(found[1]), found[2]
    skew = at - now
    if abs(skew) > MAX_SKEW:
        side = "ahead of" if skew > 0 else "behind"
        return (
            f"the peer's signature is {abs(skew):.0f} s {side} this worker's clock (at most "
            f"{MAX_SKEW} s either way): keep the workers' clocks in sync (NTP)"
        )
    expected = _signature(token, my_url, path, query, at)
    if not hmac.compare_digest(given, expected):
        return (
            f"the peer's signature does not match: signed with another CEASEFIRE_API_TOKEN, "
            f"for another request, or for another worker than {peer_url(my_url)} (the URL "
            "this worker advertises)"
        )
    return None

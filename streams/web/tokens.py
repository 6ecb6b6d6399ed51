"""Who may post reports: bearer tokens, each for every source or for some.

`CEASEFIRE_API_TOKEN` posts for every source (and is the token the workers send each other
on their `scope=local` queries). `CEASEFIRE_API_TOKENS_FILE` names a YAML file of tokens
scoped by source, so that a party's statement feed or a media feed holding its own token
cannot post (or withdraw) the reports of the observation posts:

    - name: azertac                # named in answers and logs; the token never is
      token: 8f2c...               # one word of printable characters
      sources: [azertac, "az-mod-*"]   # fnmatch globs, case-sensitive

A POST with a scoped token carrying an item whose `source` no glob matches is refused whole
(403, before anything is sent). The file is read once, at start.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import yaml

from streams.names import bad_character

#: The keys of one token in the file.
_KEYS = ("name", "token", "sources")


class TokenFileError(ValueError):
    """The tokens file cannot be used: one line saying where and why (never a token)."""


@dataclass(frozen=True, slots=True)
class ScopedToken:
    name: str
    token: str
    sources: tuple[str, ...]

    def covers(self, source: str) -> bool:
        return any(fnmatchcase(source, glob) for glob in self.sources)

    def __repr__(self) -> str:  # never the token, in a log or a traceback
        return f"ScopedToken(name={self.name!r}, sources={self.sources!r})"


@dataclass(frozen=True, slots=True)
class Poster:
    """Whoever sent a POST: its token's name (None: the all-sources token, or none
    configured) and the globs of the sources it may post (None: every source)."""

    name: str | None = None
    sources: tuple[str, ...] | None = None

    def covers(self, source: str) -> bool:
        return self.sources is None or any(fnmatchcase(source, g) for g in self.sources)


#: A poster that may post for every source.
EVERY_SOURCE = Poster()


def bearer_credentials(header: str | None) -> bytes | None:
    """The credentials of an `Authorization: Bearer ...` header (the scheme's name in any
    case, RFC 7235), as bytes; None for another scheme or none."""
    scheme, _, credentials = (header or "").strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    # surrogatepass: never fails, whatever the header decoded to
    return credentials.strip(" \t").encode("utf-8", "surrogatepass")


def _same(given: bytes, token: str) -> bool:
    return hmac.compare_digest(given, token.encode("utf-8", "surrogatepass"))


@dataclass(frozen=True, slots=True)
class Tokens:
    """The tokens a worker takes: `master` (CEASEFIRE_API_TOKEN) and the scoped ones."""

    master: str | None = None
    scoped: tuple[ScopedToken, ...] = ()

    @property
    def configured(self) -> bool:
        return self.master is not None or bool(self.scoped)

    def poster(self, header: str | None) -> Poster | None:
        """Who a POST's `Authorization` header says sent it; None when it carries no
        token taken here. Every token is compared, each in constant time, so the time
        taken tells nothing of which one (or how much of one) matched."""
        if not self.configured:
            return EVERY_SOURCE
        given = bearer_credentials(header)
        if given is None:
            return None
        found: Poster | None = None
        if self.master is not None and _same(given, self.master):
            found = EVERY_SOURCE
        for scoped in self.scoped:
            if _same(given, scoped.token) and found is None:
                found = Poster(scoped.name, scoped.sources)
        return found


def bearer_matches(header: str | None, token: str) -> bool:
    """Whether an Authorization header carries `token` with the Bearer scheme, whose name
    is case-insensitive (RFC 7235). The token itself is compared in constant time."""
    return Tokens(master=token).poster(header) is not None


def first_outside(sources: Iterable[tuple[int, str]], poster: Poster) -> tuple[int, str] | None:
    """The first (index, source) of `sources` the poster may not post; None if none."""
    return next(((i, s) for i, s in sources if not poster.covers(s)), None)


def outside_message(poster: Poster, index: int, source: str) -> str:
    globs = ", ".join(poster.sources or ())
    return (
        f"the token {poster.name!r} may post reports of the sources {globs} only; item "
        f"{index}'s source {source[:100]!r} is not among them, and no report of this request "
        "was taken: post it with a token for that source (CEASEFIRE_API_TOKENS_FILE)"
    )


def claimed_source(raw: bytes) -> str | None:
    """The `source` an item the schema rejected names, when it is a JSON object with a
    string `source` (a CloudEvent's: its `data`'s); None otherwise."""
    try:
        doc: Any = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    if isinstance(doc, dict) and "specversion" in doc and isinstance(doc.get("data"), dict):
        doc = doc["data"]
    source = doc.get("source") if isinstance(doc, dict) else None
    return source if isinstance(source, str) else None


# -- the file ---------------------------------------------------------------------------------
def configured_tokens(master: str | None, path: Path | None) -> Tokens:
    """The tokens of CEASEFIRE_API_TOKEN (`master`) and CEASEFIRE_API_TOKENS_FILE (`path`)."""
    return Tokens(master, load_tokens(path, master) if path is not None else ())


def load_tokens(path: Path, master: str | None = None) -> tuple[ScopedToken, ...]:
    """The scoped tokens of the file at `path`; TokenFileError (one line) when it is
    missing, not YAML, or not a list of tokens as above. `master` (CEASEFIRE_API_TOKEN)
    must not be among them."""
    where = f"CEASEFIRE_API_TOKENS_FILE {path}"
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise TokenFileError(f"{where}: cannot read it: {why}") from None
    return parse_tokens(text, where, master)


def parse_tokens(text: str, where: str, master: str | None = None) -> tuple[ScopedToken, ...]:
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        # never str(exc): its snippet of the line may show a token
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "unreadable"
        raise TokenFileError(f"{where} is not YAML: {problem}{at}") from None
    if not isinstance(doc, list) or not doc:
        raise TokenFileError(
            f"{where} must be a YAML list of tokens, each with name, token and sources "
            "(e.g. - {name: azertac, token: ..., sources: [azertac]})"
        )
    tokens = tuple(_entry(n, entry, where) for n, entry in enumerate(doc, start=1))
    _check_unique(tokens, where, master)
    return tokens


def _entry(n: int, entry: Any, where: str) -> ScopedToken:
    what = f"{where}, token {n}"
    if not isinstance(entry, dict):
        raise TokenFileError(f"{what} is not a mapping of name, token and sources")
    unknown = sorted(str(k) for k in entry if k not in _KEYS)
    missing = [k for k in _KEYS if k not in entry]
    if unknown or missing:
        said = "; ".join(
            part
            for part in (
                f"missing {', '.join(missing)}" if missing else "",
                f"unknown {', '.join(unknown)}" if unknown else "",
            )
            if part
        )
        raise TokenFileError(f"{what}: {said} (each token has name, token and sources)")
    name = entry["name"]
    if not isinstance(name, str) or not name.strip():
        raise TokenFileError(f"{what}: name must be a non-empty string")
    what = f"{where}, token {name.strip()!r}"
    token = entry["token"]
    if not isinstance(token, str):
        raise TokenFileError(f"{what}: the token must be a string (quote it)")
    token = token.strip()
    if not token:
        raise TokenFileError(f"{what}: the token is empty")
    bad = bad_character(token)
    if bad is not None:
        raise TokenFileError(f"{what}: {bad}")
    return ScopedToken(name.strip(), token, _sources(entry["sources"], what))


def _sources(value: Any, what: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value:
        raise TokenFileError(
            f"{what}: sources must be a non-empty list of source names or globs "
            "(e.g. [azertac, 'az-mod-*'])"
        )
    globs = []
    for glob in value:
        if not isinstance(glob, str) or not glob.strip():
            raise TokenFileError(f"{what}: sources holds {glob!r}, not a source name or glob")
        globs.append(glob.strip())
    return tuple(globs)


def _check_unique(tokens: Sequence[ScopedToken], where: str, master: str | None) -> None:
    seen: dict[str, str] = {}
    names: set[str] = set()
    for t in tokens:
        if t.name in names:
            raise TokenFileError(f"{where}: the name {t.name!r} is given to two tokens")
        names.add(t.name)
        if t.token in seen:
            raise TokenFileError(
                f"{where}: tokens {seen[t.token]!r} and {t.name!r} are the same token; "
                "give each its own"
            )
        seen[t.token] = t.name
        if master is not None and t.token == master:
            raise TokenFileError(
                f"{where}: token {t.name!r} is CEASEFIRE_API_TOKEN, the token for every "
                "source; give it its own"
            )

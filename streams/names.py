"""Host names and bearer tokens as the settings give them: normalised and checked. Pure.

A leaf, so that the settings refuse a bad CEASEFIRE_ALLOWED_HOSTS entry or token where they
read it (`streams/config.py`) without importing the web, which uses the same checks
(`streams/web/hosts.py`, `streams/web/tokens.py`)."""

from __future__ import annotations


def normal_name(name: str) -> str:
    return name.strip().lower().rstrip(".")


def allowed_name_problem(item: str) -> str | None:
    """Why one entry of CEASEFIRE_ALLOWED_HOSTS is no host name or wildcard; None if it is."""
    name = normal_name(item)
    if name == "*":
        return None
    labels = name.removeprefix("*.").split(".")
    if "*" in name.removeprefix("*.") or not all(
        label and all(c.isalnum() or c in "-_" for c in label) and label.isascii()
        for label in labels
    ):
        return (
            f"{item.strip()!r} is not a host name; name each host as it appears in URLs "
            "(worker-1, monitor.example.org), *.example.org for every name under "
            "example.org, or * for any, separated by commas (no scheme, no port)"
        )
    return None


def bad_character(token: str) -> str | None:
    """Why a token cannot travel in an `Authorization` header (white space or a control
    character inside it); None when it can."""
    bad = next((c for c in token if c.isspace() or not c.isprintable()), None)
    if bad is None:
        return None
    return (
        f"the token holds U+{ord(bad):04X} at position {token.index(bad) + 1}: "
        "a bearer token is one word of printable characters"
    )

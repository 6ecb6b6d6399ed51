"""What `run` checks of who may post before it starts: the tokens file reads, and a worker
the network reaches takes anonymous reports only when told to."""

from __future__ import annotations

from typing import TYPE_CHECKING

from streams.web.hosts import is_loopback
from streams.web.tokens import Tokens, configured_tokens

if TYPE_CHECKING:
    from streams.config import Settings


class AccessError(ValueError):
    """The worker must not start so: one line saying why and the ways out."""


def exposure_problem(web_host: str, tokens: Tokens, anonymous_post: bool) -> str | None:
    """Why a worker listening on `web_host` with `tokens` must not start; None when it may.
    With no token, anyone who reaches a worker posts reports (and fires alerts): fine on
    the loopback interface, and elsewhere only when the operator says so."""
    if tokens.configured or anonymous_post or is_loopback(web_host):
        return None
    return (
        f"CEASEFIRE_WEB_HOST is {web_host}, which other machines can reach, and no API "
        "token is configured: anyone there could post reports and fire alerts. Set "
        "CEASEFIRE_API_TOKEN (a token for every source), or CEASEFIRE_API_TOKENS_FILE "
        "(tokens scoped by source), or CEASEFIRE_ANONYMOUS_POST=true to take anonymous "
        "reports knowingly (or listen on 127.0.0.1)"
    )


def check_access(settings: Settings) -> Tokens:
    """The worker's tokens, its tokens file read; TokenFileError or AccessError (one line
    each) when it must not start."""
    tokens = configured_tokens(settings.api_token, settings.api_tokens_file)
    problem = exposure_problem(settings.web_host, tokens, settings.anonymous_post)
    if problem is not None:
        raise AccessError(problem)
    return tokens

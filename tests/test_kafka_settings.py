"""Kafka settings that used to pass and then misbehave: a heartbeat outlasting the embedded
broker's session, and TLS or SASL settings the security protocol ignores."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from streams.config import EMBEDDED_GROUP_SETTINGS, Settings

pytestmark = pytest.mark.timeout(10)


def test_a_heartbeat_set_for_kafka_fits_the_embedded_session(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """8 s is a valid heartbeat for Kafka's 30 s sessions; on the embedded broker the
    session is 6 s, and the copy kept the 8 s heartbeat past the validator."""
    monkeypatch.setenv("CEASEFIRE_HEARTBEAT_INTERVAL", "8")
    assert Settings().heartbeat_interval == 8.0
    for timed in (Settings().on_embedded_broker(), Settings().with_embedded_timing()):
        assert timed.session_timeout == EMBEDDED_GROUP_SETTINGS["session_timeout"]
        assert timed.heartbeat_interval < timed.session_timeout
        assert timed.heartbeat_interval == EMBEDDED_GROUP_SETTINGS["heartbeat_interval"]


def test_a_heartbeat_that_fits_the_embedded_session_is_kept(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CEASEFIRE_HEARTBEAT_INTERVAL", "2")
    timed = Settings().on_embedded_broker()
    assert (timed.heartbeat_interval, timed.session_timeout) == (2.0, 6.0)
    monkeypatch.setenv("CEASEFIRE_SESSION_TIMEOUT", "20")
    monkeypatch.setenv("CEASEFIRE_HEARTBEAT_INTERVAL", "8")
    timed = Settings().on_embedded_broker()  # both set: both kept
    assert (timed.heartbeat_interval, timed.session_timeout) == (8.0, 20.0)
    assert timed.model_fields_set >= {"heartbeat_interval", "session_timeout"}


@pytest.mark.parametrize(
    ("given", "said"),
    [
        (
            {"ssl_cafile": "/tls/ca.pem"},
            "CEASEFIRE_SSL_CAFILE is set, but CEASEFIRE_SECURITY_PROTOCOL=PLAINTEXT does not "
            "use it: set CEASEFIRE_SECURITY_PROTOCOL=SSL",
        ),
        (
            {"ssl_certfile": "/tls/c.pem", "ssl_keyfile": "/tls/c.key"},
            "CEASEFIRE_SSL_CERTFILE, CEASEFIRE_SSL_KEYFILE are set, but "
            "CEASEFIRE_SECURITY_PROTOCOL=PLAINTEXT does not use them",
        ),
        (
            {"sasl_username": "monitor", "sasl_password": "secret"},
            "CEASEFIRE_SASL_USERNAME, CEASEFIRE_SASL_PASSWORD are set, but "
            "CEASEFIRE_SECURITY_PROTOCOL=PLAINTEXT does not use them: set "
            "CEASEFIRE_SECURITY_PROTOCOL=SASL_SSL (or SASL_PLAINTEXT)",
        ),
        (
            {"security_protocol": "SSL", "sasl_username": "monitor"},
            "CEASEFIRE_SASL_USERNAME is set, but CEASEFIRE_SECURITY_PROTOCOL=SSL does not use "
            "it: set CEASEFIRE_SECURITY_PROTOCOL=SASL_SSL,",
        ),
        (
            {"security_protocol": "SASL_PLAINTEXT", "ssl_cafile": "/tls/ca.pem"},
            "CEASEFIRE_SSL_CAFILE is set, but CEASEFIRE_SECURITY_PROTOCOL=SASL_PLAINTEXT does "
            "not use it: set CEASEFIRE_SECURITY_PROTOCOL=SASL_SSL,",
        ),
        (
            {"security_protocol": "SSL", "ssl_keyfile": "/tls/c.key"},
            "CEASEFIRE_SSL_KEYFILE is set without CEASEFIRE_SSL_CERTFILE",
        ),
    ],
)
def test_tls_or_sasl_settings_the_protocol_would_ignore_are_refused(
    given: dict[str, str], said: str
) -> None:
    """They were dropped without a word: the monitor connected in plain text (or without
    its client certificate) to a broker the operator meant to reach securely."""
    with pytest.raises(ValidationError) as caught:
        Settings(**given)  # type: ignore[arg-type]
    assert said in str(caught.value)


def test_tls_and_sasl_settings_with_their_protocol_pass(tmp_path: Path) -> None:
    cert = tmp_path / "client.pem"
    Settings(security_protocol="SSL", ssl_cafile=cert, ssl_certfile=cert)  # key in the PEM
    Settings(security_protocol="SASL_SSL", ssl_cafile=cert, sasl_username="u", sasl_password="p")
    Settings(security_protocol="SASL_PLAINTEXT", sasl_username="u", sasl_password="p")


def test_empty_tls_and_sasl_settings_are_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    """`CEASEFIRE_SSL_KEYFILE=` (a compose file's `${KEYFILE:-}`) was the directory ".",
    and would now be refused with PLAINTEXT."""
    for name in ("SSL_CAFILE", "SSL_CERTFILE", "SSL_KEYFILE", "SASL_USERNAME", "SASL_PASSWORD"):
        monkeypatch.setenv(f"CEASEFIRE_{name}", "")
    s = Settings()
    assert (s.ssl_cafile, s.ssl_certfile, s.ssl_keyfile) == (None, None, None)
    assert (s.sasl_username, s.sasl_password) == (None, None)
    assert s.kafka_security() == {"security_protocol": "PLAINTEXT"}

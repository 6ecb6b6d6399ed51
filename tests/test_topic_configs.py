"""Existing topics keep the configs they were created with: `topics` says which differ from
the settings (a raised CEASEFIRE_RETENTION_DAYS did not reach them, silently) and sets
them with `--update-config`; `run` warns. On a fake admin client (tests/test_cli.py runs the
command against the embedded broker)."""

from __future__ import annotations

from typing import Any

import pytest

from streams import cli
from streams.config import Settings
from streams.kafka import topics
from streams.kafka.topics import DAY_MS, ConfigDrift, config_drift, topic_specs, update_configs

pytestmark = pytest.mark.timeout(30)


class FakeAdmin:
    """The calls `streams.kafka.topics` makes, over topics held in memory."""

    def __init__(self, held: dict[str, dict[str, str]], partitions: int = 4) -> None:
        self.held = held
        self.partitions = partitions
        self.altered: list[tuple[str, dict[str, str]]] = []

    def list_topics(self) -> list[str]:
        return list(self.held)

    def describe_topics(self, names: list[str]) -> list[dict[str, Any]]:
        return [
            {"name": n, "partitions": [{}] * (1 if n.endswith("theatre") else self.partitions)}
            for n in names
            if n in self.held
        ]

    def create_topics(self, new: list[Any]) -> None:
        for t in new:
            self.held[t.name] = dict(t.topic_configs)

    def describe_configs(self, resources: list[Any], config_filter: str) -> dict[str, Any]:
        assert config_filter == "all"
        return {
            "topic": {
                r.name: {
                    k: {"value": v, "config_source": "TOPIC"} for k, v in self.held[r.name].items()
                }
                for r in resources
            }
        }

    def alter_configs(self, resources: list[Any]) -> dict[str, Any]:
        for r in resources:
            self.altered.append((r.name, dict(r.configs)))
            self.held[r.name].update(r.configs)
        return {"topic": {r.name: "OK" for r in resources}}

    def close(self) -> None:
        pass


def settings(days: int) -> Settings:
    return Settings(broker="kafka://127.0.0.1:1", retention_days=days, partitions=4)


@pytest.fixture
def admin(monkeypatch: pytest.MonkeyPatch) -> FakeAdmin:
    # every topic as a 60-day monitor created it
    fake = FakeAdmin({s.name: dict(s.config) for s in topic_specs(settings(60))})
    monkeypatch.setattr(topics, "admin_client", lambda *a, **k: fake)
    return fake


def test_a_raised_retention_is_found_on_the_topics_that_keep_it(admin: FakeAdmin) -> None:
    s = settings(365)
    drift = config_drift(s)
    keep = str(365 * DAY_MS)
    assert {(d.topic, d.key, d.have, d.want) for d in drift} == {
        (s.dlq_topic, "retention.ms", str(60 * DAY_MS), keep),
        (s.incidents_topic, "retention.ms", str(60 * DAY_MS), keep),
        (s.alerts_topic, "retention.ms", str(60 * DAY_MS), keep),
    }
    update_configs(s, drift)
    # only the drifted key of each topic is sent: the topic's other configs stay
    assert sorted(admin.altered) == sorted(
        (t, {"retention.ms": keep}) for t in (s.dlq_topic, s.incidents_topic, s.alerts_topic)
    )
    assert config_drift(s) == []


def test_a_config_the_broker_does_not_describe_is_unknown_not_equal(admin: FakeAdmin) -> None:
    s = settings(60)
    del admin.held[s.alerts_topic]["retention.ms"]
    assert config_drift(s) == [ConfigDrift(s.alerts_topic, "retention.ms", None, str(60 * DAY_MS))]


def test_a_refused_update_is_an_error_naming_the_topic(
    admin: FakeAdmin, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        admin,
        "alter_configs",
        lambda resources: {"topic": {r.name: "PolicyViolation" for r in resources}},
    )
    s = settings(365)
    with pytest.raises(topics.BrokerUnavailable, match=f"{s.dlq_topic}: PolicyViolation"):
        update_configs(s, config_drift(s))


def test_topics_says_what_differs_and_sets_it_when_asked(
    admin: FakeAdmin, capsys: pytest.CaptureFixture[str]
) -> None:
    env = ["--broker", "kafka://127.0.0.1:1", "--partitions", "4"]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CEASEFIRE_RETENTION_DAYS", "365")
        assert cli.main(["topics", *env]) == 0
        said = capsys.readouterr().out
        assert f"retention.ms: {60 * DAY_MS}, the settings give {365 * DAY_MS}" in said
        assert "3 configs of existing topics differ from the settings" in said
        assert "topics --update-config" in said
        assert admin.altered == []  # only said
        assert cli.main(["topics", *env, "--update-config"]) == 0
        said = capsys.readouterr().out
        assert said.count(f"retention.ms: {60 * DAY_MS} -> {365 * DAY_MS}  set") == 3
        assert len(admin.altered) == 3
        assert cli.main(["topics", *env]) == 0
        assert "differ" not in capsys.readouterr().out


def test_run_warns_of_topics_that_keep_another_retention(
    admin: FakeAdmin, capsys: pytest.CaptureFixture[str]
) -> None:
    from streams.cli.worker import _warn_of_config_drift

    _warn_of_config_drift(settings(60))
    assert "differ" not in capsys.readouterr().err
    _warn_of_config_drift(settings(45))
    err = capsys.readouterr().err
    assert "warning: existing topics differ from the settings" in err
    assert f"{settings(45).dlq_topic} retention.ms {60 * DAY_MS} (settings: {45 * DAY_MS})" in err
    assert "topics --update-config" in err

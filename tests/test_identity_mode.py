"""Workers of one cluster run the identity stage alike, or the later one does not start
(`streams/pipeline/identity_mode.py`, `ceasefire-monitor run`): a mix applies every
report twice."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from streams import metrics
from streams.cli import worker
from streams.cli.common import CliError
from streams.config import Settings
from streams.kafka import group_members
from streams.kafka.broker import EmbeddedBroker
from streams.pipeline.identity_mode import (
    ModeWatch,
    groups_to_ask,
    identity_group,
    mixed_modes,
    worker_client_id,
)
from tests.harness import Worker, wait_for

INSIDE = Settings(app_id="mission", identity_process=False)
APART = Settings(app_id="mission", identity_process=True)
UUID = "0f8e2c1a-6b7d-4e3f-9a21-5c4d3b2a1f00"
MIXED = "ceasefire_identity_mode_mixed_workers"
WATCH_LOG = "streams.pipeline.identity_mode"


def sample(name: str) -> float | None:
    return metrics.REGISTRY.get_sample_value(name)


def test_each_mode_looks_for_the_other_where_it_would_show() -> None:
    assert groups_to_ask(APART) == ["mission"]
    assert groups_to_ask(INSIDE) == [identity_group(INSIDE)] == ["mission-identity"]
    assert worker_client_id(APART) == "mission-worker"
    assert worker_client_id(INSIDE) == "mission-worker-with-identity"


def test_a_worker_apart_is_refused_beside_workers_running_it_inside() -> None:
    members = {"mission": [f"mission-worker-with-identity-{UUID}", f"mission-worker-{UUID}"]}
    mix = mixed_modes(APART, members)
    assert mix is not None and mix.workers == 1
    assert "inside the worker (CEASEFIRE_IDENTITY_PROCESS=false)" in mix.why()
    assert "count it twice" in mix.why()


def test_a_worker_inside_is_refused_beside_identity_processes() -> None:
    mix = mixed_modes(INSIDE, {"mission-identity": [f"mission-identity-{UUID}", "x-1"]})
    assert mix is not None and mix.workers == 2
    assert mix.found().startswith("2 workers of this cluster (app id mission)")


def test_workers_of_the_same_mode_or_of_no_known_mode_are_let_be() -> None:
    assert mixed_modes(APART, {"mission": [f"mission-worker-{UUID}"]}) is None
    # older workers' Faust default client id tells no mode
    assert mixed_modes(APART, {"mission": [f"faust-0.11.3-{UUID}"]}) is None
    assert mixed_modes(APART, {}) is None
    assert mixed_modes(INSIDE, {"mission-identity": []}) is None
    # another app's workers are another cluster
    assert mixed_modes(APART, {"mission": [f"other-worker-with-identity-{UUID}"]}) is None


def _mode(inside: bool) -> dict[str, str]:
    return {"CEASEFIRE_IDENTITY_PROCESS": "false" if inside else "true"}


def _check(broker: EmbeddedBroker, *, inside: bool, embedded: bool = False) -> list[str]:
    """`run`'s check with settings for a worker of the given mode; what it said. Not
    `embedded`: as on Apache Kafka (stopped members leave), with a 1 s session timeout."""
    said: list[str] = []
    settings = Settings(
        broker=broker.url,
        identity_process=not inside,
        session_timeout=1.0,
        heartbeat_interval=0.3,
        leader_leaves=not embedded,
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(worker, "notice", said.append)
        try:
            worker._refuse_mixed_identity_modes(settings, poll=0.2)
        except CliError as exc:
            said.append(f"refused: {exc}")
    return [" ".join(line.split()) for line in said]


@pytest.mark.integration
@pytest.mark.timeout(120)
def test_run_finds_workers_of_the_other_mode_on_a_real_broker(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    apart = Worker(broker, tmp_path, name="apart", env=_mode(False)).start()
    try:
        assert _check(broker, inside=False) == []  # its own kind: nothing said
        said = _check(broker, inside=True)
        assert len(said) == 2 and said[-1].startswith("refused: 1 worker of this cluster"), said
        assert "in a process of its own (group ceasefire-monitor-identity)" in said[-1]
        assert "count it twice" in said[-1]
        # the embedded broker lists stopped workers for good: said, not refused
        said = _check(broker, inside=True, embedded=True)
        assert len(said) == 1 and said[0].startswith("[bold yellow]warning:[/] 1 worker")
        # Started beside it anyway (the embedded broker's way: said, not refused; two
        # workers started within a second see nothing of each other on any broker): each
        # running worker's look, every session timeout, finds the other and says so.
        inside = Worker(broker, tmp_path, name="inside", env=_mode(True)).start()
        try:
            said = _check(broker, inside=False)
            assert said[-1].startswith(
                "refused: 1 worker of this cluster (app id ceasefire-monitor)"
            )
            assert "runs the identity stage inside the worker" in said[-1]
            wait_for(
                lambda: all(w.metric(MIXED) == 1 for w in (apart, inside)),
                timeout=30,
                what="both workers' looks finding the other mode",
            )
            for w in (apart, inside):
                assert "this one runs it" in w.log_path.read_text(errors="replace")
        finally:
            assert inside.stop() == 0
    finally:
        assert apart.stop() == 0


def test_a_mix_that_ends_within_a_session_timeout_is_let_be(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Members of workers that stopped (or were killed) go with their session."""
    answers = iter([{"mission": [f"mission-worker-with-identity-{UUID}"]}, {"mission": []}])
    monkeypatch.setattr(group_members, "member_ids", lambda settings, groups: next(answers))
    said: list[str] = []
    monkeypatch.setattr(worker, "notice", said.append)
    worker._refuse_mixed_identity_modes(APART.model_copy(update={"session_timeout": 5}), poll=0)
    assert len(said) == 1 and "waiting up to 5 s" in said[0]
    assert next(answers, None) is None  # asked until the mix was gone


def test_a_broker_that_does_not_say_is_a_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(settings: Settings, groups: list[str]) -> None:
        raise group_members.GroupsUnknown("DescribeGroups of mission: GroupAuthorizationFailed")

    monkeypatch.setattr(group_members, "member_ids", refuse)
    said: list[str] = []
    monkeypatch.setattr(worker, "notice", said.append)
    worker._refuse_mixed_identity_modes(APART, poll=0)
    assert len(said) == 1 and "could not check" in said[0] and "Authorization" in said[0]


async def test_a_running_worker_says_a_mix_once_and_when_it_ends(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Two workers started in the same second each saw no other at their start."""
    inside = f"mission-worker-with-identity-{UUID}"
    answers: list[dict[str, list[str]] | Exception] = [
        {"mission": [f"mission-worker-{UUID}"]},
        {"mission": [inside]},
        {"mission": [inside]},
        {"mission": [inside, f"mission-worker-with-identity-{UUID[::-1]}"]},
        group_members.GroupsUnknown("no answer to DescribeGroups within 10 s"),
        group_members.GroupsUnknown("no answer to DescribeGroups within 10 s"),
        {"mission": []},
    ]
    asked: list[Sequence[str]] = []

    async def describe(settings: Settings, groups: Sequence[str]) -> dict[str, list[str]]:
        asked.append(groups)
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    watch = ModeWatch(APART, describe)
    seen: list[float | None] = []
    for _ in range(7):
        await watch.look()
        seen.append(sample(MIXED))
    # (unanswered looks leave the last figure)
    assert seen == [0, 1, 1, 2, 2, 2, 0]
    assert asked == [["mission"]] * 7
    said = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == WATCH_LOG]
    assert [level for level, _ in said] == ["ERROR", "ERROR", "WARNING", "WARNING"], said
    assert said[0][1].startswith("1 worker of this cluster (app id mission) runs the identity")
    assert "this one runs it in a process of its own" in said[0][1]
    assert said[1][1].startswith("2 workers")
    assert "asked again every 30 s" in said[2][1] and "within 10 s" in said[2][1]
    assert "any more" in said[3][1]

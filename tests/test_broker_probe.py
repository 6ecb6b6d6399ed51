"""The worker's broker probe: readiness and `ceasefire_broker_answering`
(`Monitor._probe_broker`, on a stand-in for the worker: no broker is needed to decide);
and the embedded broker process itself (`EmbeddedBroker`): why it did not start, and the
files it leaves open."""

from __future__ import annotations

import asyncio
import gc
import os
import socket
import warnings
from pathlib import Path
from types import SimpleNamespace

import pytest

from streams import metrics
from streams.kafka.broker import BrokerError, EmbeddedBroker, free_port
from streams.pipeline.app import BROKER_DOWN_AFTER, Monitor

pytestmark = pytest.mark.timeout(10)


def test_the_broker_is_down_after_three_unanswered_probes_and_up_at_the_next_answer() -> None:
    answers = [True, False, False, False, False, True]
    changes: list[int] = []
    looked: list[set[str]] = []

    async def topics(timeout: float) -> dict[str, int] | None:
        return {"ceasefire.reports": 4} if answers.pop(0) else None

    async def recreate_missing(existing: set[str]) -> None:
        looked.append(existing)

    worker = SimpleNamespace(
        producer=SimpleNamespace(topics=topics, producer=object()),
        broker_misses=0,
        broker_gone_at_stop=None,
        _recreate_missing=recreate_missing,
        _check_counts=lambda counts: None,
    )
    worker.update_ready = lambda: changes.append(worker.broker_misses)
    seen = []
    for _ in range(6):
        asyncio.run(Monitor._probe_broker(worker))  # type: ignore[arg-type]
        seen.append(metrics.REGISTRY.get_sample_value("ceasefire_broker_answering"))
    assert BROKER_DOWN_AFTER == 3
    assert seen == [1.0, 1.0, 1.0, 0.0, 0.0, 1.0]
    assert changes == [3, 0]  # readiness re-read when it went down and when it came back
    assert looked == [{"ceasefire.reports"}] * 2  # the topics looked at when it answered
    worker.broker_gone_at_stop = False  # stopping: nothing created any more
    answers.append(True)
    asyncio.run(Monitor._probe_broker(worker))  # type: ignore[arg-type]
    assert len(looked) == 2


def test_the_topics_the_broker_lost_are_created_again(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Only when one is missing (the probe runs every few seconds), and said."""
    from streams.config import Settings
    from streams.kafka.topics import worker_topics
    from streams.pipeline import app

    settings = Settings(app_id="lost")
    everything = {s.name for s in worker_topics(settings)}
    asked: list[set[str]] = []

    def create_missing(s: Settings, existing: set[str]) -> list[str]:
        asked.append(existing)
        return sorted(everything - existing)

    monkeypatch.setattr(app, "create_missing", create_missing)
    worker = SimpleNamespace(settings=settings)
    asyncio.run(Monitor._recreate_missing(worker, everything))  # type: ignore[arg-type]
    assert asked == []
    lost = everything - {"lost-theatre-state-changelog", settings.alerts_topic}
    with caplog.at_level("WARNING"):
        asyncio.run(Monitor._recreate_missing(worker, lost))  # type: ignore[arg-type]
    assert asked == [lost]
    assert "created them again: ceasefire.alerts, lost-theatre-state-changelog" in caplog.text


def _open_files_at(path: Path) -> int:
    """How many of this process's descriptors are open on `path`."""
    fds = Path("/proc/self/fd")
    return sum(1 for fd in fds.iterdir() if os.path.realpath(fd) == str(path.resolve()))


@pytest.mark.timeout(30)
@pytest.mark.parametrize("logged", [False, True], ids=["no-log", "log"])
def test_a_broker_that_cannot_bind_its_port_says_why(tmp_path: Path, logged: bool) -> None:
    """A port bound but not listening passes the start's check; Tansu then panics on
    AddrInUse and exits 0. It said only "exited at start with code 0" (its output went to
    /dev/null without a log)."""
    log = tmp_path / "tansu.log" if logged else None
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        port = holder.getsockname()[1]
        broker = EmbeddedBroker("127.0.0.1", port, log=log)
        with pytest.raises(BrokerError) as caught:
            broker.start()
    said = str(caught.value)
    assert said.startswith("the embedded broker exited at start with code 0: "), said
    assert f"port 127.0.0.1:{port} is in use by another program" in said, said
    assert "Address in use" in said and "CEASEFIRE_EMBEDDED_PORT" in said, said
    assert "\n" not in said and "\x1b" not in said, said  # one line, without colours
    assert broker.pid is None  # nothing left running
    if log is not None:
        assert "AddrInUse" in log.read_text()  # the log still gets all of it
        assert _open_files_at(log) == 0


@pytest.mark.timeout(30)
def test_the_log_file_is_closed_when_the_broker_stops(tmp_path: Path) -> None:
    """`open(log, "ab")` was never closed: the collector closed it, when it came to it,
    with a ResourceWarning. `stop()` closes it."""
    log = tmp_path / "tansu.log"
    broker = EmbeddedBroker("127.0.0.1", free_port(), log=log)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always", ResourceWarning)
        try:
            for _ in range(2):
                broker.start()
                broker.stop()
                gc.collect()
                assert _open_files_at(log) == 0
        finally:
            broker.stop()
    unclosed = [str(w.message) for w in seen if issubclass(w.category, ResourceWarning)]
    assert not [w for w in unclosed if str(log) in w], unclosed
    assert log.read_text().count("tansu broker") == 2  # both runs' output, appended


def test_a_topic_of_other_partitions_than_the_settings_holds_readiness(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A client that had the broker create the input topic with its default (4 of 2) left
    half of the reports unread, the worker ready."""
    from streams.config import Settings

    settings = Settings(app_id="w", partitions=2)
    readiness: list[list[str]] = []
    worker = SimpleNamespace(settings=settings, topic_mismatches=[])
    worker.update_ready = lambda: readiness.append(list(worker.topic_mismatches))
    counts = {
        "ceasefire.reports": 4,
        "ceasefire.alerts": 2,
        "w-theatre-state-changelog": 1,
        "w-__assignor-__leader": 4,  # Faust's: its partitions read by nothing here
    }
    with caplog.at_level("ERROR"):
        Monitor._check_counts(worker, counts)  # type: ignore[arg-type]
    assert worker.topic_mismatches == [
        "topic ceasefire.reports has 4 partitions, the settings give 2"
    ]
    assert "not ready: topic ceasefire.reports has 4 partitions" in caplog.text
    Monitor._check_counts(worker, counts)  # type: ignore[arg-type]
    assert len(readiness) == 1  # said once
    Monitor._check_counts(worker, {"ceasefire.reports": 2})  # type: ignore[arg-type]
    assert worker.topic_mismatches == [] and readiness[-1] == []

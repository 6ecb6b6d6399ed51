"""Ingest and the identity stage in processes of their own (`ingest_process.py`,
`identity_process.py`): ingest's pacing and first record; on a real broker, a child that
dies is started again and nothing is lost or counted twice; a worker that dies takes its
children with it. The supervision itself: `test_child_process.py`."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from streams.config import Settings
from streams.kafka.broker import EmbeddedBroker
from streams.pipeline.child_process import CHILD_NICE, PACE, Status
from streams.pipeline.ingest_process import IngestProcess
from streams.tools.procfs import child_pids
from tests.harness import Worker, produce, wait_for
from tests.test_child_process import FakeConnection
from tests.test_integration import POINTS, report


def test_the_first_record_time_is_the_first_childs() -> None:
    proc = IngestProcess(Settings())
    proc._take(Status(True, first_record_at=12.5))
    proc._take(Status(True, first_record_at=99.0))
    assert proc.first_record_at == 12.5


def test_ingest_holds_while_the_stages_have_too_much_to_apply() -> None:
    from streams.classify.classifier import Classifier
    from streams.classify.gazetteer import Gazetteer
    from streams.classify.zones import ZoneCatalogue
    from streams.pipeline.ingest import Ingest

    classifier = Classifier(ZoneCatalogue.load(None), Gazetteer.load(None))
    ingest = Ingest(Settings(ingest_lead_packs=10), classifier)
    flowing = []
    for behind in (10, 11, 30, 6, 5, 9, 11):
        ingest.pace(behind)
        flowing.append(ingest.flowing.is_set())
    # holds above the lead, goes on again at half of it
    assert flowing == [True, False, False, False, True, True, False]
    # a stage not ready (recovering, restarting) reports nothing behind: ingest holds
    from streams.pipeline.app import ingest_pace

    ingest.pace(ingest_pace(0, ready=True, lead=10))
    assert ingest.flowing.is_set()
    ingest.pace(ingest_pace(0, ready=False, lead=10))
    assert not ingest.flowing.is_set()
    assert ingest_pace(30, ready=False, lead=10) == 30

    async def held_then_released() -> tuple[dict[Any, Any], float]:
        started = time.monotonic()
        taken = await ingest._held()  # held: nothing, within its 0.2 s
        asyncio.get_running_loop().call_later(0.05, ingest.pace, 0)
        ingest.flowing.clear()
        await asyncio.wait_for(ingest._held(), timeout=1)  # returns as soon as released
        return taken, time.monotonic() - started

    taken, took = asyncio.run(held_then_released())
    assert taken == {} and took < 1.0
    assert ingest.flowing.is_set()


def test_the_worker_forwards_how_far_behind_its_stages_are() -> None:
    proc = IngestProcess(Settings())
    conn = FakeConnection()
    proc._conn = conn  # type: ignore[assignment]
    proc.pace(42)
    assert conn.sent == [(PACE, 42)]


# -- on a real broker ---------------------------------------------------------------------
def _children(pid: int, module: str) -> list[int]:
    """The child processes `pid` started that run `module`."""
    out = []
    for child in child_pids(pid):
        try:
            if f"streams.pipeline.{module}".encode() in Path(f"/proc/{child}/cmdline").read_bytes():
                out.append(child)
        except OSError:
            continue
    return out


def _niceness(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[16])


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.integration
@pytest.mark.timeout(240)
@pytest.mark.parametrize("module", ["ingest_process", "identity_process"])
def test_a_killed_child_is_replaced_and_nothing_is_lost_or_counted_twice(
    broker: EmbeddedBroker, tmp_path: Path, module: str
) -> None:
    """SIGKILL of the ingest or the identity process: the worker is unready until a new one
    runs; reports sent meanwhile are counted once they are back, and re-sent ones not
    again (the new identity process recovered the state the dead one wrote)."""
    zones = list(POINTS)

    def batch(start: int, n: int) -> list[bytes]:
        return [json.dumps(report(i, zones[i % len(zones)])).encode() for i in range(start, n)]

    def counted(w: Worker) -> int:
        rows = w.tallies("24h", "zone")
        return sum(r["reports"] for r in rows) if rows else -1

    worker = Worker(broker, tmp_path).start()
    assert worker.proc is not None
    try:
        produce(broker.bootstrap, "ceasefire.reports", batch(0, 200))
        wait_for(lambda: counted(worker) == 200, timeout=60, what="the first 200 counted")
        # The zone stage may count them before the child's next status (a tenth of a second)
        # brings its counters: what a child counted and had not reported dies with it.
        wait_for(
            lambda: worker.metric("ceasefire_reports_total") == 200,
            timeout=10,
            what="the first 200 in the relayed counter",
        )
        (child,) = _children(worker.proc.pid, module)
        # behind the worker's event loop where both want a core
        assert _niceness(child) == _niceness(worker.proc.pid) + CHILD_NICE
        os.kill(child, signal.SIGKILL)
        wait_for(lambda: not worker.healthy(), timeout=10, what=f"unready without {module}")
        # Sent while the child is gone: its successor takes them from where it was.
        produce(broker.bootstrap, "ceasefire.reports", batch(200, 400) + batch(0, 100))
        wait_for(worker.healthy, timeout=90, what=f"ready again with a new {module}")
        wait_for(lambda: counted(worker) == 400, timeout=60, what="all 400 counted")
        wait_for(
            # at least: a killed ingest may have sent packs it had not committed yet
            lambda: worker.metric("ceasefire_reports_duplicate_total") >= 100,
            timeout=30,
            what="the 100 re-sent reports known as duplicates",
        )
        # relayed, across the restart: the child's status brings it up to 0.1 s later
        wait_for(
            lambda: worker.metric("ceasefire_reports_total") == 400,
            timeout=10,
            what="all 400 in the relayed counter",
        )
        time.sleep(2)  # and no more than that
        assert counted(worker) == 400
        assert worker.metric("ceasefire_reports_total") == 400
        (replacement,) = _children(worker.proc.pid, module)
        assert replacement != child
        name = module.split("_")[0]
        assert f"the {name} process ended" in worker.log_tail(400)
    finally:
        pid = worker.proc.pid if worker.proc else None
        orphans = _children(pid, "") if pid else []
        worker.kill()  # SIGKILL: the children must notice and stop on their own
    wait_for(
        lambda: not any(_alive(p) for p in orphans),
        timeout=20,
        what="the worker's processes to end with it",
    )


@pytest.mark.integration
@pytest.mark.timeout(120)
def test_a_worker_of_one_process_counts_alike(broker: EmbeddedBroker, tmp_path: Path) -> None:
    """`CEASEFIRE_INGEST_PROCESS=false` and `CEASEFIRE_IDENTITY_PROCESS=false`: ingest and
    the identity stage inside the worker, no child process, the same counts."""
    zones = list(POINTS)
    reports = [json.dumps(report(i, zones[i % len(zones)])).encode() for i in range(50)]
    env = {"CEASEFIRE_INGEST_PROCESS": "false", "CEASEFIRE_IDENTITY_PROCESS": "false"}
    worker = Worker(broker, tmp_path, env=env).start()
    assert worker.proc is not None
    try:
        produce(broker.bootstrap, "ceasefire.reports", reports + reports[:10] + [b"{not json"])

        def counts() -> tuple[int, float, float, float]:
            rows = worker.tallies("24h", "zone")
            return (
                sum(r["reports"] for r in rows) if rows is not None else -1,
                worker.metric("ceasefire_reports_total"),
                worker.metric("ceasefire_reports_duplicate_total"),
                worker.metric("ceasefire_reports_rejected_total", {"reason": "invalid_json"}),
            )

        # The tallies (zone stage) and the counters (identity stage, after its forwards and
        # its write; ingest for the rejection) move apart: wait for all of them.
        wait_for(
            lambda: counts() == (50, 50, 10, 1),
            timeout=60,
            what="50 counted, 10 duplicates and 1 rejected",
            explain=lambda: f"(tallied, reports, duplicates, rejected) = {counts()}",
        )
        assert worker.healthy()
        assert _children(worker.proc.pid, "") == []
    finally:
        worker.stop()

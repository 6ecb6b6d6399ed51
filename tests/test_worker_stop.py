"""A worker on its embedded broker stops with the terminal's Ctrl-C, and leaves nothing
running when killed (README: "Stop with Ctrl-C").

Ctrl-C goes to the terminal's whole process group: the embedded broker, in that group,
died while the worker was still committing and leaving its groups, and the worker waited
for good, answering /readyz "ready" (3 runs of 3 in a review). Killed by SIGKILL, the
worker left its broker and its identity process running for good."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from streams.kafka.broker import free_port, port_open
from tests.harness import Worker, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


def _descendants(pid: int) -> set[int]:
    """The processes below `pid`, from /proc."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents[int(entry.name)] = int(fields[1])
    found: set[int] = set()
    todo = [pid]
    while todo:
        p = todo.pop()
        for child, parent in parents.items():
            if parent == p and child not in found:
                found.add(child)
                todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _worker(tmp_path: Path) -> tuple[Worker, int]:
    """A worker that starts its own embedded broker, in a session of its own (as a
    terminal runs a command), ready; and its broker's port."""
    broker_port = free_port()
    worker = Worker(None, tmp_path, env={"CEASEFIRE_EMBEDDED_PORT": str(broker_port)})
    worker.env = {k: v for k, v in worker.env.items() if k != "CEASEFIRE_BROKER"}
    log = open(worker.log_path, "ab")  # noqa: SIM115 - closed with the process
    worker.proc = subprocess.Popen(
        [sys.executable, "-m", "streams.cli", "run", "--demo", "--loglevel", "info"],
        env=worker.env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    wait_for(worker.healthy, timeout=90, what="worker ready", explain=worker.not_ready)
    assert port_open("127.0.0.1", broker_port)
    return worker, broker_port


def _cleanup(pids: set[int]) -> None:
    for pid in pids:
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)


def test_ctrl_c_to_the_terminal_s_process_group_stops_the_worker_and_its_broker(
    tmp_path: Path,
) -> None:
    worker, broker_port = _worker(tmp_path)
    assert worker.proc is not None
    pid = worker.proc.pid
    below = _descendants(pid)
    try:
        assert len(below) >= 3, below  # ingest, identity, the broker
        started = time.monotonic()
        os.killpg(pid, signal.SIGINT)  # what the terminal does on Ctrl-C
        code = worker.proc.wait(timeout=30)
        elapsed = time.monotonic() - started
        assert code == 0, worker.log_tail()
        assert elapsed < 15, (elapsed, worker.log_tail())
        wait_for(lambda: not any(_alive(p) for p in below), timeout=10, what="children gone")
        assert not port_open("127.0.0.1", broker_port)
    finally:
        worker.stop()
        _cleanup(below)


def test_a_killed_worker_leaves_neither_its_broker_nor_its_children_running(
    tmp_path: Path,
) -> None:
    worker, broker_port = _worker(tmp_path)
    assert worker.proc is not None
    pid = worker.proc.pid
    below = _descendants(pid)
    try:
        worker.proc.kill()  # SIGKILL (or the kernel's OOM killer): no `finally` runs
        worker.proc.wait(timeout=10)
        wait_for(
            lambda: not port_open("127.0.0.1", broker_port),
            timeout=10,
            what="the embedded broker to end with its worker",
        )
        # the children stop once their pipe ends; with the broker gone too, within
        # their own deadline (child_process.ORPHAN_STOP_SECONDS)
        wait_for(
            lambda: not any(_alive(p) for p in below),
            timeout=40,
            what="the worker's children to end",
            explain=lambda: f"still running: {sorted(p for p in below if _alive(p))}",
        )
    finally:
        _cleanup(below)

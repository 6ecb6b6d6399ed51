"""`ceasefire-monitor bench --membership`: how long membership changes take.

Each round runs on a fresh embedded broker (on a free port, on its own as
`ceasefire-monitor broker` runs it), with real worker processes started as an operator
starts them (`ceasefire-monitor run --loglevel info`, no consumer-group timing set),
either with no broker configured (the worker joins the broker it finds on
CEASEFIRE_EMBEDDED_PORT) or with `--broker kafka://127.0.0.1:PORT`. It times:

- first start: `run` until the worker is ready and answers a complete tally;
- restart, twice: SIGTERM, wait for the exit, `run` again, until ready and complete;
- join: a second worker starts, until both answer /readyz 200 and a complete tally;
- takeover: the second worker is killed with SIGKILL, until the survivor answers a
  complete tally.

"Ready" is GET /readyz 200; "complete" is GET /api/v1/tallies 200 whose counts add up to
every report fed (an answer of 200 with another count is a wrong answer: counted and
printed, it must stay 0). Each round runs without state, then again with N reports fed
first. The worker logs (`--loglevel info`) are kept in a directory printed at the end.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.table import Table

from streams.config import Settings
from streams.kafka.broker import EmbeddedBroker, free_port

#: Longest wait for any one change; a change that takes longer is reported as failed.
CHANGE_TIMEOUT = 240.0
POLL = 0.1
#: Tally window that holds every benchmark report: they are fed within the last
#: STATE_DAYS (the throughput benchmark spreads its reports over a year, which no tally
#: window holds: every round with state then waited for a count it could never see).
WINDOW = "7d"
STATE_DAYS = 6.0

FIRST = "first start"
RESTART = "restart"
JOIN = "second worker joins"
TAKEOVER = "takeover, kill -9"
STOP = "stop (SIGTERM)"
SCENARIOS = [FIRST, RESTART, JOIN, TAKEOVER, STOP]
#: How the workers of a round find the broker: `run` with no broker configured (it joins
#: the one on CEASEFIRE_EMBEDDED_PORT), or `run --broker kafka://127.0.0.1:PORT`.
MODES = {False: "no broker set", True: "--broker"}

#: Variables the benchmark sets itself: inherited values would change what it measures.
_OWN_VARIABLES = {
    "CEASEFIRE_BROKER",
    "CEASEFIRE_EMBEDDED_PORT",
    "CEASEFIRE_WEB_PORT",
    "CEASEFIRE_DATA_DIR",
    "CEASEFIRE_PARTITIONS",
    "CEASEFIRE_ADVERTISED_URL",
    "CEASEFIRE_WEB_HOST",
}


class ChangeFailed(RuntimeError):
    """A membership change did not complete within CHANGE_TIMEOUT."""


#: (how the workers were started, reports of state, change)
Key = tuple[bool, int, str]


@dataclass
class Results:
    #: seconds of each run
    seconds: dict[Key, list[float]] = field(default_factory=dict)
    failures: dict[Key, int] = field(default_factory=dict)
    wrong_answers: list[str] = field(default_factory=list)

    def add(self, key: Key, seconds: float) -> None:
        self.seconds.setdefault(key, []).append(seconds)

    def fail(self, key: Key) -> None:
        self.failures[key] = self.failures.get(key, 0) + 1


class BenchWorker:
    """One `ceasefire-monitor run` process with its own API port and log."""

    def __init__(self, name: str, broker_port: int, logs: Path, *, flag: bool) -> None:
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = logs / f"{name}.log"
        env = {k: v for k, v in os.environ.items() if k not in _OWN_VARIABLES}
        env.update(
            CEASEFIRE_EMBEDDED_PORT=str(broker_port),
            CEASEFIRE_WEB_PORT=str(self.port),
            CEASEFIRE_DATA_DIR=str(logs / f"data-{name}"),
        )
        cmd = [sys.executable, "-m", "streams.cli", "run", "--loglevel", "info"]
        if flag:
            cmd += ["--broker", f"kafka://127.0.0.1:{broker_port}"]
        with open(self.log_path, "ab") as log:
            log.write(f"\n=== {time.strftime('%H:%M:%S')} {' '.join(cmd[1:])}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
        self.started = time.monotonic()

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(f"{self.url}{path}", timeout=5) as resp:
                return int(resp.status), resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()
        except (urllib.error.URLError, OSError):
            return 0, b""

    def alive(self) -> bool:
        return self.proc.poll() is None

    def ready(self) -> bool:
        return self.get("/readyz")[0] == 200

    def total(self) -> int | None:
        """Reports in the complete tally, or None while it is not complete (503)."""
        status, body = self.get(f"/api/v1/tallies?window={WINDOW}&by=zone")
        if status != 200:
            return None
        return sum(int(row["reports"]) for row in json.loads(body)["rows"])

    def stop(self) -> float:
        """SIGTERM; seconds until the process exited (killed after 60 s)."""
        started = time.monotonic()
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        return time.monotonic() - started

    def kill(self) -> None:
        if self.alive():
            self.proc.kill()
            self.proc.wait(timeout=10)


def wait_until(
    probe: Callable[[], bool], workers: list[BenchWorker], what: str, timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for w in workers:
            if not w.alive():
                raise ChangeFailed(f"{what}: {w.name} exited with {w.proc.returncode}")
        if probe():
            return
        time.sleep(POLL)
    raise ChangeFailed(f"{what}: not within {timeout:.0f}s")


class Round:
    """One fresh broker, and the changes measured on it with workers started one way."""

    def __init__(
        self, results: Results, *, flag: bool, state: int, logs: Path, console: Console
    ) -> None:
        self.results = results
        self.flag = flag
        self.state = state
        self.logs = logs
        self.console = console
        self.expected = 0
        self.broker = EmbeddedBroker("127.0.0.1", free_port(), log=logs / "broker.log")
        self.workers: list[BenchWorker] = []

    def start(self, name: str) -> BenchWorker:
        w = BenchWorker(name, self.broker.port, self.logs, flag=self.flag)
        self.workers.append(w)
        return w

    def complete(self, w: BenchWorker) -> bool:
        total = w.total()
        if total is None:
            return False
        if total != self.expected:
            self.results.wrong_answers.append(
                f"{w.name}: {total} reports counted, {self.expected} fed "
                f"({MODES[self.flag]}, state {self.state})"
            )
            return False
        return True

    def measure(
        self, scenario: str, since: float, probe: Callable[[], bool], ws: list[BenchWorker]
    ) -> None:
        key = (self.flag, self.state, scenario)
        try:
            wait_until(probe, ws, scenario, CHANGE_TIMEOUT)
        except ChangeFailed as exc:
            self.results.fail(key)
            self.console.print(f"  [red]{exc}[/]")
            raise
        seconds = time.monotonic() - since
        self.results.add(key, seconds)
        self.console.print(f"  {scenario}: {seconds:.1f} s")

    def ready_and_complete(self, *ws: BenchWorker) -> Callable[[], bool]:
        return lambda: all(w.ready() and self.complete(w) for w in ws)

    def restart(self, w: BenchWorker) -> BenchWorker:
        self.results.add((self.flag, self.state, STOP), w.stop())
        self.workers.remove(w)
        new = self.start(w.name)
        self.measure(RESTART, new.started, self.ready_and_complete(new), [new])
        return new

    def run(self) -> None:
        self.broker.start()
        try:
            w1 = self.start("w1")
            self.measure(FIRST, w1.started, self.ready_and_complete(w1), [w1])
            if self.state:
                self.feed(w1)
            w1 = self.restart(w1)
            w1 = self.restart(w1)
            w2 = self.start("w2")
            self.measure(JOIN, w2.started, self.ready_and_complete(w1, w2), [w1, w2])
            w2.kill()
            self.workers.remove(w2)
            killed = time.monotonic()
            self.measure(TAKEOVER, killed, lambda: self.complete(w1), [w1])
        finally:
            for w in self.workers:
                w.stop()
            self.broker.stop()

    def feed(self, w1: BenchWorker) -> None:
        from streams.bench import preload

        settings = Settings(broker=self.broker.url, partitions=4)
        asyncio.run(preload(settings, self.state, self.console, days=STATE_DAYS))
        self.expected = self.state
        wait_until(lambda: self.complete(w1), [w1], f"counting {self.state:,} reports", 300)
        # Counted while the feed ran: not wrong answers.
        self.results.wrong_answers.clear()


def run_membership_bench(
    *,
    states: list[int],
    repeat: int,
    console: Console,
    modes: tuple[bool, ...] = (False, True),
    logs: Path | None = None,
) -> Results:
    logs = logs or Path(tempfile.mkdtemp(prefix="ceasefire-membership-"))
    results = Results()
    wrong: list[str] = []
    for round_ in range(1, repeat + 1):
        for flag in modes:
            for state in states:
                where = logs / f"round{round_}-{'flag' if flag else 'noflag'}-state{state}"
                where.mkdir(parents=True, exist_ok=True)
                console.print(
                    f"round {round_} of {repeat}: workers started with {MODES[flag]}, "
                    f"{state:,} reports of state ({where})"
                )
                one = Round(results, flag=flag, state=state, logs=where, console=console)
                try:
                    one.run()
                except ChangeFailed as exc:  # counted; the next round is afresh
                    console.print(f"  [red]round failed: {exc}[/]")
                wrong.extend(results.wrong_answers)
                results.wrong_answers = []
    results.wrong_answers = wrong
    render(results, console)
    console.print(f"worker and broker logs: {logs}")
    return results


def render(results: Results, console: Console) -> None:
    table = Table(title="membership changes on the embedded broker (seconds)")
    for name in ("change", "run with", "reports", "median", "min - max", "runs"):
        table.add_column(name, justify="left" if name == "change" else "right")
    keys = sorted(
        set(results.seconds) | set(results.failures),
        key=lambda k: (SCENARIOS.index(k[2]), k[0], k[1]),
    )
    for flag, state, scenario in keys:
        runs = sorted(results.seconds.get((flag, state, scenario), []))
        failed = results.failures.get((flag, state, scenario), 0)
        table.add_row(
            scenario,
            MODES[flag],
            f"{state:,}",
            f"{statistics.median(runs):.1f}" if runs else "-",
            f"{runs[0]:.1f} - {runs[-1]:.1f}" if runs else "-",
            f"{len(runs)}" + (f", {failed} failed" if failed else ""),
        )
    console.print(table)
    timing = Settings().on_embedded_broker()
    console.print(
        "no group timing set; a worker on the embedded broker with no broker configured uses "
        f"rebalance {timing.rebalance_timeout:g} s, session {timing.session_timeout:g} s, "
        f"heartbeat {timing.heartbeat_interval:g} s"
    )
    if results.wrong_answers:
        console.print(f"[bold red]{len(results.wrong_answers)} wrong answers:[/]")
        for line in results.wrong_answers[:20]:
            console.print(f"  {line}")
    else:
        console.print("wrong answers (a complete tally with another count): 0")

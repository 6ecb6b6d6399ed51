"""A stage of the worker in a process of its own (ingest, identity), on another core than
the worker's event loop, and supervised by it.

The worker starts a fresh interpreter (`python -c`, not multiprocessing: no re-import of
the worker's main module, no resource tracker) and speaks with it over a socket pair:

    worker -> child   the settings (first), START, (PACE, n), STOP
    child -> worker   Status: readiness, what its metrics did (`relay.py`), and what the
                      stage reports besides (every STATUS_EVERY seconds, and within a
                      tenth of a second of a change of a counter or of readiness)

A child that dies, or sends nothing for SILENT_MAX seconds while the worker listens (hung:
it is killed; time the worker itself stood still is not the child's silence), is
started again after a backoff, the worker not ready meanwhile; nothing is lost (a stage
commits its input only after its output is acknowledged). A worker that dies closes the
pipe, and the child stops on its own, leaving its groups, so the next worker's join does
not wait for a session to expire. A child ignores SIGINT and SIGTERM: a terminal's Ctrl-C
or a service manager signals the whole process group, and the worker stops its children.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from prometheus_client.metrics import MetricWrapperBase

from streams import metrics
from streams.config import Settings
from streams.kafka import no_auto_create
from streams.kafka.log_repeats import hold_back_repeats
from streams.pipeline import stop_deadline
from streams.pipeline.relay import Changes, MetricMirror, MetricRelay
from streams.pipeline.tuning import restore_root_level

log = logging.getLogger(__name__)

START, STOP, PACE = "start", "stop", "pace"
Order = str | tuple[str, int]
#: Seconds between two statuses of a child (sooner when something changed).
STATUS_EVERY = 1.0
#: Seconds the worker waits for a child to stop before it kills it.
STOP_TIMEOUT = 15.0
#: Backoff bounds between restarts of a child that died.
RESTART_FIRST, RESTART_MAX = 1.0, 30.0
#: A child's niceness: where it and the worker's event loop want the same core, the event
#: loop (the stateful stages and the API) comes first. A child only feeds the stages, and
#: runs ahead of them by at most CEASEFIRE_INGEST_LEAD_PACKS (100,000-report drain on two
#: cores, where the children and the broker took a core and a half at the start: 11.8 s
#: at niceness 0, 11.2 to 11.3 s at 5).
CHILD_NICE = 5
#: A child silent this long is hung (it sends a status every second): it is killed, and
#: started again as one that died.
SILENT_MAX = 30.0
#: Why a child was started again (`ceasefire_worker_process_restarts_total{cause}`).
EXITED, SILENT = "exited", "silent"
#: How often the worker looks for a silent child.
WATCH_EVERY = 1.0
#: A look this much later than due: the worker itself stood still (a frozen VM or container,
#: SIGSTOP, a loop held by a long step), and its children likely with it. That time is not
#: their silence: a 35 s freeze of a worker and its children killed both healthy children
#: at the worker's first look after it.
STOOD_STILL = 5.0


@dataclass(frozen=True)
class Status:
    ready: bool
    metrics: Changes = field(default_factory=Changes)
    #: ingest: monotonic time (one clock for the machine's processes) of its first record
    first_record_at: float | None = None
    #: identity: packs its stage has to apply, per (topic, partition) it owns
    behind: dict[tuple[str, int], int] = field(default_factory=dict)
    #: identity: input partitions of its stage that are stalled
    stalled: frozenset[int] = frozenset()

    def same_state(self, other: Status | None) -> bool:
        """Equal but for the metrics (which are sent when they change anyway)."""
        return other is not None and (
            self.ready,
            self.first_record_at,
            self.stalled,
            sum(self.behind.values()),
        ) == (other.ready, other.first_record_at, other.stalled, sum(other.behind.values()))


class ChildProcess:
    """The worker's side of one child: starts, supervises and stops it, and takes its
    statuses. Subclasses name the child's `entry` (a module with `main`) and may take
    more of a status in `take`."""

    name = "child"
    #: the module whose `main(argv)` the child runs
    entry = ""
    #: the metrics the child relays to the worker's
    relayed: Sequence[MetricWrapperBase] = ()

    def __init__(
        self,
        settings: Settings,
        *,
        on_ready: Callable[[], None] | None = None,
        on_lost: Callable[[], None] | None = None,
    ) -> None:
        self.settings = settings
        self.on_ready = on_ready
        self.on_lost = on_lost
        self.ready = False
        #: Child processes started so far (the first and any restarts).
        self.starts = 0
        self._mirror = MetricMirror(self.relayed)
        for cause in (EXITED, SILENT):  # at zero: `increase()` sees the first restart
            metrics.PROCESS_RESTARTS.labels(self.name, cause)
        self._process: subprocess.Popen[bytes] | None = None
        self._conn: Connection | None = None
        self._started = False
        self._stopping = False
        self._restart: asyncio.Task[None] | None = None
        self._backoff = RESTART_FIRST
        self._heard_at = 0.0
        #: the child was killed as hung (its end is then counted as SILENT)
        self._killed_silent = False
        self._watchdog: asyncio.Task[None] | None = None
        self.lost()  # nothing reported yet

    # -- what the worker asks ------------------------------------------------------------
    async def join(self) -> None:
        """Start the child (it joins its group while the worker's group joins)."""
        if self._process is None and not self._stopping:
            self._spawn()

    async def start(self) -> None:
        """The worker's topics are declared: the child may start its work."""
        await self.join()
        self._started = True
        self.send(START)

    def kill(self) -> None:
        """Kill the child at once (a forced exit of the worker: `stop_deadline`)."""
        self._stopping = True
        if self._process is not None and self._process.poll() is None:
            self._process.kill()

    async def stop(self, timeout: float | None = None) -> None:
        """Stop the child (idempotent), taking its last status; killed after `timeout`
        seconds (default STOP_TIMEOUT)."""
        wait = STOP_TIMEOUT if timeout is None else timeout
        self._stopping = True
        for task in (self._restart, self._watchdog):
            if task is not None:
                task.cancel()
        process = self._process
        if process is None:
            return
        self.send(STOP)
        try:
            await asyncio.to_thread(process.wait, wait)
        except subprocess.TimeoutExpired:
            log.error("the %s process did not stop in %.0f s; killing it", self.name, wait)
            process.kill()
            await asyncio.to_thread(process.wait, 5)
        self._drain()  # its last status: the counts of its last step
        self._close()

    def send(self, message: Order) -> None:
        if self._conn is None:
            return
        with contextlib.suppress(OSError):  # the child is gone; `_drain` sees the pipe end
            self._conn.send(message)

    # -- to give -------------------------------------------------------------------------
    def take(self, status: Status) -> None:
        """More of a status than readiness and metrics."""

    def lost(self) -> None:
        """The child is gone (or not started yet): forget what it reported."""

    # -- the child's lifecycle ------------------------------------------------------------
    def _spawn(self) -> None:
        restore_root_level()  # the child logs at the worker's level, not the spinner's
        level = logging.getLogger().getEffectiveLevel()
        # A fresh interpreter (a fork would copy the running loop and the state), given one
        # end of a socket pair; its first message is the settings.
        ours, theirs = socket.socketpair()
        command = f"import sys; from {self.entry} import main; main(sys.argv[1:])"
        process = subprocess.Popen(
            [sys.executable, "-c", command, str(theirs.fileno()), str(level)],
            pass_fds=[theirs.fileno()],
            stdin=subprocess.DEVNULL,
        )
        theirs.close()  # so that the child's death reads as the end of the pipe
        conn = Connection(ours.detach())
        conn.send(self.settings)
        self._process, self._conn = process, conn
        self.starts += 1
        self._heard_at = time.monotonic()
        if self._watchdog is None:
            self._watchdog = asyncio.get_running_loop().create_task(self._watch())
        asyncio.get_running_loop().add_reader(conn.fileno(), self._drain)
        if self._started:
            self.send(START)

    def _drain(self) -> None:
        """Take every status the child sent; notice its end."""
        conn = self._conn
        if conn is None:
            return
        try:
            while conn.poll():
                self._take(conn.recv())
        except (EOFError, OSError):
            self._lost()

    async def _watch(self) -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(WATCH_EVERY)
            now = time.monotonic()
            self._look(now, now - last)
            last = now

    def _look(self, now: float, since_last: float) -> None:
        """A watchdog's look, `since_last` seconds after the previous one."""
        stood_still = since_last - WATCH_EVERY
        if stood_still > STOOD_STILL:
            self._heard_at += stood_still  # the child's silence counts while we listen
            log.warning(
                "the worker stood still for %.0f s: the %s process's silence counts from now",
                stood_still,
                self.name,
            )
        self._kill_if_silent(now)

    def _kill_if_silent(self, now: float | None = None) -> None:
        silent = (time.monotonic() if now is None else now) - self._heard_at
        if self._process is not None and self._conn is not None and silent > SILENT_MAX:
            log.error("the %s process sent nothing for %.0f s; killing it", self.name, silent)
            self._process.kill()  # its end of the pipe closes: `_drain` starts another
            self._killed_silent = True
            self._heard_at = time.monotonic()  # once

    def _take(self, status: Status) -> None:
        self._heard_at = time.monotonic()
        if status.ready:  # a child that got going: its successor starts after 1 s again
            self._backoff = RESTART_FIRST
        self._mirror.apply(status.metrics)
        self.take(status)
        if status.ready != self.ready:
            self.ready = status.ready
            callback = self.on_ready if status.ready else self.on_lost
            if callback:
                callback()

    def _close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(ValueError, OSError):
                asyncio.get_running_loop().remove_reader(self._conn.fileno())
            self._conn.close()
        self._conn = None
        self._process = None

    def _lost(self) -> None:
        process = self._process
        self._close()
        if self._stopping:
            return
        self.ready = False
        cause = SILENT if self._killed_silent else EXITED
        self._killed_silent = False
        metrics.PROCESS_RESTARTS.labels(self.name, cause).inc()
        self._mirror.clear()
        self.lost()
        if self.on_lost:
            self.on_lost()
        respawn = self._respawn(process, self._backoff)
        self._restart = asyncio.get_running_loop().create_task(respawn)
        self._backoff = min(self._backoff * 2, RESTART_MAX)

    async def _respawn(self, dead: subprocess.Popen[bytes] | None, delay: float) -> None:
        code = None
        if dead is not None:  # reap it (it closed its end, so it is exiting, or hung)
            try:
                code = await asyncio.to_thread(dead.wait, STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                dead.kill()
                code = await asyncio.to_thread(dead.wait, 5)
        log.error(
            "the %s process ended (exit code %s); starting it again in %.0f s",
            self.name,
            code,
            delay,
        )
        await asyncio.sleep(delay)
        while not self._stopping:
            try:
                self._spawn()
                return
            except OSError:  # out of processes or descriptors: try again, later each time
                log.exception("starting the %s process failed; again in %.0f s", self.name, delay)
                delay = min(delay * 2, RESTART_MAX)
                await asyncio.sleep(delay)


# -- the child's side -----------------------------------------------------------------------
#: Seconds an orphaned child gets to stop (to commit and leave its group) before it exits.
ORPHAN_STOP_SECONDS = 20.0


def _exit(code: int) -> None:
    stop_deadline._exit_now(code)


def worker_gone(orders: asyncio.Queue[Order]) -> None:
    """The end of the pipe: the worker is gone (killed, even by SIGKILL). The child stops,
    within a deadline: with the broker away its stop waited for good (an identity process
    left by a killed worker ran for 2 minutes, and until the broker came back), and it
    ignores SIGTERM, so only SIGKILL ended it."""
    orders.put_nowait(STOP)
    stop_deadline.exit_after(
        ORPHAN_STOP_SECONDS,
        "the worker that started this process is gone, and its stop did not end",
        exit=lambda code: _exit(code),
    )


#: A child's work: given the settings, its orders and its reporter, runs until STOP.
Body = Callable[[Settings, "asyncio.Queue[Order]", "Reporter"], Awaitable[None]]


def child_main(
    argv: list[str], name: str, relayed: Sequence[MetricWrapperBase], body: Body
) -> None:
    """A child's entry: `argv` is the worker's end of the socket pair and the log level."""
    conn = Connection(int(argv[0]))
    settings: Settings = conn.recv()
    os.nice(CHILD_NICE)
    # The worker stops the child (see the module's doc); the end of the pipe stops it if
    # the worker is gone.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    logging.basicConfig(
        level=int(argv[1]),
        format=f"[%(asctime)s] [%(process)d] [%(levelname)s] {name}: %(message)s",
    )
    hold_back_repeats()
    no_auto_create.install()  # as the worker's own clients
    try:
        asyncio.run(_run(settings, conn, MetricRelay(relayed), body))
    finally:
        conn.close()


async def _run(settings: Settings, conn: Connection, relay: MetricRelay, body: Body) -> None:
    loop = asyncio.get_running_loop()
    orders: asyncio.Queue[Order] = asyncio.Queue()

    def read() -> None:
        try:
            while conn.poll():
                orders.put_nowait(conn.recv())
        except (EOFError, OSError):
            loop.remove_reader(conn.fileno())
            worker_gone(orders)

    loop.add_reader(conn.fileno(), read)
    reporter = Reporter(conn, relay)
    reporting = asyncio.create_task(reporter.run())
    try:
        await body(settings, orders, reporter)
    finally:
        reporting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reporting
        reporter.send()  # the counts of the last step


class Reporter:
    """The child's statuses: sent every STATUS_EVERY seconds, and within a tenth of a second
    of a change of a counter (a rejection, a step) or of the state, so that the worker's
    `/metrics` and readiness follow the child closely. The body sets `state`."""

    def __init__(self, conn: Connection, relay: MetricRelay) -> None:
        self.conn = conn
        self.relay = relay
        #: what the status says besides the metrics: `Status` fields by name
        self.state: Callable[[], dict[str, Any]] = lambda: {"ready": False}
        self._sent: Status | None = None

    async def run(self) -> None:
        last = 0.0
        while True:
            await asyncio.sleep(0.1)
            now = time.monotonic()
            changes = self.relay.changes()
            status = Status(metrics=changes, **self.state())
            if changes or now - last >= STATUS_EVERY or not status.same_state(self._sent):
                last = now
                self._send(status)

    def send(self) -> None:
        """A status now, with what is new in the metrics."""
        self._send(Status(metrics=self.relay.changes(), **self.state()))

    def _send(self, status: Status) -> None:
        try:
            self.conn.send(status)
        except OSError:  # the worker is gone: the reader stops the child
            return
        self._sent = status

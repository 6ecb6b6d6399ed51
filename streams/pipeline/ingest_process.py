"""The ingest stage in a process of its own, on another core than the stateful stages.

A worker is one Python process, so one core: validating, classifying and packing every
report (`ingest.py`) took a fifth of it under a backlog, beside the stages. Here a child
process runs `Ingest` (its consumer in the ingest group, its own producer); the worker
keeps the producer its stages share. They speak over a socket pair:

    worker -> child   START      Faust's topics are declared: the producer may start
                      (PACE, n)  the worker's stages have n packs to apply (`Ingest.pace`)
                      STOP       leave the group and exit
    child -> worker   Status     readiness, the first record's time, rejected reports
                                 since the last status, the input lag (every second, and
                                 within 0.1 s of a rejection or a change of readiness)

The rejections and the lag go into the worker's metrics, so `/metrics` is one process's
answer as before. A child that dies, or sends nothing for SILENT_MAX seconds (hung: it
is killed), is started again after a backoff, the worker not ready meanwhile (nothing is
lost: its offsets are committed only after its packs were acknowledged); a worker that
dies closes the pipe, and the child stops on its own, leaving its group, so the next
worker's join does not wait for its session to expire.
`CEASEFIRE_INGEST_PROCESS=false` runs ingest inside the worker instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection

from streams import metrics
from streams.classify.classifier import Classifier
from streams.classify.gazetteer import Gazetteer
from streams.classify.zones import ZoneCatalogue
from streams.config import Settings
from streams.kafka.groups import leave_from_first_generation
from streams.kafka.producer import SharedProducer
from streams.pipeline.ingest import Ingest
from streams.pipeline.lag import LagReport
from streams.pipeline.tuning import limit_malloc_arenas, restore_root_level, tune_for_throughput

log = logging.getLogger(__name__)

START, STOP, PACE = "start", "stop", "pace"
#: The child's command (`-c`, not `-m`: what it pickles must name this module, not __main__).
CHILD = "import sys; from streams.pipeline.ingest_process import main; main(sys.argv[1:])"
#: Seconds between two statuses of the child (sooner when readiness changes).
STATUS_EVERY = 1.0
#: Seconds the worker waits for the child to stop before it kills it.
STOP_TIMEOUT = 15.0
#: Backoff bounds between restarts of a child that died.
RESTART_FIRST, RESTART_MAX = 1.0, 30.0
#: A child silent this long is hung (it sends a status every second): it is killed, and
#: started again as one that died.
SILENT_MAX = 30.0


@dataclass(frozen=True)
class Status:
    ready: bool
    first_record_at: float | None
    #: Reports dead-lettered since the previous status, by reason.
    rejected: dict[str, float] = field(default_factory=dict)
    #: Consumer lag per (topic, partition) the child owns now.
    lag: dict[tuple[str, int], int] = field(default_factory=dict)


class IngestProcess:
    """Runs and supervises the ingest child; the worker's side of the pipe. Offers what the
    worker asks of `Ingest`: `join`, `start`, `stop`, `pace`, `shared` (the producer its
    stages share), and `first_record_at`."""

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
        self.shared = SharedProducer(settings, f"{settings.app_id}-stages")
        #: monotonic time (one clock for all processes of the machine) of the first record
        self.first_record_at: float | None = None
        self.ready = False
        #: Child processes started so far (the first and any restarts).
        self.starts = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._conn: Connection | None = None
        self._started = False
        self._stopping = False
        self._lag = LagReport()
        self._restart: asyncio.Task[None] | None = None
        self._backoff = RESTART_FIRST
        self._heard_at = 0.0
        self._watchdog: asyncio.Task[None] | None = None

    # -- what the worker asks of an ingest stage ----------------------------------------
    async def join(self) -> None:
        """Start the child: it joins the ingest group while Faust's group joins."""
        if self._process is None and not self._stopping:
            self._spawn()

    async def start(self) -> None:
        """Faust's topics are declared: start the stages' producer and the child's loop."""
        tune_for_throughput()  # the worker's logging is set up by now
        await self.join()
        await self.shared.start()
        self._started = True
        self._send(START)

    def pace(self, behind: int) -> None:
        """The worker's stages have `behind` packs to apply: the child holds or goes on."""
        self._send((PACE, behind))

    async def stop(self) -> None:
        # Idempotent: the worker calls it from both ingest services.
        self._stopping = True
        for task in (self._restart, self._watchdog):
            if task is not None:
                task.cancel()
        process = self._process
        if process is not None:
            self._send(STOP)
            try:
                await asyncio.to_thread(process.wait, STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                log.error("the ingest process did not stop in %.0f s; killing it", STOP_TIMEOUT)
                process.kill()
                await asyncio.to_thread(process.wait, 5)
            self._drain()  # its last status: the rejections of its last batch
            self._close()
        await self.shared.stop()

    # -- the child's lifecycle ------------------------------------------------------------
    def _spawn(self) -> None:
        restore_root_level()  # the child logs at the worker's level, not the spinner's
        level = logging.getLogger().getEffectiveLevel()
        # A fresh interpreter (a fork would copy the running loop and the state), given one
        # end of a socket pair; its first message is the settings.
        ours, theirs = socket.socketpair()
        process = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(theirs.fileno()), str(level)],
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
            self._send(START)

    def _send(self, message: str | tuple[str, int]) -> None:
        if self._conn is None:
            return
        with contextlib.suppress(OSError):  # the child is gone; `_drain` sees the pipe end
            self._conn.send(message)

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
        while True:
            await asyncio.sleep(1.0)
            self._kill_if_silent()

    def _kill_if_silent(self) -> None:
        silent = time.monotonic() - self._heard_at
        if self._process is not None and self._conn is not None and silent > SILENT_MAX:
            log.error("the ingest process sent nothing for %.0f s; killing it", silent)
            self._process.kill()  # its end of the pipe closes: `_drain` starts another
            self._heard_at = time.monotonic()  # once

    def _take(self, status: Status) -> None:
        self._heard_at = time.monotonic()
        if status.ready:  # a child that got going: its successor starts after 1 s again
            self._backoff = RESTART_FIRST
        if status.first_record_at is not None and self.first_record_at is None:
            self.first_record_at = status.first_record_at
        for reason, n in status.rejected.items():
            metrics.REJECTED.labels(reason).inc(n)
        self._lag.publish(status.lag)
        if status.ready and not self.ready:
            self.ready = True
            if self.on_ready:
                self.on_ready()

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
        self._lag.publish({})
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
            "the ingest process ended (exit code %s); starting it again in %.0f s", code, delay
        )
        await asyncio.sleep(delay)
        while not self._stopping:
            try:
                self._spawn()
                return
            except OSError:  # out of processes or descriptors: try again, later each time
                log.exception("starting the ingest process failed; again in %.0f s", delay)
                delay = min(delay * 2, RESTART_MAX)
                await asyncio.sleep(delay)


# -- the child ------------------------------------------------------------------------------
def main(argv: list[str]) -> None:
    """The child's entry (`CHILD`): the worker's end of the socket pair, the log level."""
    conn = Connection(int(argv[0]))
    child_main(conn.recv(), conn, int(argv[1]))


def child_main(settings: Settings, conn: Connection, level: int) -> None:
    # The worker stops the child (Ctrl-C in a terminal, or a service manager, signals the
    # whole process group); the end of the pipe stops it if the worker is gone.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    logging.basicConfig(
        level=level, format="[%(asctime)s] [%(process)d] [%(levelname)s] ingest: %(message)s"
    )
    try:
        asyncio.run(_child(settings, conn))
    finally:
        conn.close()


async def _child(settings: Settings, conn: Connection) -> None:
    limit_malloc_arenas()
    leave_from_first_generation()
    loop = asyncio.get_running_loop()
    orders: asyncio.Queue[str | tuple[str, int]] = asyncio.Queue()

    def read() -> None:
        try:
            while conn.poll():
                orders.put_nowait(conn.recv())
        except (EOFError, OSError):  # the worker is gone
            loop.remove_reader(conn.fileno())
            orders.put_nowait(STOP)

    loop.add_reader(conn.fileno(), read)
    classifier = Classifier(ZoneCatalogue.load(settings.zones), Gazetteer.load(settings.gazetteer))
    reporter = _Reporter(conn)
    ingest = reporter.ingest = Ingest(settings, classifier, on_ready=reporter.on_ready)
    reporting = asyncio.create_task(reporter.run())
    try:
        await ingest.join()
        while (order := await orders.get()) != STOP:
            if order == START and ingest.producer is None:
                await ingest.start()
            elif isinstance(order, tuple) and order[0] == PACE:
                ingest.pace(order[1])
    finally:
        await ingest.stop()
        reporting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reporting
        reporter.send()  # the rejections of the last batch


class _Reporter:
    """The child's statuses: what changed in its metrics since the last one. Sent every
    STATUS_EVERY seconds, and within a tenth of a second of a rejection or of a change of
    readiness, so that `/metrics` follows the dead-letter topic closely."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.ingest: Ingest | None = None
        self.ready = False
        #: per reason, the total already reported
        self._rejected: dict[str, float] = {}
        self._sent: tuple[bool, float | None] | None = None

    def on_ready(self) -> None:
        self.ready = True

    async def run(self) -> None:
        last = 0.0
        while True:
            await asyncio.sleep(0.1)
            now = time.monotonic()
            rejected = self._new_rejections()
            if rejected or now - last >= STATUS_EVERY or self._state() != self._sent:
                last = now
                self.send(rejected)

    def _state(self) -> tuple[bool, float | None]:
        return self.ready, self.ingest.first_record_at if self.ingest else None

    def _new_rejections(self) -> dict[str, float]:
        """Per reason, the rejections counted since the last call."""
        new: dict[str, float] = {}
        for family in metrics.REJECTED.collect():
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    reason = sample.labels["reason"]
                    delta = sample.value - self._rejected.get(reason, 0.0)
                    if delta:
                        new[reason] = delta
                        self._rejected[reason] = sample.value
        return new

    def send(self, rejected: dict[str, float] | None = None) -> None:
        """A status; with `rejected` (taken from `_new_rejections`), or what is new now."""
        if rejected is None:
            rejected = self._new_rejections()
        lag = {
            (s.labels["topic"], int(s.labels["partition"])): int(s.value)
            for family in metrics.CONSUMER_LAG.collect()
            for s in family.samples
        }
        state = self._state()
        try:
            self.conn.send(Status(state[0], state[1], rejected, lag))
        except OSError:  # the worker is gone: the reader stops the child
            return
        self._sent = state

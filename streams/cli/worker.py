"""`run`, `broker` and `topics`: a worker with the checks before it starts (files, API
access, data directory, API port), the embedded broker on its own, the topics."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from typing import TYPE_CHECKING, Any

from rich.console import Console

from streams.cli import common
from streams.cli.common import CliError, notice, settings_from
from streams.config import Settings, url_host

if TYPE_CHECKING:
    from streams.kafka.broker import EmbeddedBroker


class StopAsked(BaseException):
    """SIGTERM before the Faust worker took the signal over. A BaseException, as
    KeyboardInterrupt is, so that no `except Exception` on the way (a client's retry
    loop) takes it for an error and goes on."""


def _stop_asked(signum: int, frame: Any) -> None:
    raise StopAsked


def cmd_run(args: argparse.Namespace) -> int:
    """A worker until it is stopped; then the process ends at once (`_exit_now`)."""
    # Faust's worker stops on SIGTERM once it runs; before that (the checks, the embedded
    # broker, the topics: seconds on a busy machine) the default action killed the
    # process (-15), past the `finally` that stops the embedded broker it started.
    signal.signal(signal.SIGTERM, _stop_asked)
    try:
        code = _run(args)
    except StopAsked:
        notice("Stopped (SIGTERM) before the worker started.")
        code = 0
    _exit_now(code)
    return code  # not reached


def _exit_now(code: int) -> None:
    """End the process without tearing down its objects. The worker has stopped cleanly
    (offsets committed, groups left, broker stopped); what is left is the interpreter
    freeing the state one object at a time, which took over 60 s for a worker holding
    1,000,000 reports: longer than an orchestrator waits after SIGTERM before a kill."""
    import logging

    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _check_files(settings: Settings) -> None:
    """The zone catalogue, the gazetteer and the rule file read as the worker reads them;
    an error in one is a CliError (one line)."""
    from alerting.rules import RuleFileError, load_rules
    from streams.classify.gazetteer import Gazetteer, GazetteerError
    from streams.classify.zones import CatalogueError, ZoneCatalogue

    try:
        zones = ZoneCatalogue.load(settings.zones)
        Gazetteer.load(settings.gazetteer)
        rules = load_rules(settings.rules, known_zones=zones.ids)
    except (RuleFileError, CatalogueError, GazetteerError) as exc:
        raise CliError(str(exc)) from exc
    if not rules.active_rules:  # valid, and maybe meant: said, so that it is not a surprise
        notice(
            f"[bold yellow]warning:[/] the rule file {settings.rules} has no enabled rule: "
            "this worker raises no alert"
        )


def _check_api_access(settings: Settings) -> None:
    """The tokens file read, and no worker the network reaches without a token unless
    CEASEFIRE_ANONYMOUS_POST says so (streams/web/access.py): one line each."""
    from streams.web.access import AccessError, check_access
    from streams.web.tokens import TokenFileError

    try:
        check_access(settings)
    except (AccessError, TokenFileError) as exc:
        raise CliError(str(exc)) from exc


def _check_data_dir(settings: Settings) -> None:
    """CEASEFIRE_DATA_DIR made and writable, in one line if not: Faust creates its app
    directory there once the broker answers, and a read-only one was a 27-line traceback."""
    import tempfile

    path = settings.data_dir
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        why = exc.strerror or type(exc).__name__
        raise CliError(f"CEASEFIRE_DATA_DIR: {path}: {why}") from exc


def _raise_open_file_limit() -> None:
    """The soft open-file limit up to the hard one (streams/web/admission.py), before the
    embedded broker and the worker start: the API's connection limits are shares of it."""
    from streams.web.admission import raise_open_file_limit

    raised = raise_open_file_limit()
    if raised is not None:
        notice(f"Open-file limit (ulimit -n) raised from {raised[0]} to {raised[1]}.")


def _run(args: argparse.Namespace) -> int:
    from streams.kafka.broker import (
        BrokerError,
        EmbeddedBroker,
        port_open,
        taken_by_another_program,
    )
    from streams.kafka.reachable import answers_kafka
    from streams.kafka.topics import BrokerUnavailable, TopicMismatch, ensure_topics

    settings = settings_from(args)
    _check_files(settings)  # a broken file is one line, before a broker is started
    _check_api_access(settings)
    _check_data_dir(settings)
    _raise_open_file_limit()
    reserve_api_port(settings)  # first: a port in use must not cost the cluster a rebalance
    broker: EmbeddedBroker | None = None
    configured = settings.broker is not None  # --broker or CEASEFIRE_BROKER
    port = settings.embedded_port
    if settings.broker is None and port_open("127.0.0.1", port):
        # `ceasefire-monitor broker`, or another worker's embedded broker: join it; anything
        # else there failed only after kafka-python's 30 s bootstrap, as "no broker"
        if not answers_kafka("127.0.0.1", port):
            raise CliError(taken_by_another_program("127.0.0.1", port))
        settings = settings.on_embedded_broker()
        notice(
            f"Using the broker already listening on 127.0.0.1:{port}. If it is an embedded "
            "one, its data is in memory only and goes when its process stops."
        )
    elif settings.broker is None:
        broker = EmbeddedBroker("127.0.0.1", port)
        try:
            broker.start()
        except BrokerError as exc:
            raise CliError(str(exc)) from exc
        settings = settings.on_embedded_broker()
        _stop_broker_on_forced_exit(broker)
        notice(
            f"[bold yellow]Embedded broker[/] (Tansu) on {broker.bootstrap}: "
            "[bold]its data is kept in memory only[/] and is gone when this worker stops. "
            "To restart workers without losing it, run `ceasefire-monitor broker` on its own "
            "first. Set --broker or CEASEFIRE_BROKER for a real Kafka."
        )
    try:
        try:
            if configured:
                settings = _timing_for(settings)
            ensure_topics(settings)
        except (BrokerUnavailable, TopicMismatch) as exc:
            raise CliError(str(exc)) from exc
        if configured:
            _warn_of_config_drift(settings)
        if broker is None:  # a broker this worker just started holds no other workers
            _refuse_mixed_identity_modes(settings)
        from streams.pipeline.app import Monitor

        monitor = Monitor(settings)
        demo: threading.Thread | None = None
        stop = threading.Event()
        if args.demo:
            demo = threading.Thread(
                target=_demo_feed, args=(settings, stop), name="demo-feed", daemon=True
            )
            demo.start()
        url = settings.web_url()
        # the other commands find the API on port 6066 unless told: say how when it is not
        to_it = "" if settings.web_port == 6066 else f" --url {url}"
        notice(
            f"API {url}/api/v1/tallies?window=24h&by=zone  ·  metrics {url}/metrics  ·  "
            f"`ceasefire-monitor tallies{to_it}` in another shell"
        )
        if settings.advertises_a_wildcard():
            notice(
                f"[bold yellow]warning:[/] CEASEFIRE_WEB_HOST is {settings.web_host} (every "
                "address) and CEASEFIRE_ADVERTISED_URL is unset: this worker tells its peers "
                f"it is at {url}, where they cannot reach it. With more than one worker, set "
                "CEASEFIRE_ADVERTISED_URL to a URL they can (e.g. http://worker-1:6066)."
            )
        import faust

        worker = faust.Worker(monitor.app, loglevel=args.loglevel, quiet=True)
        _no_spinner_unless_terminal(worker)
        try:
            worker.execute_from_commandline()
        except SystemExit as exc:
            return int(exc.code or 0)
        finally:
            stop.set()
        return 0
    finally:
        if broker is not None:
            broker.stop()
            notice("Embedded broker stopped; its in-memory data is gone.")


def _no_spinner_unless_terminal(worker: Any) -> None:
    """Faust's start-up spinner writes cursor codes (`ESC[?25l`, `ESC[?25h`) to stdout
    whether or not it is a terminal, and "OK ^" when it is not: none of it in a log."""
    spinner = getattr(worker, "spinner", None)
    isatty = getattr(getattr(spinner, "file", None), "isatty", None)
    if spinner is not None and not (isatty is not None and isatty()):
        worker.spinner = None


def _stop_broker_on_forced_exit(broker: EmbeddedBroker) -> None:
    """A worker that stops with its broker gone exits without running `finally` blocks
    (`stop_deadline`): the embedded broker it started must not outlive it (it may be alive
    but not answering)."""
    from streams.pipeline import stop_deadline

    def stop() -> None:
        broker.stop()
        notice("Embedded broker stopped; its in-memory data is gone.")

    stop_deadline.at_forced_exit(stop)


def _timing_for(settings: Settings) -> Settings:
    """A configured broker that is the embedded one (`--broker kafka://127.0.0.1:9092`
    naming `ceasefire-monitor broker`) gets the embedded broker's short group timings,
    as when it is found with no broker configured: with Apache Kafka's 30 s sessions,
    every join there is held 15 s (issue 9: joins took 36 s, a takeover 47 s)."""
    from streams.kafka.broker import is_embedded

    if not is_embedded(settings):
        return settings
    notice(
        f"{settings.bootstrap()} is an embedded broker: its data is in memory only and goes "
        "when its process stops; short consumer-group timings, unless set."
    )
    return settings.with_embedded_timing()


def reserve_api_port(settings: Settings) -> None:
    """Bind the API's address before the broker, Faust or the demo start (the API server
    takes the bound sockets when it starts): one clear line if it cannot be."""
    import errno

    from streams.web import listen

    host, port = settings.web_host, settings.web_port
    try:
        listen.reserve(host, port)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise CliError(
                f"port {port} on {host} is already in use (another worker?); "
                "choose another with --web-port or CEASEFIRE_WEB_PORT"
            ) from exc
        raise CliError(f"cannot listen on {url_host(host)}:{port} for the API: {exc}") from exc


def cmd_broker(args: argparse.Namespace) -> int:
    """The embedded broker on its own, so that workers can stop and start around it."""
    from streams.kafka.broker import BrokerError, EmbeddedBroker

    broker = EmbeddedBroker("127.0.0.1", settings_from(args).embedded_port)
    # SIGTERM as Ctrl-C: it interrupts the wait below, and the broker is stopped after it.
    # (Stopping inside a handler waits for the child while the interrupted wait holds it.)
    # Ctrl-C too, explicitly: a shell starting the command in the background (`&` in a
    # script) hands it SIGINT ignored, and it would then wait for good.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    code: int | None = None  # the broker's exit code, when it ended without being asked
    try:
        broker.start()
        notice(
            f"[bold yellow]Embedded broker[/] (Tansu) on {broker.bootstrap}: "
            "[bold]its data is kept in memory only[/] and is gone when this command stops "
            "(Ctrl-C). `ceasefire-monitor run` and every other command find it there."
        )
        code = broker.wait()
    except BrokerError as exc:
        raise CliError(str(exc)) from exc
    except KeyboardInterrupt:
        pass
    finally:
        # A second Ctrl-C or SIGTERM must not cut the stop short (it is bounded anyway).
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        broker.stop()
    notice("Embedded broker stopped; its in-memory data is gone.")
    if code is not None:
        # Only Ctrl-C or SIGTERM (above) is a stop asked for; any other end is a failure,
        # code 0 too (Tansu panics and exits 0), and Tansu's last lines say why.
        raise CliError(f"the embedded broker exited on its own with code {code}{broker.why()}")
    return 0


def _demo_feed(settings: Settings, stop: threading.Event) -> None:
    from streams.tools.simulate import run_simulation

    try:
        run_simulation(
            settings, rate=5.0, duration=None, seed=2020, console=Console(stderr=True), stop=stop
        )
    except Exception as exc:  # the demo must never take the worker down
        from rich.markup import escape

        # escaped: a `[/]` in the message raised again here, and the reason was lost
        notice(f"[red]demo feed stopped:[/] {escape(str(exc))}")


def _warn_of_config_drift(settings: Settings) -> None:
    """A warning when existing topics keep another retention than the settings give (a
    raised CEASEFIRE_RETENTION_DAYS does not reach topics that exist: `topics` sets it)."""
    from rich.markup import escape

    from streams.kafka.topics import BrokerUnavailable, config_drift

    try:
        drift = [d for d in config_drift(settings) if d.have is not None]
    except BrokerUnavailable as exc:
        notice(f"[bold yellow]warning:[/] {escape(str(exc))}")
        return
    if drift:
        said = "; ".join(f"{d.topic} {d.key} {d.have} (settings: {d.want})" for d in drift)
        notice(
            f"[bold yellow]warning:[/] existing topics differ from the settings: "
            f"{escape(said)}. Run `ceasefire-monitor topics --update-config` to set them."
        )


def _refuse_mixed_identity_modes(settings: Settings, *, poll: float = 1.0) -> None:
    """A CliError when workers of the other CEASEFIRE_IDENTITY_PROCESS are in the cluster
    (each report would count twice). Members of stopped workers stay until their session
    ends, so a mix is refused only once it outlasts a session timeout. The embedded broker
    lists a stopped worker until another joins its group, for good if none does: there a
    mix is said, not refused."""
    import time

    from rich.markup import escape

    from streams.kafka.group_members import GroupsUnknown, member_ids
    from streams.pipeline.identity_mode import groups_to_ask, mixed_modes

    deadline = time.monotonic() + settings.session_timeout + 2 * poll
    said = False
    while True:
        try:
            mix = mixed_modes(settings, member_ids(settings, groups_to_ask(settings)))
        except GroupsUnknown as exc:
            notice(
                "[bold yellow]warning:[/] could not check that the workers of this cluster "
                f"run the identity stage alike: {escape(str(exc))}"
            )
            return
        if mix is None:
            return
        if not settings.leader_leaves:  # the embedded broker (`EMBEDDED_GROUP_SETTINGS`)
            notice(
                f"[bold yellow]warning:[/] {escape(mix.found())}, or did: the embedded broker "
                "lists a stopped worker until another joins its group. If they run, this "
                "worker and they each apply every report, and count it twice: set the same "
                "CEASEFIRE_IDENTITY_PROCESS on every worker."
            )
            return
        if time.monotonic() >= deadline:
            raise CliError(mix.why())
        if not said:
            notice(
                f"{escape(mix.found())}: waiting up to {settings.session_timeout:g} s "
                "(CEASEFIRE_SESSION_TIMEOUT) in case they have stopped and the broker has not "
                "yet noticed ..."
            )
            said = True
        time.sleep(poll)


def cmd_topics(args: argparse.Namespace) -> int:
    from streams.kafka.topics import (
        BrokerUnavailable,
        TopicMismatch,
        config_drift,
        ensure_topics,
        topic_partitions,
        topic_specs,
        update_configs,
    )

    settings = settings_from(args)  # --partitions, --replication-factor validated there
    try:
        created = ensure_topics(settings)
        have = topic_partitions(settings)  # what the broker holds, not what was asked
        drift = [d for d in config_drift(settings) if d.topic not in created]
        if args.update_config:
            update_configs(settings, drift)
    except (BrokerUnavailable, TopicMismatch) as exc:
        raise CliError(str(exc)) from exc
    for spec in topic_specs(settings):
        state = "created" if spec.name in created else "exists"
        n = have.get(spec.name, spec.partitions)
        common.out.print(f"{spec.name:40} {n:3} partition{'' if n == 1 else 's'}  {state}")
        for d in (d for d in drift if d.topic == spec.name):
            was = "not described by the broker" if d.have is None else d.have
            if args.update_config:
                common.out.print(f"  {d.key}: {was} -> {d.want}  set", soft_wrap=True)
            elif d.have is not None:
                common.out.print(f"  {d.key}: {d.have}, the settings give {d.want}", soft_wrap=True)
    known = [d for d in drift if d.have is not None]
    if known and not args.update_config:
        common.out.print(
            f"{len(known)} config{'' if len(known) == 1 else 's'} of existing topics differ "
            "from the settings (CEASEFIRE_RETENTION_DAYS, CEASEFIRE_REPLICATION_FACTOR): run "
            "`ceasefire-monitor topics --update-config` to set them. A shorter retention "
            "deletes what is older than it.",
            soft_wrap=True,
        )
    return 0

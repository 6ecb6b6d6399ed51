"""`alerts`: the alert topic's events, from its end or its start, as lines or JSON."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

from streams.cli import common
from streams.cli.common import SEVERITY_STYLE, CliError, settings_from
from streams.config import Settings

if TYPE_CHECKING:
    from rich.text import Text

    from schemas.alert import AlertEvent


def cmd_alerts(args: argparse.Namespace) -> int:
    """Subscribe to the alert topic with kafka-python."""
    from kafka import KafkaConsumer
    from kafka.errors import KafkaError

    from schemas.alert import AlertEvent
    from streams.kafka.reachable import check_listening
    from streams.kafka.tls import check_tls
    from streams.kafka.topics import unreachable

    settings = settings_from(args)
    check_listening(settings)
    check_tls(settings)
    try:
        consumer = KafkaConsumer(
            bootstrap_servers=settings.bootstrap(),
            # the start is sought explicitly (`_start_at_the_end_or_beginning`); this is for
            # a position out of range later (Apache Kafka, the topic created again): all of
            # the new topic, where "latest" skipped what it held by then
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            group_id=None,
            # --follow: the iteration ends every few idle seconds to look at the positions
            consumer_timeout_ms=FOLLOW_CHECK_MS if args.follow else 3000,
            fetch_max_wait_ms=settings.fetch_max_wait_ms,
            # Subscribing to a missing topic asked the broker to create it, with its default
            # partitions and retention rather than those of `run` and `topics`. kafka-python
            # 3.0.12 does not pass this on to its metadata requests: the topic is never
            # subscribed to either (`_start_at_the_end_or_beginning`).
            allow_auto_create_topics=False,
            **settings.kafka_security(),
        )
    except KafkaError as exc:
        raise CliError(str(unreachable(settings))) from exc
    shown = 0
    try:
        wait = float("inf") if args.follow else 3.0
        _start_at_the_end_or_beginning(consumer, settings, args.from_beginning, wait)
        while True:
            for record in consumer:
                try:
                    event = AlertEvent.model_validate_json(record.value or b"")
                    alert = json.loads(record.value)
                except ValueError as exc:  # another writer's record, or a tombstone: skipped
                    common.console.print(
                        f"skipped a record that is not an alert event at {record.topic} "
                        f"partition {record.partition} offset {record.offset}: "
                        f"{str(exc).splitlines()[0]}",
                        soft_wrap=True,
                    )
                    continue
                shown += 1
                if args.json:
                    print(json.dumps(alert), flush=True)
                    continue
                # one line an alert into a pipe or a file (grep, a log), folded on a terminal
                common.out.print(alert_line(event), soft_wrap=not common.out.is_terminal)
            if not args.follow:
                break
            rewind_beyond_end(consumer)
    except KeyboardInterrupt:
        pass
    except _NoTopic:
        raise CliError(
            f"there is no topic {settings.alerts_topic} on {settings.bootstrap()}: no worker "
            "has run with these settings yet, or the topic prefix (CEASEFIRE_TOPIC_PREFIX) or "
            "the broker is not the workers' (`run` and `topics` create it)"
        ) from None
    finally:
        consumer.close()
    if not shown and not args.follow:
        # say so, rather than exit silently (without flags it reads only what comes in 3 s)
        common.console.print(
            f"no alerts on {settings.alerts_topic}"
            if args.from_beginning
            else f"no new alert on {settings.alerts_topic} within 3 s (--from-beginning: the "
            "alerts sent before; --follow: wait for new ones)",
            soft_wrap=True,
        )
    return 0


def alert_line(event: AlertEvent) -> Text:
    """One alert as `alerts` prints it. Text, not markup: a summary quotes a report's
    source and place, free text in which a `[/]` crashed the subscriber (at the same record
    on every --from-beginning) and a `[red]` vanished. Read from the validated event: a
    resolved event may leave `ends_at` out (then its start is shown)."""
    from rich.text import Text

    times = event.model_dump(mode="json", include={"starts_at", "ends_at"})  # the topic's form
    ended = times["ends_at"] if event.status == "resolved" else None
    labels = ", ".join(f"{k}={v}" for k, v in sorted(event.labels.items()))
    line = Text(
        f"{event.status.upper():8} {event.severity:8}",
        style=SEVERITY_STYLE.get(event.severity, ""),
    )
    line.append(f" {ended or times['starts_at']}  {event.rule}  {labels}  {event.summary}")
    return line


#: How long --follow waits for records before it looks whether a partition restarted
FOLLOW_CHECK_MS = 2000


def rewind_beyond_end(consumer: Any) -> list[tuple[int, int, int]]:
    """Read again from its start each partition whose position is beyond its end, saying
    so; (partition, position, end) of each. The topic was created again below where this
    subscriber was (an embedded broker restarted empty): the broker answers a fetch there
    with nothing and no error, and --follow went silent for good."""
    from streams.kafka.offsets import beyond_end

    tps = consumer.assignment()
    ends = {tp: consumer.highwater(tp) for tp in tps}  # of the last fetch: the exact end
    rewound = []
    for tp, (position, end) in sorted(
        beyond_end({tp: consumer.position(tp) for tp in tps}, ends).items()
    ):
        common.console.print(
            f"{tp.topic} partition {tp.partition}: this subscriber's position {position} is "
            f"beyond the partition's end {end}: the topic was created again (an embedded "
            "broker restarted); reading it from its start",
            soft_wrap=True,
        )
        consumer.seek_to_beginning(tp)
        rewound.append((tp.partition, position, end))
    return rewound


class _NoTopic(Exception):
    """The alert topic did not appear within the wait: there is no alert to show."""


def _wait_for_topic(consumer: Any, topic: str, timeout: float) -> set[int]:
    """The partitions of `topic` once it exists (`run` or `topics` creates it), asking
    the broker for all topics every half second, which creates none; empty if it does not
    appear within `timeout` seconds (infinity: wait until it does)."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        partitions: set[int] = consumer.partitions_for_topic(topic)
        if partitions or time.monotonic() >= deadline:
            return partitions
        time.sleep(0.5)


def _start_at_the_end_or_beginning(
    consumer: Any, settings: Settings, beginning: bool, wait: float
) -> None:
    """Read the alert topic from its start, or from its exact end: the end the broker lists
    may fall short (the embedded broker's is the last batch's start + 1, so `latest`
    showed the last alerts again as new), so it is read from a fetch's high watermark.
    A missing topic is never subscribed to (that created it): it is waited for `wait`
    seconds (3 s; --follow: for good), else `_NoTopic`."""
    import asyncio

    from kafka import TopicPartition

    from streams.kafka.offsets import exact_end_offsets

    topic = settings.alerts_topic
    partitions = consumer.partitions_for_topic(topic)
    if not partitions:
        partitions = _wait_for_topic(consumer, topic, wait)
        if not partitions:
            raise _NoTopic(topic)
        beginning = True  # created since this command started: every alert on it is new
    tps = [TopicPartition(topic, p) for p in sorted(partitions)]
    consumer.assign(tps)
    if beginning:
        consumer.seek_to_beginning(*tps)
        return
    from aiokafka import TopicPartition as AioPartition  # what the aiokafka helper takes

    asked = [AioPartition(topic, tp.partition) for tp in tps]
    ends = asyncio.run(exact_end_offsets(settings.bootstrap(), asked, **settings.kafka_security()))
    for tp in tps:
        consumer.seek(tp, ends[AioPartition(topic, tp.partition)])

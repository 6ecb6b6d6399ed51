"""The Kafka client's repeated error lines held back (`streams/kafka/log_repeats.py`)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from streams.kafka.log_repeats import KAFKA_LOGGERS, RepeatFilter, hold_back_repeats


def record(msg: str, *args: object, name: str = "aiokafka.conn") -> logging.LogRecord:
    return logging.LogRecord(name, logging.ERROR, __file__, 1, msg, args, None)


def test_a_repeat_within_the_period_is_counted_and_the_next_line_shown_says_so() -> None:
    now = [0.0]
    f = RepeatFilter(every=30, clock=lambda: now[0])
    unable = "Unable connect to node with id %s: %s"
    assert f.filter(record(unable, 111, "refused"))
    for step in range(1, 300):  # every 100 ms for 30 s
        now[0] = step / 10
        assert not f.filter(record(unable, 111, "refused"))
    # another kind of line (logger or template) is shown at once: nothing new is hidden
    assert f.filter(record("Failed fetch messages from %s: %s", 111, "NodeNotReady"))
    assert f.filter(record(unable, 111, "refused", name="aiokafka.cluster"))
    now[0] = 30.0
    shown = record(unable, 111, "refused")
    assert f.filter(shown)
    assert shown.getMessage() == (
        "Unable connect to node with id 111: refused (299 more like it in 30 s)"
    )
    now[0] = 61.0
    again = record(unable, 111, "refused")
    assert f.filter(again) and again.getMessage() == "Unable connect to node with id 111: refused"


@pytest.fixture
def unfiltered() -> Iterator[None]:
    yield
    for name in KAFKA_LOGGERS:
        logger = logging.getLogger(name)
        for f in [f for f in logger.filters if isinstance(f, RepeatFilter)]:
            logger.removeFilter(f)


@pytest.mark.usefixtures("unfiltered")
def test_the_kafka_loggers_are_filtered_once(caplog: pytest.LogCaptureFixture) -> None:
    hold_back_repeats()
    hold_back_repeats()
    for name in KAFKA_LOGGERS:
        filters = [f for f in logging.getLogger(name).filters if isinstance(f, RepeatFilter)]
        assert len(filters) == 1, name
    log = logging.getLogger("aiokafka.consumer.fetcher")
    with caplog.at_level(logging.ERROR, logger="aiokafka.consumer.fetcher"):
        for _ in range(50):
            log.error("Failed fetch messages from %s: %s", 7, "gone")
    assert len(caplog.records) == 1

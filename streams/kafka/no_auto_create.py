"""Kafka clients of this process never ask the broker to create a topic.

aiokafka asks for it in every metadata request (`allow_auto_topic_creation`, always true),
and so does kafka-python (its `allow_auto_create_topics` does not reach its metadata
requests): a client of a missing topic had the broker create it with its own default
partitions, 4 on the embedded broker, `num.partitions` (1) on Apache Kafka. After the
embedded broker restarted empty, the theatre stage's one-partition changelog came back
with 4, and every later start of the worker refused it; `simulate` or `alerts --follow`
running then brought the input topic back with 4 of 2 partitions, half of it never read.
Topics are created by `run` and `topics` with their partitions and configs, and again by a
worker that finds them gone (`topics.create_missing`); a client meanwhile waits for them.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager

import aiokafka.client
from aiokafka.protocol.metadata import MetadataRequest
from kafka.cluster import ClusterMetadata

_KAFKA_PYTHON = "allow_auto_create_topics"


def install() -> None:
    """For every aiokafka client (Faust's among them) and kafka-python client of this
    process, for good: the worker's processes; idempotent."""
    if not isinstance(aiokafka.client.MetadataRequest, functools.partial):
        # the client builds its requests by this module-level name
        aiokafka.client.MetadataRequest = functools.partial(  # type: ignore[misc]
            MetadataRequest, allow_auto_topic_creation=False
        )
    # every kafka-python client's metadata starts from these defaults
    ClusterMetadata.DEFAULT_CONFIG[_KAFKA_PYTHON] = False


@contextmanager
def installed() -> Iterator[None]:
    """`install` for the time of a command (`feed`, `simulate`, `alerts`), undone after it:
    a test calling the command in its own process finds its clients as they were."""
    before = (aiokafka.client.MetadataRequest, ClusterMetadata.DEFAULT_CONFIG[_KAFKA_PYTHON])
    install()
    try:
        yield
    finally:
        aiokafka.client.MetadataRequest = before[0]  # type: ignore[misc]
        ClusterMetadata.DEFAULT_CONFIG[_KAFKA_PYTHON] = before[1]

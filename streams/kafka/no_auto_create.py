"""Kafka clients of this process never ask the broker to create a topic.

aiokafka asks for it in every metadata request (`allow_auto_topic_creation`, always true),
so a write to a missing topic had the broker create it with its own default partitions:
4 on the embedded broker, `num.partitions` (1) on Apache Kafka. After the embedded broker
restarted empty, the theatre stage's one-partition changelog came back with 4, and every
later start of the worker refused it. Topics are created by `run` and `topics` with their
partitions and configs, and again by a worker that finds them gone
(`topics.create_missing`); a client meanwhile waits for them.
"""

from __future__ import annotations

import functools

import aiokafka.client
from aiokafka.protocol.metadata import MetadataRequest


def install() -> None:
    """For the aiokafka clients (Faust's among them) of this process; idempotent."""
    if isinstance(aiokafka.client.MetadataRequest, functools.partial):
        return
    # the client builds its requests by this module-level name
    aiokafka.client.MetadataRequest = functools.partial(  # type: ignore[misc]
        MetadataRequest, allow_auto_topic_creation=False
    )

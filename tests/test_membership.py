"""Membership changes on the embedded broker (issue 9, docs/operations.md "Membership
changes"): what made restarts and joins slow, each checked on a real broker. The
figures themselves come from `ceasefire-monitor bench --membership`, not from tests."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.client import AIOKafkaClient
from aiokafka.protocol.admin import DescribeGroupsRequest

from streams.config import Settings
from streams.kafka import broker as broker_module
from streams.kafka.broker import EmbeddedBroker, free_port
from streams.kafka.faust_transport import app_class
from streams.kafka.topics import ensure_topics

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


async def group_members(bootstrap: str, group: str) -> tuple[str, int]:
    """(state, number of members) of a consumer group, from DescribeGroups."""
    client = AIOKafkaClient(bootstrap_servers=bootstrap)
    await client.bootstrap()
    try:
        node = next(iter(client.cluster.brokers())).nodeId
        response = await client.send(node, DescribeGroupsRequest([group]))
        _error, _name, state, _protocol_type, _protocol, members, *_ = response.groups[0]
        return str(state), len(members)
    finally:
        await client.close()


def test_the_first_member_of_a_group_leaves_it_on_a_clean_stop(broker: EmbeddedBroker) -> None:
    """The embedded broker numbers a group's first generation 0, and aiokafka left a group
    on close only from generation 1: the member stayed until its session expired, and a
    restarted worker's join waited for it and rebalanced again (71 s instead of 32 s)."""
    app_class(100)  # what a worker's app installs (streams/kafka/groups.py)
    settings = Settings(broker=broker.url, partitions=1)
    ensure_topics(settings)

    async def scenario() -> tuple[int, tuple[str, int], tuple[str, int]]:
        consumer = AIOKafkaConsumer(
            settings.reports_topic,
            bootstrap_servers=broker.bootstrap,
            group_id="first-generation",
            session_timeout_ms=6000,
            heartbeat_interval_ms=1000,
            rebalance_timeout_ms=3000,
        )
        await consumer.start()  # returns once the group assigned its partitions
        generation: int = consumer._coordinator.generation
        joined = await group_members(broker.bootstrap, "first-generation")
        await consumer.stop()
        left = await group_members(broker.bootstrap, "first-generation")
        return generation, joined, left

    generation, joined, left = asyncio.run(scenario())
    assert generation == 0  # Apache Kafka's first generation is 1: there this never arose
    assert joined == ("Stable", 1)
    assert left == ("Empty", 0)  # not ("Stable", 1) for the next 6 s


def test_a_configured_broker_that_is_the_embedded_one_gets_its_short_timings(
    broker: EmbeddedBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`run --broker kafka://127.0.0.1:9092` naming the embedded broker ran with Apache
    Kafka's 20/30/3 s timings, with which the embedded broker holds every join 15 s."""
    from streams.cli import _timing_for

    s = _timing_for(Settings(broker=broker.url))
    assert (s.rebalance_timeout, s.session_timeout, s.heartbeat_interval) == (3.0, 6.0, 1.0)
    assert s.broker == broker.url
    monkeypatch.setenv("CEASEFIRE_SESSION_TIMEOUT", "9")  # what is set stays set
    s = _timing_for(Settings(broker=broker.url))
    assert (s.rebalance_timeout, s.session_timeout, s.heartbeat_interval) == (3.0, 9.0, 1.0)


def test_another_broker_keeps_the_configured_timings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from streams.cli import _timing_for

    with monkeypatch.context() as m:  # a Tansu that is not ours: another cluster id
        m.setattr(broker_module, "CLUSTER_ID", "someone-elses-cluster")
        other = EmbeddedBroker("127.0.0.1", free_port()).start()
    try:
        s = _timing_for(Settings(broker=other.url))
        assert (s.rebalance_timeout, s.session_timeout, s.heartbeat_interval) == (20.0, 30.0, 3.0)
    finally:
        other.stop()

"""Membership changes on the embedded broker (issue 9, docs/operations.md "Membership
changes"): what made restarts and joins slow, each checked on a real broker. The
figures themselves come from `ceasefire-monitor bench --membership`, not from tests."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.client import AIOKafkaClient
from aiokafka.protocol.admin import DescribeGroupsRequest

from streams.classify.classifier import Classifier
from streams.classify.gazetteer import Gazetteer
from streams.classify.zones import ZoneCatalogue
from streams.config import Settings
from streams.kafka import broker as broker_module
from streams.kafka import groups
from streams.kafka.broker import EmbeddedBroker, free_port
from streams.kafka.faust_transport import app_class
from streams.kafka.topics import ensure_topics
from streams.pipeline.ingest import Ingest
from tests.harness import Worker

# A test whose waits add up to more bounds its time above their sum with a mark of its own.
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


def test_a_leader_stopping_while_a_join_forms_leaves_the_group_able_to_settle(
    broker: EmbeddedBroker,
) -> None:
    """The embedded broker keeps a leader that leaves while a newcomer's join is forming as
    the group's leader for good: the newcomer then never got an assignment (3 of 3 with the
    leader leaving 0.1 to 0.3 s after it subscribed; a worker never ready under load). On
    the embedded broker the leader goes by its session timeout instead
    (streams/kafka/groups.py)."""
    settings = Settings(broker=broker.url, partitions=4).with_embedded_timing()
    assert settings.leader_leaves is False
    ensure_topics(settings)

    def member(name: str) -> AIOKafkaConsumer:
        return AIOKafkaConsumer(
            bootstrap_servers=broker.bootstrap,
            group_id="leader-leaves",
            client_id=name,
            session_timeout_ms=6000,
            heartbeat_interval_ms=1000,
            rebalance_timeout_ms=3000,
        )

    async def pump(c: AIOKafkaConsumer) -> None:
        while True:
            await c.getmany(timeout_ms=200)

    async def scenario() -> tuple[float, int] | None:
        leader = member("leader")
        await leader.start()
        leader.subscribe([settings.reports_topic])
        while not leader.assignment():
            await leader.getmany(timeout_ms=200)
        await asyncio.sleep(2)
        newcomer = member("newcomer")
        await newcomer.start()
        newcomer.subscribe([settings.reports_topic])
        pumping = asyncio.create_task(pump(newcomer))
        await asyncio.sleep(0.2)  # its join is forming: the leader stops now
        await leader.stop()
        stopped = time.monotonic()
        try:
            while time.monotonic() - stopped < 30:
                if newcomer.assignment():
                    return time.monotonic() - stopped, len(newcomer.assignment())
                await asyncio.sleep(0.2)
            return None
        finally:
            pumping.cancel()
            await newcomer.stop()

    groups.install(settings.leader_leaves)  # what a worker on the embedded broker installs
    try:
        assigned = asyncio.run(scenario())
    finally:
        groups.install(True)  # this test process's other consumers: as before
    assert assigned is not None, "the newcomer never got an assignment: the group is wedged"
    took, partitions = assigned
    assert partitions == 4  # all of them: the leader's moved once its session ended
    print(f"the newcomer had every partition {took:.1f} s after the leader stopped")


def test_a_configured_broker_that_is_the_embedded_one_gets_its_short_timings(
    broker: EmbeddedBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`run --broker kafka://127.0.0.1:9092` naming the embedded broker ran with Apache
    Kafka's 20/30/3 s timings, with which the embedded broker holds every join 15 s."""
    from streams.cli.worker import _timing_for

    s = _timing_for(Settings(broker=broker.url))
    assert (s.rebalance_timeout, s.session_timeout, s.heartbeat_interval) == (3.0, 6.0, 1.0)
    assert s.broker == broker.url
    monkeypatch.setenv("CEASEFIRE_SESSION_TIMEOUT", "9")  # what is set stays set
    s = _timing_for(Settings(broker=broker.url))
    assert (s.rebalance_timeout, s.session_timeout, s.heartbeat_interval) == (3.0, 9.0, 1.0)


def test_another_broker_keeps_the_configured_timings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from streams.cli.worker import _timing_for

    with monkeypatch.context() as m:  # a Tansu that is not ours: another cluster id
        m.setattr(broker_module, "CLUSTER_ID", "someone-elses-cluster")
        other = EmbeddedBroker("127.0.0.1", free_port()).start()
    try:
        s = _timing_for(Settings(broker=other.url))
        assert (s.rebalance_timeout, s.session_timeout, s.heartbeat_interval) == (20.0, 30.0, 3.0)
    finally:
        other.stop()


@pytest.mark.timeout(90)  # two waits of 30 s, then the stop
def test_ingest_joins_its_group_in_the_background_and_starts_its_producer_later(
    broker: EmbeddedBroker,
) -> None:
    """`join` returns before the group join (held half a session timeout by the embedded
    broker); the producer the stages share starts only with `start`."""
    settings = Settings(broker=broker.url, partitions=4).with_embedded_timing()
    ensure_topics(settings)
    ingest = Ingest(settings, Classifier(ZoneCatalogue.load(None), Gazetteer.load(None)))

    async def scenario() -> tuple[bool, bool, set[int]]:
        await ingest.join()
        try:
            assert ingest.consumer is not None
            joined_at_once, producer_at_once = ingest.joined.is_set(), ingest.producer is not None
            await asyncio.wait_for(ingest.joined.wait(), timeout=30)
            await asyncio.wait_for(ingest.start(), timeout=30)
            assert ingest.shared.started_event.is_set()
            return (
                joined_at_once,
                producer_at_once,
                {tp.partition for tp in ingest.consumer.assignment()},
            )
        finally:
            await ingest.stop()

    joined_at_once, producer_at_once, assigned = asyncio.run(scenario())
    assert not joined_at_once and not producer_at_once
    assert assigned == {0, 1, 2, 3}


def log_times(path: Path, pattern: str) -> list[float]:
    """Seconds since the epoch of the worker log lines matching `pattern`."""
    stamp = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3})\]")
    out: list[float] = []
    for line in path.read_text(errors="replace").splitlines():
        m = stamp.match(line)
        if m and re.search(pattern, line):
            whole = time.mktime(time.strptime(m.group(1), "%Y-%m-%d %H:%M:%S"))
            out.append(whole + int(m.group(2)) / 1000)
    return out


@pytest.mark.timeout(150)  # ready within 60 s, a stop within 20 s, and the broker's start
def test_a_worker_joins_its_two_groups_together(broker: EmbeddedBroker, tmp_path: Path) -> None:
    """Cause 3 of slow membership changes: the ingest group began to join only after
    Faust's group had joined and recovered, one more join (3 s) on every start. And the
    shared producer starts only after that recovery, when Faust's changelog topics are
    declared (an earlier start narrowed its metadata and stalled sends 40 s)."""
    w = Worker(broker, tmp_path).start(ready_timeout=60)
    w.stop()
    # The worker starts the ingest process (which joins the ingest group at once) in
    # `IngestJoin`, a dependency of the app that starts before the app's consumer
    # (streams/pipeline/app.py). When the child's own join line comes is up to how fast a
    # fresh (niced) interpreter starts, which Faust's join does not wait for: on a busy
    # machine it may come after Faust's group joined. The order the code gives is the
    # worker's: the ingest process started before Faust's group joined.
    ingest_started = log_times(w.log_path, r"IngestJoin\]: Starting")
    ingest_joins = log_times(w.log_path, r"\(Re-\)joining group ceasefire-monitor-ingest")
    faust_joined = log_times(w.log_path, r"Joined group 'ceasefire-monitor' ")
    recovered = log_times(w.log_path, r"Recovery\]: Worker ready")
    producer = log_times(w.log_path, r"IngestService\]: Starting")
    assert ingest_started and ingest_joins and faust_joined and recovered, w.log_tail()
    assert producer, w.log_tail()
    assert ingest_started[0] < faust_joined[0]  # alongside, not after
    assert producer[0] >= recovered[0]

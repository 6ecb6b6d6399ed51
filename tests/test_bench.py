"""The bench's settings: on a configured broker it works beside the deployment, not in it."""

from __future__ import annotations

from streams.bench import _fresh_broker
from streams.config import Settings


def test_a_bench_on_a_configured_broker_uses_its_own_topics_and_app_id() -> None:
    """With the deployment's app id, `bench --broker` met the deployment's changelogs (8
    partitions in the compose stack) and stopped: 'has 8 partitions, but the stage's input
    has 4'."""
    deployment = Settings(broker="kafka://kafka:9092", partitions=8)
    with _fresh_broker(deployment, "bench") as fresh:
        assert fresh.app_id != deployment.app_id
        assert fresh.topic_prefix == f"{fresh.app_id}."
        assert fresh.broker == deployment.broker

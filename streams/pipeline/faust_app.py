"""The Faust app of a worker process: the worker's own, and its identity process's
(`identity_process.py`), built alike."""

from __future__ import annotations

from typing import Any

import faust

from streams.config import Settings
from streams.kafka.faust_transport import StoppingApp, app_class
from streams.store import faust_store


def faust_credentials(settings: Settings) -> Any:
    if settings.security_protocol == "PLAINTEXT":
        return None
    ssl_context = settings.ssl_context()
    if settings.security_protocol.startswith("SASL"):
        return faust.SASLCredentials(
            username=settings.sasl_username,
            password=settings.sasl_password,
            mechanism=settings.sasl_mechanism,
            ssl_context=ssl_context,
        )
    return faust.SSLCredentials(ssl_context)


def faust_app(settings: Settings, app_id: str, *, client_id: str, web: bool) -> StoppingApp:
    """An app in the consumer group `app_id`; `web`: with the HTTP server (the API).
    `client_id` begins the app's member ids in its group (`identity_mode.py`)."""
    s = settings
    s.data_dir.mkdir(parents=True, exist_ok=True)  # Faust keeps its app directory here
    return app_class(s.fetch_max_wait_ms, s.leader_leaves)(
        app_id,
        broker=s.broker_url(),
        broker_client_id=client_id,
        broker_credentials=faust_credentials(s),
        store=faust_store.register(),  # our stages keep their own state
        topic_partitions=s.partitions,
        topic_replication_factor=s.replication_factor,
        topic_allow_declare=True,
        table_standby_replicas=0,
        web_enabled=web,
        web_port=s.web_port,
        web_bind=s.web_host,
        web_host=s.web_host,
        canonical_url=s.web_url(),
        broker_rebalance_timeout=s.rebalance_timeout,
        broker_session_timeout=s.session_timeout,
        broker_heartbeat_interval=s.heartbeat_interval,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        # We recover state ourselves to the exact end (streams/kafka/offsets.py); Faust's
        # own check compares with the broker's ListOffsets answer, which Tansu
        # under-reports, and killed workers that joined later (issue 9).
        recovery_consistency_check=False,
        # An event of our stages' topics is a pack of hundreds of reports: Faust's
        # default buffer (4,096 events per stream) held a whole backlog in memory.
        stream_buffer_maxsize=s.stream_buffer_packs,
        datadir=str(s.data_dir),
        web_in_thread=False,
    )

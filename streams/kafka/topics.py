"""Creating the monitor's topics with partitions, replication and retention.

Faust declares the stages' changelog topics (their tables); these are the topics of
the product contract plus the internal topics between the stages. A worker whose broker
lost them creates them all again (`create_missing`).
"""

from __future__ import annotations

from dataclasses import dataclass

from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient, NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from streams.config import Settings
from streams.kafka.errors import BrokerUnavailable, unreachable
from streams.kafka.reachable import check_listening
from streams.kafka.tls import check_tls
from streams.pipeline.tables import ALERT_TABLE, IDENTITY_TABLE, THEATRE_TABLE, ZONE_TABLE

__all__ = [
    "BrokerUnavailable",
    "ConfigDrift",
    "TopicMismatch",
    "TopicSpec",
    "changelog_partitions",
    "changelog_specs",
    "config_drift",
    "create_missing",
    "durability",
    "ensure_topics",
    "leader_specs",
    "topic_partitions",
    "topic_specs",
    "unreachable",
    "update_configs",
    "worker_topics",
]

DAY_MS = 86_400_000


class TopicMismatch(ValueError):
    """An existing topic has another number of partitions than the settings give it: the
    workers would wait for partitions that do not exist, or leave some unread."""


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    config: dict[str, str]


def durability(settings: Settings) -> dict[str, str]:
    """The topic config that makes `acks=all` (every producer's) mean what it says on a
    replicated cluster: with the broker's default `min.insync.replicas` of 1, a write is
    acknowledged by the leader alone once its followers fall behind, and losing that broker
    loses it. 2 from a replication factor of 3 (a write survives any one broker, and one
    broker down still takes writes); nothing below 3, where 2 would refuse every write
    while one of two brokers is down."""
    if settings.replication_factor >= 3:
        return {"min.insync.replicas": "2"}
    return {}


def topic_specs(settings: Settings) -> list[TopicSpec]:
    n = settings.partitions
    keep = str(settings.retention_days * DAY_MS)
    specs = [
        # Input kept long enough to replay a week of reports after an incident.
        TopicSpec(settings.reports_topic, n, {"retention.ms": str(7 * DAY_MS)}),
        # Dead letters are evidence: keep them as long as the tallies.
        TopicSpec(settings.dlq_topic, n, {"retention.ms": keep}),
        TopicSpec(settings.keyed_topic, n, {"retention.ms": str(7 * DAY_MS)}),
        TopicSpec(settings.incidents_topic, n, {"retention.ms": keep}),
        TopicSpec(settings.zone_reports_topic, n, {"retention.ms": str(7 * DAY_MS)}),
        TopicSpec(settings.zone_packs_topic, n, {"retention.ms": str(7 * DAY_MS)}),
        # One partition: the theatre-wide evaluator sees every zone's fatality changes in
        # one order. Each alert-stage recovery sends its zones' ledgers again, so a week
        # of retention loses nothing the evaluator's own changelog does not hold.
        TopicSpec(settings.theatre_topic, 1, {"retention.ms": str(7 * DAY_MS)}),
        TopicSpec(settings.alerts_topic, n, {"retention.ms": keep}),
    ]
    extra = durability(settings)
    return [TopicSpec(s.name, s.partitions, s.config | extra) for s in specs]


def changelog_partitions(settings: Settings) -> dict[str, int]:
    """The stages' changelog topics (Faust names them `<app id>-<table>-changelog`), each
    with the partitions of its stage's input."""
    return {
        f"{settings.app_id}-{table}-changelog": 1 if table == THEATRE_TABLE else settings.partitions
        for table in (IDENTITY_TABLE, ZONE_TABLE, ALERT_TABLE, THEATRE_TABLE)
    }


def changelog_specs(settings: Settings) -> list[TopicSpec]:
    """The changelog topics as Faust declares them (compacted: the latest entry of each key
    is the state), for a worker that finds them gone (`create_missing`)."""
    config = {"cleanup.policy": "compact"} | durability(settings)
    return [TopicSpec(name, n, config) for name, n in changelog_partitions(settings).items()]


def leader_specs(settings: Settings) -> list[TopicSpec]:
    """Faust's leader topics of the worker's apps: its own and, when the identity stage runs
    in a process of its own, that process's (`identity_mode.identity_group`). One
    partition each, as Faust declares them at its start only."""
    apps = [settings.app_id] + (
        [f"{settings.app_id}-identity"] if settings.identity_process else []
    )
    return [TopicSpec(f"{app}-__assignor-__leader", 1, {}) for app in apps]


def worker_topics(settings: Settings) -> list[TopicSpec]:
    """Every topic a running worker needs: the monitor's, the stages' changelogs, Faust's
    leader topics."""
    return topic_specs(settings) + changelog_specs(settings) + leader_specs(settings)


def create_missing(settings: Settings, existing: set[str]) -> list[str]:
    """Create the worker's topics (`worker_topics`) that are not in `existing`, with their
    partitions and configs; the names created. For a worker whose broker lost them (an
    embedded broker restarted empty): its clients wait for them (`no_auto_create`), where
    the broker created them with its default partitions."""
    missing = [spec for spec in worker_topics(settings) if spec.name not in existing]
    if not missing:
        return []
    admin = admin_client(settings)
    try:
        return _create(admin, settings, missing)
    finally:
        admin.close()


def admin_client(settings: Settings, timeout_ms: int = 10_000) -> KafkaAdminClient:
    check_listening(settings)  # a refused port is said at once, not after 30 s
    check_tls(settings)  # a certificate problem is one clear line, not a bootstrap timeout
    try:
        return KafkaAdminClient(
            bootstrap_servers=settings.bootstrap(),
            client_id=f"{settings.app_id}-admin",
            request_timeout_ms=timeout_ms,
            **settings.kafka_security(),
        )
    except KafkaError as exc:  # kafka-python raises a timeout when no bootstrap server answers
        raise unreachable(settings) from exc


def ensure_topics(
    settings: Settings, *, with_config: bool = True, check_partitions: bool = True
) -> list[str]:
    """Create missing topics; returns the names created. Existing topics are left alone,
    but must have the partitions the settings give them (TopicMismatch).

    `check_partitions=False` is for producers (`feed`, `simulate`): they send by key to
    whatever partitions a topic has, so another CEASEFIRE_PARTITIONS in their shell (the
    compose stack's topics have 8, a shell's default is 4) must not stop them. A topic they
    create then gets the count the existing topics agree on, not theirs, so that a worker
    does not meet a mix of counts."""
    admin = admin_client(settings)
    try:
        existing = set(admin.list_topics())
        specs = topic_specs(settings)
        present = [s for s in specs if s.name in existing]
        theatre = settings.theatre_topic
        adopted: int | None = None
        if check_partitions:
            _check_partitions(admin, present)
            _check_changelogs(admin, settings, existing)
        elif len(present) < len(specs):
            # the theatre topic has one partition whatever the setting: not a witness
            adopted = _common_count(admin, [s for s in present if s.name != theatre])
        return _create(
            admin,
            settings,
            [
                TopicSpec(
                    spec.name,
                    adopted if adopted is not None and spec.name != theatre else spec.partitions,
                    spec.config if with_config else {},
                )
                for spec in specs
                if spec.name not in existing
            ],
        )
    finally:
        admin.close()


def _create(admin: KafkaAdminClient, settings: Settings, specs: list[TopicSpec]) -> list[str]:
    """Create each topic of `specs`; the names created (not those another worker created
    first)."""
    created: list[str] = []
    for spec in specs:
        new = NewTopic(
            spec.name, spec.partitions, settings.replication_factor, topic_configs=spec.config
        )
        try:
            admin.create_topics([new])
            created.append(spec.name)
        except TopicAlreadyExistsError:
            pass  # another worker won the race
        except KafkaError as exc:
            raise BrokerUnavailable(f"could not create topic {spec.name}: {exc}") from exc
    return created


def partition_counts(admin: KafkaAdminClient, names: list[str]) -> dict[str, int]:
    """The partitions each existing topic of `names` has, as the broker describes it."""
    if not names:
        return {}
    try:
        described = admin.describe_topics(names)
    except KafkaError as exc:
        raise BrokerUnavailable(f"could not describe the topics: {exc}") from exc
    # kafka-python 3 names the topic `name`; 2 named it `topic`
    return {
        str(d.get("name", d.get("topic"))): len(d["partitions"])
        for d in described
        if not d.get("error_code")
    }


def _common_count(admin: KafkaAdminClient, specs: list[TopicSpec]) -> int | None:
    """The partitions every existing topic of `specs` has, when they agree; None when
    there is none or they differ (then the settings decide)."""
    counts = partition_counts(admin, [s.name for s in specs])
    found = set(counts.values())
    return found.pop() if len(found) == 1 else None


def _check_partitions(admin: KafkaAdminClient, specs: list[TopicSpec]) -> None:
    counts = partition_counts(admin, [s.name for s in specs])
    for spec in specs:
        have = counts.get(spec.name)
        if have is None or have == spec.partitions:
            continue
        if spec.partitions == 1:  # the theatre topic: one order of every zone's changes
            fix = "it must have one: delete it, and the next worker creates it so"
        else:
            fix = (
                "CEASEFIRE_PARTITIONS (the topics command's --partitions) is "
                f"{spec.partitions}: set it to the topics' count, or delete and recreate the "
                "topics"
            )
        raise TopicMismatch(
            f'topic {spec.name} has {have} partitions, but {fix} (docs/operations.md, "Topics")'
        )


def _check_changelogs(admin: KafkaAdminClient, settings: Settings, existing: set[str]) -> None:
    """A changelog of another partition count is an earlier deployment's state under the same
    app id (a new topic prefix alone is not a new deployment): its worker never became
    ready, with no word of why."""
    want = {t: n for t, n in changelog_partitions(settings).items() if t in existing}
    counts = partition_counts(admin, list(want))
    for name, n in want.items():
        have = counts.get(name)
        if have is None or have == n:
            continue
        raise TopicMismatch(
            f"changelog topic {name} has {have} partitions, but the stage's input has {n}: it "
            f"holds the state of an earlier deployment of app id {settings.app_id}. A new "
            "deployment (a new CEASEFIRE_TOPIC_PREFIX) needs its own CEASEFIRE_APP_ID too; or "
            f"delete the changelogs ({settings.app_id}-*-changelog) to start the state anew "
            '(docs/operations.md, "Topics")'
        )


@dataclass(frozen=True)
class ConfigDrift:
    """A config of an existing topic that is not what the settings give it (`topics`
    creates topics with theirs and leaves existing ones alone: a raised
    CEASEFIRE_RETENTION_DAYS did not reach them)."""

    topic: str
    key: str
    #: the topic's value; None where the broker does not describe it (Tansu)
    have: str | None
    want: str


def config_drift(settings: Settings) -> list[ConfigDrift]:
    """The configs of the monitor's existing topics that differ from the settings', or
    that the broker does not describe (`have` None)."""
    admin = admin_client(settings)
    try:
        existing = set(admin.list_topics())
        specs = [s for s in topic_specs(settings) if s.name in existing and s.config]
        if not specs:
            return []
        resources = [ConfigResource(ConfigResourceType.TOPIC, s.name) for s in specs]
        try:
            described = admin.describe_configs(resources, config_filter="all")
        except KafkaError as exc:
            raise BrokerUnavailable(f"could not describe the topics' configs: {exc}") from exc
    finally:
        admin.close()
    topics = described.get("topic", {}) if isinstance(described, dict) else {}
    drift: list[ConfigDrift] = []
    for spec in specs:
        configs = topics.get(spec.name) or {}
        for key, want in sorted(spec.config.items()):
            entry = configs.get(key)
            have = entry.get("value") if isinstance(entry, dict) else None
            if have != want:
                drift.append(ConfigDrift(spec.name, key, None if have is None else str(have), want))
    return drift


def update_configs(settings: Settings, drift: list[ConfigDrift]) -> None:
    """Set each drifted config to the settings' value (incrementally where the broker can:
    a topic's other configs stay as they are)."""
    by_topic: dict[str, dict[str, str]] = {}
    for d in drift:
        by_topic.setdefault(d.topic, {})[d.key] = d.want
    if not by_topic:
        return
    admin = admin_client(settings)
    try:
        resources = [
            ConfigResource(ConfigResourceType.TOPIC, topic, configs=configs)
            for topic, configs in by_topic.items()
        ]
        try:
            result = admin.alter_configs(resources)
        except KafkaError as exc:
            raise BrokerUnavailable(f"could not set the topics' configs: {exc}") from exc
    finally:
        admin.close()
    answers = result.get("topic", {}) if isinstance(result, dict) else {}
    failed = {t: a for t, a in answers.items() if a != "OK"}
    if failed:
        said = "; ".join(f"{t}: {a}" for t, a in sorted(failed.items()))
        raise BrokerUnavailable(f"the broker refused to set topic configs: {said}")


def topic_partitions(settings: Settings) -> dict[str, int]:
    """The partitions each of the monitor's topics has on the broker (those that exist)."""
    admin = admin_client(settings)
    try:
        return partition_counts(admin, [s.name for s in topic_specs(settings)])
    finally:
        admin.close()

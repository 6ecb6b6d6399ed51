"""Settings: flags, then CEASEFIRE_* environment variables, then these defaults."""

from __future__ import annotations

import re
import ssl
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from pydantic import AwareDatetime, Field, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from streams.names import allowed_name_problem, bad_character

if TYPE_CHECKING:
    from streams.record.linking import LinkRule

#: Consumer-group settings for workers on the embedded broker (timings in seconds).
EMBEDDED_GROUP_SETTINGS: dict[str, float | bool] = {
    "rebalance_timeout": 3.0,
    "session_timeout": 6.0,
    "heartbeat_interval": 1.0,
    "leader_leaves": False,
}


#: host:port of a broker (a name, with `_` as container names have, an IPv4 address, or an
#: IPv6 one in brackets)
_HOST_PORT = re.compile(
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\]):"
    r"(?:6553[0-5]|655[0-2]\d|65[0-4]\d{2}|6[0-4]\d{3}|[1-5]\d{4}|[1-9]\d{0,3})"
)
_HTTP_URL = re.compile(r"https?://(?:\[[0-9A-Fa-f:.]+\]|[^\s/:?#\[\]]+)(?::\d{1,5})?(?:/\S*)?")


#: The characters Kafka allows in a topic name, and its longest name.
_KAFKA_NAME = re.compile(r"[A-Za-z0-9._-]*")
_KAFKA_NAME_MAX = 249
#: The longest name `topic()` is given (`fatalities.theatre`): the topic prefix leaves room
#: for it.
_LONGEST_TOPIC = "fatalities.theatre"
#: The longest topic named after the app id: the identity process's app (`<app id>-identity`)
#: has Faust's assignor topic; the changelogs are `<app id>-<table>-changelog`, the longest
#: `<app id>-identity-state-changelog` (`streams/pipeline/tables.py`).
_LONGEST_APP_TOPIC = "-identity-__assignor-__leader"
#: An origin as browsers send it in `Origin`: scheme, host and an optional port, no path.
_ORIGIN = re.compile(r"https?://[A-Za-z0-9.\-\[\]:]+", re.ASCII)
#: Hosts that mean every address of the machine: no address a peer can reach it at.
WILDCARD_HOSTS = frozenset({"0.0.0.0", "::", "[::]"})


def url_host(host: str) -> str:
    """A host as a URL holds it: an IPv6 address in brackets (`http://[::1]:6066`;
    `http://::1:6066` is no URL)."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CEASEFIRE_", extra="ignore")

    #: Kafka bootstrap URL(s), `kafka://host:port[;host:port]`. Unset: `run` starts (or
    #: joins) the embedded broker on 127.0.0.1:`embedded_port`; other commands reach it there.
    broker: str | None = None
    embedded_port: int = Field(default=9092, ge=1, le=65535)
    topic_prefix: str = "ceasefire."
    #: Partitions of the topics the monitor creates; also its unit of parallelism.
    partitions: int = Field(default=4, ge=1, le=256)
    replication_factor: int = Field(default=1, ge=1)
    app_id: str = "ceasefire-monitor"

    zones: Path | None = None  # GeoJSON zone catalogue; default: the shipped theatre
    gazetteer: Path | None = None  # named places; default: the shipped gazetteer
    rules: Path | None = None  # alert rules YAML; default: the shipped rule set

    #: Bearer token for POST /api/v1/reports, for every source; the workers sign their
    #: `scope=local` queries to each other with it (streams/web/peer_auth.py).
    api_token: str | None = None
    #: A YAML file of tokens scoped by source (`name`, `token`, `sources`: globs), read at
    #: start: a POST with one may carry reports of those sources only (403 otherwise).
    api_tokens_file: Path | None = None
    #: `run` refuses to listen on an address other than loopback with no token (anyone
    #: reaching it could post reports and fire alerts) unless this says it is meant.
    anonymous_post: bool = False
    #: Host names (comma-separated; `*.example.org`, `*`) the API answers to besides its
    #: own (streams/web/hosts.py); a request naming another is 421 (DNS rebinding).
    allowed_hosts: str | None = None
    #: Origins (`https://host[:port]`, comma-separated) whose web pages may POST reports.
    #: Unset: a POST with an `Origin` header (or `Sec-Fetch-Site` other than `none`), which
    #: only browsers send, is refused 403 (docs/operations.md, "Running securely").
    post_origins: str | None = None
    #: Largest request body POST /api/v1/reports reads (413 above it, before reading). A
    #: batch of 1,000 simulated reports is about 0.3 MB; one report is at most 64 KiB.
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    #: Connections the API holds at once from one client address (0: unbounded; unset: 256,
    #: or an eighth of the total when that is less), and in all (unset: half the open-file
    #: limit, `ulimit -n`, which `run` raises to its hard limit, so the rest stays for Kafka
    #: and the peers). One over either is answered 503 and closed. An IPv6 client counts by
    #: its /64. Behind a proxy every client has the proxy's address: raise the first, or
    #: limit per client in the proxy.
    max_connections_per_address: int | None = Field(default=None, ge=0)
    max_connections: int | None = Field(default=None, ge=1)
    web_host: str = "127.0.0.1"
    web_port: int = Field(default=6066, ge=1, le=65535)
    #: How peers reach this worker's API (for tallies fan-out). Default: http://web_host:web_port
    advertised_url: str | None = None
    #: Base map of the live page (`GET /`): a tile URL template such as
    #: `https://tile.example.org/{z}/{x}/{y}.png`, and its attribution (most tile servers
    #: require one). Unset: no tiles, the page needs no network beyond the worker.
    map_tiles: str | None = None
    map_tiles_attribution: str = ""

    alertmanager_url: str | None = None
    #: Since when the monitor holds the complete incident history (set it after a
    #: backfill). Escalation baselines count no window before it, and a zone's first
    #: incident breaks its quiet period only `quiet` after it. Default: when the monitor
    #: first ran (recorded per partition in the alert state).
    observed_since: AwareDatetime | None = None

    # Kafka security
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "PLAIN"
    sasl_username: str | None = None
    sasl_password: str | None = None
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None

    # Consumer group timing. Defaults suit Apache Kafka; on the embedded broker `run` uses
    # EMBEDDED_GROUP_SETTINGS unless these are set, and tests shorten them too.
    rebalance_timeout: float = Field(default=20.0, gt=0)
    session_timeout: float = Field(default=30.0, gt=0)
    heartbeat_interval: float = Field(default=3.0, gt=0)
    #: Whether a group's leader sends LeaveGroup on a clean stop (its partitions move at
    #: once). False on the embedded broker, which keeps a leader that left while a join
    #: was forming as the group's leader for good (streams/kafka/groups.py).
    leader_leaves: bool = True

    @field_validator(
        "broker",
        "advertised_url",
        "alertmanager_url",
        "api_token",
        "api_tokens_file",
        "allowed_hosts",
        "sasl_username",
        "sasl_password",
        "ssl_cafile",
        "ssl_certfile",
        "ssl_keyfile",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        """`CEASEFIRE_BROKER=` (empty) is unset, as README says, not a broker named "";
        `CEASEFIRE_SSL_KEYFILE=` is no file, not the directory "." (a compose file's
        `${VAR:-}`), so that it counts as unset in `_security_settings_used`."""
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("api_token")
    @classmethod
    def _token(cls, value: str | None) -> str | None:
        """The token as a secret file holds it: its final newline (or other white space at
        either end) is not part of it, since no client sends it (every POST was refused as
        "wrong bearer token"). White space or a control character inside cannot travel in
        an `Authorization` header: refused here rather than at every request."""
        if value is None:
            return None
        token = value.strip()
        bad = bad_character(token)
        if bad is not None:
            raise ValueError(bad)
        return token

    @field_validator("allowed_hosts")
    @classmethod
    def _hosts(cls, value: str | None) -> str | None:
        if value is None:
            return None
        for item in value.split(","):
            problem = allowed_name_problem(item) if item.strip() else None
            if problem is not None:
                raise ValueError(problem)
        return value

    @field_validator("post_origins")
    @classmethod
    def _origins(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        for origin in value.split(","):
            if not _ORIGIN.fullmatch(origin.strip().rstrip("/")):
                raise ValueError(
                    f"{origin.strip()!r} is not an origin; name each as scheme://host[:port] "
                    "(e.g. https://reports.example.org), separated by commas"
                )
        return value

    def post_origin_set(self) -> frozenset[str]:
        """The origins of `post_origins`, as `Origin` headers compare (lower case)."""
        if not self.post_origins:
            return frozenset()
        return frozenset(o.strip().rstrip("/").lower() for o in self.post_origins.split(","))

    @field_validator("broker")
    @classmethod
    def _broker_url(cls, value: str | None) -> str | None:
        if value is not None:
            hosts = value.removeprefix("kafka://").split(";")
            if not all(_HOST_PORT.fullmatch(h.strip()) for h in hosts):
                raise ValueError(
                    f"{value!r} is not kafka://host:port[;host:port] (a port is a number "
                    "from 1 to 65535)"
                )
        return value

    @field_validator("advertised_url", "alertmanager_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not _HTTP_URL.fullmatch(value):
            raise ValueError(
                f"{value!r} is not an http:// or https:// URL with a host (e.g. "
                "http://10.0.0.5:6066): peers and deliveries could not reach it"
            )
        if value is not None:
            try:
                port = urlsplit(value).port  # ValueError beyond 65535
            except ValueError:
                port = 0
            if port == 0:
                given = urlsplit(value).netloc.rpartition(":")[2]
                raise ValueError(
                    f"{value!r} names port {given}, which is no port (1 to 65535): peers and "
                    "deliveries could not reach it"
                )
        return value

    @field_validator("topic_prefix", "app_id")
    @classmethod
    def _kafka_name(cls, value: str, info: ValidationInfo) -> str:
        """Every topic is named `<topic prefix><name>`, and the consumer groups and the
        changelog topics after the app id: only the characters Kafka allows in a topic name
        (a space or a `/` made 8 topics Apache Kafka refuses on the embedded broker), and
        room for the longest name within Kafka's 249 characters."""
        if info.field_name == "app_id" and not value:
            raise ValueError("the app id must not be empty (it names the consumer groups)")
        bad = sorted(set(_KAFKA_NAME.sub("", value)))
        if bad:
            what = (
                "it begins every topic's name"
                if info.field_name == "topic_prefix"
                else "it names the consumer groups and the changelog topics"
            )
            raise ValueError(
                f"{value!r} holds {', '.join(repr(c) for c in bad)}, which Kafka refuses "
                f"in a topic name ({what}): use only the letters A-Z and a-z, digits, '.', "
                "'_' and '-'"
            )
        if info.field_name == "app_id":
            most, longest = (
                _KAFKA_NAME_MAX - len(_LONGEST_APP_TOPIC),
                f"{value}{_LONGEST_APP_TOPIC}",
            )
        else:
            most, longest = _KAFKA_NAME_MAX - len(_LONGEST_TOPIC), f"{value}{_LONGEST_TOPIC}"
        if len(value) > most:
            raise ValueError(
                f"{len(value)} characters, too long: at most {most}, so that the longest "
                f"topic named after it ({len(longest)} characters) is within Kafka's "
                f"{_KAFKA_NAME_MAX}"
            )
        return value

    @field_validator("ceasefire_start", "observed_since")
    @classmethod
    def _not_in_future(cls, value: datetime | None) -> datetime | None:
        if value is not None and value > datetime.now(UTC) + timedelta(minutes=5):
            raise ValueError(f"{value.isoformat()} is in the future")
        return value

    @model_validator(mode="after")
    def _heartbeat_within_session(self) -> Settings:
        if self.heartbeat_interval >= self.session_timeout:
            raise ValueError(
                f"CEASEFIRE_HEARTBEAT_INTERVAL ({self.heartbeat_interval:g} s) must be shorter "
                f"than CEASEFIRE_SESSION_TIMEOUT ({self.session_timeout:g} s): the group "
                "would drop members"
            )
        return self

    @model_validator(mode="after")
    def _security_settings_used(self) -> Settings:
        """TLS files or SASL credentials that the protocol would not use are refused: with
        PLAINTEXT (the default) they were ignored, and the monitor connected in plain
        text, credentials unused, without a word."""
        protocol = self.security_protocol
        unused = [
            f"CEASEFIRE_{name.upper()}"
            for name, used in (
                ("ssl_cafile", protocol.endswith("SSL")),
                ("ssl_certfile", protocol.endswith("SSL")),
                ("ssl_keyfile", protocol.endswith("SSL")),
                ("sasl_username", protocol.startswith("SASL")),
                ("sasl_password", protocol.startswith("SASL")),
            )
            if getattr(self, name) is not None and not used
        ]
        if unused:
            tls = protocol.endswith("SSL") or any("_SSL_" in name for name in unused)
            sasl = protocol.startswith("SASL") or any("_SASL_" in name for name in unused)
            wanted = (
                "SASL_SSL" if tls and sasl else "SSL" if tls else "SASL_SSL (or SASL_PLAINTEXT)"
            )
            raise ValueError(
                f"{', '.join(unused)} {'is' if len(unused) == 1 else 'are'} set, but "
                f"CEASEFIRE_SECURITY_PROTOCOL={protocol} does not use "
                f"{'it' if len(unused) == 1 else 'them'}: set CEASEFIRE_SECURITY_PROTOCOL="
                f"{wanted}, or unset {'it' if len(unused) == 1 else 'them'}"
            )
        missing = [
            f"CEASEFIRE_{name.upper()}"
            for name in ("sasl_username", "sasl_password")
            if protocol.startswith("SASL") and getattr(self, name) is None
        ]
        if missing:  # else the broker refused the handshake and it read as "not reachable"
            raise ValueError(
                f"CEASEFIRE_SECURITY_PROTOCOL={protocol} authenticates with a user name and "
                f"password: set {' and '.join(missing)}"
            )
        if self.ssl_keyfile is not None and self.ssl_certfile is None:
            raise ValueError(
                "CEASEFIRE_SSL_KEYFILE is set without CEASEFIRE_SSL_CERTFILE: the key is of a "
                "client certificate, which would not be sent; set CEASEFIRE_SSL_CERTFILE to "
                "the certificate (PEM), or unset CEASEFIRE_SSL_KEYFILE"
            )
        return self

    @model_validator(mode="after")
    def _ports_apart(self) -> Settings:
        """With no broker set, `run` may start the embedded one on `embedded_port`: the API
        bound the same port first, the broker started all the same, and the worker ended
        in a 51-line traceback."""
        if not self.broker and self.embedded_port == self.web_port:
            raise ValueError(
                f"CEASEFIRE_WEB_PORT and CEASEFIRE_EMBEDDED_PORT are both {self.web_port}: "
                "the API and the embedded broker need a port each; set one of them to "
                "another (or CEASEFIRE_BROKER to a broker of your own)"
            )
        return self

    def on_embedded_broker(self) -> Settings:
        """These settings for a worker on the embedded broker at `embedded_port`."""
        return self.with_embedded_timing().model_copy(update={"broker": self.embedded_url()})

    def with_embedded_timing(self) -> Settings:
        """Shorter group timings, unless set, for a worker on the embedded broker (a single
        machine), whichever way it was named: Tansu holds every JoinGroup for half the
        group's session timeout, so a join takes 15 s with Kafka's usual 30 s sessions
        and 3 s with 6 s (docs/operations.md, "Membership changes")."""
        unset = {k: v for k, v in EMBEDDED_GROUP_SETTINGS.items() if k not in self.model_fields_set}
        session = unset.get("session_timeout", self.session_timeout)
        if "heartbeat_interval" not in unset and self.heartbeat_interval >= session:
            # a heartbeat set for Kafka's 30 s sessions (8 s) would outlast the embedded
            # broker's 6 s one: the group would drop every member; its own heartbeat fits
            unset["heartbeat_interval"] = EMBEDDED_GROUP_SETTINGS["heartbeat_interval"]
        timed = self.model_copy(update=unset)
        # model_copy runs no validator: check the mix of set and embedded timings as one
        type(self).model_validate(timed.model_dump())
        return timed

    #: When the ceasefire took effect: 00:00 Moscow time on 10 November 2020
    #: (2020-11-09T21:00:00Z). `window=all` counts from it, and a series' buckets start at
    #: it unless `from` is given (so its days are the ceasefire's, Moscow-time, days).
    ceasefire_start: AwareDatetime = datetime(2020, 11, 10, tzinfo=timezone(timedelta(hours=3)))

    #: How long the input topics keep records, and how long the zone stage holds a
    #: report's detail linked: a whole day of event time older than this is closed
    #: (compressed, its counts kept for good; docs/record.md "Retention"). At least 31, so
    #: a 30-day window at any `as_of` of the last day reads no closed day.
    retention_days: int = Field(default=60, ge=31)
    #: A closable day waits while a change within a change's reach of it is among its
    #: partition's last `close_idle_changes` and younger than `close_idle_seconds` (an
    #: import still running keeps the days it writes open, and does not reopen them; once
    #: it stops they close). Sweeps run every `close_sweep_seconds`. 6,000: a million-report
    #: import closes and reopens less than with 2,000 (2.2 against 2.7 to 3.6 changelog
    #: records per report, docs/operations.md "State held") for a like memory peak.
    close_idle_changes: int = Field(default=6_000, ge=0)
    close_idle_seconds: float = Field(default=30.0, ge=0)
    close_sweep_seconds: float = Field(default=5.0, gt=0)
    #: Linking (SPEC.md "Incidents"; docs/record.md, "the linking rule", has each one's
    #: trade-off). `link_rule()` builds the rule from them.
    link_window_minutes: float = Field(default=30.0, gt=0, le=24 * 60)
    link_distance_km: float = Field(default=3.0, gt=0, le=100)
    #: A day-precision time stands for the calendar day containing it at this UTC offset
    #: (the theatre's: UTC+4); with `link_day_as_window`, it is widened by a day each side
    #: instead (for feeds whose days are not the theatre's).
    link_day_utc_offset_hours: float = Field(default=4.0, ge=-12, le=14)
    link_day_as_window: bool = False
    #: Added to a pair's fit when its fire categories differ (a report prefers an
    #: incident of its own category); 0 turns the preference off.
    link_category_mismatch: float = Field(default=0.25, ge=0, le=10)
    #: Most reports of one linking cell (a zone, category class, time precision and
    #: time bucket) that link at all; past it each is an incident alone (a flood).
    link_crowd_limit: int = Field(default=100, ge=1, le=100_000)
    #: Most precise reports linked through one another (a component) grouped as a whole;
    #: a larger one, a chain (a day of fire at one place, a report a minute), links only
    #: within time blocks of `link_chain_block_minutes` (a piece still past the limit
    #: within a quarter of that, then a sixteenth), so that a change regroups a piece or
    #: two, not the chain. 0: no limit (a chain's work then grows as its square).
    link_chain_limit: int = Field(default=100, ge=0, le=1_000_000)
    link_chain_block_minutes: float = Field(default=120.0, gt=0, le=7 * 24 * 60)
    #: Evidence for choosing among the incidents a report links with completely (never
    #: for whether two reports link): added to its fit to an incident when none of the
    #: incident's reports agrees with it on its exact category, whether anyone was harmed,
    #: the perpetrator, the target, the named place, the time of day a day report's text
    #: states (`LinkRule`; 0 turns one off).
    link_unmatched_category: float = Field(default=0.25, ge=0, le=10)
    link_unmatched_harm: float = Field(default=0.5, ge=0, le=10)
    link_unmatched_perpetrator: float = Field(default=0.25, ge=0, le=10)
    link_unmatched_target: float = Field(default=0.25, ge=0, le=10)
    link_unmatched_place: float = Field(default=0.25, ge=0, le=10)
    link_unmatched_time_of_day: float = Field(default=0.5, ge=0, le=10)
    #: What the stages write on their internal topics and changelogs, and how workers ask
    #: each other. 8 (the default): a worker's `scope=local` queries to a peer carry a
    #: signature made with CEASEFIRE_API_TOKEN (`web/peer_auth.py`), never the token. 7: the
    #: token itself, as workers before 8 sent it and take only it; a closed day larger than
    #: `archive.UNIT_PART_BYTES` is written in parts, each a record
    #: the broker takes. 6: in one record, as workers before 7 wrote (a part after the first
    #: stops their recovery); the record's changelog rows keep a report's raw names (a
    #: perpetrator, target or claimant that matched no party, as given). 5: they do not, as
    #: workers before 6 wrote; the
    #: record's changelog keeps the linking rule, and a recovery under another rule
    #: publishes the regrouping (`IncidentBook.adopted`); its rows keep the civilian flag;
    #: identity entries keep a check of the classification (a re-send classified otherwise
    #: is reclassified). 4: none of these, as workers before 5 wrote; classified documents,
    #: upserts and the record's changelog rows carry the time of day a day report's text
    #: states. 3: they do not, as workers before 4 wrote and read them;
    #: identity entries keep the digest of the report as sent. 2: they keep the classified
    #: document's digest, as workers before 3 wrote and read them; upserts carry what the
    #: zone stage reads of a report, by field (`ceasefire.reports.by-zone`,
    #: `ceasefire.incidents.by-zone`). 1: also whole documents on those topics, as workers
    #: before 2 wrote and read them. Set the format of the oldest workers on new ones while
    #: those still run (a rolling upgrade), then remove it and restart them one at a time.
    #: Each reads what every earlier one wrote.
    internal_format: int = Field(default=8, ge=1, le=8)
    #: Largest batch a stage's agent takes at once, and how long it waits to fill it.
    batch_size: int = Field(default=1000, ge=1)
    batch_within: float = Field(default=0.05, gt=0)
    #: Packs (messages of many reports) a stage's stream buffers ahead of its steps: the
    #: back-pressure bound on what a backlog puts in memory (Faust's default, 4,096
    #: events, held hundreds of MB of packs while a million-report backlog drained).
    stream_buffer_packs: int = Field(default=64, ge=1, le=4096)
    #: Longest a consumer's fetch waits for data. Apache Kafka answers as soon as data
    #: arrives; the embedded broker waits it out, so it bounds each hop's latency there.
    fetch_max_wait_ms: int = Field(default=100, ge=1, le=5000)
    #: While a backlog lasts, ingest takes from the input partitions whose last record is
    #: within this many ms (record time) of the furthest behind (streams/pipeline/
    #: alignment.py), so the later stages see a narrow band of event time; 0 is strict
    #: order. Past `ingest_align_patience` seconds without records from the partitions it
    #: waits for, it stops waiting for them.
    ingest_align_ms: int = Field(default=100, ge=0)
    ingest_align_patience: float = Field(default=1.0, gt=0)
    #: Ingest (validation, classification, packing) in a process of its own, on another
    #: core than the stateful stages (`ingest_process.py`); false: inside the worker.
    ingest_process: bool = True
    #: Packs (messages of up to 256 reports) of the keyed topic the worker's stages may have
    #: to apply before its ingest holds (`Ingest.pace`); it goes on at half.
    ingest_lead_packs: int = Field(default=128, ge=1)
    #: The identity stage (revisions) in a process of its own, in the consumer group
    #: `<app id>-identity` (`identity_process.py`); false: inside the worker.
    identity_process: bool = True
    data_dir: Path = Path("var/ceasefire")

    def link_rule(self) -> LinkRule:
        """The linking rule these settings describe."""
        from streams.record.linking import LinkRule

        return LinkRule(
            window_seconds=self.link_window_minutes * 60,
            distance_km=self.link_distance_km,
            day_utc_offset_hours=None
            if self.link_day_as_window
            else self.link_day_utc_offset_hours,
            category_mismatch=self.link_category_mismatch,
            unmatched_category=self.link_unmatched_category,
            unmatched_harm=self.link_unmatched_harm,
            unmatched_perpetrator=self.link_unmatched_perpetrator,
            unmatched_target=self.link_unmatched_target,
            unmatched_place=self.link_unmatched_place,
            unmatched_time_of_day=self.link_unmatched_time_of_day,
            crowd_limit=self.link_crowd_limit,
            chain_limit=self.link_chain_limit or None,
            chain_block_seconds=self.link_chain_block_minutes * 60,
        )

    def embedded_url(self) -> str:
        return f"kafka://127.0.0.1:{self.embedded_port}"

    def bootstrap(self) -> str:
        """host:port list for kafka-python / aiokafka."""
        url = self.broker or self.embedded_url()
        return url.removeprefix("kafka://").replace(";", ",")

    def broker_url(self) -> str:
        url = self.broker or self.embedded_url()
        return url if "://" in url else f"kafka://{url}"

    def topic(self, name: str) -> str:
        return f"{self.topic_prefix}{name}"

    @property
    def reports_topic(self) -> str:
        return self.topic("reports")

    @property
    def dlq_topic(self) -> str:
        return self.topic("reports.dlq")

    @property
    def incidents_topic(self) -> str:
        return self.topic("incidents")

    @property
    def alerts_topic(self) -> str:
        return self.topic("alerts")

    @property
    def keyed_topic(self) -> str:
        """Internal: accepted reports re-keyed by (source, report_id)."""
        return self.topic("reports.accepted")

    @property
    def zone_reports_topic(self) -> str:
        """Internal: accepted report versions and removals, routed by zone (identity
        stage -> zone stage)."""
        return self.topic("reports.by-zone")

    @property
    def zone_packs_topic(self) -> str:
        """Internal: the reports that opened or joined an incident, as that incident,
        packed by zone, for the alerting stage."""
        return self.topic("incidents.by-zone")

    @property
    def theatre_topic(self) -> str:
        """Internal: each change of a zone's fatality ledger (the latest entry of a zone's
        incident), one partition, for the theatre-wide evaluator (alert stage -> theatre
        stage)."""
        return self.topic("fatalities.theatre")

    def web_url(self) -> str:
        """How peers (and the other commands) reach this worker's API: the advertised URL,
        else `http://web_host:web_port` (an IPv6 host in brackets)."""
        return self.advertised_url or f"http://{url_host(self.web_host)}:{self.web_port}"

    def advertises_a_wildcard(self) -> bool:
        """Whether peers are told this worker is at a wildcard address (`0.0.0.0`, `::`):
        the API listens on every address, and no advertised URL says which one reaches it."""
        return self.advertised_url is None and self.web_host in WILDCARD_HOSTS

    def kafka_security(self) -> dict[str, Any]:
        """Keyword arguments for kafka-python / aiokafka clients."""
        opts: dict[str, Any] = {"security_protocol": self.security_protocol}
        if self.security_protocol.startswith("SASL"):
            opts.update(
                sasl_mechanism=self.sasl_mechanism,
                sasl_plain_username=self.sasl_username,
                sasl_plain_password=self.sasl_password,
            )
        ctx = self.ssl_context()
        if ctx is not None:
            opts["ssl_context"] = ctx
        return opts

    def ssl_context(self) -> ssl.SSLContext | None:
        if not self.security_protocol.endswith("SSL"):
            return None
        ctx = ssl.create_default_context(cafile=str(self.ssl_cafile) if self.ssl_cafile else None)
        if self.ssl_certfile:
            ctx.load_cert_chain(
                str(self.ssl_certfile), str(self.ssl_keyfile) if self.ssl_keyfile else None
            )
        return ctx

"""Every Prometheus metric the monitor exports, in one place.

Label values come only from closed sets (codes in `schemas.codes`, zone ids of the
loaded catalogue, rule names of the loaded rule file, topic names, partition
numbers), so series counts stay bounded whatever the input says.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

# -- SPEC.md metrics ---------------------------------------------------------------
REPORTS = Counter(
    "ceasefire_reports",
    "Distinct reports accepted and counted, by source type (re-sent duplicates excluded).",
    ["source_type"],
    registry=REGISTRY,
)
REJECTED = Counter(
    "ceasefire_reports_rejected",
    "Inputs rejected to the dead-letter topic, by reason.",
    ["reason"],
    registry=REGISTRY,
)
INCIDENTS = Counter(
    "ceasefire_incidents",
    "Classified incidents, by zone, alleged perpetrator, category and severity.",
    ["zone", "party", "category", "severity"],
    registry=REGISTRY,
)
CASUALTIES = Counter(
    "ceasefire_casualties",
    "People killed or wounded in classified incidents.",
    ["zone", "party", "kind"],
    registry=REGISTRY,
)
INCIDENTS_WINDOW = Gauge(
    "ceasefire_incidents_window",
    "Incidents in the rolling event-time window ending now (window `all`: since the "
    "ceasefire began). Exported by the worker that owns partition 0 of the zone stage, for "
    "the whole cluster.",
    ["zone", "party", "window"],
    registry=REGISTRY,
)
INCIDENTS_PREVIOUS_WINDOW = Gauge(
    "ceasefire_incidents_previous_window",
    "Incidents in the event-time window just before the rolling window ending now (the "
    "`previous_incidents` of compare=previous), as the window gauge is exported.",
    ["zone", "party", "window"],
    registry=REGISTRY,
)
CASUALTIES_WINDOW = Gauge(
    "ceasefire_casualties_window",
    "People killed or wounded in the incidents of the event-time window ending now (window "
    "`all`: since the ceasefire began), as the window gauge is exported.",
    ["zone", "party", "kind", "window"],
    registry=REGISTRY,
)
ALERTS = Counter(
    "ceasefire_alerts",
    "Alerts that started firing, by rule and severity.",
    ["rule", "severity"],
    registry=REGISTRY,
)
ALERTS_FIRING = Gauge(
    "ceasefire_alerts_firing",
    "Alerts firing now, by rule and zone, for the alert partitions this worker owns.",
    ["rule", "zone"],
    registry=REGISTRY,
)
# Up to 15 min: a p99 above the last finite bucket reads as that bucket, so a backlog of
# minutes showed as "1m" in CeasefireProcessingLatencyHigh's summary.
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 180, 900)
PROCESSING_SECONDS = Histogram(
    "ceasefire_processing_seconds",
    "Seconds from a report's arrival on the input topic to its classified incident.",
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
_LAG_BUCKETS = (
    1,
    10,
    60,
    300,
    900,
    3600,
    3 * 3600,
    6 * 3600,  # CeasefireEventLagHigh's threshold: its share is read off exactly
    12 * 3600,
    86400,
    3 * 86400,
    7 * 86400,
    30 * 86400,
)
EVENT_LAG_SECONDS = Histogram(
    "ceasefire_event_lag_seconds",
    "Seconds from a report's occurred_at to its arrival.",
    buckets=_LAG_BUCKETS,
    registry=REGISTRY,
)

# -- Operational metrics -----------------------------------------------------------
DUPLICATES = Counter(
    "ceasefire_reports_duplicate",
    "Reports re-sent with a (source, report_id) already counted; not counted again.",
    registry=REGISTRY,
)
CONSUMER_LAG = Gauge(
    "ceasefire_consumer_lag_messages",
    "Messages not yet processed, per topic and partition this worker owns "
    "(high watermark from fetch responses minus position).",
    ["topic", "partition"],
    registry=REGISTRY,
)
IDENTITY_MODE_MIXED = Gauge(
    "ceasefire_identity_mode_mixed_workers",
    "Workers of the other CEASEFIRE_IDENTITY_PROCESS mode this worker's last look found in "
    "its cluster (every session timeout); while above 0, every report is counted twice.",
    registry=REGISTRY,
)
STATE_RECOVERY_SECONDS = Gauge(
    "ceasefire_state_recovery_seconds",
    "Duration of the last recovery of a stage's state from its changelog, by the stage's "
    "input topic.",
    ["topic"],
    registry=REGISTRY,
)
STATE_RECOVERED_ENTRIES = Gauge(
    "ceasefire_state_recovered_entries",
    "Changelog records read in the last recovery of a stage's state, by input topic.",
    ["topic"],
    registry=REGISTRY,
)
REPORTS_HELD = Gauge(
    "ceasefire_reports_held",
    "Current reports the zone stage holds for the partitions this worker owns: `open` "
    "linked in memory, `closed` in days older than the retention, kept compressed "
    '(docs/record.md, "Retention").',
    ["state"],
    registry=REGISTRY,
)
REPORTS_CROWDED = Gauge(
    "ceasefire_reports_crowded",
    "Current reports of the partitions this worker owns that link with no other report "
    "because their linking cell (zone, category class, precisions, time bucket) holds more "
    "than CEASEFIRE_LINK_CROWD_LIMIT: each is an incident alone, so a flood at one place "
    'and time is counted report by report (docs/record.md, "Crowded cells").',
    registry=REGISTRY,
)
PARTITIONS_OWNED = Gauge(
    "ceasefire_partitions_owned",
    "Partitions of the zone stage (incidents and tallies) this worker owns.",
    registry=REGISTRY,
)
REPORT_OUTCOMES = Counter(
    "ceasefire_report_versions",
    "Report versions by what they did: new, revised, reinstated, withdrawn, duplicate, "
    "stale (a lower revision than already applied: ignored), conflict (dead-lettered as "
    "revision_conflict), reclassified (a re-send the classifier now makes another document "
    "of: it replaces the old classification).",
    ["outcome"],
    registry=REGISTRY,
)
BROKER_ANSWERING = Gauge(
    "ceasefire_broker_answering",
    "1 while the worker's broker answers its metadata probes (1 before the first), 0 after "
    "3 probes in a row went unanswered, 12-15 s (the worker is then not ready).",
    registry=REGISTRY,
)
WORKER_READY = Gauge(
    "ceasefire_worker_ready",
    "1 once the worker has recovered its state and is processing.",
    registry=REGISTRY,
)
LAST_REPORT_TIMESTAMP = Gauge(
    "ceasefire_last_report_timestamp_seconds",
    "Arrival time (unix seconds) of the newest accepted report, by source type.",
    ["source_type"],
    registry=REGISTRY,
)
ALERT_DELIVERIES = Counter(
    "ceasefire_alert_deliveries",
    "Alert deliveries to external receivers, by target and outcome.",
    ["target", "outcome"],
    registry=REGISTRY,
)
SKIPPED_RECOVERED = Counter(
    "ceasefire_skipped_records_recovered",
    "Records of a stage's input that were skipped before reaching the stage (during a "
    "rebalance) and that the stage then read and applied itself, by topic.",
    ["topic"],
    registry=REGISTRY,
)
INPUT_MISSING = Counter(
    "ceasefire_input_records_missing",
    "Offsets of a stage's input (or of the input topic, for ingest) that it had not "
    "applied and that the broker no longer holds when it reads them (deleted by the "
    "topic's retention while it was behind), by topic: input lost to it.",
    ["topic"],
    registry=REGISTRY,
)
PARTITION_STALLED = Gauge(
    "ceasefire_partition_stalled",
    "1 while a stage's input partition has records beyond what it applied and no progress "
    "for a minute (the worker is then not ready), by topic and partition.",
    ["topic", "partition"],
    registry=REGISTRY,
)
PROCESS_RESTARTS = Counter(
    "ceasefire_worker_process_restarts",
    "Restarts of a worker's child process (`ingest`, `identity`), by why it was restarted: "
    "`exited` (it ended: a crash, an out-of-memory kill) or `silent` (it sent no status for "
    "30 s and was killed as hung). The worker is not ready while one restarts.",
    ["process", "cause"],
    registry=REGISTRY,
)
API_CONNECTIONS = Gauge(
    "ceasefire_api_connections",
    "Connections the worker's API holds open now (admitted by its connection limits).",
    registry=REGISTRY,
)
API_CONNECTIONS_REFUSED = Counter(
    "ceasefire_api_connections_refused",
    "Connections to the API refused with a 503 at a connection limit: `per_address` "
    "(CEASEFIRE_MAX_CONNECTIONS_PER_ADDRESS) or `total` (CEASEFIRE_MAX_CONNECTIONS).",
    ["limit"],
    registry=REGISTRY,
)
API_HEAVY_REFUSED = Counter(
    "ceasefire_api_heavy_requests_refused",
    "Requests for a large answer (`endpoint`: `series`, or `incidents` as CSV or with a "
    "limit over 100) answered 503 because the worker was answering as many at once as it "
    "admits; `scope`: `cluster` for clients, `local` for peers' per-partition requests.",
    ["endpoint", "scope"],
    registry=REGISTRY,
)
ZONE_INFO = Gauge(
    "ceasefire_zone_info",
    "1 for each zone of the loaded catalogue, with its name and the centroid of its polygons "
    "(WGS84 degrees), to place zones on a map (Grafana geomap): join on `zone`.",
    ["zone", "name", "lat", "lon"],
    registry=REGISTRY,
)

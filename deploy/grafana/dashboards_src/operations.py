"""The operations dashboard: is the monitor keeping up, losing or rejecting anything?

Queries use the raw worker metrics with `$__rate_interval` (Grafana picks a window
that fits the zoom). `$job` and `$instance` come from `ceasefire_worker_ready`, so the
dashboard works whatever the scrape job is called.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as dashboard_b
from grafana_foundation_sdk.models import dashboard as dashboard_m

from .common import Q, bargauge, query_variable, row, stat, timeseries

UID = "ceasefire-operations"

# Label matchers every operations query carries.
W = 'job=~"$job", instance=~"$instance"'
UP_DOWN = {"0": ("DOWN", "red"), "1": ("UP", "green")}
READY = {"0": ("NOT READY", "red"), "1": ("READY", "green")}
ANSWERING = {"0": ("NO ANSWER", "red"), "1": ("ANSWERS", "green")}


def _quantiles(metric: str) -> list[Q]:
    return [
        Q(
            f"histogram_quantile({q}, sum by (le) "
            f"(rate({metric}_bucket{{{W}}}[$__rate_interval])))",
            f"p{round(q * 100)}",
        )
        for q in (0.5, 0.9, 0.99)
    ]


def build() -> dashboard_b.Dashboard:
    return (
        dashboard_b.Dashboard("Ceasefire monitor — operations")
        .uid(UID)
        .description(
            "Health of the ceasefire monitor workers: throughput, rejections, latency, "
            "consumer lag, state recovery and alert delivery."
        )
        .tags(["ceasefire", "operations"])
        .timezone("utc")
        .time("now-6h", "now")
        .refresh("30s")
        .tooltip(dashboard_m.DashboardCursorSync.CROSSHAIR)
        .readonly()
        .with_variable(
            query_variable(
                "job",
                "Job",
                "label_values(ceasefire_worker_ready, job)",
                multi=False,
                include_all=False,
            )
        )
        .with_variable(
            query_variable(
                "instance",
                "Worker",
                'label_values(ceasefire_worker_ready{job=~"$job"}, instance)',
            )
        )
        # -- Worker health ---------------------------------------------------------
        .with_row(row("Worker health"))
        .with_panel(
            stat(
                "Workers scraped",
                "Whether Prometheus can scrape each worker's /metrics.",
                [Q(f"up{{{W}}}", "{{instance}}")],
                mappings=UP_DOWN,
                thresholds=((None, "red"), (1, "green")),
                width=4,
            )
        )
        .with_panel(
            stat(
                "Workers ready",
                "1 once a worker has recovered its counting state and is processing "
                "(GET /readyz answers 200; /healthz is liveness only).",
                [Q(f"ceasefire_worker_ready{{{W}}}", "{{instance}}")],
                mappings=READY,
                thresholds=((None, "red"), (1, "green")),
                width=4,
            )
        )
        .with_panel(
            stat(
                "Broker answering",
                "Whether each worker's Kafka broker answers its metadata probes (NO ANSWER "
                "after 3 in a row, 12-15 s). NO ANSWER on every worker: the broker is down "
                "(CeasefireBrokerNotAnswering).",
                [Q(f"ceasefire_broker_answering{{{W}}}", "{{instance}}")],
                mappings=ANSWERING,
                thresholds=((None, "red"), (1, "green")),
                width=4,
            )
        )
        .with_panel(
            stat(
                "Partitions owned",
                "Partitions of the counting topic each worker owns; together they should "
                "cover all partitions (CEASEFIRE_PARTITIONS).",
                [Q(f"ceasefire_partitions_owned{{{W}}}", "{{instance}}")],
                width=4,
            )
        )
        .with_panel(
            stat(
                "Last state recovery",
                "Duration of each worker's last recovery of a stage's state from its changelog "
                "(the slowest stage).",
                [Q(f"max by (instance) (ceasefire_state_recovery_seconds{{{W}}})", "{{instance}}")],
                unit="s",
                width=4,
                thresholds=((None, "green"), (60, "orange"), (300, "red")),
            )
        )
        .with_panel(
            stat(
                "Changelog entries recovered",
                "Changelog records read in each worker's last state recovery, all stages.",
                [
                    Q(
                        f"sum by (instance) (ceasefire_state_recovered_entries{{{W}}})",
                        "{{instance}}",
                    )
                ],
                width=4,
            )
        )
        .with_panel(
            stat(
                "Workers of the other identity mode",
                "Workers of the cluster each worker finds running the identity stage the other "
                "way (CEASEFIRE_IDENTITY_PROCESS), asked every session timeout. Above 0, every "
                "report is counted twice (CeasefireIdentityModesMixed).",
                [Q(f"ceasefire_identity_mode_mixed_workers{{{W}}}", "{{instance}}")],
                thresholds=((None, "green"), (1, "red")),
                width=4,
            )
        )
        .with_panel(
            timeseries(
                "Reports held",
                "Current reports each worker's zone stage holds: open (linked in memory) and "
                "closed (days older than the retention, kept compressed; their counts stay "
                "exact). Open reports cost memory and restart time: they should stay near what "
                "the retention holds. Crowded: open reports of a linking cell past "
                "CEASEFIRE_LINK_CROWD_LIMIT (a flood at one place and time), each an incident "
                "alone; above 0, look at what is flooding that zone.",
                [
                    Q(f"ceasefire_reports_held{{{W}}}", "{{instance}} {{state}}"),
                    Q(f"ceasefire_reports_crowded{{{W}}}", "{{instance}} crowded"),
                ],
                width=20,
            )
        )
        # -- Throughput ------------------------------------------------------------
        .with_row(row("Throughput and rejections"))
        .with_panel(
            timeseries(
                "Accepted reports per second by source type",
                "Distinct reports accepted and counted (re-sent duplicates excluded).",
                [
                    Q(
                        "sum by (source_type) "
                        f"(rate(ceasefire_reports_total{{{W}}}[$__rate_interval]))",
                        "{{source_type}}",
                    )
                ],
                unit="reqps",
                stack=True,
                width=8,
            )
        )
        .with_panel(
            timeseries(
                "Report versions per second by outcome",
                "What each version of a report did: new, revised, reinstated, withdrawn, "
                "duplicate, stale (an older revision, ignored), conflict (dead-lettered), "
                "reclassified (a re-send the classifier now places or reads otherwise).",
                [
                    Q(
                        "sum by (outcome) "
                        f"(rate(ceasefire_report_versions_total{{{W}}}[$__rate_interval]))",
                        "{{outcome}}",
                    )
                ],
                unit="reqps",
                stack=True,
                width=8,
            )
        )
        .with_panel(
            timeseries(
                "Rejected inputs per second by reason",
                "Inputs sent to the dead-letter topic (ceasefire.reports.dlq), by reason.",
                [
                    Q(
                        "sum by (reason) "
                        f"(rate(ceasefire_reports_rejected_total{{{W}}}[$__rate_interval]))",
                        "{{reason}}",
                    )
                ],
                unit="reqps",
                stack=True,
                width=8,
            )
        )
        .with_panel(
            timeseries(
                "Dead-letter ratio",
                "Share of inputs rejected: rejected / (accepted + rejected), accepted being "
                "every report version applied (duplicates too). Operators are alerted above "
                "10% (CeasefireDeadLetterRateHigh).",
                [
                    Q(
                        f"(sum(rate(ceasefire_reports_rejected_total{{{W}}}[$__rate_interval])) "
                        "or vector(0)) / ("
                        "(sum(rate(ceasefire_report_versions_total"
                        f'{{{W}, outcome!="conflict"}}[$__rate_interval])) '
                        "or vector(0)) + "
                        f"(sum(rate(ceasefire_reports_rejected_total{{{W}}}[$__rate_interval])) "
                        "or vector(0)))",
                        "rejected share",
                    )
                ],
                unit="percentunit",
                width=8,
            )
        )
        .with_panel(
            timeseries(
                "Incidents classified per second by worker",
                "How the counting load spreads over the workers.",
                [
                    Q(
                        "sum by (instance) "
                        f"(rate(ceasefire_incidents_total{{{W}}}[$__rate_interval]))",
                        "{{instance}}",
                    )
                ],
                unit="reqps",
                width=8,
            )
        )
        .with_panel(
            timeseries(
                "Duplicates per second",
                "Reports re-sent with a (source, report_id) already counted; not counted again.",
                [
                    Q(
                        f"sum(rate(ceasefire_reports_duplicate_total{{{W}}}[$__rate_interval]))",
                        "duplicates",
                    )
                ],
                unit="reqps",
                width=8,
            )
        )
        .with_panel(
            bargauge(
                "Time since the last report by source type",
                "Age of the newest accepted report of each source type, remembered for 3 days "
                "across worker restarts as the alert does. Operators are alerted after 6 "
                "hours (CeasefireNoReports; dataset imports excluded).",
                [
                    Q(
                        "time() - max by (source_type) "
                        "(max_over_time(ceasefire:last_report_timestamp_seconds:max[3d]))",
                        "{{source_type}}",
                    )
                ],
                unit="s",
                width=8,
                thresholds=((None, "green"), (3600, "orange"), (21600, "red")),
            )
        )
        # -- Latency and lag -------------------------------------------------------
        .with_row(row("Latency and lag"))
        .with_panel(
            timeseries(
                "Processing latency (arrival to classified incident)",
                "Quantiles of the time from a report's arrival on the input topic to its "
                "classified incident.",
                _quantiles("ceasefire_processing_seconds"),
                unit="s",
            )
        )
        .with_panel(
            timeseries(
                "Event lag (occurred_at to arrival)",
                "Quantiles of how late reports arrive after the event. Operators are "
                "alerted when over a quarter arrive more than 6 hours late for an hour "
                "(CeasefireEventLagHigh).",
                _quantiles("ceasefire_event_lag_seconds"),
                unit="s",
            )
        )
        .with_panel(
            timeseries(
                "Consumer lag by topic",
                "Messages not yet processed, summed over partitions (a partition exported "
                "by two workers during a rebalance counts once).",
                [
                    Q(
                        "sum by (topic) (max by (topic, partition) "
                        f"(ceasefire_consumer_lag_messages{{{W}}}))",
                        "{{topic}}",
                    )
                ],
                unit="short",
            )
        )
        .with_panel(
            timeseries(
                "Consumer lag by worker",
                "Messages not yet processed on the partitions each worker owns.",
                [
                    Q(
                        f"sum by (instance) (ceasefire_consumer_lag_messages{{{W}}})",
                        "{{instance}}",
                    )
                ],
                unit="short",
            )
        )
        .with_panel(
            timeseries(
                "Stalled partitions",
                "Input partitions of the counting and alert stages with records beyond what "
                "the stage applied and no progress for a minute (CeasefirePartitionStalled).",
                [
                    Q(
                        "sum by (topic) (max by (topic, partition) "
                        f"(ceasefire_partition_stalled{{{W}}}))",
                        "{{topic}}",
                    )
                ],
                unit="short",
            )
        )
        .with_panel(
            timeseries(
                "Skipped records read back",
                "Records skipped before reaching a stage during a rebalance, which the stage "
                "then read and applied itself: nothing lost, shown so a rise can be explained.",
                [
                    Q(
                        "sum by (topic) (increase("
                        f"ceasefire_skipped_records_recovered_total{{{W}}}[$__rate_interval]))",
                        "{{topic}}",
                    )
                ],
                unit="short",
            )
        )
        .with_panel(
            timeseries(
                "Input lost to retention",
                "Offsets of a stage's input it had not applied that the broker no longer held "
                "(deleted by the topic's retention while the stage was behind): lost to it. 0 "
                "in normal operation; the worker's log names the offsets.",
                [
                    Q(
                        "sum by (topic) (increase("
                        f"ceasefire_input_records_missing_total{{{W}}}[$__rate_interval]))",
                        "{{topic}}",
                    )
                ],
                unit="short",
            )
        )
        .with_panel(
            timeseries(
                "Child process restarts",
                "Restarts of each worker's ingest and identity processes: `exited` (a crash, "
                "an out-of-memory kill) or `silent` (no status for 30 s: killed as hung). The "
                "worker is not ready while one restarts; 0 in normal operation, and the "
                "worker's log says how each ended.",
                [
                    Q(
                        "sum by (instance, process, cause) (increase("
                        f"ceasefire_worker_process_restarts_total{{{W}}}[$__rate_interval]))",
                        "{{instance}} · {{process}} · {{cause}}",
                    )
                ],
                unit="short",
            )
        )
        .with_panel(
            timeseries(
                "API connections",
                "Connections each worker's API holds open, those refused with a 503 at a "
                "connection limit (per client address, or in all) per second, and requests "
                "for a large answer (a series, an export) refused with a 503 while the worker "
                "answered as many at once as it admits.",
                [
                    Q(f"sum by (instance) (ceasefire_api_connections{{{W}}})", "{{instance}} open"),
                    Q(
                        "sum by (limit) (rate("
                        f"ceasefire_api_connections_refused_total{{{W}}}[$__rate_interval]))",
                        "refused · {{limit}}",
                    ),
                    Q(
                        "sum by (endpoint, scope) (rate("
                        f"ceasefire_api_heavy_requests_refused_total{{{W}}}[$__rate_interval]))",
                        "heavy refused · {{endpoint}} · {{scope}}",
                    ),
                ],
                unit="short",
            )
        )
        # -- Alert delivery --------------------------------------------------------
        .with_row(row("Alert delivery"))
        .with_panel(
            timeseries(
                "Alert deliveries per second by target and outcome",
                "Deliveries of ceasefire alerts to external receivers (Alertmanager, webhooks).",
                [
                    Q(
                        "sum by (target, outcome) "
                        f"(rate(ceasefire_alert_deliveries_total{{{W}}}[$__rate_interval]))",
                        "{{target}} · {{outcome}}",
                    )
                ],
                unit="reqps",
            )
        )
        .with_panel(
            timeseries(
                "Ceasefire alerts firing by worker",
                "Alerts firing on the alert partitions each worker owns.",
                [
                    Q(
                        f"sum by (instance) (ceasefire_alerts_firing{{{W}}})",
                        "{{instance}}",
                    )
                ],
                unit="short",
            )
        )
    )

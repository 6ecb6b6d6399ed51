"""The analyst dashboard: where, by whom, what and how badly the ceasefire is violated.

Exact figures come from `ceasefire_incidents_window`, `ceasefire_incidents_previous_window`
and `ceasefire_casualties_window` (the monitor's own event-time tallies, exported once for
the whole cluster): totals since the ceasefire (window `all`), the change against the
window before, and daily trends by event time, so a backfill of history is not a spike at
the time of the import. Arrival-time rates come from the recording rules of
deploy/prometheus/recording_rules.yml (`ceasefire:incidents:rate5m` and friends), which
keep month-long ranges cheap; the Prometheus behind this dashboard must load them.

The counters behind those rates (`ceasefire_incidents_total`, `ceasefire_casualties_total`)
only add: a report revised from 3 killed to 0, or withdrawn, still counts 3, and an
incident revised from critical to high stays critical. So every figure that should be the
corrected one (casualties, tallies) is on the window gauges, which a revision or withdrawal
corrects as GET /api/v1/tallies does; the few panels left on the counters (categories and
severities, which the gauges do not carry, and rates by arrival) say in their title and
description that they count incidents as first reported, by arrival time.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as dashboard_b
from grafana_foundation_sdk.models import dashboard as dashboard_m

from .common import (
    RED_ABOVE_ZERO,
    Q,
    bargauge,
    geomap,
    piechart,
    query_variable,
    row,
    stat,
    table,
    timeseries,
)

UID = "ceasefire-analyst"

# Label matchers every analyst query carries.
ZP = 'zone=~"$zone", party=~"$party"'
WINDOWS = ("1h", "24h", "7d", "30d")
#: The window gauge's windows: the rolling ones and `all` (since the ceasefire began).
GAUGE_WINDOWS = (*WINDOWS, "all")
WINDOW_TITLES = {"all": "Since the ceasefire"}
#: What the panels left on the counters say of their figures.
AS_FIRST_REPORTED = (
    "As first reported, by arrival time: corrections and withdrawals are not subtracted (a "
    "report revised from 3 killed to 0, or withdrawn, still counts 3; an incident revised "
    "from critical to high stays critical). Corrected figures: the panels on the monitor's "
    "tallies (the window gauges) and GET /api/v1/tallies."
)
#: The zone variable's values: every zone with incidents, and the zone label of alerts,
#: which is `theatre` for theatre-wide rules (alerting/rules.py, THEATRE).
ZONE_VALUES = 'label_values({__name__=~"ceasefire_incidents_total|ceasefire_alerts_firing"}, zone)'
#: Zones placed by their centroids (one series per zone of the catalogue on every worker:
#: `max by` keeps one), with their incidents in the window, 0 where there are none.
ZONE_MAP_QUERY = (
    'max by (zone, name, lat, lon) (ceasefire_zone_info{zone=~"$zone"}) '
    "* on (zone) group_left () ("
    f'sum by (zone) (ceasefire_incidents_window{{window=~"$window", {ZP}}}) '
    'or on (zone) (0 * max by (zone) (ceasefire_zone_info{zone=~"$zone"})))'
)
#: Recording rules are evaluated every minute (group `ceasefire-incidents`): summing the
#: per-second rate5m samples over a range and multiplying by 60 gives the count.
RULE_INTERVAL_S = 60


def _window_table() -> list[dashboard_m.DataTransformerConfig]:
    """Merge the per-window queries into one row per (zone, party)."""
    refs = "ABCDE"
    rename = {
        f"Value #{ref}": WINDOW_TITLES.get(w, f"Last {w}")
        for ref, w in zip(refs, GAUGE_WINDOWS, strict=True)
    }
    return [
        dashboard_m.DataTransformerConfig(id_val="merge", options={}),
        dashboard_m.DataTransformerConfig(
            id_val="organize",
            options={
                "excludeByName": {"Time": True},
                "indexByName": {
                    "zone": 0,
                    "party": 1,
                    **{f"Value #{ref}": i + 2 for i, ref in enumerate(refs)},
                },
                "renameByName": {"zone": "Zone", "party": "Alleged perpetrator", **rename},
            },
        ),
        dashboard_m.DataTransformerConfig(
            id_val="sortBy",
            options={"fields": {}, "sort": [{"field": "Last 24h", "desc": True}]},
        ),
    ]


def build() -> dashboard_b.Dashboard:
    return (
        dashboard_b.Dashboard("Ceasefire monitor — analyst")
        .uid(UID)
        .description(
            "Ceasefire violations by zone, alleged perpetrator and category: rolling "
            "tallies, trends, casualties and the monitor's alerts."
        )
        .tags(["ceasefire", "analyst"])
        .timezone("utc")
        .time("now-7d", "now")
        .refresh("1m")
        .tooltip(dashboard_m.DashboardCursorSync.CROSSHAIR)
        .readonly()
        .with_variable(
            query_variable(
                "zone",
                "Zone",
                # the catalogue's zones, and `theatre` once a theatre-wide alert exists
                ZONE_VALUES,
                all_value=".*",
            )
        )
        .with_variable(
            query_variable(
                "party",
                "Alleged perpetrator",
                "label_values(ceasefire_incidents_total, party)",
                all_value=".*",
            )
        )
        .with_variable(
            dashboard_b.CustomVariable("window")
            .label("Tally window")
            .values(",".join(GAUGE_WINDOWS))
            .current(dashboard_m.VariableOption(selected=True, text="24h", value="24h"))
        )
        .with_variable(
            # The window before `all` (since the ceasefire) does not exist: the comparison
            # has its own variable, without it (with `$window`, `all` showed No data).
            dashboard_b.CustomVariable("compare")
            .label("Compared window")
            .values(",".join(WINDOWS))
            .current(dashboard_m.VariableOption(selected=True, text="24h", value="24h"))
        )
        # -- Overview --------------------------------------------------------------
        .with_row(row("Overview"))
        .with_panel(
            stat(
                "Incidents in rolling windows",
                "Distinct incidents whose event time falls in the window ending now "
                "(the monitor's tallies, as GET /api/v1/tallies answers).",
                [
                    Q(f'sum(ceasefire_incidents_window{{window="{w}", {ZP}}})', f"Last {w}")
                    for w in WINDOWS
                ],
                width=12,
            )
        )
        .with_panel(
            stat(
                "Since the ceasefire",
                "Incidents and people killed and wounded since the ceasefire took effect "
                "(2020-11-09T21:00:00Z, CEASEFIRE_CEASEFIRE_START), by event time: the "
                "tallies' window=all, imported history included.",
                [
                    Q(f'sum(ceasefire_incidents_window{{window="all", {ZP}}})', "Incidents"),
                    Q(
                        f'sum(ceasefire_casualties_window{{kind="killed", window="all", {ZP}}})',
                        "Killed",
                    ),
                    Q(
                        f'sum(ceasefire_casualties_window{{kind="wounded", window="all", {ZP}}})',
                        "Wounded",
                    ),
                ],
                width=12,
                decimals=0,
            )
        )
        .with_panel(
            stat(
                "Last $compare against the window before",
                "Incidents in the rolling window ending now, in the window of the same "
                "length just before it, and the change (compare=previous of the tallies, "
                "like the 'previous 24 hours' of a daily report). The window is the "
                "'Compared window' variable (1h, 24h, 7d or 30d): since the ceasefire has "
                "no window before it.",
                [
                    Q(f'sum(ceasefire_incidents_window{{window="$compare", {ZP}}})', "Now"),
                    Q(
                        f'sum(ceasefire_incidents_previous_window{{window="$compare", {ZP}}})',
                        "Window before",
                    ),
                    Q(
                        f'sum(ceasefire_incidents_window{{window="$compare", {ZP}}}) - '
                        f'sum(ceasefire_incidents_previous_window{{window="$compare", {ZP}}})',
                        "Change",
                    ),
                ],
                width=8,
                decimals=0,
            )
        )
        .with_panel(
            stat(
                "Alerts firing now",
                "Ceasefire alerts currently firing in the selected zones.",
                [Q('sum(ceasefire_alerts_firing{zone=~"$zone"})', "Firing")],
                width=4,
                thresholds=RED_ABOVE_ZERO,
            )
        )
        .with_panel(
            stat(
                "Casualties in the last $window",
                "People killed and wounded in the incidents whose event time falls in the "
                "selected tally window ending now (`all`: since the ceasefire), each "
                "incident's figure once, as corrected by revisions and withdrawals (the "
                "monitor's tallies, as GET /api/v1/tallies answers).",
                [
                    Q(
                        "sum(ceasefire_casualties_window"
                        f'{{kind="killed", window=~"$window", {ZP}}})',
                        "Killed",
                    ),
                    Q(
                        "sum(ceasefire_casualties_window"
                        f'{{kind="wounded", window=~"$window", {ZP}}})',
                        "Wounded",
                    ),
                ],
                width=8,
                thresholds=RED_ABOVE_ZERO,
                decimals=0,
            )
        )
        # -- Incidents over time ---------------------------------------------------
        .with_row(row("Incidents over time"))
        .with_panel(
            timeseries(
                "Incidents per day by zone (event time)",
                "At each moment, the incidents whose event time lies in the 24 hours before "
                "it, by zone (the window gauge): a daily trend by when incidents occurred, so "
                "a backfill of old history does not show as a spike when it is imported. "
                "History from before the monitor ran: GET /api/v1/series or "
                "`ceasefire-monitor export series`.",
                [
                    Q(
                        f'sum by (zone) (ceasefire_incidents_window{{window="24h", {ZP}}})',
                        "{{zone}}",
                    )
                ],
                unit="short",
                stack=True,
            )
        )
        .with_panel(
            timeseries(
                "Killed per day by zone (event time)",
                "At each moment, the people killed in incidents whose event time lies in the "
                "24 hours before it, by zone (each incident's figure once, never summed "
                "across the reports of one event).",
                [
                    Q(
                        "sum by (zone) (ceasefire_casualties_window"
                        f'{{kind="killed", window="24h", {ZP}}})',
                        "{{zone}}",
                    )
                ],
                unit="short",
                stack=True,
            )
        )
        .with_panel(
            timeseries(
                "Incidents per day by alleged perpetrator (event time)",
                "At each moment, the incidents whose event time lies in the 24 hours before "
                "it, by alleged perpetrator.",
                [
                    Q(
                        f'sum by (party) (ceasefire_incidents_window{{window="24h", {ZP}}})',
                        "{{party}}",
                    )
                ],
                unit="short",
                stack=True,
            )
        )
        .with_panel(
            timeseries(
                "Incidents classified per hour by category (arrival time, as first reported)",
                "Rate of classified incidents (5-minute average), by violation category, by "
                "when they reached the monitor: an import of history shows here as a spike. "
                + AS_FIRST_REPORTED,
                [
                    Q(
                        f"sum by (category) (ceasefire:incidents:rate5m{{{ZP}}}) * 3600",
                        "{{category}}",
                    )
                ],
                unit="short",
                stack=True,
            )
        )
        .with_panel(
            timeseries(
                "Incidents classified per hour by severity (arrival time, as first reported)",
                "Rate of classified incidents (5-minute average), by severity, by when they "
                "reached the monitor: an import of history shows here as a spike. "
                + AS_FIRST_REPORTED,
                [
                    Q(
                        "sum by (severity) "
                        f"(ceasefire:incidents_by_severity:rate5m{{{ZP}}}) * 3600",
                        "{{severity}}",
                    )
                ],
                unit="short",
                stack=True,
            )
        )
        # -- Rolling tallies -------------------------------------------------------
        .with_row(row("Rolling tallies"))
        .with_panel(
            geomap(
                "Incidents in the last $window on the map",
                "Each zone at the centroid of its polygons (ceasefire_zone_info, from the "
                "loaded zone catalogue), sized and coloured by its incidents in the selected "
                "window; zones without incidents show 0. The monitor's own page (GET / on "
                "any worker) draws the zone polygons themselves.",
                [Q(ZONE_MAP_QUERY, "{{name}}")],
                value="Incidents",
                label="name",
                center=(40, 46),
                zoom=7,
                width=24,
                height=12,
            )
        )
        .with_panel(
            bargauge(
                "Incidents in the last $window by zone",
                "The monitor's event-time tally for the selected window, by zone.",
                [
                    Q(
                        f'sum by (zone) (ceasefire_incidents_window{{window=~"$window", {ZP}}})',
                        "{{zone}}",
                    )
                ],
                width=8,
                height=10,
                decimals=0,
            )
        )
        .with_panel(
            bargauge(
                "Incidents in the last $window by alleged perpetrator",
                "The monitor's event-time tally for the selected window, by alleged perpetrator.",
                [
                    Q(
                        f'sum by (party) (ceasefire_incidents_window{{window=~"$window", {ZP}}})',
                        "{{party}}",
                    )
                ],
                width=6,
                height=10,
                decimals=0,
            )
        )
        .with_panel(
            table(
                "Rolling tallies by zone and alleged perpetrator",
                "Incidents per (zone, alleged perpetrator) in each rolling window and since "
                "the ceasefire.",
                [
                    Q(
                        f'sum by (zone, party) (ceasefire_incidents_window{{window="{w}", {ZP}}})',
                        w,
                    )
                    for w in GAUGE_WINDOWS
                ],
                transformations=_window_table(),
                width=10,
                height=10,
            )
        )
        # -- Casualties ------------------------------------------------------------
        .with_row(row("Casualties"))
        .with_panel(
            timeseries(
                "Casualties reported per hour (arrival time, as first reported)",
                "People killed and wounded per hour (5-minute average), by when their reports "
                "reached the monitor. " + AS_FIRST_REPORTED,
                [Q(f"sum by (kind) (ceasefire:casualties:rate5m{{{ZP}}}) * 3600", "{{kind}}")],
                unit="short",
                bars=True,
                width=8,
            )
        )
        .with_panel(
            bargauge(
                "Casualties in the last $window by zone",
                "People killed and wounded in the incidents of the selected tally window "
                "(event time; `all`: since the ceasefire), by zone, as corrected by revisions "
                "and withdrawals (the monitor's tallies).",
                [
                    Q(
                        "sum by (zone, kind) "
                        f'(ceasefire_casualties_window{{window=~"$window", {ZP}}})',
                        "{{zone}} · {{kind}}",
                    )
                ],
                width=8,
                decimals=0,
            )
        )
        .with_panel(
            bargauge(
                "Casualties in the last $window by alleged perpetrator",
                "People killed and wounded in the incidents of the selected tally window "
                "(event time; `all`: since the ceasefire), by alleged perpetrator, as "
                "corrected by revisions and withdrawals (the monitor's tallies).",
                [
                    Q(
                        "sum by (party, kind) "
                        f'(ceasefire_casualties_window{{window=~"$window", {ZP}}})',
                        "{{party}} · {{kind}}",
                    )
                ],
                width=8,
                decimals=0,
            )
        )
        # -- Categories ------------------------------------------------------------
        .with_row(row("Categories"))
        .with_panel(
            piechart(
                "Incidents by category in the time range (as first reported, by arrival)",
                "Share of violation categories among incidents classified in the dashboard's "
                "time range, by when they reached the monitor (the tallies do not keep "
                "categories). " + AS_FIRST_REPORTED,
                [
                    Q(
                        "sum by (category) (sum_over_time("
                        f"ceasefire:incidents:rate5m{{{ZP}}}[$__range])) "
                        f"* {RULE_INTERVAL_S}",
                        "{{category}}",
                    )
                ],
                width=12,
                height=9,
            )
        )
        .with_panel(
            piechart(
                "Incidents by severity in the time range (as first reported, by arrival)",
                "Share of severities among incidents classified in the dashboard's time "
                "range, by when they reached the monitor (the tallies do not keep "
                "severities). " + AS_FIRST_REPORTED,
                [
                    Q(
                        "sum by (severity) (sum_over_time("
                        f"ceasefire:incidents_by_severity:rate5m{{{ZP}}}[$__range])) "
                        f"* {RULE_INTERVAL_S}",
                        "{{severity}}",
                    )
                ],
                width=12,
                height=9,
            )
        )
        # -- Alerts ----------------------------------------------------------------
        .with_row(row("Alerts"))
        .with_panel(
            table(
                "Alerts firing now by rule and zone",
                "Ceasefire alerts currently firing, by rule and zone (the resolved ones, a "
                "row at 0 for each rule and zone, are left out). Details: GET "
                "/api/v1/alerts?status=firing.",
                [Q('sum by (rule, zone) (ceasefire_alerts_firing{zone=~"$zone"}) > 0', "")],
                transformations=[
                    dashboard_m.DataTransformerConfig(
                        id_val="organize",
                        options={
                            "excludeByName": {"Time": True},
                            "renameByName": {"rule": "Rule", "zone": "Zone", "Value": "Firing"},
                        },
                    ),
                    dashboard_m.DataTransformerConfig(
                        id_val="sortBy",
                        options={"fields": {}, "sort": [{"field": "Firing", "desc": True}]},
                    ),
                ],
                width=8,
            )
        )
        .with_panel(
            timeseries(
                "Alerts started per hour by rule",
                "Ceasefire alerts that started firing per hour (5-minute average), by rule.",
                [Q("sum by (rule) (ceasefire:alerts:rate5m) * 3600", "{{rule}}")],
                unit="short",
                bars=True,
                width=8,
            )
        )
        .with_panel(
            bargauge(
                "Alerts started in the time range by rule and severity",
                "Ceasefire alerts that started firing in the dashboard's time range.",
                [
                    Q(
                        "sum by (rule, severity) (increase(ceasefire_alerts_total[$__range]))",
                        "{{rule}} · {{severity}}",
                    )
                ],
                width=8,
                decimals=0,
            )
        )
    )

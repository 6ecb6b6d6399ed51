"""Shared pieces of the dashboards: data source, query and panel helpers.

Every panel is built through these helpers so all dashboards look alike: the same
Prometheus data source (uid `prometheus`, provisioned by
deploy/grafana/provisioning/datasources/prometheus.yml), stable refIds, and options set
explicitly rather than left to Grafana's defaults.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from grafana_foundation_sdk.builders import bargauge as bargauge_b
from grafana_foundation_sdk.builders import common as common_b
from grafana_foundation_sdk.builders import dashboard as dashboard_b
from grafana_foundation_sdk.builders import geomap as geomap_b
from grafana_foundation_sdk.builders import piechart as piechart_b
from grafana_foundation_sdk.builders import prometheus as prometheus_b
from grafana_foundation_sdk.builders import stat as stat_b
from grafana_foundation_sdk.builders import table as table_b
from grafana_foundation_sdk.builders import timeseries as timeseries_b
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.models import common as common_m
from grafana_foundation_sdk.models import dashboard as dashboard_m
from grafana_foundation_sdk.models import geomap as geomap_m
from grafana_foundation_sdk.models import piechart as piechart_m
from grafana_foundation_sdk.models import prometheus as prometheus_m

#: The provisioned Prometheus data source. Its uid is fixed so the dashboard JSON does
#: not depend on the Grafana instance.
DATASOURCE = dashboard_m.DataSourceRef(type_val="prometheus", uid="prometheus")

REF_IDS = "ABCDEFGHIJ"


@dataclass(frozen=True)
class Q:
    """One PromQL query of a panel."""

    expr: str
    legend: str = "__auto"


def _targets(
    queries: Sequence[Q], *, instant: bool, table: bool = False
) -> list[cogbuilder.Builder[cogvariants.Dataquery]]:
    out: list[cogbuilder.Builder[cogvariants.Dataquery]] = []
    for ref, q in zip(REF_IDS, queries, strict=False):
        t = (
            prometheus_b.Dataquery()
            .expr(q.expr)
            .legend_format(q.legend)
            .ref_id(ref)
            .editor_mode(prometheus_m.QueryEditorMode.CODE)
            .datasource(DATASOURCE)
        )
        t = t.instant() if instant else t.range()
        if table:
            t = t.format(prometheus_m.PromQueryFormat.TABLE)
        out.append(t)
    if len(out) != len(queries):
        raise ValueError("too many queries in one panel")
    return out


def _thresholds(*steps: tuple[float | None, str]) -> dashboard_b.ThresholdsConfig:
    return (
        dashboard_b.ThresholdsConfig()
        .mode(dashboard_m.ThresholdsMode.ABSOLUTE)
        .steps([dashboard_m.Threshold(value=v, color=c) for v, c in steps])
    )


GREEN_ONLY = ((None, "green"),)
RED_ABOVE_ZERO = ((None, "green"), (1, "red"))


def timeseries(
    title: str,
    description: str,
    queries: Sequence[Q],
    *,
    unit: str = "short",
    stack: bool = False,
    bars: bool = False,
    width: int = 12,
    height: int = 8,
    decimals: float | None = None,
    minimum: float | None = 0,
) -> timeseries_b.Panel:
    p = (
        timeseries_b.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .targets(_targets(queries, instant=False))
        .unit(unit)
        .span(width)
        .height(height)
        .line_width(1)
        .fill_opacity(60 if bars else 10)
        .draw_style(common_m.GraphDrawStyle.BARS if bars else common_m.GraphDrawStyle.LINE)
        .show_points(common_m.VisibilityMode.NEVER)
        .span_nulls(False)
        .stacking(
            common_b.StackingConfig().mode(
                common_m.StackingMode.NORMAL if stack else common_m.StackingMode.NONE
            )
        )
        .legend(
            common_b.VizLegendOptions()
            .display_mode(common_m.LegendDisplayMode.TABLE)
            .placement(common_m.LegendPlacement.RIGHT)
            .show_legend(True)
            .calcs(["mean", "max", "lastNotNull"])
        )
        .tooltip(
            common_b.VizTooltipOptions()
            .mode(common_m.TooltipDisplayMode.MULTI)
            .sort(common_m.SortOrder.DESCENDING)
        )
        .thresholds(_thresholds(*GREEN_ONLY))
    )
    if minimum is not None:
        p = p.min(minimum)
    if decimals is not None:
        p = p.decimals(decimals)
    return p


def stat(
    title: str,
    description: str,
    queries: Sequence[Q],
    *,
    unit: str = "short",
    width: int = 6,
    height: int = 5,
    thresholds: Sequence[tuple[float | None, str]] = GREEN_ONLY,
    mappings: dict[str, tuple[str, str]] | None = None,
    no_value: str | None = None,
    decimals: float | None = None,
) -> stat_b.Panel:
    p = (
        stat_b.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .targets(_targets(queries, instant=True))
        .unit(unit)
        .span(width)
        .height(height)
        .graph_mode(common_m.BigValueGraphMode.NONE)
        .color_mode(common_m.BigValueColorMode.VALUE)
        .text_mode(common_m.BigValueTextMode.VALUE_AND_NAME)
        .justify_mode(common_m.BigValueJustifyMode.AUTO)
        .orientation(common_m.VizOrientation.AUTO)
        .reduce_options(common_b.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        .thresholds(_thresholds(*thresholds))
    )
    if mappings:
        p = p.mappings(
            [
                dashboard_m.ValueMap(
                    options={
                        value: dashboard_m.ValueMappingResult(text=text, color=color, index=i)
                        for i, (value, (text, color)) in enumerate(sorted(mappings.items()))
                    }
                )
            ]
        )
    if no_value is not None:
        p = p.no_value(no_value)
    if decimals is not None:
        p = p.decimals(decimals)
    return p


def bargauge(
    title: str,
    description: str,
    queries: Sequence[Q],
    *,
    unit: str = "short",
    width: int = 8,
    height: int = 8,
    thresholds: Sequence[tuple[float | None, str]] = GREEN_ONLY,
    decimals: float | None = None,
) -> bargauge_b.Panel:
    p = (
        bargauge_b.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .targets(_targets(queries, instant=True))
        .unit(unit)
        .span(width)
        .height(height)
        .min(0)
        .display_mode(common_m.BarGaugeDisplayMode.GRADIENT)
        .orientation(common_m.VizOrientation.HORIZONTAL)
        .show_unfilled(True)
        .reduce_options(common_b.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        .thresholds(_thresholds(*thresholds))
        .color_scheme(
            dashboard_b.FieldColor().mode(dashboard_m.FieldColorModeId.CONTINUOUS_BL_YL_RD)
        )
    )
    if decimals is not None:
        p = p.decimals(decimals)
    return p


def piechart(
    title: str,
    description: str,
    queries: Sequence[Q],
    *,
    unit: str = "short",
    width: int = 8,
    height: int = 8,
) -> piechart_b.Panel:
    return (
        piechart_b.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .targets(_targets(queries, instant=True))
        .unit(unit)
        .span(width)
        .height(height)
        .decimals(0)
        .pie_type(piechart_m.PieChartType.DONUT)
        .reduce_options(common_b.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        .legend(
            piechart_b.PieChartLegendOptions()
            .display_mode(common_m.LegendDisplayMode.TABLE)
            .placement(common_m.LegendPlacement.RIGHT)
            .show_legend(True)
            .values(
                [piechart_m.PieChartLegendValues.VALUE, piechart_m.PieChartLegendValues.PERCENT]
            )
        )
        .tooltip(common_b.VizTooltipOptions().mode(common_m.TooltipDisplayMode.SINGLE))
    )


def table(
    title: str,
    description: str,
    queries: Sequence[Q],
    *,
    transformations: Sequence[dashboard_m.DataTransformerConfig] = (),
    unit: str = "short",
    width: int = 12,
    height: int = 8,
) -> table_b.Panel:
    p = (
        table_b.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .targets(_targets(queries, instant=True, table=True))
        .unit(unit)
        .span(width)
        .height(height)
        .show_header(True)
        .cell_height(common_m.TableCellHeight.SM)
    )
    for t in transformations:
        p = p.with_transformation(t)
    return p


def geomap(
    title: str,
    description: str,
    queries: Sequence[Q],
    *,
    value: str,
    label: str,
    center: tuple[int, int],
    zoom: int,
    width: int = 12,
    height: int = 10,
) -> geomap_b.Panel:
    """Markers at the `lat` and `lon` labels of an instant table query (label values are
    text, so they are converted to numbers first), sized and coloured by the field `value`
    and named by the field `label`."""
    markers = (
        common_b.MapLayerOptions()
        .type("markers")
        .name("Zones")
        .location(
            common_b.FrameGeometrySource()
            .mode(common_m.FrameGeometrySourceMode.COORDS)
            .latitude("lat")
            .longitude("lon")
        )
        .tooltip(True)
        .config(
            {
                "showLegend": True,
                "style": {
                    "color": {"field": value, "fixed": "dark-green"},
                    "opacity": 0.7,
                    "size": {"field": value, "fixed": 6, "min": 6, "max": 30},
                    "symbol": {"fixed": "img/icons/marker/circle.svg", "mode": "fixed"},
                    "text": {"field": label, "mode": "field"},
                    "textConfig": {
                        "fontSize": 10,
                        "offsetY": -14,
                        "textAlign": "center",
                        "textBaseline": "bottom",
                    },
                },
            }
        )
    )
    return (
        geomap_b.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .targets(_targets(queries, instant=True, table=True))
        .span(width)
        .height(height)
        .view(geomap_b.MapViewConfig().id("coords").lat(center[0]).lon(center[1]).zoom(zoom))
        # Grafana's default base map (it needs Grafana to reach the internet; the markers
        # show without it).
        .basemap(common_b.MapLayerOptions().type("default").name("Base map"))
        .layers([markers])
        .controls(geomap_b.ControlsOptions().show_zoom(True).mouse_wheel_zoom(False))
        .tooltip(geomap_b.TooltipOptions().mode(geomap_m.TooltipMode.DETAILS))
        .color_scheme(dashboard_b.FieldColor().mode(dashboard_m.FieldColorModeId.CONTINUOUS_YL_RD))
        .min(0)
        .with_transformation(
            dashboard_m.DataTransformerConfig(
                id_val="convertFieldType",
                options={
                    "conversions": [
                        {"targetField": "lat", "destinationType": "number"},
                        {"targetField": "lon", "destinationType": "number"},
                    ],
                    "fields": {},
                },
            )
        )
        .with_transformation(
            dashboard_m.DataTransformerConfig(
                id_val="organize",
                options={"excludeByName": {"Time": True}, "renameByName": {"Value": value}},
            )
        )
    )


def row(title: str) -> dashboard_b.Row:
    return dashboard_b.Row(title)


def query_variable(
    name: str,
    label: str,
    query: str,
    *,
    multi: bool = True,
    include_all: bool = True,
    all_value: str | None = None,
) -> dashboard_b.QueryVariable:
    v = (
        dashboard_b.QueryVariable(name)
        .label(label)
        .datasource(DATASOURCE)
        .query(query)
        .refresh(dashboard_m.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(dashboard_m.VariableSort.ALPHABETICAL_CASE_INSENSITIVE_ASC)
        .multi(multi)
        .include_all(include_all)
    )
    if include_all:
        v = v.current(dashboard_m.VariableOption(selected=True, text="All", value="$__all"))
    if all_value is not None:
        v = v.all_value(all_value)
    return v

"""Every dashboard panel query, recording rule and alerting rule on a real Prometheus.

Debian's Prometheus scrapes a stand-in exporter that serves the monitor's own metric
registry (streams/metrics.py) filled with synthetic, moving values, and loads the rule
files of deploy/prometheus with one-second intervals. Then every panel query (Grafana
variables substituted) and every recorded series must return data, and every rule must
evaluate without error. This checks the PromQL of deploy/ against the Prometheus version
CI installs, independently of the pipeline. `test_panels_on_a_real_worker` then does the
same against a real worker fed a scenario through a real broker.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from streams.kafka.broker import free_port
from tests.harness import wait_for

ROOT = Path(__file__).resolve().parents[1]
PROM = ROOT / "deploy" / "prometheus"

EXPORTER = textwrap.dedent(
    """
    import random, sys, time
    from prometheus_client import start_http_server
    from streams import metrics as m

    start_http_server(int(sys.argv[1]), addr="127.0.0.1", registry=m.REGISTRY)
    rnd = random.Random(2020)
    zones, parties = ["shusha", "lachin-corridor", "loc-east"], ["az", "am", "nk"]
    categories, severities = ["small_arms_fire", "drone_strike", "civilian_harm"], ["low", "high"]
    m.WORKER_READY.set(1)
    m.BROKER_ANSWERING.set(1)
    for i, z in enumerate([*zones, "aghdam-district"]):  # the last without incidents
        m.ZONE_INFO.labels(z, z.title(), f"{39.7 + i / 10:.4f}", f"{46.7 + i / 10:.4f}").set(1)
    m.PARTITIONS_OWNED.set(8)
    for topic in ("ceasefire.reports.accepted", "ceasefire.reports.by-zone"):
        m.STATE_RECOVERY_SECONDS.labels(topic).set(1.5)
        m.STATE_RECOVERED_ENTRIES.labels(topic).set(1234)
    for rule in ("incident_surge", "attack_on_peacekeepers"):
        m.ALERTS_FIRING.labels(rule, "shusha").set(1)
    m.ALERTS_FIRING.labels("theatre_fatality_peak", "theatre").set(1)  # a theatre-wide rule
    m.REPORTS_HELD.labels("open").set(55000)
    m.REPORTS_HELD.labels("closed").set(945000)
    while True:
        for _ in range(5):
            z, p = rnd.choice(zones), rnd.choice(parties)
            st = rnd.choice(["observation_post", "patrol", "party_statement"])
            m.REPORTS.labels(st).inc()
            m.LAST_REPORT_TIMESTAMP.labels(st).set(time.time())
            m.INCIDENTS.labels(z, p, rnd.choice(categories), rnd.choice(severities)).inc()
            m.CASUALTIES.labels(z, p, "wounded").inc(rnd.randint(0, 2))
            m.CASUALTIES.labels(z, p, "killed").inc(rnd.randint(0, 1))
            m.PROCESSING_SECONDS.observe(rnd.uniform(0.001, 0.3))
            m.EVENT_LAG_SECONDS.observe(rnd.uniform(5, 7200))
        m.REJECTED.labels(rnd.choice(["unknown_field", "invalid_json"])).inc()
        m.DUPLICATES.inc()
        m.REPORT_OUTCOMES.labels(rnd.choice(["new", "revised", "stale"])).inc()
        m.ALERTS.labels("incident_surge", "high").inc()
        m.ALERT_DELIVERIES.labels("alertmanager", "ok").inc()
        for z in zones:
            for p in parties:
                for w, n in (("1h", 1), ("24h", 5), ("7d", 20), ("30d", 50), ("all", 900)):
                    m.INCIDENTS_WINDOW.labels(z, p, w).set(n + rnd.randint(0, 3))
                    m.CASUALTIES_WINDOW.labels(z, p, "killed", w).set(rnd.randint(0, 2))
                    m.CASUALTIES_WINDOW.labels(z, p, "wounded", w).set(rnd.randint(0, 4))
                    if w != "all":
                        m.INCIDENTS_PREVIOUS_WINDOW.labels(z, p, w).set(n + rnd.randint(0, 3))
        for part in range(4):
            m.CONSUMER_LAG.labels("ceasefire.reports", str(part)).set(rnd.randint(0, 50))
            m.PARTITION_STALLED.labels("ceasefire.reports.accepted", str(part)).set(0)
        m.SKIPPED_RECOVERED.labels("ceasefire.reports.accepted").inc(rnd.randint(0, 3))
        m.INPUT_MISSING.labels("ceasefire.reports.by-zone").inc(rnd.randint(0, 1))
        m.API_CONNECTIONS.set(rnd.randint(1, 9))
        m.API_HEAVY_REFUSED.labels(rnd.choice(["series", "incidents"]), "cluster").inc()
        m.PROCESS_RESTARTS.labels(rnd.choice(["ingest", "identity"]), "exited").inc()
        m.API_CONNECTIONS_REFUSED.labels(rnd.choice(["per_address", "total"])).inc()
        time.sleep(0.2)
    """
)


def get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.loads(resp.read())


class Prometheus:
    def __init__(self, base: str) -> None:
        self.base = base

    def query(self, expr: str) -> list[dict[str, Any]]:
        data = get(f"{self.base}/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
        assert data["status"] == "success", data
        result: list[dict[str, Any]] = data["data"]["result"]
        return result


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def start_prometheus(tmp: Path, target: str) -> tuple[Prometheus, subprocess.Popen[bytes]]:
    """Debian's Prometheus scraping `target` each second, with the shipped rules
    evaluated each second."""
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("prometheus is not installed (CI installs Debian's package)")
    prom_port = free_port()
    rule_files = []
    for name in ("recording_rules.yml", "alerting_rules.yml"):
        rules = yaml.safe_load((PROM / name).read_text())
        for group in rules["groups"]:
            group["interval"] = "1s"
        (tmp / name).write_text(yaml.safe_dump(rules))
        rule_files.append(name)
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": rule_files,
        "scrape_configs": [
            {"job_name": "ceasefire-monitor", "static_configs": [{"targets": [target]}]}
        ],
    }
    (tmp / "prometheus.yml").write_text(yaml.safe_dump(config))
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={tmp / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp / 'data'}",
            f"--web.listen-address=127.0.0.1:{prom_port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=(tmp / "prometheus.log").open("wb"),
    )
    base = f"http://127.0.0.1:{prom_port}"
    try:
        wait_for(lambda: get(f"{base}/api/v1/status/buildinfo"), timeout=30, what="prometheus")
    except BaseException:
        stop(proc)
        raise
    return Prometheus(base), proc


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    tmp = tmp_path_factory.mktemp("prometheus")
    exporter_port = free_port()
    exporter = subprocess.Popen(
        [sys.executable, "-c", EXPORTER, str(exporter_port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=(tmp / "exporter.log").open("wb"),
    )
    proc = None
    try:
        prom, proc = start_prometheus(tmp, f"127.0.0.1:{exporter_port}")
        # Rates need two scrapes; recorded series one evaluation after that.
        wait_for(
            lambda: all(prom.query(name) for name in ("ceasefire:incidents:rate5m", "up")) or None,
            timeout=60,
            what="recorded series",
        )
        time.sleep(3)
        yield prom
    finally:
        if proc is not None:
            stop(proc)
        stop(exporter)


def test_every_panel_query_returns_data(prometheus: Prometheus) -> None:
    from deploy.grafana.build import panel_queries, substitute

    empty = []
    for dashboard, title, expr in panel_queries():
        if not prometheus.query(substitute(expr)):
            empty.append(f"{dashboard}: {title}: {substitute(expr)}")
    assert empty == []


@pytest.mark.parametrize("window", ["1h", "24h", "7d", "30d", "all"])
def test_every_panel_query_returns_data_at_every_window(
    prometheus: Prometheus, window: str
) -> None:
    """Each value of the analyst's custom variables, not only `.*`: with `$window` = all,
    "Last $window against the window before" had No data (no previous window for `all`);
    it is on `$compare` now, which has no `all`."""
    from deploy.grafana.build import TEST_SUBSTITUTIONS, panel_queries, substitute
    from deploy.grafana.dashboards_src.analyst import GAUGE_WINDOWS, WINDOWS

    assert window in GAUGE_WINDOWS
    values = {**TEST_SUBSTITUTIONS, "$window": window}
    if window in WINDOWS:
        values["$compare"] = window
    empty = []
    for dashboard, title, expr in panel_queries():
        if ("$window" in expr or "$compare" in expr) and not prometheus.query(
            substitute(expr, values)
        ):
            empty.append(f"{dashboard}: {title}: {substitute(expr, values)}")
    assert empty == []


def test_the_zone_variable_lists_the_zones_and_the_theatre(prometheus: Prometheus) -> None:
    """What Grafana asks for `label_values(SELECTOR, zone)`: the label's values over the
    series the selector matches."""
    import re

    from deploy.grafana.dashboards_src.analyst import ZONE_VALUES

    m = re.fullmatch(r"label_values\((.+),\s*zone\)", ZONE_VALUES)
    assert m
    query = urllib.parse.urlencode({"match[]": m.group(1)})
    data = get(f"{prometheus.base}/api/v1/label/zone/values?{query}")
    assert data["status"] == "success", data
    assert set(data["data"]) == {"shusha", "lachin-corridor", "loc-east", "theatre"}


def test_zone_map_places_every_zone_with_its_window_count(prometheus: Prometheus) -> None:
    """The analyst geomap: one row per catalogue zone, with its coordinates and the sum of
    its window gauges over the parties (0 for a zone without incidents)."""
    from deploy.grafana.build import substitute
    from deploy.grafana.dashboards_src.analyst import ZONE_MAP_QUERY

    values = {"$window": "24h", "$zone": ".*", "$party": ".*"}
    rows = {r["metric"]["zone"]: r for r in prometheus.query(substitute(ZONE_MAP_QUERY, values))}
    assert set(rows) == {"shusha", "lachin-corridor", "loc-east", "aghdam-district"}
    assert float(rows["aghdam-district"]["value"][1]) == 0
    assert all(float(r["value"][1]) > 0 for z, r in rows.items() if z != "aghdam-district")
    assert all({"name", "lat", "lon"} <= set(r["metric"]) for r in rows.values())
    # In one query, so both sides read the same scrape of the moving gauges.
    window = 'sum by (zone) (ceasefire_incidents_window{window="24h"})'
    diff = prometheus.query(f"({substitute(ZONE_MAP_QUERY, values)}) - on (zone) {window}")
    assert {r["metric"]["zone"]: float(r["value"][1]) for r in diff} == {
        "shusha": 0,
        "lachin-corridor": 0,
        "loc-east": 0,
    }


def test_every_recording_rule_returns_data(prometheus: Prometheus) -> None:
    rules = yaml.safe_load((PROM / "recording_rules.yml").read_text())
    names = [r["record"] for g in rules["groups"] for r in g["rules"]]
    empty = [name for name in names if not prometheus.query(name)]
    assert empty == []


def test_every_rule_evaluates_without_error(prometheus: Prometheus) -> None:
    groups = get(f"{prometheus.base}/api/v1/rules")["data"]["groups"]
    rules = [r for g in groups for r in g["rules"]]
    assert len(rules) == sum(
        len(g["rules"])
        for name in ("recording_rules.yml", "alerting_rules.yml")
        for g in yaml.safe_load((PROM / name).read_text())["groups"]
    )
    bad = [(r["name"], r.get("lastError")) for r in rules if r["health"] != "ok"]
    assert bad == []


@pytest.mark.integration
@pytest.mark.timeout(300)
def test_panels_on_a_real_worker(tmp_path: Path, alertmanager: str) -> None:
    """A real worker, fed a simulated scenario with malformed inputs and a death, delivering
    to a real Alertmanager and scraped by a real Prometheus: every panel query returns data."""
    import json as _json
    from datetime import UTC, datetime, timedelta

    from deploy.grafana.build import panel_queries, substitute
    from streams.kafka.broker import EmbeddedBroker
    from streams.tools.simulate import Simulator
    from tests.harness import Worker, produce

    if shutil.which("prometheus") is None:
        pytest.skip("prometheus is not installed (CI installs Debian's package)")
    with EmbeddedBroker("127.0.0.1", free_port(), log=tmp_path / "tansu.log") as broker:
        worker = Worker(broker, tmp_path, env={"CEASEFIRE_ALERTMANAGER_URL": alertmanager}).start()
        proc = None
        try:
            sim = Simulator(11, start=datetime.now(UTC) - timedelta(minutes=20))
            docs = [_json.dumps(d).encode() for d in sim.reports(600, rate=0.5)]
            killed = {
                "report_id": "k1",
                "source": "pkf-op-1",
                "source_type": "patrol",
                "occurred_at": datetime.now(UTC).isoformat(),
                "location": {"place": "Shusha"},
                "category": "heavy_weapons_fire",
                "perpetrator": "az",
                "casualties": {"killed": 1, "wounded": 2},
            }
            produce(broker.bootstrap, "ceasefire.reports", [*docs, _json.dumps(killed).encode()])
            prom, proc = start_prometheus(tmp_path, f"127.0.0.1:{worker.port}")
            # a second, later batch so that every rate() sees an increase between scrapes
            time.sleep(4)
            more = [_json.dumps(d).encode() for d in Simulator(12).reports(200)]
            produce(broker.bootstrap, "ceasefire.reports", [*more, b"{oops", b'{"x": 1}'])
            # the window gauge is refreshed every 15 s; recording rules need two scrapes
            wait_for(
                lambda: (
                    prom.query("ceasefire_incidents_window")
                    and prom.query("ceasefire:incidents:rate5m")
                ),
                timeout=60,
                what="window gauge and recorded series from the worker",
            )
            queries = [
                (f"{dashboard}: {title}", substitute(expr))
                for dashboard, title, expr in panel_queries()
            ]
            empty: list[str] = [f"{name}: {q}" for name, q in queries]

            def all_panels_answer() -> bool:
                # Retried: a scrape that times out while the worker is busy ingesting marks
                # instant gauges stale until the next good scrape. A query that fails stays
                # in `empty`: only a full round of answers clears it.
                empty[:] = [f"{name}: {q}" for name, q in queries if not prom.query(q)]
                return not empty

            wait_for(
                all_panels_answer,
                timeout=60,
                what="every panel to return data",
                explain=lambda: "panels without data:\n" + "\n".join(empty),
            )
        finally:
            if proc is not None:
                stop(proc)
            worker.stop()

"""Every dashboard panel query, recording rule and alerting rule on a real Prometheus.

Debian's Prometheus scrapes a stand-in exporter that serves the monitor's own metric
registry (streams/metrics.py) filled with synthetic, moving values, and loads the rule
files of deploy/prometheus with one-second intervals. Then every panel query (Grafana
variables substituted) and every recorded series must return data, and every rule must
evaluate without error. This checks the PromQL of deploy/ against the Prometheus version
CI installs, independently of the pipeline; the end-to-end proof with real workers fed
a scenario is the integration test's.
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
    m.PARTITIONS_OWNED.set(8)
    m.STATE_RECOVERY_SECONDS.set(1.5)
    m.STATE_RECOVERED_ENTRIES.set(1234)
    for rule in ("incident_surge", "attack_on_peacekeepers"):
        m.ALERTS_FIRING.labels(rule, "shusha").set(1)
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
        m.ALERTS.labels("incident_surge", "high").inc()
        m.ALERT_DELIVERIES.labels("alertmanager", "ok").inc()
        for z in zones:
            for p in parties:
                for w, n in (("1h", 1), ("24h", 5), ("7d", 20), ("30d", 50)):
                    m.INCIDENTS_WINDOW.labels(z, p, w).set(n + rnd.randint(0, 3))
        for part in range(4):
            m.CONSUMER_LAG.labels("ceasefire.reports", str(part)).set(rnd.randint(0, 50))
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


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("prometheus is not installed (CI installs Debian's package)")
    tmp = tmp_path_factory.mktemp("prometheus")
    exporter_port, prom_port = free_port(), free_port()
    exporter = subprocess.Popen(
        [sys.executable, "-c", EXPORTER, str(exporter_port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=(tmp / "exporter.log").open("wb"),
    )
    # The shipped rules with every group evaluated each second.
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
            {
                "job_name": "ceasefire-monitor",
                "static_configs": [{"targets": [f"127.0.0.1:{exporter_port}"]}],
            }
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
        prom = Prometheus(base)
        # Rates need two scrapes; recorded series one evaluation after that.
        wait_for(
            lambda: all(prom.query(name) for name in ("ceasefire:incidents:rate5m", "up")) or None,
            timeout=60,
            what="recorded series",
        )
        time.sleep(3)
        yield prom
    finally:
        stop(proc)
        stop(exporter)


def test_every_panel_query_returns_data(prometheus: Prometheus) -> None:
    from deploy.grafana.build import panel_queries, substitute

    empty = []
    for dashboard, title, expr in panel_queries():
        if not prometheus.query(substitute(expr)):
            empty.append(f"{dashboard}: {title}: {substitute(expr)}")
    assert empty == []


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

"""Deployment artefacts: Prometheus rules and their unit tests, Alertmanager config,
generated Grafana dashboards, the compose stack and the Dockerfile.

promtool, amtool and docker-compose come from Debian's `prometheus`,
`prometheus-alertmanager` and `docker-compose` packages (.ci/run installs them); a test
that needs one is skipped only when that binary is missing.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PROM = ROOT / "deploy" / "prometheus"
ALERTMANAGER = ROOT / "deploy" / "alertmanager"
GRAFANA = ROOT / "deploy" / "grafana"
RULE_FILES = [PROM / "recording_rules.yml", PROM / "alerting_rules.yml"]
RULE_TESTS = sorted((PROM / "tests").glob("*.yml"))

# Alerts that fire always, by design, and why: they cannot have a not-firing unit test,
# and are for no person (severity "none"). Only an alert whose expr is `vector(1)` may be
# named here (test_every_alert_has_firing_and_quiet_unit_tests checks it).
ALWAYS_FIRING = {
    "CeasefireWatchdog": "the alerting path's heartbeat to the external dead-man's switch",
}
# The receiver that takes the heartbeat (deploy/alertmanager/alertmanager.yml).
DEADMANS_SWITCH = "deadmans-switch"

# Series that Prometheus and Alertmanager export about themselves (the scrape jobs
# `prometheus` and `alertmanager` of prometheus.yml), which the alerting-path rules read:
# name -> label names (Alertmanager 0.27 adds `reason` to its failure counter).
SELF_MONITORING = {
    "alertmanager_notifications_failed_total": {"job", "instance", "integration", "reason"},
    "alertmanager_notifications_total": {"job", "instance", "integration"},
    "prometheus_notifications_errors_total": {"job", "instance", "alertmanager"},
    "prometheus_notifications_dropped_total": {"job", "instance"},
    "prometheus_rule_evaluation_failures_total": {"job", "instance", "rule_group"},
}


def run(*cmd: str | Path, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(c) for c in cmd], cwd=cwd, capture_output=True, text=True, timeout=300
    )


def need(binary: str) -> str:
    path = shutil.which(binary)
    if path is None:
        pytest.skip(f"{binary} is not installed (CI installs it)")
    return path


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


# -- what streams/metrics.py exports ---------------------------------------------------
@cache
def exported_metrics() -> dict[str, set[str]]:
    """Series names a worker exposes -> their label names, read from streams/metrics.py.

    prometheus_client adds `_total` to counters; histograms expose `_bucket` (with `le`),
    `_sum` and `_count`. Prometheus adds `job` and `instance` when scraping.
    """
    tree = ast.parse((ROOT / "streams" / "metrics.py").read_text(encoding="utf-8"))
    out: dict[str, set[str]] = {}
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
            continue
        kind = node.func.id
        if kind not in {"Counter", "Gauge", "Histogram"}:
            continue
        name = ast.literal_eval(node.args[0])
        labels: list[str] = []
        if len(node.args) > 2:
            labels = list(ast.literal_eval(node.args[2]))
        for kw in node.keywords:
            if kw.arg == "labelnames":
                labels = list(ast.literal_eval(kw.value))
        base = {*labels, "job", "instance"}
        if kind == "Counter":
            out[f"{name}_total"] = base
        elif kind == "Gauge":
            out[name] = base
        else:
            out[f"{name}_bucket"] = {*base, "le"}
            out[f"{name}_sum"] = base
            out[f"{name}_count"] = base
    return out


@cache
def recording_rules() -> dict[str, set[str] | None]:
    """Recorded series name -> its labels (from `by (...)`; None when not derivable)."""
    out: dict[str, set[str] | None] = {}
    for group in load(PROM / "recording_rules.yml")["groups"]:
        for rule in group["rules"]:
            m = re.match(r"\s*\w+\s+by\s*\(([^)]*)\)", rule["expr"])
            labels = {s.strip() for s in m.group(1).split(",")} if m else set()
            if "histogram_quantile" in rule["expr"] or "vector(0)" in rule["expr"]:
                labels = set()
            out[rule["record"]] = labels
    return out


def alerting_rules() -> list[dict[str, Any]]:
    return [r for g in load(PROM / "alerting_rules.yml")["groups"] for r in g["rules"]]


STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
SELECTOR = re.compile(r"([A-Za-z_:][A-Za-z0-9_:]*)\s*(\{[^}]*\})?")
KEYWORDS = {
    "sum", "max", "min", "avg", "count", "by", "without", "on", "ignoring", "and", "or",
    "unless", "rate", "increase", "irate", "deriv", "histogram_quantile", "time",
    "max_over_time", "min_over_time", "sum_over_time", "vector", "group_left",
    "group_right", "bool", "offset", "label_values", "absent", "clamp_min", "topk",
    "humanize",
}  # fmt: skip


def selectors(expr: str) -> list[tuple[str, set[str]]]:
    """(metric name, matcher label names) of every series selector in a PromQL expr."""
    found = []
    # Drop grouping clauses and durations so their words are not taken for metrics.
    cleaned = STRING.sub('""', expr)
    cleaned = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", cleaned)
    cleaned = re.sub(r"\[[^\]]*\]", " ", cleaned)
    for m in SELECTOR.finditer(cleaned):
        name, braces = m.group(1), m.group(2)
        if name in KEYWORDS or name.startswith("$") or re.fullmatch(r"\d.*", name):
            continue
        if cleaned[m.end(1) : m.end(1) + 1] == "(":  # a function call
            continue
        labels = set()
        if braces:
            labels = set(re.findall(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)", braces))
        found.append((name, labels))
    return found


def check_expr(expr: str, where: str) -> list[str]:
    problems = []
    metrics = exported_metrics()
    records = recording_rules()
    names = 0
    for name, labels in selectors(expr):
        names += 1
        if name in metrics:
            unknown = labels - metrics[name]
        elif name in records:
            known = records[name]
            unknown = labels - known if known else set()
        elif name == "up":
            unknown = labels - {"job", "instance"}
        elif name in SELF_MONITORING:
            unknown = labels - SELF_MONITORING[name]
        else:
            problems.append(f"{where}: {name} is neither exported nor recorded")
            continue
        if unknown:
            problems.append(f"{where}: {name} has no label(s) {sorted(unknown)}")
    if names == 0 and "vector(" not in expr:
        problems.append(f"{where}: no metric in {expr!r}")
    return problems


def test_selector_parser_sees_metrics_not_functions_or_labels() -> None:
    got = selectors(
        'sum by (zone) (rate(ceasefire_incidents_total{zone=~"$zone", party="a}b"}[5m]))'
        " / on() group_left up"
    )
    assert got == [("ceasefire_incidents_total", {"zone", "party"}), ("up", set())]


def test_metric_parser_reads_streams_metrics() -> None:
    metrics = exported_metrics()
    assert "ceasefire_reports_total" in metrics
    assert "ceasefire_reports" not in metrics
    assert metrics["ceasefire_processing_seconds_bucket"] >= {"le", "instance"}
    assert metrics["ceasefire_incidents_window"] >= {"zone", "party", "window"}


# -- Prometheus ------------------------------------------------------------------------
def test_promtool_check_config() -> None:
    promtool = need("promtool")
    r = run(promtool, "check", "config", PROM / "prometheus.yml")
    assert r.returncode == 0, r.stdout + r.stderr


def test_promtool_check_rules() -> None:
    promtool = need("promtool")
    r = run(promtool, "check", "rules", *RULE_FILES)
    assert r.returncode == 0, r.stdout + r.stderr


def test_promtool_test_rules() -> None:
    promtool = need("promtool")
    assert RULE_TESTS, "no promtool unit tests in deploy/prometheus/tests"
    r = run(promtool, "test", "rules", *RULE_TESTS)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "FAILED" not in r.stdout + r.stderr


def test_every_alert_has_firing_and_quiet_unit_tests() -> None:
    firing: set[str] = set()
    quiet: set[str] = set()
    for path in RULE_TESTS:
        for case in load(path)["tests"]:
            for t in case.get("alert_rule_test") or []:
                (firing if t.get("exp_alerts") else quiet).add(t["alertname"])
    rules = {r["alert"]: r for r in alerting_rules()}
    names = set(rules)
    assert names - firing == set(), "alerts without a firing test"
    # The one exemption: an alert that always fires has no not-firing case.
    assert names - quiet - set(ALWAYS_FIRING) == set(), "alerts without a not-firing test"
    for name in ALWAYS_FIRING:
        assert name in rules, f"{name} is exempted but not a rule"
        assert rules[name]["expr"].strip() == "vector(1)", f"{name} does not always fire"
        assert "for" not in rules[name], f"{name} must fire from the first evaluation"
        assert name not in quiet, f"{name} always fires: a not-firing test cannot pass"


def test_every_recording_rule_has_a_unit_test() -> None:
    tested = {
        t["expr"].strip()
        for path in RULE_TESTS
        for case in load(path)["tests"]
        for t in case.get("promql_expr_test") or []
    }
    assert set(recording_rules()) - tested == set()


def test_prometheus_scrapes_the_compose_workers() -> None:
    config = load(PROM / "prometheus.yml")
    jobs = {j["job_name"]: j for j in config["scrape_configs"]}
    monitor = jobs["ceasefire-monitor"]
    assert monitor.get("metrics_path", "/metrics") == "/metrics"
    targets = {t for sc in monitor["static_configs"] for t in sc["targets"]}
    assert targets == {"worker-1:6066", "worker-2:6066"}
    am = config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert am == ["alertmanager:9093"]
    assert set(config["rule_files"]) == {p.name for p in RULE_FILES}


def test_prometheus_scrapes_itself_and_the_alertmanager_it_sends_to() -> None:
    """The alerting-path rules read Prometheus' own series and Alertmanager's: both must
    be scraped, Alertmanager at the address alerts are sent to, under the job the rules
    name."""
    config = load(PROM / "prometheus.yml")
    jobs = {j["job_name"]: j for j in config["scrape_configs"]}

    def targets(job: str) -> set[str]:
        return {t for sc in jobs[job]["static_configs"] for t in sc["targets"]}

    assert targets("prometheus") == {"localhost:9090"}
    sent_to = {
        t
        for am in config["alerting"]["alertmanagers"]
        for sc in am["static_configs"]
        for t in sc["targets"]
    }
    assert targets("alertmanager") == sent_to
    down = next(r for r in alerting_rules() if r["alert"] == "CeasefireAlertmanagerDown")
    assert 'up{job="alertmanager"}' in down["expr"]
    services = load(ROOT / "docker-compose.yml")["services"]
    assert {t.split(":")[0] for t in sent_to} <= set(services)


def test_rules_reference_only_exported_metrics() -> None:
    problems: list[str] = []
    for group in load(PROM / "recording_rules.yml")["groups"]:
        for rule in group["rules"]:
            problems += check_expr(rule["expr"], rule["record"])
    for rule in alerting_rules():
        problems += check_expr(rule["expr"], rule["alert"])
    assert problems == []


def test_alerts_are_documented() -> None:
    docs = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    headings = {
        re.sub(r"[^a-z0-9 -]", "", h.strip().lower()).replace(" ", "-")
        for h in re.findall(r"^#+\s+(.*)$", docs, flags=re.M)
    }
    for rule in alerting_rules():
        if rule["alert"] in ALWAYS_FIRING:  # a heartbeat, for no person
            assert rule["labels"]["severity"] == "none"
        else:
            assert rule["labels"]["severity"] in {"critical", "warning"}
        assert rule["annotations"]["summary"]
        runbook = rule["annotations"]["runbook"]
        assert runbook == f"docs/operations.md#{rule['alert'].lower()}"
        assert rule["alert"].lower() in headings, f"no runbook section for {rule['alert']}"


# -- Alertmanager ----------------------------------------------------------------------
def test_amtool_check_config() -> None:
    amtool = need("amtool")
    r = run(amtool, "check-config", ALERTMANAGER / "alertmanager.yml")
    assert r.returncode == 0, r.stdout + r.stderr


def test_alertmanager_routes_operator_and_ceasefire_alerts_to_their_own_people() -> None:
    """The monitor's health to its operators, the ceasefire to the mission's duty
    officers: an on-call review found both on one receiver, routed by severity only."""
    amtool = need("amtool")
    config = ALERTMANAGER / "alertmanager.yml"
    for labels, receiver in (
        (["service=ceasefire-monitor", "severity=critical"], "operators-on-call"),
        (["service=ceasefire-monitor", "severity=warning"], "operators"),
        (["alertname=fatality", "severity=critical", "zone=loc-east"], "mission-urgent"),
        (["alertname=zone-surge", "severity=high", "zone=loc-east"], "mission"),
        (["alertname=engineering-works", "severity=low", "zone=loc-east"], "mission"),
    ):
        r = run(amtool, "config", "routes", "test", f"--config.file={config}", *labels)
        assert r.stdout.strip() == receiver, f"{labels}: {r.stdout}{r.stderr}"


def test_every_operator_alert_routes_to_the_operators_and_the_watchdog_to_the_switch_only() -> None:
    """Each rule of alerting_rules.yml, with its own labels: critical pages the on-call
    operators, warning goes to the operators, and the always-firing heartbeat goes to the
    dead-man's switch and to no person (amtool prints every receiver a `continue` adds)."""
    amtool = need("amtool")
    config = ALERTMANAGER / "alertmanager.yml"
    for rule in alerting_rules():
        labels = [f"alertname={rule['alert']}"] + [f"{k}={v}" for k, v in rule["labels"].items()]
        if rule["alert"] in ALWAYS_FIRING:
            receiver = DEADMANS_SWITCH
        elif rule["labels"]["severity"] == "critical":
            receiver = "operators-on-call"
        else:
            receiver = "operators"
        r = run(amtool, "config", "routes", "test", f"--config.file={config}", *labels)
        assert r.returncode == 0, r.stdout + r.stderr
        assert r.stdout.strip() == receiver, f"{rule['alert']}: {r.stdout}{r.stderr}"
    # No other alert reaches the switch: it would keep pinging while the path is broken.
    for labels in (
        ["service=ceasefire-monitor", "severity=critical", "alertname=Other"],
        ["alertname=fatality", "severity=critical", "zone=loc-east"],
        ["alertname=zone-surge", "severity=none", "zone=loc-east"],
    ):
        r = run(amtool, "config", "routes", "test", f"--config.file={config}", *labels)
        assert DEADMANS_SWITCH not in r.stdout, f"{labels}: {r.stdout}"


def test_the_heartbeat_route_repeats_often_and_its_receiver_is_a_placeholder() -> None:
    """The switch pages when the pings stop: a repeat of hours would page for nothing (or
    be given a grace so long that a dead path goes unnoticed for hours)."""
    config = load(ALERTMANAGER / "alertmanager.yml")
    first = config["route"]["routes"][0]
    assert first["matchers"] == [f'alertname="{name}"' for name in ALWAYS_FIRING]
    assert first["receiver"] == DEADMANS_SWITCH
    assert not first.get("continue", False)
    seconds = {"s": 1, "m": 60, "h": 3600}

    def duration(value: str) -> int:
        m = re.fullmatch(r"(\d+)([smh])", value)
        assert m, value
        return int(m.group(1)) * seconds[m.group(2)]

    assert duration(first["group_wait"]) <= 30
    assert duration(first["group_interval"]) <= duration(first["repeat_interval"]) <= 300
    receiver = next(r for r in config["receivers"] if r["name"] == DEADMANS_SWITCH)
    hooks = receiver["webhook_configs"]
    assert len(hooks) == 1 and ".invalid" in hooks[0]["url"]  # a placeholder, to replace
    # No inhibit rule may hold the heartbeat back: a held heartbeat pages for nothing.
    for rule in config["inhibit_rules"]:
        for matcher in rule["target_matchers"]:
            assert "alertname" not in matcher or not re.fullmatch(
                matcher.split("=", 1)[1].strip('~"'), next(iter(ALWAYS_FIRING))
            ), matcher


def shipped_alertmanager_config() -> str:
    """alertmanager.yml with its placeholder webhooks pointed at a closed loopback port."""
    return re.sub(
        r"http://[a-z-]+\.invalid:8080/\S+",
        "http://127.0.0.1:9/hook",
        (ALERTMANAGER / "alertmanager.yml").read_text(encoding="utf-8"),
    )


def post_alerts(url: str, alerts: list[dict[str, str]]) -> None:
    import json
    import urllib.request

    body = json.dumps([{"labels": labels} for labels in alerts]).encode()
    request = urllib.request.Request(
        f"{url}/api/v2/alerts", body, {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as resp:
        assert resp.status == 200


def get_json(url: str) -> Any:
    import json
    import urllib.request

    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.loads(resp.read())


@pytest.mark.timeout(60)
def test_the_watchdog_reaches_the_switch_alone_and_is_never_held_back(tmp_path: Path) -> None:
    """On a real Alertmanager with the shipped configuration, beside every alert that
    holds others back: the heartbeat is in one group, the switch's, and not inhibited."""
    from tests.test_alerting_alertmanager import running_alertmanager

    watchdog = next(r for r in alerting_rules() if r["alert"] in ALWAYS_FIRING)
    heartbeat = {"alertname": watchdog["alert"], **watchdog["labels"]}
    # Each source as the Watchdog is (no instance: `equal` labels absent on both sides
    # are equal) and on an instance.
    sources = [
        {
            "alertname": m.split("=", 1)[1].strip('"'),
            "service": "ceasefire-monitor",
            "severity": "critical",
            **instance,
        }
        for rule in load(ALERTMANAGER / "alertmanager.yml")["inhibit_rules"]
        for m in rule["source_matchers"]
        for instance in ({}, {"instance": "localhost:9090"})
    ]
    assert sources
    with running_alertmanager(tmp_path, shipped_alertmanager_config()) as url:
        post_alerts(url, [heartbeat, *sources])
        alerts = get_json(f"{url}/api/v2/alerts")
        groups = get_json(f"{url}/api/v2/alerts/groups")
    beats = [a for a in alerts if a["labels"]["alertname"] == watchdog["alert"]]
    assert len(beats) == 1
    assert beats[0]["status"]["state"] == "active"
    assert beats[0]["status"]["inhibitedBy"] == []
    assert [r["name"] for r in beats[0]["receivers"]] == [DEADMANS_SWITCH]
    holding = {
        g["receiver"]["name"]
        for g in groups
        if any(a["labels"]["alertname"] == watchdog["alert"] for a in g["alerts"])
    }
    assert holding == {DEADMANS_SWITCH}
    others = {
        a["labels"]["alertname"]
        for g in groups
        if g["receiver"]["name"] == DEADMANS_SWITCH
        for a in g["alerts"]
    }
    assert others == {watchdog["alert"]}


@pytest.mark.timeout(60)
def test_a_broker_not_answering_holds_back_the_alerts_it_causes_on_its_worker(
    tmp_path: Path,
) -> None:
    """On a real Alertmanager with the shipped configuration (its webhooks pointed at a
    closed loopback port): a frozen broker paged as a stalled partition and a worker not
    ready, none naming the broker (an on-call review)."""
    from tests.test_alerting_alertmanager import running_alertmanager

    config = shipped_alertmanager_config()
    base = {"service": "ceasefire-monitor", "severity": "critical", "job": "ceasefire-monitor"}
    sent = [
        {"alertname": "CeasefireBrokerNotAnswering", "instance": "w1:6066"},
        {"alertname": "CeasefireWorkerNotReady", "instance": "w1:6066"},
        {"alertname": "CeasefirePartitionStalled", "instance": "w1:6066", "partition": "2"},
        {"alertname": "CeasefireWorkerNotReady", "instance": "w2:6066"},
    ]
    with running_alertmanager(tmp_path, config) as url:
        post_alerts(url, [{**base, **labels} for labels in sent])
        alerts = get_json(f"{url}/api/v2/alerts")
    held = {
        (a["labels"]["alertname"], a["labels"]["instance"]): bool(a["status"]["inhibitedBy"])
        for a in alerts
    }
    assert held == {
        ("CeasefireBrokerNotAnswering", "w1:6066"): False,
        ("CeasefireWorkerNotReady", "w1:6066"): True,
        ("CeasefirePartitionStalled", "w1:6066"): True,
        ("CeasefireWorkerNotReady", "w2:6066"): False,  # another worker: its own cause
    }


# -- Grafana ---------------------------------------------------------------------------
def test_dashboards_json_is_current() -> None:
    r = run(sys.executable, "-m", "deploy.grafana.build", "--check")
    assert r.returncode == 0, (
        "regenerate with `python -m deploy.grafana.build`\n" + r.stdout + r.stderr
    )


def test_check_mode_detects_stale_json(tmp_path: Path) -> None:
    from deploy.grafana import build

    assert build.main(["--out", str(tmp_path)]) == 0
    assert build.main(["--check", "--out", str(tmp_path)]) == 0
    stale = tmp_path / "analyst.json"
    stale.write_text(stale.read_text().replace("Incidents", "Incidnets", 1))
    assert build.main(["--check", "--out", str(tmp_path)]) == 1
    stale.unlink()
    assert build.main(["--check", "--out", str(tmp_path)]) == 1


def test_every_panel_has_a_query_on_the_provisioned_datasource() -> None:
    import json

    for path in sorted((GRAFANA / "dashboards").glob("*.json")):
        dash = json.loads(path.read_text())
        assert dash["uid"] and dash["title"]
        panels = [p for p in dash["panels"] if p["type"] != "row"]
        assert panels, path
        ids = [p["id"] for p in dash["panels"]]
        assert len(ids) == len(set(ids)), f"{path}: duplicate panel ids"
        for panel in panels:
            targets = panel.get("targets") or []
            assert targets, f"{path.name}: panel {panel['title']!r} has no query"
            assert panel["datasource"]["uid"] == "prometheus"
            for t in targets:
                assert t["expr"].strip(), f"{path.name}: {panel['title']!r} has an empty query"
                assert t["datasource"]["uid"] == "prometheus"
            refs = [t["refId"] for t in targets]
            assert len(refs) == len(set(refs))


def test_panel_queries_cover_both_dashboards_and_substitute() -> None:
    from deploy.grafana.build import panel_queries, substitute

    queries = panel_queries()
    assert {d for d, _, _ in queries} == {"analyst", "operations"}
    for _, _, expr in queries:
        plain = substitute(expr)
        assert "$" not in plain, plain


def test_panel_queries_reference_only_exported_metrics() -> None:
    from deploy.grafana.build import panel_queries

    problems: list[str] = []
    for dashboard, title, expr in panel_queries():
        problems += check_expr(expr, f"{dashboard}: {title}")
    assert problems == []


def test_dashboard_variables_reference_exported_metrics() -> None:
    import json

    found = {}
    for path in sorted((GRAFANA / "dashboards").glob("*.json")):
        for var in json.loads(path.read_text())["templating"]["list"]:
            if var["type"] != "query":
                continue
            m = re.fullmatch(r"label_values\((\w+)(\{[^}]*\})?,\s*(\w+)\)", var["query"])
            names = re.fullmatch(r'label_values\(\{__name__=~"([\w|]+)"\},\s*(\w+)\)', var["query"])
            assert m or names, var["query"]
            metrics, label = (
                ([m.group(1)], m.group(3)) if m else (names.group(1).split("|"), names.group(2))  # type: ignore[union-attr]
            )
            for metric in metrics:
                assert label in exported_metrics()[metric], var["query"]
            found[(path.stem, var["name"])] = metrics[0]
    assert ("analyst", "zone") in found and ("analyst", "party") in found


def test_analyst_and_operations_dashboards_show_every_metric() -> None:
    """Every metric of streams/metrics.py is on at least one dashboard."""
    from deploy.grafana.build import panel_queries

    shown = set()
    for _, _, expr in panel_queries():
        shown |= {name for name, _ in selectors(expr)}
    records = recording_rules()
    for name in list(shown):
        if name in records:  # a recorded series shows the metrics it is made of
            rule = next(
                r
                for g in load(PROM / "recording_rules.yml")["groups"]
                for r in g["rules"]
                if r["record"] == name
            )
            shown |= {n for n, _ in selectors(rule["expr"])}
    families = {re.sub(r"_(total|bucket|sum|count)$", "", n) for n in exported_metrics()}
    shown_families = {re.sub(r"_(total|bucket|sum|count)$", "", n) for n in shown}
    assert families - shown_families == set()


def test_grafana_provisioning_matches_the_compose_mounts() -> None:
    ds = load(GRAFANA / "provisioning" / "datasources" / "prometheus.yml")
    prom = next(d for d in ds["datasources"] if d["type"] == "prometheus")
    assert prom["uid"] == "prometheus"
    assert prom["url"] == "http://prometheus:9090"
    providers = load(GRAFANA / "provisioning" / "dashboards" / "dashboards.yml")["providers"]
    path = providers[0]["options"]["path"]
    grafana = load(ROOT / "docker-compose.yml")["services"]["grafana"]
    assert f"./deploy/grafana/dashboards:{path}:ro" in grafana["volumes"]
    assert "./deploy/grafana/provisioning:/etc/grafana/provisioning:ro" in grafana["volumes"]


# -- compose and Dockerfile ------------------------------------------------------------
def compose_config(token: str | None) -> subprocess.CompletedProcess[str]:
    """`docker-compose config -q` with CEASEFIRE_API_TOKEN set to `token` (None: unset)."""
    compose = need("docker-compose")
    env = {k: v for k, v in os.environ.items() if k != "CEASEFIRE_API_TOKEN"}
    if token is not None:
        env["CEASEFIRE_API_TOKEN"] = token
    return subprocess.run(
        [compose, "-f", str(ROOT / "docker-compose.yml"), "config", "-q"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


def test_docker_compose_config_is_valid() -> None:
    r = compose_config("a-token")
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.parametrize("token", [None, ""])
def test_the_compose_stack_needs_a_token(token: str | None) -> None:
    """The workers listen on every address of their network: without a token anyone there
    could post reports (and `run` refuses to start so). Compose says it at once."""
    r = compose_config(token)
    assert r.returncode != 0
    assert "set CEASEFIRE_API_TOKEN" in r.stdout + r.stderr


def test_the_compose_workers_answer_the_names_prometheus_and_their_peers_use() -> None:
    """The API answers 421 to a host name not its own nor allowed (DNS rebinding):
    Prometheus scrapes, and the peers ask, by service name."""
    from streams.web.hosts import allowed_hosts

    targets = {
        t
        for sc in load(PROM / "prometheus.yml")["scrape_configs"]
        if sc["job_name"] == "ceasefire-monitor"
        for c in sc["static_configs"]
        for t in c["targets"]
    }
    services = load(ROOT / "docker-compose.yml")["services"]
    workers = [services[n] for n in ("worker-1", "worker-2")]
    peers = {w["environment"]["CEASEFIRE_ADVERTISED_URL"].split("//")[1] for w in workers}
    for w in workers:
        env = w["environment"]
        assert env["CEASEFIRE_API_TOKEN"].startswith("${CEASEFIRE_API_TOKEN:?")
        allowed = allowed_hosts(
            env["CEASEFIRE_WEB_HOST"],
            env["CEASEFIRE_ADVERTISED_URL"],
            env["CEASEFIRE_ALLOWED_HOSTS"],
        )
        for host in targets | peers | {"localhost:6066", "127.0.0.1:6066"}:
            assert allowed.allows(host), host
        assert not allowed.allows("attacker.example:6066")


def test_compose_stack_shape() -> None:
    services = load(ROOT / "docker-compose.yml")["services"]
    assert {
        "kafka",
        "topics",
        "worker-1",
        "worker-2",
        "prometheus",
        "alertmanager",
        "grafana",
    } <= set(services)
    kafka = services["kafka"]["environment"]
    assert "broker,controller" in kafka["KAFKA_PROCESS_ROLES"]
    assert "PLAINTEXT://kafka:9092" in kafka["KAFKA_ADVERTISED_LISTENERS"]
    assert "29092" in kafka["KAFKA_ADVERTISED_LISTENERS"]
    topics = services["topics"]
    # no --broker: the anchor's CEASEFIRE_BROKER (and security settings) reach it as they
    # reach the workers; a flag kept it on the plaintext listener when they moved to TLS
    assert topics["command"] == ["topics"]
    assert topics["environment"]["CEASEFIRE_BROKER"] == "kafka://kafka:9092"
    assert topics["depends_on"]["kafka"]["condition"] == "service_healthy"
    for name in ("worker-1", "worker-2"):
        w = services[name]
        env = w["environment"]
        assert env["CEASEFIRE_BROKER"] == "kafka://kafka:9092"
        assert env["CEASEFIRE_WEB_HOST"] == "0.0.0.0"
        assert env["CEASEFIRE_ADVERTISED_URL"] == f"http://{name}:6066"
        assert env["CEASEFIRE_ALERTMANAGER_URL"] == "http://alertmanager:9093"
        assert env["CEASEFIRE_PARTITIONS"] == "8"
        assert w["depends_on"]["topics"]["condition"] == "service_completed_successfully"
    assert "./deploy/prometheus:/etc/prometheus:ro" in services["prometheus"]["volumes"]
    assert "./deploy/alertmanager:/etc/alertmanager:ro" in services["alertmanager"]["volumes"]
    # published on the host's loopback only: the Kafka listener has no authentication,
    # Prometheus' lifecycle API and Alertmanager's silences none either
    published = [p for s in services.values() for p in s.get("ports", [])]
    assert len(published) == 6, published
    assert all(str(p).startswith("127.0.0.1:") for p in published), published


def test_compose_env_names_are_settings() -> None:
    """Every CEASEFIRE_* variable the stack sets is a field of streams.config.Settings."""
    from streams.config import Settings

    fields = {f"CEASEFIRE_{name.upper()}" for name in Settings.model_fields}
    services = load(ROOT / "docker-compose.yml")["services"]
    for name, svc in services.items():
        for key in svc.get("environment") or {}:
            if key.startswith("CEASEFIRE_"):
                assert key in fields, f"{name}: {key} is not a setting"
    dockerfile = (ROOT / "Dockerfile").read_text()
    for key in re.findall(r"\b(CEASEFIRE_[A-Z_]+)=", dockerfile):
        assert key in fields, f"Dockerfile: {key} is not a setting"


def test_dockerfile_is_slim_non_root_with_healthcheck() -> None:
    text = (ROOT / "Dockerfile").read_text()
    froms = re.findall(r"^FROM\s+(\S+)", text, flags=re.M)
    assert froms and froms[-1] == "python:3.11-slim"
    users = re.findall(r"^USER\s+(\S+)", text, flags=re.M)
    assert users and not users[-1].startswith(("root", "0"))
    assert re.search(r"^EXPOSE\s+6066\b", text, flags=re.M)
    assert re.search(r"^HEALTHCHECK\b.*\n?.*127\.0\.0\.1:.*healthz", text, flags=re.M)
    assert 'ENTRYPOINT ["ceasefire-monitor"]' in text
    assert 'CMD ["run"]' in text
    assert re.search(r"pip install \.", text)
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert ".git" in ignored and "tests" in ignored

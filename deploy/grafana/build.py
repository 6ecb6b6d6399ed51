"""Generate the Grafana dashboards' JSON from their code.

    python -m deploy.grafana.build           # write deploy/grafana/dashboards/*.json
    python -m deploy.grafana.build --check   # exit 1 if the JSON on disk is not current

The dashboards are defined with grafana-foundation-sdk in deploy/grafana/dashboards_src/;
the JSON files are generated, committed, and provisioned into Grafana by
deploy/grafana/provisioning/dashboards/dashboards.yml. Never edit the JSON by hand.
"""

from __future__ import annotations

import argparse
import difflib
import importlib.metadata
import json
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import dashboard as dashboard_b
from grafana_foundation_sdk.cog.encoder import JSONEncoder

from .dashboards_src import analyst, operations

OUT_DIR = Path(__file__).resolve().parent / "dashboards"

#: The SDK release the committed JSON was generated with. Each release targets one
#: Grafana version (here 11.6, the image of docker-compose.yml) and renders slightly
#: different JSON, so the dev extras pin it exactly and `--check` names a mismatch.
SDK_VERSION = "1769699379!11.6.0"

#: file stem -> builder of the dashboard
DASHBOARDS: dict[str, Callable[[], dashboard_b.Dashboard]] = {
    "analyst": analyst.build,
    "operations": operations.build,
}

#: Values that turn every panel query into plain PromQL for a test against a real
#: Prometheus (all zones, parties and workers; short windows). Apply longest key first.
TEST_SUBSTITUTIONS: dict[str, str] = {
    "$__rate_interval": "1m",
    "$__interval": "15s",
    "$__range": "1h",
    "$zone": ".*",
    "$party": ".*",
    "$window": ".*",
    "$compare": "24h",
    "$job": ".*",
    "$instance": ".*",
}


def dashboard_json(name: str) -> dict[str, Any]:
    """The JSON model of one dashboard, with panel ids numbered in layout order."""
    model = DASHBOARDS[name]().build()
    data: dict[str, Any] = json.loads(json.dumps(model, cls=JSONEncoder))
    for i, panel in enumerate(_all_panels(data), start=1):
        panel["id"] = i
    # Stable across regenerations: no per-build ids on variables.
    for var in data.get("templating", {}).get("list", []):
        var.pop("id", None)
    data["annotations"] = {
        "list": [
            {
                "builtIn": 1,
                "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                "enable": True,
                "hide": True,
                "iconColor": "rgba(0, 211, 255, 1)",
                "name": "Annotations & Alerts",
                "type": "dashboard",
            }
        ]
    }
    return data


def render(name: str) -> str:
    """The file content for one dashboard: sorted keys, two-space indent, final newline."""
    return json.dumps(dashboard_json(name), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _all_panels(data: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in data.get("panels", []):
        yield panel
        yield from panel.get("panels", [])  # panels inside collapsed rows


def panel_queries() -> list[tuple[str, str, str]]:
    """Every query of every panel: (dashboard file stem, panel title, PromQL expr).

    Grafana variables are left in the expressions (`$zone`, `$party`, `$window`, `$compare`,
    `$job`, `$instance`, `$__rate_interval`, `$__range`); TEST_SUBSTITUTIONS turns them into
    plain PromQL. Row panels carry no query and are skipped.
    """
    out: list[tuple[str, str, str]] = []
    for name in DASHBOARDS:
        for panel in _all_panels(dashboard_json(name)):
            if panel.get("type") == "row":
                continue
            for target in panel.get("targets") or []:
                out.append((name, str(panel["title"]), str(target["expr"])))
    return out


def substitute(expr: str, values: dict[str, str] | None = None) -> str:
    """Replace Grafana variables in a panel query (TEST_SUBSTITUTIONS by default)."""
    values = TEST_SUBSTITUTIONS if values is None else values
    for key in sorted(values, key=len, reverse=True):
        expr = expr.replace(key, values[key])
    return expr


def write(out_dir: Path = OUT_DIR) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name in DASHBOARDS:
        path = out_dir / f"{name}.json"
        path.write_text(render(name), encoding="utf-8")
        written.append(path)
    return written


def installed_sdk_version() -> str | None:
    try:
        return importlib.metadata.version("grafana-foundation-sdk")
    except importlib.metadata.PackageNotFoundError:
        return None


def check(out_dir: Path = OUT_DIR) -> list[str]:
    """Problems with the JSON on disk; empty when every file is current."""
    problems = []
    installed = installed_sdk_version()
    if installed != SDK_VERSION:
        problems.append(
            f"grafana-foundation-sdk {installed} is installed, the dashboards are generated "
            f"with {SDK_VERSION}: pip install 'grafana-foundation-sdk=={SDK_VERSION}'"
        )
    for name in DASHBOARDS:
        path = out_dir / f"{name}.json"
        want = render(name)
        if not path.exists():
            problems.append(f"{path}: missing")
            continue
        have = path.read_text(encoding="utf-8")
        if have != want:
            diff = difflib.unified_diff(
                have.splitlines(), want.splitlines(), str(path), "generated", lineterm="", n=1
            )
            problems.append("\n".join(list(diff)[:40]))
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m deploy.grafana.build",
        description="Generate the Grafana dashboards' JSON from their code.",
    )
    parser.add_argument(
        "--check", action="store_true", help="fail if the JSON on disk is not current"
    )
    parser.add_argument("--out", type=Path, default=OUT_DIR, help="output directory")
    args = parser.parse_args(argv)
    if args.check:
        problems = check(args.out)
        for problem in problems:
            print(problem, file=sys.stderr)
        if problems:
            print(
                "dashboards are not current: run `python -m deploy.grafana.build`",
                file=sys.stderr,
            )
            return 1
        print(f"{len(DASHBOARDS)} dashboards current in {args.out}")
        return 0
    for path in write(args.out):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

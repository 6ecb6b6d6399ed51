"""Every metric a child process's code can move is relayed to the worker's `/metrics`
(`streams/pipeline/relay.py`): a counter moved in a child and not relayed is lost without
a word (the identity stage's `ceasefire_input_records_missing_total` was). Read from the
code, without running it: the modules a child's entry module imports, and the
`metrics.NAME` each of them names."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from prometheus_client.metrics import MetricWrapperBase

from streams import metrics
from streams.pipeline import identity_process, ingest_process

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("streams", "schemas", "alerting")

#: Named by modules a child imports but moved only outside it, with why.
NOT_IN_CHILD: dict[str, dict[str, str]] = {
    "identity": {
        "PROCESS_RESTARTS": "the worker's side of child_process.py counts its child's restarts",
        # identity_mode.py gives the child its group's name; its ModeWatch runs in the worker
        "IDENTITY_MODE_MIXED": "moved by ModeWatch, which only the worker runs",
    },
    "ingest": {
        "PROCESS_RESTARTS": "the worker's side of child_process.py counts its child's restarts",
        # lag.py imports stage_input.py for a type; ingest reads no stage input
        "SKIPPED_RECOVERED": "moved by StageInput, which ingest does not run",
        "PARTITION_STALLED": "moved by StageInput, which ingest does not run",
    },
}


def _source(module: str) -> Path | None:
    base = ROOT / module.replace(".", "/")
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.exists():
            return path
    return None


def imported(entry: str) -> dict[str, ast.Module]:
    """The project's modules `entry` imports, directly or not -> their parsed source."""
    seen: dict[str, ast.Module] = {}
    todo = [entry]
    while todo:
        module = todo.pop()
        path = None if module in seen else _source(module)
        if path is None:  # a name imported from a module, or seen
            continue
        tree = seen[module] = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                if node.module.split(".")[0] in PACKAGES:
                    todo.append(node.module)
                    todo.extend(f"{node.module}.{a.name}" for a in node.names)
            elif isinstance(node, ast.Import):
                todo.extend(a.name for a in node.names if a.name.split(".")[0] in PACKAGES)
    return seen


def named_metrics(trees: dict[str, ast.Module]) -> set[str]:
    """The `metrics.NAME` the modules name (NAME a metric of streams/metrics.py)."""
    return {
        node.attr
        for tree in trees.values()
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "metrics"
        and isinstance(getattr(metrics, node.attr, None), MetricWrapperBase)
    }


def relayed_names(relayed: tuple[MetricWrapperBase, ...]) -> set[str]:
    by_object = {id(v): k for k, v in vars(metrics).items() if isinstance(v, MetricWrapperBase)}
    return {by_object[id(m)] for m in relayed}


@pytest.mark.parametrize(
    ("child", "entry", "relayed"),
    [
        ("identity", identity_process.__name__, identity_process.RELAYED),
        ("ingest", ingest_process.__name__, ingest_process.RELAYED),
    ],
)
def test_a_child_relays_every_metric_its_code_moves(
    child: str, entry: str, relayed: tuple[MetricWrapperBase, ...]
) -> None:
    exempt = NOT_IN_CHILD[child]
    named = named_metrics(imported(entry))
    assert not (named - set(exempt)) - relayed_names(relayed), "moved in the child, not relayed"
    assert set(exempt) <= named, "an exemption for a metric the child's code no longer names"


def test_the_reader_sees_the_child_modules_and_their_metrics() -> None:
    trees = imported(identity_process.__name__)
    assert {"streams.pipeline.identity_stage", "streams.pipeline.stage_input"} <= set(trees)
    assert "streams.pipeline.zone_stage" not in trees  # the worker's, not the child's
    assert {"REPORTS", "INPUT_MISSING"} <= named_metrics(trees)

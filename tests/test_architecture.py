"""The shape of the code: no import cycles, the worker composed in one place, and the web
apart from the Kafka pipeline.

Every import counts, those only for type checking and those inside functions too: a cycle
hidden behind `TYPE_CHECKING` or a late import is still two modules that cannot be read,
tested or changed apart."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("streams", "schemas", "alerting")
COMPOSITION_ROOT = "streams.pipeline.app"
#: The Kafka clients of the pipeline: the stages (Faust) and ingest's consumer (aiokafka).
KAFKA_CLIENTS = frozenset({"faust", "aiokafka"})


def _modules() -> dict[str, Path]:
    out: dict[str, Path] = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            out[name] = path
    return out


def import_graph() -> dict[str, set[str]]:
    """module -> the project's modules it imports (a name imported from a package counts
    as its submodule when there is one)."""
    modules = _modules()
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            for target in targets:
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                # a package's own __init__ re-exporting its modules is not a cycle
                if target and target != name and not name.startswith(target + "."):
                    graph[name].add(target)
    return graph


def outside_imports() -> dict[str, set[str]]:
    """module -> the top-level names of what it imports from outside the project
    (`faust`, `aiokafka`, `json`), every import counted as in `import_graph`."""
    modules = _modules()
    out: dict[str, set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module]
            out[name].update(top for t in targets if (top := t.partition(".")[0]) not in PACKAGES)
    return out


def reached_from(graph: dict[str, set[str]], start: set[str]) -> dict[str, str]:
    """The modules outside `start` that modules of `start` import, directly or through
    others outside it: module -> the module of `start` it is reached from."""
    reached: dict[str, str] = {}
    stack = [(dep, m) for m in sorted(start) for dep in sorted(graph[m]) if dep not in start]
    while stack:
        module, via = stack.pop()
        if module in reached:
            continue
        reached[module] = via
        stack.extend((dep, via) for dep in sorted(graph[module]) if dep not in start)
    return reached


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


@pytest.mark.timeout(30)
def test_no_import_cycles() -> None:
    assert cycles(import_graph()) == []


@pytest.mark.timeout(30)
def test_only_the_command_line_and_the_bench_import_the_composition_root() -> None:
    """Stages get narrow ports and the web a view of the worker (`streams/web/
    worker_view.py`); only what starts a worker may know the `Monitor`."""
    graph = import_graph()
    importers = {m for m, deps in graph.items() if COMPOSITION_ROOT in deps}
    assert importers <= {"streams.cli.worker", "streams.bench"}
    web = {m for m in graph if m.startswith("streams.web")}
    assert not any(COMPOSITION_ROOT in graph[m] for m in web)


def test_the_reach_finder_walks_through_modules_outside_the_start() -> None:
    graph = {"w.a": {"w.b", "p.x"}, "w.b": set(), "p.x": {"p.y"}, "p.y": set(), "p.z": set()}
    assert reached_from(graph, {"w.a", "w.b"}) == {"p.x": "w.a", "p.y": "w.a"}


@pytest.mark.timeout(30)
def test_the_web_reaches_no_kafka_client_through_the_project() -> None:
    """The web reads the worker through `WorkerView` and plain data: nothing of the project
    it imports, directly or through other modules, imports Faust or aiokafka (a stage,
    ingest's consumer, the store), so what it shares with the pipeline (intake, table
    names, dead letters, the record) is pure. The web's own modules may: `ApiServer` is a
    Faust service and answers a broker's KafkaError."""
    graph = import_graph()
    outside = outside_imports()
    assert outside["streams.pipeline.ingest"] & KAFKA_CLIENTS  # the check sees them
    web = {m for m in graph if m == "streams.web" or m.startswith("streams.web.")}
    through = sorted(
        f"{via} -> {module} (imports {', '.join(sorted(outside[module] & KAFKA_CLIENTS))})"
        for module, via in reached_from(graph, web).items()
        if outside[module] & KAFKA_CLIENTS
    )
    assert through == []


@pytest.mark.timeout(30)
def test_the_settings_import_nothing_of_the_web() -> None:
    """The settings check host names and tokens with `streams/names.py`, which the web
    uses too, not by reaching into the web."""
    graph = import_graph()
    web = {m for m in graph if m == "streams.web" or m.startswith("streams.web.")}
    assert not set(reached_from(graph, {"streams.config"})) & web

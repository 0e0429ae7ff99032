"""The layering of `core` (docs/architecture.md), read from the source: no import cycle between
core's packages, no package importing a layer above its own, and the server's process never
loading training, corpus or evaluation code. Imports inside functions count: a lazy import is still
a dependency."""

import ast
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CORE = ROOT / "core"

# Each package (or top-level module) of core and its layer: a package may import its own layer and
# the ones below, never one above.
LAYERS = {
    # 0: the base every other layer shares: errors, files, the face model, audio, the flow toolkit,
    # blinks, gaze, forced alignment, speech recognition, and the file formats (takes, dataset, weights folders, renderer inputs).
    "core.errors": 0, "core.fileio": 0, "core.jsonvalues": 0, "core.progress": 0, "core.configparse": 0,
    "core.device": 0, "core.emotions": 0, "core.audio": 0, "core.align": 0, "core.recognize": 0, "core.visemes": 0, "core.face": 0, "core.flow": 0, "core.blinks": 0, "core.gaze": 0, "core.expression": 0,
    "core.formats": 0,
    # 1: inference: the coefficient generator, the image generator and the renderers.
    "core.coeff": 1, "core.vq": 1, "core.render": 1,
    # 2: what makes and judges models: the corpora, the evaluation (with its baselines), the trainers.
    "core.corpus": 2, "core.eval": 2, "core.train": 2,
    # 3: the command line over all of it.
    "core.cli": 3,
}
TRAINING_SIDE = ("core.train", "core.corpus", "core.eval")


def package_of(module: str) -> str:
    """``core.coeff.sampler`` -> ``core.coeff``; ``core.cli`` -> ``core.cli``."""
    return ".".join(module.split(".")[:2])


def module_name(path: Path) -> str:
    """The dotted module name of a file under the repository root."""
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> list[tuple[str, int]]:
    """(absolute module name, line) of every import in the file, relative ones resolved."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                found.append((".".join(base + ([node.module] if node.module else [])), node.lineno))
            else:
                found.append((node.module, node.lineno))
    return found


def package_graph() -> dict[tuple[str, str], list[str]]:
    """(importing package, imported package) -> where ("core/x.py:12 core.y.z"), between distinct
    packages of core."""
    edges = defaultdict(list)
    for path in sorted(CORE.rglob("*.py")):
        source = package_of(module_name(path))
        for target, line in imported_modules(path):
            if target.startswith("core.") and package_of(target) != source:
                edges[(source, package_of(target))].append(f"{path.relative_to(ROOT)}:{line} {target}")
    return dict(edges)


def cycles(edges) -> list[list[str]]:
    """The strongly connected components of more than one package (Tarjan)."""
    graph = defaultdict(set)
    for source, target in edges:
        graph[source].add(target)
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while not component or component[-1] != node:
                component.append(stack.pop())
                on_stack.discard(component[-1])
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(set(graph) | {t for targets in graph.values() for t in targets}):
        if node not in index:
            visit(node)
    return found


def test_every_package_of_core_has_a_layer():
    packages = {package_of(module_name(path)) for path in CORE.rglob("*.py")} - {"core"}
    assert packages - set(LAYERS) == set(), "place the new package in LAYERS and docs/architecture.md"
    assert set(LAYERS) - packages == set()


def test_the_packages_of_core_import_each_other_without_a_cycle():
    assert cycles(package_graph()) == []


def test_no_package_imports_a_layer_above_its_own():
    upward = [f"{source} (layer {LAYERS[source]}) -> {target} (layer {LAYERS[target]}): {', '.join(where)}"
              for (source, target), where in package_graph().items() if LAYERS[target] > LAYERS[source]]
    assert upward == []


@pytest.mark.parametrize("edges, expected", [
    ({("a", "b"): [], ("b", "c"): [], ("c", "a"): []}, [["a", "b", "c"]]),
    ({("a", "b"): [], ("b", "c"): []}, []),
    ({("a", "b"): [], ("b", "a"): [], ("c", "d"): []}, [["a", "b"]]),
])
def test_the_cycle_finder_finds_cycles_and_only_cycles(edges, expected):
    assert cycles(edges) == expected


def test_the_server_process_loads_no_training_corpus_or_evaluation_code():
    probe = ("import sys, server.app; "
             f"print(sorted(m for m in sys.modules if m.startswith({TRAINING_SIDE!r})))")
    loaded = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "[]"

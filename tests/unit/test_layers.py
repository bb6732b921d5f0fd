"""The package's layering: no import cycles among corpus/ modules, counting imports inside functions too (a cycle
hidden in a function is still two modules that cannot be understood, or moved, apart)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _modules() -> dict[str, Path]:
    out = {}
    for path in (ROOT / "corpus").rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def import_graph() -> dict[str, set[str]]:
    """Module -> the corpus modules it imports (``from a import b`` counts a.b when b is a module)."""
    mods = _modules()
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for name, path in mods.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if isinstance(node, ast.Import):
                graph[name] |= {a.name for a in node.names if a.name in mods}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(up + ([base] if base else []))
                for target in [base] + [f"{base}.{a.name}" for a in node.names]:
                    if target in mods and target != name:
                        graph[name].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_corpus_has_no_import_cycles():
    graph = import_graph()
    assert len(graph) > 80 and graph["corpus.pipeline"], "the graph covers the package"
    assert cycles(graph) == []


def test_production_code_does_not_import_the_sample_data_builder():
    """corpus.samples builds the demo data; readers of packaged data go through corpus.packages."""
    graph = import_graph()
    users = sorted(m for m, deps in graph.items() if "corpus.samples" in deps)
    assert users == ["corpus.cli"]


def test_the_registry_imports_no_stage_code():
    """corpus.stages is read by the report, the card and the CLI: it names each stage's module, never imports it."""
    graph = import_graph()
    assert graph["corpus.stages"] <= {"corpus.config"}


def test_each_stage_module_is_named_after_its_stage():
    """Stage X is corpus/X/stage.py; ingest-Y is corpus/Y/ingest.py; synthesize shares trajectories/ (design.md)."""
    from corpus.stages import STAGES

    for name, s in STAGES.items():
        if name == "synthesize":
            want = "corpus.trajectories.synthesize"
        elif name.startswith("ingest-"):
            want = f"corpus.{name.removeprefix('ingest-')}.ingest"
        else:
            want = f"corpus.{name.replace('-', '_')}.stage"
        assert s.module == want, (name, s.module)
        assert s.sections in ((), (name,)), (name, s.sections)

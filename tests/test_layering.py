"""The import graph of harness/ has no cycles: each module can be read (and changed) after the ones it uses."""

from __future__ import annotations

import ast
import graphlib

from tests.helpers import ROOT

PACKAGE = ROOT / "harness"


def module_name(path, root) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(package=PACKAGE) -> dict[str, set[str]]:
    """Module -> the package's modules it imports (anywhere in the file, function bodies included)."""
    modules = {module_name(p, package.parent): p for p in package.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                graph[name].update(a.name for a in node.names if a.name in modules)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                for alias in node.names:
                    target = f"{base}.{alias.name}"
                    graph[name].add(target if target in modules else base)
        graph[name] &= modules.keys()
        graph[name].discard(name)
    return graph


def cycle(graph: dict[str, set[str]]) -> list[str] | None:
    try:
        list(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as error:
        return list(error.args[1])
    return None


def test_harness_has_no_import_cycles():
    graph = import_graph()
    assert "harness.results.table" in graph["harness.results"]  # the graph sees package imports
    found = cycle(graph)
    assert found is None, f"import cycle: {' -> '.join(found)}"


def test_the_check_finds_a_cycle_through_a_lazy_relative_import(tmp_path):
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("from pkg.sub.a import thing\n")
    (package / "sub" / "a.py").write_text("def thing():\n    from ..b import other\n")
    (package / "b.py").write_text("from pkg.sub import thing\n")
    found = cycle(import_graph(package))
    assert found is not None and set(found) >= {"pkg.sub", "pkg.sub.a", "pkg.b"}

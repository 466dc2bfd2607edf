"""The backend never imports Qt, pyqtgraph or desktop; every module sits in its layer (docs/architecture.md, "Layers")."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_backend_modules_import_no_qt():
    mods = sorted(".".join(p.relative_to(ROOT).with_suffix("").parts)
                  for p in (ROOT / "backend").rglob("*.py") if p.name != "__main__.py")
    code = ("import importlib, sys\n"
            f"for m in {mods!r}: importlib.import_module(m)\n"
            "bad = [m for m in sys.modules if m.split('.')[0] in ('PySide6', 'shiboken6', 'pyqtgraph', 'desktop')]\n"
            "print(','.join(bad)); sys.exit(1 if bad else 0)\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert res.returncode == 0, f"backend pulled in: {res.stdout} {res.stderr[-2000:]}"


def test_import_linter_contract():
    exe = Path(sys.executable).with_name("lint-imports")
    res = subprocess.run([str(exe)], capture_output=True, text=True, cwd=ROOT)
    assert res.returncode == 0, res.stdout + res.stderr


def test_cli_help_is_fast_and_lazy():
    code = ("import sys, time; t=time.time(); from backend.cli import build_parser; build_parser();"
            "heavy=[m for m in ('torch','transformers','chromadb','langchain_core') if m in sys.modules];"
            "print(heavy); sys.exit(1 if heavy else 0)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert res.returncode == 0, res.stdout + res.stderr


def test_cli_output_to_a_closed_pipe_is_quiet(tmp_path):
    """`tune ... | head`: the reader leaving is not a crash with a traceback."""
    import os

    r, w = os.pipe()
    os.close(r)
    try:
        res = subprocess.run([sys.executable, "-m", "backend", "new", str(tmp_path / "p")], stdout=w,
                             stderr=subprocess.PIPE, text=True, cwd=ROOT)
    finally:
        os.close(w)
    assert res.returncode == 141 and "Traceback" not in res.stderr, res.stderr
    assert (tmp_path / "p" / "project.json").is_file()


def test_a_cli_extension_that_fails_to_import_fails_tune_loudly():
    """Its commands must not vanish from `tune --help` without a word (docs/architecture.md: Layers)."""
    code = ("import sys; sys.modules['backend.rag.cli'] = None\n"  # makes `import backend.rag.cli` fail
            "from backend.cli import main\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert res.returncode != 0 and "backend.rag.cli" in res.stderr, res.stderr[-2000:]
    from backend.cli import build_parser
    commands = build_parser()._subparsers._group_actions[0].choices
    assert {"train", "runs", "data", "docs", "ingest", "ask", "export-run"} <= set(commands)


def _layer_modules() -> list[set[str]]:
    import tomllib

    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    (contract,) = [c for c in cfg["tool"]["importlinter"]["contracts"] if c["type"] == "layers"]
    return [{m.strip().strip("()") for m in layer.replace("|", ":").split(":")} for layer in contract["layers"]]


def test_layers_contract_names_every_module():
    """A module left out of the layers contract would be checked by nothing (docs/architecture.md: Layers)."""
    named = set().union(*_layer_modules())
    # packages whose __init__ sits above their own CLI module: their children are named one by one
    split = {"backend", "backend.rag", "backend.data", "desktop"}
    missing = []
    for pkg in ("backend", "desktop"):
        for p in sorted((ROOT / pkg).rglob("*.py")):
            parts = p.relative_to(ROOT).with_suffix("").parts
            mod = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            if mod in split or any(mod == n or mod.startswith(n + ".") for n in named):
                continue
            missing.append(mod)
    assert not missing, f"add these to a layer in pyproject.toml [tool.importlinter]: {missing}"
    assert "backend.cli" in _layer_modules()[4] and "desktop.pages" in _layer_modules()[2]


def import_cycles(graph, prefix: str = "backend") -> list[list[str]]:
    """One cycle (``[a, b, …, a]``) per strongly connected group of ``prefix`` modules in a grimp graph."""
    mods = sorted(m for m in graph.modules if m == prefix or m.startswith(prefix + "."))
    succ = {m: sorted(d for d in graph.find_modules_directly_imported_by(m) if d in mods and d != m) for m in mods}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []
    for root in mods:  # Tarjan's algorithm, iterative (a deep import chain must not hit the recursion limit)
        if root in index:
            continue
        work = [(root, 0)]
        while work:
            v, i = work.pop()
            if i == 0:
                index[v] = low[v] = len(index)
                stack.append(v)
                on_stack.add(v)
            if i < len(succ[v]):
                work.append((v, i + 1))
                w = succ[v][i]
                if w not in index:
                    work.append((w, 0))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            if low[v] == index[v]:
                group = set()
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    group.add(w)
                    if w == v:
                        break
                if len(group) > 1:
                    groups.append(group)
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
    cycles = []
    for group in groups:  # the shortest way back to the group's first module, through the group
        start = min(group)
        prev: dict[str, str] = {}
        todo = [start]
        while todo and start not in prev:
            nxt = []
            for v in todo:
                for w in succ[v]:
                    if w in group and w not in prev:
                        prev[w] = v
                        nxt.append(w)
            todo = nxt
        path = [start]
        while len(path) == 1 or path[-1] != start:
            path.append(prev[path[-1]])
        cycles.append(path[::-1])
    return cycles


def _describe(graph, cycle: list[str]) -> str:
    hops = []
    for a, b in zip(cycle, cycle[1:]):
        lines = sorted({d["line_number"] for d in graph.get_import_details(importer=a, imported=b)})
        hops.append(f"{a} -> {b} (line {', '.join(map(str, lines)) or '?'})")
    return "; ".join(hops)


def test_no_import_cycle_in_backend():
    """Every import in backend points down, imports inside functions included (docs/architecture.md, "Layers").

    The layers contract catches an import across its layers; this catches a cycle whatever the layers say.
    """
    import grimp

    graph = grimp.build_graph("backend", "desktop", cache_dir=None)
    cycles = import_cycles(graph)
    assert not cycles, ("import cycles in backend (move the shared code into a module below both): "
                        + " | ".join(_describe(graph, c) for c in cycles))


def test_an_import_cycle_is_found_and_named():
    """The check above would fail: a cycle through a function-body import, among modules that do not cycle."""
    import grimp

    graph = grimp.ImportGraph()
    for a, b, line in [("backend.a", "backend.b", 3), ("backend.b", "backend.c", 40), ("backend.c", "backend.a", 7),
                       ("backend.c", "backend.d", 2), ("backend.d", "backend.e", 1), ("backend.e", "backend.d", 9)]:
        graph.add_import(importer=a, imported=b, line_number=line, line_contents=f"import {b}")
    graph.add_module("backend.f")
    cycles = import_cycles(graph)
    assert sorted(cycles) == [["backend.a", "backend.b", "backend.c", "backend.a"], ["backend.d", "backend.e", "backend.d"]]
    assert _describe(graph, cycles[0] if cycles[0][0] == "backend.a" else cycles[1]) == (
        "backend.a -> backend.b (line 3); backend.b -> backend.c (line 40); backend.c -> backend.a (line 7)")


def test_the_documented_backend_layers_are_the_contract():
    """docs/architecture.md "Layers" lists the backend core's layers line by line, as pyproject.toml has them."""
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    block = text.split("## Layers", 1)[1].split("```", 2)[1].splitlines()
    start = next(i for i, line in enumerate(block) if line.startswith("backend services"))
    end = next(i for i, line in enumerate(block) if line.startswith("transformers"))
    documented = [{"backend." + m.strip() for m in line[27:].split(",")} for line in block[start:end]]
    assert documented == _layer_modules()[5:], "docs/architecture.md \"Layers\" and pyproject.toml differ"

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

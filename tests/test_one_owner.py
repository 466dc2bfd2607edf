"""Rules written once: each has one owner module that every user imports (docs/architecture.md, "Layers")."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_answer_modes_are_listed_once():
    from backend.rag import chain, evaluate, modes
    from desktop import eval_adapter

    assert chain.MODES is modes.MODES and evaluate.MODES is modes.MODES and eval_adapter.MODES is modes.MODES
    pattern = re.compile(r"""\(\s*["']tuned\+rag["'],\s*["']tuned["'],\s*["']base\+rag["'],\s*["']base["']\s*\)""")
    copies = [str(p.relative_to(ROOT)) for pkg in ("backend", "desktop") for p in sorted((ROOT / pkg).rglob("*.py"))
              if pattern.search(p.read_text(encoding="utf-8")) and p.name != "modes.py"]
    assert not copies, f"import MODES from backend.rag.modes: {copies}"

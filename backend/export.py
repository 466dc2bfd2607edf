"""Export a run: the adapter merged into its base model, as a plain HF folder."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from backend import events as ev
from backend import methods, runs
from backend.config import RunConfig
from backend.errors import RunError
from backend.fsutil import atomic_write_json
from backend.workspace import require_run_dir


def export_merged(run_dir: str | Path, out: str | Path, *, on_event: ev.OnEvent = ev.no_event,
                  dtype: str = "auto") -> Path:
    """Merge the run's adapter into its base model and save model + tokenizer to ``out``.

    The result loads with plain ``AutoModelForCausalLM.from_pretrained(out)``.

    Raises
    ------
    RunError
        When the run has no adapter (not finished) or ``out`` is a non-empty folder.
    """
    import torch
    from peft import PeftModel

    from backend.models import load_model, load_tokenizer, resolve_model
    from backend.runtime import DeviceInfo

    run_dir = require_run_dir(run_dir)
    out = Path(out).expanduser().resolve()
    if out.exists() and any(out.iterdir()):
        raise RunError("the export folder is not empty", file=out, hint="choose a new or empty folder")
    cfg = RunConfig.load(runs.config_path(run_dir))
    full = runs.model_dir(run_dir)
    adapter = runs.adapter_dir(run_dir)
    on_event(ev.progress("export", 0, 3, "Loading the base model…"))
    tmp = out.with_name(f".{out.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    if full.exists():
        shutil.copytree(full, tmp)
    else:
        if not adapter.exists():
            raise RunError("this run has no adapter yet (it has not completed)", file=run_dir,
                           hint="finish it with `tune resume RUN_DIR` first")
        base = resolve_model(cfg.model.name_or_path, allow_hub=cfg.model.allow_hub)
        cpu = DeviceInfo("cpu", "CPU", 0.0, False)
        model = load_model(base, device=cpu, dtype="float32" if dtype == "auto" else dtype)
        tok = load_tokenizer(base)
        on_event(ev.progress("export", 1, 3, "Merging the adapter…"))
        peft_model = PeftModel.from_pretrained(model, str(adapter))
        if not methods.get(cfg.method.method).mergeable:
            raise RunError(f"{cfg.method.method} adapters cannot be merged into the weights", file=adapter,
                           hint="use the adapter folder directly with peft")
        merged = peft_model.merge_and_unload()
        on_event(ev.progress("export", 2, 3, "Writing safetensors…"))
        merged.to(torch.float32)
        merged.save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)
    atomic_write_json(runs.provenance_path(tmp), {"exported_from": str(run_dir),
                                                 "base_model": cfg.model.name_or_path,
                                                 "method": cfg.method.method})
    if out.exists():
        out.rmdir()
    out.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, out)
    on_event(ev.progress("export", 3, 3, f"Exported to {out}"))
    return out

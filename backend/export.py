"""Export a run: adapter folder, merged safetensors, GGUF (quantized) or an Ollama folder.

Every export is written under a temporary name and renamed at the end (a
killed export never leaves something that looks complete), recorded in
``<run>/exports/<name>/export.json`` (path, sha256, size, quantization, time)
and, unless asked not to, followed by the parity check of
:mod:`backend.parity`, stored beside it as ``parity.json``.  See
``docs/architecture.md``, "Export".
"""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path

from backend import events as ev
from backend import methods, runs
from backend.config import RunConfig
from backend.confine import is_link
from backend.errors import RunError, disk_problem
from backend.export_types import (EXPORT_KINDS, EXPORT_RECORD, PARITY_RECORD, ExportError, ExportRecord,
                                   ExportTargetExists, export_name, needs_quant, record_dir)
from backend.fsutil import atomic_write_json
from backend.trust import hub_allowed
from backend.workspace import require_run_dir


# Hidden names an export writes under before the final rename (``.<target>.<kind>-<pid>``):
# ``tmp`` (the folder being filled), ``merged`` (the merge a GGUF is written from), ``part``
# (the GGUF file, backend/gguf_export.py), ``old`` (the earlier export being replaced).
_TEMP_NAME = re.compile(r"^\..+\.(tmp|merged|part|old)-(\d+)$")


def export_merged(run_dir: str | Path, out: str | Path, *, on_event: ev.OnEvent = ev.no_event,
                  dtype: str = "auto", force: bool = False) -> Path:
    """Merge the run's adapter into its base model and save model + tokenizer to ``out``.

    The result loads with plain ``AutoModelForCausalLM.from_pretrained(out)``.

    Parameters
    ----------
    force
        Replace an earlier export at ``out`` (never a folder that is not an export).

    Raises
    ------
    RunError
        When the run has no adapter (not finished).
    ExportTargetExists
        ``out`` is a non-empty folder and ``force`` is off (or it is not an export).
    """
    import torch
    from peft import PeftModel

    from backend.models import load_model, load_tokenizer, resolve_model
    from backend.runtime import DeviceInfo

    run_dir = require_run_dir(run_dir)
    out = _target(out)
    _check_target(out, folder=True, force=force)
    cfg = RunConfig.load(runs.config_path(run_dir))
    full = runs.model_dir(run_dir)
    adapter = runs.adapter_dir(run_dir)
    on_event(ev.progress("export", 0, 3, "Loading the base model…"))
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    if full.exists():
        shutil.copytree(full, tmp)
    else:
        if not adapter.exists():
            raise RunError("this run has no adapter yet (it has not completed)", file=run_dir,
                           hint="finish it with `tune resume RUN_DIR` first")
        base = resolve_model(cfg.model.name_or_path, allow_hub=hub_allowed())  # the person's, never the run folder's
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
    _install(tmp, out)
    on_event(ev.progress("export", 3, 3, f"Exported to {out}"))
    return out


# ---------------------------------------------------------------------------
# every export kind, recorded in the run folder

def _weights_file(path: Path) -> Path | None:
    if path.is_file():
        return path
    for pat in ("*.gguf", "model.safetensors", "adapter_model.safetensors", "*.safetensors"):
        found = sorted(path.glob(pat))
        if found:
            return found[0]
    return None


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _target(out: str | Path) -> Path:
    """The export target as an absolute path; its folder is created, its stale temp files removed."""
    out = Path(out).expanduser()
    out = out.parent.resolve() / out.name  # the target itself is not resolved: a link there is not followed
    out.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(out.parent)
    return out


_GGUF_MAGIC = b"GGUF"


def _is_gguf(path: Path) -> bool:
    """Whether ``path`` is a plain file that starts like a GGUF file."""
    if is_link(path) or not path.is_file():
        return False
    try:
        with open(path, "rb") as fh:
            return fh.read(4) == _GGUF_MAGIC
    except OSError:
        return False


def _is_export_folder(path: Path) -> bool:
    """Whether ``path`` holds an earlier export (what ``force`` may replace)."""
    if is_link(path) or not path.is_dir():
        return False
    marks = (runs.PROVENANCE, "adapter_config.json", "Modelfile", EXPORT_RECORD)
    return any((path / m).is_file() for m in marks) or any(_is_gguf(f) for f in path.glob("*.gguf"))


def _check_target(out: Path, *, folder: bool, force: bool = False) -> None:
    """Refuse an occupied target unless ``force`` — and refuse, even then, anything that is not an export.

    Raises
    ------
    ExportTargetExists
        The target is there (a non-empty folder, an existing file).
    ExportError
        A folder is where the GGUF file should go.
    """
    again = "pass --force to replace it (the app asks first), or choose another name"
    if folder:
        if is_link(out):
            raise ExportTargetExists("the export folder is a link; it is not replaced", file=out,
                                     hint="choose a new or empty folder")
        if out.exists() and (not out.is_dir() or any(out.iterdir())):
            if not force:
                raise ExportTargetExists("the export folder is not empty", file=out,
                                         hint=f"it holds an earlier export? {again}; else choose a new or empty folder")
            if not _is_export_folder(out):
                raise ExportTargetExists("the folder is not an export of Tune Studio, so it is not replaced, "
                                         "even with --force", file=out, hint="choose a new or empty folder")
        return
    if out.is_dir() and not is_link(out):
        raise ExportError("a folder is in the way of the GGUF file", file=out, hint="choose a file name ending in .gguf")
    if out.exists() or is_link(out):
        if not force:
            raise ExportTargetExists("the GGUF file already exists", file=out, hint=again)
        if is_link(out) or not _is_gguf(out):
            raise ExportTargetExists("the file is not a GGUF file, so it is not replaced, even with --force",
                                     file=out, hint="choose another file name ending in .gguf")


def _install(tmp: Path, out: Path) -> None:
    """Rename the finished ``tmp`` to ``out``; an earlier export there is moved aside first, then removed."""
    out.parent.mkdir(parents=True, exist_ok=True)
    old = None
    if out.is_dir() and not is_link(out):
        if any(out.iterdir()):
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(out, old)
        else:
            out.rmdir()
    os.replace(tmp, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def remove_stale_temps(folder: str | Path) -> list[Path]:
    """Remove the hidden temp files and folders of exports whose process is gone; returns what was removed.

    An export killed mid-way (power cut, ``kill -9``) leaves ``.<target>.tmp-<pid>``,
    ``.merged-<pid>``, ``.part-<pid>`` or ``.old-<pid>`` — hundreds of MB, hidden.  Each export
    clears its target's folder before it starts, and the app does so for a project's run
    exports when it opens it (:func:`remove_project_export_temps`).  A temp file of a process
    that still runs (another export now) is left alone.
    """
    folder = Path(folder)
    removed: list[Path] = []
    try:
        entries = sorted(folder.iterdir())
    except OSError:
        return removed
    for p in entries:
        m = _TEMP_NAME.match(p.name)
        if not m:
            continue
        pid = int(m.group(2))
        if pid != os.getpid() and runs.pid_alive(pid):
            continue
        if pid == os.getpid() and m.group(1) != "part":
            continue  # ours and maybe in use by this process (a GGUF part of ours is the old rule's leftover)
        try:
            if p.is_dir() and not is_link(p):
                shutil.rmtree(p)
            else:
                p.unlink()
            removed.append(p)
        except OSError:
            continue
    return removed


def remove_project_export_temps(project_root: str | Path) -> list[Path]:
    """:func:`remove_stale_temps` in every run's ``exports/`` folder of a project (the app calls it on open)."""
    out: list[Path] = []
    for run in runs.iter_run_dirs(project_root):
        d = runs.exports_dir(run)
        if d.is_dir() and not is_link(d):
            out += remove_stale_temps(d)
    return out


def export_adapter(run_dir: str | Path, out: str | Path, *, on_event: ev.OnEvent = ev.no_event,
                   force: bool = False) -> Path:
    """Copy the run's PEFT adapter folder (loads with ``PeftModel.from_pretrained(base, out)``).

    Parameters
    ----------
    force
        Replace an earlier export at ``out`` (never a folder that is not an export).

    Raises
    ------
    RunError
        The run has no adapter (not finished, or a full fine-tune).
    ExportTargetExists
        ``out`` is a non-empty folder and ``force`` is off (or it is not an export).
    """
    run_dir = require_run_dir(run_dir)
    out = _target(out)
    _check_target(out, folder=True, force=force)
    adapter = runs.adapter_dir(run_dir)
    if not (adapter / "adapter_config.json").is_file():
        raise RunError("this run has no adapter to export", file=adapter,
                       hint="finish the run first; a full fine-tune exports as a merged folder")
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(adapter, tmp, symlinks=True)  # a link in the run folder is copied as a link, not followed
    _install(tmp, out)
    on_event(ev.progress("export", 1, 1, f"Adapter copied to {out}"))
    return out


def _merged_tmp(run_dir: Path, out: Path, on_event: ev.OnEvent) -> Path:
    """The run merged into a temporary folder beside ``out`` (the caller removes it)."""
    tmp = out.parent / f".{out.name}.merged-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    return export_merged(run_dir, tmp, on_event=on_event)


def export_gguf(run_dir: str | Path, out: str | Path, *, quant: str = "q8_0", on_event: ev.OnEvent = ev.no_event,
                should_stop: ev.ShouldStop = ev.never_stop, force: bool = False) -> Path | None:
    """Merge the run and write it as one GGUF file (see :mod:`backend.gguf_export`).

    Parameters
    ----------
    force
        Replace an existing GGUF file at ``out`` (never a file that is not a GGUF).

    Returns
    -------
    Path or None
        The file; ``None`` when stopped (nothing is left at ``out``).

    Raises
    ------
    ExportTargetExists
        ``out`` exists and ``force`` is off (or it is not a GGUF file).
    """
    from backend.gguf_export import check_quant, write_gguf

    run_dir = require_run_dir(run_dir)
    out = _target(out)
    quant = check_quant(quant)
    _check_target(out, folder=False, force=force)
    merged = _merged_tmp(run_dir, out, on_event)
    try:
        if should_stop():
            return None
        res = write_gguf(merged, out, quant=quant, name=f"{run_dir.name} ({quant})", on_event=on_event,
                         should_stop=should_stop)
    finally:
        shutil.rmtree(merged, ignore_errors=True)
    return Path(res.path) if res is not None else None


def export_ollama(run_dir: str | Path, out: str | Path, *, quant: str = "q8_0", model_name: str | None = None,
                  generation=None, system_prompt: str | None = None, on_event: ev.OnEvent = ev.no_event,
                  should_stop: ev.ShouldStop = ev.never_stop, force: bool = False) -> Path | None:
    """An Ollama folder: the merged GGUF, a ``Modelfile`` and a README.

    The Modelfile's ``TEMPLATE`` reproduces the model's chat template (checked
    by the parity check), its ``PARAMETER``s are the Chat page's generation
    settings, ``SYSTEM`` the no-retrieval system prompt, and ``FROM`` the merged
    weights (no ``ADAPTER`` line).

    Parameters
    ----------
    generation
        A :class:`backend.rag.settings.GenerationSettings` (defaults when ``None``).
    system_prompt
        Defaults to the chat's system prompt without retrieval.
    force
        Replace an earlier export at ``out`` (never a folder that is not an export).

    Returns
    -------
    Path or None
        The folder; ``None`` when stopped.
    """
    from backend.gguf_export import check_quant, temp_path_for, write_gguf
    from backend.models import load_tokenizer
    from backend.ollama import chat_template_parts, go_template, modelfile_text, stop_strings
    from backend.rag.settings import GenerationSettings, RetrievalSettings

    run_dir = require_run_dir(run_dir)
    out = _target(out)
    quant = check_quant(quant)
    _check_target(out, folder=True, force=force)
    gen = generation or GenerationSettings()
    system = system_prompt if system_prompt is not None else RetrievalSettings().no_rag_system_prompt
    name = model_name or re.sub(r"[^a-z0-9._-]+", "-", run_dir.name.lower()).strip("-.") or "tuned"
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        merged = _merged_tmp(run_dir, tmp / "merged", on_event)
        try:
            tok = load_tokenizer(str(merged))
            parts = chat_template_parts(tok)
            gguf_name = f"{name}-{quant}.gguf"
            res = write_gguf(merged, tmp / gguf_name, quant=quant, name=name, on_event=on_event,
                             should_stop=should_stop)
            if res is None:
                return None
            add_bos = bool(tok.bos_token_id is not None and tok("a")["input_ids"][:1] == [tok.bos_token_id])
            cfg = RunConfig.load(runs.config_path(run_dir))
            template = go_template(parts, drop_start=add_bos)
            text = modelfile_text(gguf_name, template, system=system, temperature=gen.temperature, top_p=gen.top_p,
                                  repeat_penalty=gen.repetition_penalty, num_predict=gen.max_new_tokens,
                                  stop=stop_strings(parts, tok.eos_token), num_ctx=max(2048, cfg.data.max_length))
        finally:
            shutil.rmtree(merged, ignore_errors=True)
            shutil.rmtree(tmp / "merged", ignore_errors=True)
        (tmp / "Modelfile").write_text(text, encoding="utf-8")
        (tmp / "README.md").write_text(_ollama_readme(name, gguf_name, quant, run_dir), encoding="utf-8")
        temp_path_for(tmp / gguf_name).unlink(missing_ok=True)
        _install(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    on_event(ev.progress("export", 1, 1, f"Ollama folder written to {out}"))
    return out


def _ollama_readme(name: str, gguf_name: str, quant: str, run_dir: Path) -> str:
    return f"""# {name}

Exported by Tune Studio from the run `{run_dir.name}`: the base model with the
fine-tuning merged into its weights, as GGUF ({quant}).

## Ollama

    ollama create {name} -f Modelfile
    ollama run {name}

The Modelfile's TEMPLATE writes the same prompt as the model's chat template,
its PARAMETERs are the Chat page's generation settings (temperature, top_p,
repeat penalty, answer length, stop texts), and SYSTEM is the chat's system
prompt without document retrieval.

## llama.cpp

    llama-cli -m {gguf_name} -cnv
    llama-server -m {gguf_name}

llama.cpp reads the chat template from the GGUF file itself.

## LM Studio

Import `{gguf_name}` (My Models -> Import).
"""


def _export_bytes(run_dir: Path, kind: str) -> int | None:
    """About how much an export writes: the adapter's size, else the weights of the model it is merged into."""
    def size(folder: Path) -> int:
        return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file() and
                   f.suffix in (".safetensors", ".gguf", ".bin"))

    try:
        if kind == "adapter" and runs.adapter_dir(run_dir).is_dir():
            return size(runs.adapter_dir(run_dir))
        if runs.model_dir(run_dir).is_dir():
            return size(runs.model_dir(run_dir))
        from backend.models import resolve_model

        base = Path(resolve_model(RunConfig.load(runs.config_path(run_dir)).model.name_or_path))
        n = size(base) if base.is_dir() else base.stat().st_size
        return n * 2 if kind == "ollama" else n  # ollama: the merged folder and the GGUF side by side
    except Exception:  # an estimate only: the message goes out without it
        return None


def _drop_partial_export(target: Path) -> None:
    """Remove the temp files and folders this process was writing beside ``target`` (the target itself is untouched)."""
    pid = str(os.getpid())
    for p in target.parent.glob(f"*{target.name}*"):
        name = p.name
        # never the earlier export moved aside for a forced replace (.<name>.old-<pid>): it is the user's
        if name.startswith(".") and name != target.name and ".old-" not in name and (name.endswith(".tmp") or pid in name):
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)


def export_run(run_dir: str | Path, kind: str, out: str | Path, *, quant: str = "q8_0", check: bool = True,
               evalset: str | Path | None = None, questions: int = 20, max_new_tokens: int | None = None,
               generation=None, system_prompt: str | None = None, on_event: ev.OnEvent = ev.no_event,
               should_stop: ev.ShouldStop = ev.never_stop, force: bool = False) -> ExportRecord | None:
    """Export a run as ``kind``, record it, and run the parity check.

    Parameters
    ----------
    kind
        ``adapter`` (PEFT folder), ``merged`` (safetensors folder), ``gguf``
        (one file) or ``ollama`` (folder with GGUF + Modelfile).
    quant
        GGUF quantization for ``gguf`` / ``ollama`` (``f16``, ``bf16``, ``q8_0``,
        ``q5_0``, ``q5_1``, ``q4_0``, ``q4_1``, ``f32``).
    check
        Run :func:`backend.parity.check_export` afterwards (the default).
    evalset, questions
        Questions for the parity check: an evalset name or file (default: the
        project's first evalset, else the run's validation rows), at most
        ``questions`` of them.
    max_new_tokens
        Length of the greedy answers compared (default: ``backend.parity.MAX_NEW_TOKENS``).
    force
        Replace an earlier export at ``out`` (``tune export --force``; the app asks first).
        Without it an existing file or non-empty folder is refused; with it, only an
        earlier export is replaced, never another file or folder.

    Returns
    -------
    ExportRecord or None
        ``None`` when stopped.

    Raises
    ------
    ExportError, RunError
        Unknown kind, unsupported model, or an occupied target (:class:`ExportTargetExists`).
    """
    from backend.fsutil import sha256_file

    if kind not in EXPORT_KINDS:
        raise ExportError(f"unknown export kind '{kind}'", field="kind", hint=f"use one of {', '.join(EXPORT_KINDS)}")
    run_dir = require_run_dir(run_dir)
    t0 = time.monotonic()
    try:
        if kind == "adapter":
            path = export_adapter(run_dir, out, on_event=on_event, force=force)
        elif kind == "merged":
            path = export_merged(run_dir, out, on_event=on_event, force=force)
        elif kind == "gguf":
            path = export_gguf(run_dir, out, quant=quant, on_event=on_event, should_stop=should_stop, force=force)
        else:
            path = export_ollama(run_dir, out, quant=quant, generation=generation, system_prompt=system_prompt,
                                 on_event=on_event, should_stop=should_stop, force=force)
    except Exception as e:
        target = Path(out).expanduser().resolve()
        problem = disk_problem(e, target.parent, doing=f"exporting ({kind})", needed=_export_bytes(run_dir, kind),
                               then="then export again")
        if problem is None:
            raise
        _drop_partial_export(target)
        raise problem from e
    if path is None:
        return None
    weights = _weights_file(path)
    rec = ExportRecord(name=export_name(path), kind=kind, path=str(path),
                       quant=quant if needs_quant(kind) else None, size_bytes=_size(path),
                       sha256=sha256_file(weights) if weights else None, seconds=round(time.monotonic() - t0, 2),
                       created=round(time.time(), 3), run_dir=str(run_dir))
    d = record_dir(run_dir, rec.name)
    d.mkdir(parents=True, exist_ok=True)
    atomic_write_json(d / EXPORT_RECORD, {k: v for k, v in rec.to_dict().items() if k != "parity"})
    (d / PARITY_RECORD).unlink(missing_ok=True)  # a result of an earlier export under this name
    on_event(ev.log(f"Exported {kind} to {path} ({rec.size_bytes / 2**20:.1f} MiB) in {rec.seconds:.1f} s"))
    if check and not should_stop():
        from backend.parity import MAX_NEW_TOKENS, check_export

        res = check_export(run_dir, rec, evalset=evalset, limit=questions, generation=generation,
                           max_new_tokens=max_new_tokens or MAX_NEW_TOKENS,
                           system_prompt=system_prompt, on_event=on_event, should_stop=should_stop)
        rec.parity = res.to_dict() if res is not None else None
    return rec

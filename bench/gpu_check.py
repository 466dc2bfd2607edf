"""``make gpu-check``: every CUDA-only check in one command, under 8 minutes on one GPU.

Checks (each in its own process, with its own time budget; the whole plan fits
:data:`TOTAL_BUDGET_S`):

``fused_vs_hf``  the engine's fused paths (``backend.fastpath``: packed per-row attention,
                 fused LoRA, label-only fused cross-entropy) against the plain padded HF path
                 on CUDA, in bf16 and float32: loss parity on the same micro-batch,
                 forward+backward tokens/s and peak GPU memory of each;
``qlora``        ``tune train`` with ``model.load_in_4bit`` (QLoRA) for a few steps: the run
                 completes and saves an adapter (skipped when bitsandbytes does not import);
``oom_backoff``  a run whose micro-batch cannot fit under an artificial memory cap
                 (``torch.cuda.set_per_process_memory_fraction``): the engine must halve the
                 micro-batch (an ``oom_retry`` event), keep the effective batch and complete;
``gui_path``     20 steps on the sample project through the GUI's own path (the training
                 child process supervised by a ``Job``), via ``bench.first_model``;
``bench_cuda``   ``python -m bench --only cuda`` (the training bench on the GPU), small sizes.

``--random-weights DIR`` runs every check on a model with the architecture and tokenizer in
``DIR`` (a model folder without weights: ``config.json`` and the tokenizer files) and random
weights, for a GPU machine where the default model's package cannot be installed (the lent
machine takes 64 MiB per call; the default model's GGUF file is 98 MB).  Speed, memory,
loss parity and the out-of-memory back-off depend on the architecture and the data's shapes,
not on the weights' values; the results say which model was used.

Writes ``bench/results-gpu.json`` and prints one summary table.  Without a CUDA
GPU every check is listed as skipped with the reason and nothing runs, so the
planning, budget, parsing and reporting are tested on any machine
(tests/test_bench.py).  ``--dry-run`` lists the plan.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from bench.common import BENCH_DIR, REPO, log, setup_env, write_json

TOTAL_BUDGET_S = 480.0  # the issue's "under 8 minutes on one GPU"
RESULT_PREFIX = "GPU-CHECK-RESULT "  # a check's last stdout line: this prefix, then its JSON
MODEL_ENV = "TUNE_GPU_CHECK_MODEL"  # the model folder every check uses (set by --random-weights)
BUDGET_ENV = "TUNE_GPU_CHECK_BUDGET_S"  # a check's time budget, so its own subprocess ends first and reports


@dataclass(frozen=True)
class Check:
    """One CUDA-only check: its name, time budget and what it proves."""

    name: str
    budget_s: float
    what: str
    needs: tuple[str, ...] = ("cuda",)


CHECKS: tuple[Check, ...] = (
    Check("fused_vs_hf", 90, "fused paths vs HF on CUDA: loss parity (bf16, fp32), tokens/s, peak memory of "
          "each way packed rows attend (per row, one masked call, FlashAttention-varlen)"),
    Check("qlora", 60, "QLoRA (4-bit base) run completes with an adapter", ("cuda", "bitsandbytes")),
    Check("oom_backoff", 100, "OOM under a memory cap: micro-batch halved, run completes"),
    Check("gui_path", 90, "20 steps through the GUI's path (child process + Job)", ("cuda", "pyside6")),
    Check("bench_cuda", 140, "python -m bench --only cuda (small sizes; 130 s on an H200)"),
)


# ---------------------------------------------------------------------------
# planning, parsing, reporting (no GPU needed)

def probe_environment() -> dict:
    """What this machine offers: CUDA (and the GPU's name), bitsandbytes."""
    env: dict[str, Any] = {"cuda": False, "gpu": None, "bitsandbytes": False, "pyside6": False}
    try:
        import torch
        env["cuda"] = bool(torch.cuda.is_available())
        if env["cuda"]:
            env["gpu"] = torch.cuda.get_device_name(0)
            env["bf16"] = bool(torch.cuda.is_bf16_supported())
    except Exception as e:  # noqa: BLE001 - a broken torch is a reason to skip, said in the table
        env["torch_error"] = f"{type(e).__name__}: {e}"
    try:
        import bitsandbytes  # noqa: F401
        env["bitsandbytes"] = True
    except Exception as e:  # noqa: BLE001 - any import failure means no QLoRA here
        env["bitsandbytes_error"] = f"{type(e).__name__}: {str(e)[:200]}"
    try:
        import PySide6.QtCore  # noqa: F401
        env["pyside6"] = True
    except Exception as e:  # noqa: BLE001 - no Qt means no GUI path here
        env["pyside6_error"] = f"{type(e).__name__}: {str(e)[:200]}"
    env["model"] = os.environ.get(MODEL_ENV) or "default"
    return env


def skip_reason(check: Check, env: dict) -> str | None:
    """Why ``check`` cannot run on this machine (None: it can)."""
    if "cuda" in check.needs and not env.get("cuda"):
        return "no CUDA GPU (torch.cuda.is_available() is False)" + (
            f"; {env['torch_error']}" if env.get("torch_error") else "")
    if "bitsandbytes" in check.needs and not env.get("bitsandbytes"):
        return "bitsandbytes does not import" + (f" ({env['bitsandbytes_error']})"
                                                 if env.get("bitsandbytes_error") else "")
    if "pyside6" in check.needs and not env.get("pyside6"):
        return "PySide6 does not import" + (f" ({env['pyside6_error']})" if env.get("pyside6_error") else "")
    return None


def plan(env: dict, only: list[str] | None = None, total_budget_s: float = TOTAL_BUDGET_S) -> list[dict]:
    """The checks in run order: ``{"name", "budget_s", "what", "skip"}``.

    Budgets are scaled down together when the chosen checks would not fit
    ``total_budget_s`` (each keeps its share).
    """
    chosen = [c for c in CHECKS if not only or c.name in only]
    unknown = sorted(set(only or []) - {c.name for c in CHECKS})
    if unknown:
        raise ValueError(f"unknown checks {unknown}; choose from {', '.join(c.name for c in CHECKS)}")
    runnable = sum(c.budget_s for c in chosen if skip_reason(c, env) is None)
    scale = min(1.0, total_budget_s / runnable) if runnable else 1.0
    return [{"name": c.name, "what": c.what, "budget_s": round(c.budget_s * scale, 1), "skip": skip_reason(c, env)}
            for c in chosen]


def parse_result(name: str, rc: int | None, stdout: str, stderr: str, seconds: float, budget_s: float) -> dict:
    """A check process's outcome: ``pass`` / ``fail`` / ``timeout`` with its figures and reason.

    The check prints its result as one line ``GPU-CHECK-RESULT {json}`` (the last such
    line counts); ``{"ok": true|false, "reason": ..., ...figures}``.
    """
    base = {"name": name, "seconds": round(seconds, 1), "budget_s": budget_s}
    if rc is None:
        return {**base, "status": "timeout", "reason": f"over its budget of {budget_s:.0f} s",
                "stderr_tail": stderr[-800:]}
    lines = [ln[len(RESULT_PREFIX):] for ln in stdout.splitlines() if ln.startswith(RESULT_PREFIX)]
    if not lines:
        return {**base, "status": "fail", "reason": f"exited {rc} without a result", "stderr_tail": stderr[-800:]}
    try:
        res = json.loads(lines[-1])
    except ValueError as e:
        return {**base, "status": "fail", "reason": f"unreadable result ({e})", "stderr_tail": stderr[-800:]}
    ok = bool(res.pop("ok", False)) and rc == 0
    reason = res.pop("reason", "" if ok else f"exited {rc}")
    return {**base, "status": "pass" if ok else "fail", "reason": reason, "figures": res}


def summary_table(results: list[dict]) -> str:
    """One plain-text table: check, status, seconds, the figures or the reason."""
    rows = [("CHECK", "STATUS", "SECONDS", "DETAILS")]
    for r in results:
        if r["status"] == "skip":
            detail = r.get("reason", "")
        else:
            figs = r.get("figures") or {}
            detail = ", ".join(f"{k}={_short(v)}" for k, v in figs.items() if not isinstance(v, (dict, list)))
            if r.get("reason"):
                detail = f"{r['reason']}; {detail}" if detail else r["reason"]
        rows.append((r["name"], r["status"].upper(), f"{r.get('seconds', 0):.0f}" if r["status"] != "skip" else "-",
                     detail[:150]))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    return "\n".join("  ".join(row[i].ljust(widths[i]) for i in range(3)) + "  " + row[3] for row in rows)


def _short(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def run_all(planned: list[dict], *, run_check: Callable[[dict, float], dict] | None = None,
            total_budget_s: float = TOTAL_BUDGET_S) -> list[dict]:
    """Run the planned checks in order within the total budget; skipped ones are recorded, not run."""
    run_check = run_check or _run_check_process
    t0 = time.perf_counter()
    out = []
    for c in planned:
        if c["skip"]:
            out.append({"name": c["name"], "status": "skip", "reason": c["skip"], "budget_s": c["budget_s"]})
            continue
        left = total_budget_s - (time.perf_counter() - t0)
        if left < 10:
            out.append({"name": c["name"], "status": "skip", "reason": "the total time budget is spent",
                        "budget_s": c["budget_s"]})
            continue
        log(f"gpu-check: {c['name']} ({c['what']}), budget {min(c['budget_s'], left):.0f} s …")
        r = run_check(c, min(c["budget_s"], left))
        log(f"  {c['name']}: {r['status']} in {r.get('seconds')} s {r.get('reason') or ''}")
        out.append(r)
    return out


def _run_check_process(c: dict, timeout: float) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env[BUDGET_ENV] = str(timeout)
    t = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, "-m", "bench.gpu_check", "--check", c["name"]], cwd=str(REPO),
                              env=env, capture_output=True, text=True, timeout=timeout)
        rc, so, se = proc.returncode, proc.stdout, proc.stderr
    except subprocess.TimeoutExpired as e:
        rc, so, se = None, _text(e.stdout), _text(e.stderr)
    return parse_result(c["name"], rc, so, se, time.perf_counter() - t, c["budget_s"])


def _text(b: Any) -> str:
    return b.decode("utf-8", "replace") if isinstance(b, bytes) else (b or "")


# ---------------------------------------------------------------------------
# the checks themselves (run in their own process, on the GPU)

def check_model() -> str:
    """The model folder the checks use: ``--random-weights``'s, else the bundled default."""
    from backend.models import resolve_model
    return os.environ.get(MODEL_ENV) or resolve_model("default")


def random_weights_model(src: Path, dest: Path) -> Path:
    """A model folder with ``src``'s architecture and tokenizer and random weights, in ``dest``.

    ``src`` holds ``config.json`` and the tokenizer files (no weights are read from it).
    """
    import shutil

    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    if not (src / "config.json").is_file():
        raise SystemExit(f"--random-weights {src}: no config.json there (copy the default model's folder "
                         "without its *.safetensors)")
    torch.manual_seed(0)
    config = AutoConfig.from_pretrained(src)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    dest.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(dest)
    for f in src.iterdir():
        if f.is_file() and not f.name.endswith((".safetensors", ".bin")) and not (dest / f.name).exists():
            shutil.copy2(f, dest / f.name)
    return dest

def _emit_result(res: dict) -> int:
    print(RESULT_PREFIX + json.dumps(res, default=str), flush=True)
    return 0 if res.get("ok") else 1


def _tune_train(cfg: dict, folder: Path, *, pre: str = "", timeout: float = 600) -> tuple[int, list[dict], str]:
    """Run ``tune train cfg.json --json`` (optionally after ``pre`` Python code, e.g. a memory cap)."""
    path = folder / "cfg.json"
    path.write_text(json.dumps(cfg))
    if pre:
        code = f"{pre}\nimport sys\nfrom backend.cli import main\nsys.exit(main(['train', {str(path)!r}, '--json']))"
        cmd = [sys.executable, "-c", code]
    else:
        cmd = [sys.executable, "-m", "backend", "train", str(path), "--json"]
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    budget = float(os.environ.get(BUDGET_ENV) or timeout)
    try:
        proc = subprocess.run(cmd, cwd=str(REPO), env=env, capture_output=True, text=True,
                              timeout=min(timeout, max(5.0, budget - 8)))
        rc, stdout, stderr = proc.returncode, proc.stdout, proc.stderr
    except subprocess.TimeoutExpired as e:  # what it did so far is the reason
        rc, stdout, stderr = None, _text(e.stdout), _text(e.stderr) + "\n(stopped: over the check's budget)"
    events = []
    for line in stdout.splitlines():
        if line.startswith("{"):
            try:
                events.append(json.loads(line))
            except ValueError:
                pass
    return rc, events, stderr[-1500:]


def _data_file(folder: Path, rows: int, median_len: float = 170.0, hi: int = 1000) -> Path:
    from bench.common import chat_records
    p = folder / "train.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in chat_records(rows, seed=7, lo=20, hi=hi,
                                                                      median_len=median_len)))
    return p


def _finished(events: list[dict]) -> dict:
    from backend import events as ev
    return next((e for e in reversed(events) if e.get("type") == ev.FINISHED), {})


def check_fused_vs_hf() -> dict:
    """Fused paths vs the plain padded HF path on CUDA: loss parity, fwd+bwd tokens/s, peak memory."""
    import torch
    from transformers import AutoTokenizer, DataCollatorForSeq2Seq

    from backend import fastpath
    from bench.common import make_rows
    from bench.train_cpu import _exact_check, _load_model, _lora

    path = check_model()
    tok = AutoTokenizer.from_pretrained(path)
    rows = make_rows(tok, 64, seed=3, max_length=1024, lo=20, hi=1000, median_len=170)
    out: dict[str, Any] = {"ok": True, "gpu": torch.cuda.get_device_name(0)}
    for dtype in ("bf16", "fp32"):
        model = _load_model(path, "cuda" if dtype == "bf16" else "cpu")
        if dtype == "fp32":
            model = model.float().to("cuda")
        model, _, _ = _lora(model, 0)
        ex = _exact_check(model, tok, rows[:8], "cuda")
        out[f"loss_rel_diff_{dtype}"] = ex["rel_diff"]
        tol = 2e-2 if dtype == "bf16" else 1e-4
        if ex["rel_diff"] is None or ex["rel_diff"] > tol:
            out["ok"] = False
            out["reason"] = f"{dtype} loss differs by {ex['rel_diff']} (> {tol})"
        if dtype != "bf16":
            continue
        feats = [[{"input_ids": r["input_ids"], "labels": r["labels"]} for r in rows[i:i + 16]]
                 for i in range(0, len(rows), 16)]
        n_items = [sum(sum(1 for x in r["labels"][1:] if x != -100) for r in f) for f in feats]
        real = sum(len(r["input_ids"]) for r in rows)
        hf_coll = DataCollatorForSeq2Seq(tok, padding=True, label_pad_token_id=-100)
        loss_func = fastpath.enable_fused_ce(model)
        base = fastpath._base(model)
        model.train()
        default_mode = fastpath.cuda_mode
        for path_name in ("hf", "fused", "fused_rows", "fused_varlen"):  # fused: the engine's default
            fused = path_name != "hf"
            fastpath.cuda_mode = "rows" if path_name == "fused_rows" else default_mode
            fastpath._cuda_varlen_ok = path_name == "fused_varlen"
            (fastpath.fuse_lora if fused else fastpath.unfuse_lora)(model)
            base.set_attn_implementation(fastpath.ATTN_NAME if fused else "sdpa")
            coll = fastpath.FastPackingCollator() if fused else hf_coll
            batches = [{k: (v.to("cuda") if hasattr(v, "to") else v) for k, v in coll(f).items()} for f in feats]
            times = []
            torch.cuda.reset_peak_memory_stats()
            for rep in range(3):  # the first round warms up, untimed
                torch.cuda.synchronize()
                t = time.perf_counter()
                for i, (b, n) in enumerate(zip(batches, n_items)):
                    b = dict(b)
                    model.zero_grad(set_to_none=True)
                    num = torch.tensor(n, device="cuda")
                    if fused:
                        labels = b.pop("labels")
                        loss = loss_func(model(**b), labels, num_items_in_batch=num)
                    else:
                        loss = model(**b, num_items_in_batch=num).loss
                    loss.backward()
                    if rep == 0 and i == len(batches) - 1:  # parity of every path on the same batch, train mode
                        grads = [p.grad.float().norm() ** 2 for p in model.parameters() if p.grad is not None]
                        out[f"{path_name}_loss"] = round(float(loss.detach()), 6)
                        out[f"{path_name}_grad_norm"] = round(float(torch.stack(grads).sum().sqrt()), 6)
                torch.cuda.synchronize()
                if rep:
                    times.append(time.perf_counter() - t)
            out[f"{path_name}_tokens_per_s"] = round(real / min(times), 1)
            out[f"{path_name}_peak_memory_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
            if path_name == "fused_varlen":  # False: varlen_attn failed here and the rows loop ran instead
                out["varlen_ran"] = fastpath._cuda_varlen_ok
        fastpath.cuda_mode, fastpath._cuda_varlen_ok = default_mode, False
        out["cuda_mode"] = default_mode
        out["speedup"] = round(out["fused_tokens_per_s"] / out["hf_tokens_per_s"], 3)
        out["speedup_rows"] = round(out["fused_rows_tokens_per_s"] / out["hf_tokens_per_s"], 3)
        out["speedup_varlen"] = round(out["fused_varlen_tokens_per_s"] / out["hf_tokens_per_s"], 3)
        for name in ("fused", "fused_rows", "fused_varlen"):  # the same batch's loss and gradient, vs HF
            out[f"{name}_grad_rel_diff"] = round(abs(out[f"{name}_grad_norm"] - out["hf_grad_norm"])
                                                 / max(out["hf_grad_norm"], 1e-12), 5)
            if out[f"{name}_grad_rel_diff"] > 5e-2:
                out["ok"] = False
                out["reason"] = f"{name}: gradient norm differs from HF's by {out[f'{name}_grad_rel_diff']}"
        out["memory_ratio"] = round(out["fused_peak_memory_mb"] / out["hf_peak_memory_mb"], 3)
        del model
        torch.cuda.empty_cache()
    return out


def check_qlora() -> dict:
    """A few QLoRA steps through ``tune train``: completed, adapter saved."""
    from backend import events as ev

    folder = Path(tempfile.mkdtemp(prefix="gpu-qlora-"))
    cfg = {"output_dir": str(folder / "run"),
           "model": {"name_or_path": check_model(), "load_in_4bit": True, "device": "cuda"},
           "data": {"train_files": [str(_data_file(folder, 64))], "validation_split": 0.0, "max_length": 512},
           "training": {"max_steps": 6, "save_steps": 3, "batch_size": 4, "gradient_accumulation": 1}}
    rc, events, err = _tune_train(cfg, folder)
    fin = _finished(events)
    ok = rc == 0 and fin.get("status") == "completed" and bool(fin.get("adapter_dir"))
    return {"ok": ok, "reason": "" if ok else f"rc={rc}, finished={fin.get('status')}: {err[-400:]}",
            "steps": sum(1 for e in events if e.get("type") == ev.TRAIN)}


def check_oom_backoff(cap_gb: float = 2.0) -> dict:
    """A micro-batch too big for an artificial memory cap: the engine halves it and completes."""
    from backend import events as ev

    folder = Path(tempfile.mkdtemp(prefix="gpu-oom-"))
    cfg = {"output_dir": str(folder / "run"), "model": {"name_or_path": check_model(), "device": "cuda"},
           "data": {"train_files": [str(_data_file(folder, 256, median_len=900, hi=1000))],
                    "validation_split": 0.0, "max_length": 1024, "packing": False},
           "training": {"max_steps": 2, "save_steps": 1, "batch_size": 64, "gradient_accumulation": 1,
                        "group_by_length": False}}
    pre = ("import torch\ntotal = torch.cuda.get_device_properties(0).total_memory\n"
           f"torch.cuda.set_per_process_memory_fraction(min(1.0, {cap_gb} * 2**30 / total))")
    rc, events, err = _tune_train(cfg, folder, pre=pre)
    retries = [e for e in events if e.get("type") == ev.OOM_RETRY]
    fin = _finished(events)
    ok = rc == 0 and fin.get("status") == "completed" and bool(retries)
    last = retries[-1] if retries else {}
    return {"ok": ok, "cap_gb": cap_gb, "retries": len(retries), "final_batch_size": last.get("batch_size"),
            "steps": sum(1 for e in events if e.get("type") == ev.TRAIN),
            "last_events": [{k: v for k, v in e.items() if k != "time"} for e in events[-3:]],
            "final_gradient_accumulation": last.get("gradient_accumulation"),
            "reason": "" if ok else (f"no oom_retry event (rc={rc}, {fin.get('status')})" if not retries
                                     else f"rc={rc}, finished={fin.get('status')}: {err[-400:]}")}


def check_gui_path(steps: int = 20) -> dict:
    """``steps`` steps on the sample project through the GUI's path (bench.first_model)."""
    from bench import first_model
    r = first_model.run(os.environ.get(MODEL_ENV), quick=False, max_steps=steps, device="cuda")
    ok = "skipped" not in r and r.get("seconds") is not None
    return {"ok": ok, "reason": r.get("skipped", ""), "seconds_to_adapter": r.get("seconds"),
            "path": r.get("path"), "estimate_ratio": r.get("estimate_ratio")}


def check_bench_cuda() -> dict:
    """``python -m bench --only cuda`` with small sizes; its block's headline figures."""
    out_dir = Path(tempfile.mkdtemp(prefix="gpu-bench-"))
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    model = ["--model", os.environ[MODEL_ENV]] if os.environ.get(MODEL_ENV) else []
    proc = subprocess.run([sys.executable, "-m", "bench", "--only", "cuda", "--out-dir", str(out_dir), *model,
                           "--cuda-args", "--rows 256 --warmup 0 --repeats 1 --paired-repeats 1 --no-seed-recipe"],
                          cwd=str(REPO), env=env, capture_output=True, text=True)
    try:
        block = json.loads((out_dir / "results.json").read_text()).get("train_cuda", {})
    except (OSError, ValueError):
        block = {}
    ok = proc.returncode == 0 and block.get("speedup_vs_hf_tuned") is not None
    return {"ok": ok, "reason": "" if ok else (block.get("skipped") or proc.stderr[-400:]), "block": block,
            "speedup_vs_hf_tuned": block.get("speedup_vs_hf_tuned"),
            "speedup_steps_vs_hf_tuned": block.get("speedup_steps_vs_hf_tuned"),
            "paired_fwd_bwd_speedup": block.get("paired_fwd_bwd_speedup")}


CHECK_FUNCS: dict[str, Callable[[], dict]] = {
    "fused_vs_hf": check_fused_vs_hf, "qlora": check_qlora, "oom_backoff": check_oom_backoff,
    "gui_path": check_gui_path, "bench_cuda": check_bench_cuda,
}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.gpu_check", description=__doc__.split("\n")[0])
    p.add_argument("--dry-run", action="store_true", help="list the plan (and what would be skipped); run nothing")
    p.add_argument("--only", default="", help="comma-separated checks: " + ", ".join(c.name for c in CHECKS))
    p.add_argument("--out", default=str(BENCH_DIR / "results-gpu.json"), help="where the results go")
    p.add_argument("--budget-s", type=float, default=TOTAL_BUDGET_S, help="total time budget")
    p.add_argument("--random-weights", default=None, metavar="DIR",
                   help="use DIR's architecture and tokenizer with random weights instead of the default model")
    p.add_argument("--check", default=None, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    setup_env()
    if a.random_weights and not a.check and not a.dry_run:
        dest = Path(tempfile.mkdtemp(prefix="gpu-check-model-")) / Path(a.random_weights).name
        os.environ[MODEL_ENV] = str(random_weights_model(Path(a.random_weights), dest))
        log(f"gpu-check: {a.random_weights}'s architecture with random weights, in {dest}")
    if a.check:
        try:
            return _emit_result(CHECK_FUNCS[a.check]())
        except Exception as e:  # noqa: BLE001 - a crashed check is a failed check, with its reason
            return _emit_result({"ok": False, "reason": f"{type(e).__name__}: {str(e)[:600]}"})
    env = probe_environment()
    try:
        planned = plan(env, [x.strip() for x in a.only.split(",") if x.strip()] or None, a.budget_s)
    except ValueError as e:
        p.error(str(e))
    if a.dry_run:
        print(f"gpu-check plan (total budget {a.budget_s:.0f} s; GPU: {env.get('gpu') or 'none'}):")
        for c in planned:
            print(f"  {c['name']:<12} {c['budget_s']:>6.0f} s  {c['what']}"
                  + (f"  [skip: {c['skip']}]" if c["skip"] else ""))
        return 0
    t0 = time.perf_counter()
    results = run_all(planned, total_budget_s=a.budget_s)
    if a.random_weights:
        env["model"] = f"{Path(a.random_weights).name}: its architecture and tokenizer, random weights"
    doc = {"environment": env, "total_budget_s": a.budget_s, "wall_s": round(time.perf_counter() - t0, 1),
           "checks": results, "passed": all(r["status"] in ("pass", "skip") for r in results),
           "ran": sum(1 for r in results if r["status"] != "skip")}
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json(out, doc)
    print(summary_table(results))
    print(f"\n{doc['ran']} of {len(results)} checks ran in {doc['wall_s']} s; wrote {out}")
    return 0 if doc["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())

"""Training: the engine as users run it (``tune train``) against the tuned HF Trainer + PEFT baseline.

Every figure here times whole processes from their start, on the same machine in
the same run:

``ours``         ``python -m backend train --config cfg.json --json``: the real
                 ``backend.training.train`` with our default settings (packing and the
                 ``backend.fastpath`` engine, group-by-length batches, events written to
                 ``metrics.jsonl``, status fsyncs, checkpoints every ``--save-steps``).
``hf_tuned``     a plain script a careful HF user would write: Trainer + PEFT LoRA with the
                 same hyper-parameters, dynamic padding, ``group_by_length`` batches, the same
                 checkpoint schedule, the adapter saved at the end (``--worker hf_tuned``).
``seed_recipe``  the seed articles' recipe: the same script with ``padding="max_length"``
                 (every row padded to ``--max-length``) and a random sampler.  Reported as
                 what it is; it is not the engine's speed-up.

All read the same JSONL file of generated chat rows (log-normal lengths, loss on
the answers only; the engine's data preparation and the scripts' ``apply_chat_template``
give identical input ids, and the engine leaves the newline after each answer's end
token out of the loss: one label per row fewer), train one epoch over it with the same batch size, learning
rate, seed and thread count (``OMP_NUM_THREADS``), and log every optimizer step.
Two intervals per run:

``whole_s``  process start (just before the spawn) -> the ``finished`` event, written after
             the adapter is on disk;
``steps_s``  first logged optimizer step -> last (steps 2..N: the same batches for both,
             so the ratio of times is the ratio of throughputs).

``hf_tuned`` and ``ours`` first run once each untimed (``--warmup``: file cache, the
model conversion cache), then alternate ``--repeats`` times (A B, B A, ...).  The
speed-up of a pair is ``hf_tuned ÷ ours`` time; the headline
``speedup_vs_hf_tuned`` is the MEDIAN over pairs of the whole-run ratio, with
``speedup_spread`` = [min, max] over pairs.

``paired_fwd_bwd_speedup`` is a diagnostic only: forward+backward of the same
micro-batches through both paths in one process (no optimizer, no sampler, no
Trainer, no I/O), median of ``--paired-repeats`` per batch.  The loss agreement
of the two paths is checked exactly in tests/test_bench.py (gradients too), which
is the real evidence of parity; the training-loss ratio here only shows nothing
drifted.

``python -m bench.train_cpu --help`` for the sizes.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from backend import events as ev
from bench.common import (REPO, chat_records, emit, log, median, ratio, row_stats, run_json_subprocess,
                          setup_env, tokenize_chat)

# peak dense bf16 FLOP/s, for LoRA-MFU
PEAK_FLOPS = {"H100": 989e12, "H200": 989e12, "H800": 989e12, "A100": 312e12, "L40S": 362e12,
              "A10G": 125e12, "L4": 121e12, "RTX 4090": 165e12, "RTX 3090": 71e12}

CONTENDERS = ("ours", "hf_tuned", "seed_recipe")


@dataclass
class Opts:
    """Sizes and settings (all flags of ``python -m bench.train_cpu``)."""

    model: str = "default"
    device: str = "cpu"
    rows: int = 64                    # rows trained, one epoch
    max_length: int = 512
    min_len: int = 10
    max_len: int = 500
    median_len: float = 85.0
    batch_size: int = 4
    grad_accum: int = 1
    save_steps: int = 8               # a checkpoint every N steps, for every contender
    threads: int = 0                  # 0 = auto (see resolve_threads)
    warmup: int = 1                   # untimed runs of hf_tuned and ours before the timed ones
    repeats: int = 3                  # timed pairs (hf_tuned, ours), alternating the order
    paired_repeats: int = 3           # diagnostic: in-process A/B repeats of every micro-batch (0 = skip)
    seed_recipe: bool = True          # run the seeds' recipe once
    paired_inprocess: bool = False    # the diagnostic in this process (quick: one process start less)
    seed: int = 42


# quick: one pair, no warm-up, no seeds' recipe (the baseline script's other collator; a process start saved)
QUICK = dict(rows=8, max_length=64, min_len=12, max_len=60, median_len=30.0, batch_size=2, save_steps=2,
             warmup=0, repeats=1, paired_repeats=1, seed_recipe=False, paired_inprocess=True)
CUDA = dict(rows=1024, max_length=1024, min_len=20, max_len=1000, median_len=170.0, batch_size=16,
            save_steps=32, warmup=1, repeats=3, paired_repeats=3)


def resolve_threads(requested: int) -> int:
    """Intra-op threads for every contender (the same for all).

    0 = auto: all cores when the machine is idle; when other processes keep the
    cores busy (load average), fewer — OpenMP threads that wait at barriers for a
    descheduled sibling make 2 threads 2-3x slower than 1 on a loaded 2-core box.
    """
    if requested > 0:
        return requested
    cores = os.cpu_count() or 1
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = 0.0
    return max(1, min(cores, round(cores - load + 0.49)))


# ---------------------------------------------------------------------------
# the run configuration: our defaults, the workload's sizes

def engine_config(opts: Opts, data: Path, run_dir: Path) -> dict:
    """The ``RunConfig`` ``ours`` trains with: every default, except the workload's sizes.

    The baseline scripts read the same values (learning rate, schedule, LoRA
    shape, seed) from it, so the contenders differ only in how they train.
    """
    from backend.config import RunConfig

    cfg = RunConfig().with_overrides({
        "model.name_or_path": opts.model, "model.device": opts.device, "output_dir": str(run_dir),
        "data.train_files": [str(data)], "data.validation_split": 0.0, "data.max_length": opts.max_length,
        "training.epochs": 1.0, "training.batch_size": opts.batch_size,
        "training.gradient_accumulation": opts.grad_accum, "training.save_steps": opts.save_steps,
        "training.logging_steps": 1, "training.seed": opts.seed})
    return cfg.to_dict()


# ---------------------------------------------------------------------------
# the baseline worker: a plain HF Trainer + PEFT script, one process

def hf_worker(kind: str, data: str, cfg_path: str, out_dir: str) -> int:
    """Train like a plain HF script; print one JSON line per logged step and a last ``finished`` line.

    ``kind`` is ``hf_tuned`` (dynamic padding, group_by_length) or ``seed_recipe``
    (``padding="max_length"``, random sampler).  The adapter and checkpoints go to ``out_dir``.
    """
    import torch  # noqa: F401  (threads come from OMP_NUM_THREADS, as for ours)
    import datasets
    import peft
    from transformers import (AutoModelForCausalLM, AutoTokenizer, DataCollatorForSeq2Seq, Trainer,
                              TrainerCallback, TrainingArguments)
    from transformers.utils import logging as hf_logging

    from backend.models import resolve_model
    from backend.training import profile

    hf_logging.set_verbosity_error()
    cfg = json.loads(Path(cfg_path).read_text())
    m, d, t, meth = cfg["model"], cfg["data"], cfg["training"], cfg["method"]
    path = resolve_model(m["name_or_path"])  # the same weights the engine loads (the bundled default)
    tok = AutoTokenizer.from_pretrained(path)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    records = [json.loads(line) for line in Path(data).read_text().splitlines() if line.strip()]
    rows = [tokenize_chat(tok, r, d["max_length"]) for r in records]
    ds = datasets.Dataset.from_list(rows)
    tuned = kind == "hf_tuned"
    if tuned:
        ds = ds.add_column("length", [len(r["input_ids"]) for r in rows])
    device = m["device"] if m["device"] != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    bf16 = device == "cuda" and torch.cuda.is_bf16_supported()
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.bfloat16 if bf16 else torch.float32,
                                                 attn_implementation="sdpa")
    model.config.use_cache = False
    torch.manual_seed(t["seed"])
    model = peft.get_peft_model(model, peft.LoraConfig(
        r=meth["lora_r"], lora_alpha=meth["lora_alpha"], lora_dropout=meth["lora_dropout"],
        target_modules="all-linear", task_type=peft.TaskType.CAUSAL_LM))
    collator = (DataCollatorForSeq2Seq(tok, padding=True, label_pad_token_id=-100) if tuned else
                DataCollatorForSeq2Seq(tok, padding="max_length", max_length=d["max_length"],
                                       label_pad_token_id=-100))
    args = TrainingArguments(
        output_dir=str(Path(out_dir) / "hf-trainer-output"), per_device_train_batch_size=t["batch_size"],
        gradient_accumulation_steps=t["gradient_accumulation"], learning_rate=t["learning_rate"],
        lr_scheduler_type=t["lr_scheduler"], warmup_steps=t["warmup_ratio"], weight_decay=t["weight_decay"],
        max_grad_norm=t["max_grad_norm"], num_train_epochs=t["epochs"], logging_strategy="steps",
        logging_steps=1, eval_strategy="no", save_strategy="steps", save_steps=t["save_steps"],
        save_total_limit=t["save_total_limit"], seed=t["seed"], data_seed=t["seed"], bf16=bf16,
        train_sampling_strategy="group_by_length" if tuned else "random", report_to="none",
        disable_tqdm=True, remove_unused_columns=False, use_cpu=device == "cpu", dataloader_num_workers=0)

    class Log(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kw):
            if logs and "loss" in logs:
                print(json.dumps({"type": ev.TRAIN, "time": time.time(), "step": state.global_step,
                                  "loss": float(logs["loss"])}), flush=True)

    trainer = Trainer(model=model, args=args, train_dataset=ds, data_collator=collator, processing_class=tok,
                      callbacks=[Log()])
    asked = profile.from_env()  # the same phase timer as the engine's (backend/training/profile.py)
    if asked:
        asked[0].sync = torch.cuda.synchronize if device == "cuda" else None
        asked[0].attach(trainer)
    trainer.train()
    adapter = Path(out_dir) / "hf-adapter"
    model.save_pretrained(adapter)
    tok.save_pretrained(adapter)
    real = sum(len(r["input_ids"]) for r in rows)
    if asked:
        asked[0].write(asked[1])
    print(json.dumps({"type": ev.FINISHED, "time": time.time(), "status": "completed", "adapter_dir": str(adapter),
                      "real_tokens": real, "processed_tokens_per_step_max": None}), flush=True)
    return 0


# ---------------------------------------------------------------------------
# one whole run: a process from its start to the adapter on disk

def _thread_env(threads: int) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    if threads > 0:
        for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env[k] = str(threads)
    return env


def whole_run(name: str, opts: Opts, data: Path, workdir: Path, tag: str, timeout: float = 3 * 3600) -> dict:
    """Run one contender in a fresh process; return its timings from the events it printed."""
    run_dir = workdir / f"{name}-{tag}"
    cfg_path = workdir / f"{name}-{tag}.json"
    cfg_path.write_text(json.dumps(engine_config(opts, data, run_dir)))
    if name == "ours":
        cmd = [sys.executable, "-m", "backend", "train", str(cfg_path), "--json"]
    else:
        cmd = [sys.executable, "-m", "bench.train_cpu", "--worker", name, "--data", str(data),
               "--config", str(cfg_path), "--run-out", str(run_dir)]
    import psutil

    from backend.training.profile import PROFILE_ENV

    prof_path = workdir / f"{name}-{tag}.profile.json"
    env = {**_thread_env(opts.threads), PROFILE_ENV: str(prof_path)}
    t0 = time.time()
    proc = subprocess.Popen(cmd, cwd=str(REPO), env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    peak = {"rss": 0}
    done = threading.Event()

    def sample() -> None:  # peak RSS of the contender's process
        try:
            p = psutil.Process(proc.pid)
            while not done.wait(0.05):
                peak["rss"] = max(peak["rss"], p.memory_info().rss)
        except psutil.Error:
            pass

    err_lines: list[str] = []
    threading.Thread(target=sample, daemon=True).start()
    threading.Thread(target=lambda: err_lines.extend(proc.stderr), daemon=True).start()  # type: ignore[arg-type]
    steps, finished = [], None
    assert proc.stdout is not None
    for line in proc.stdout:
        if not line.startswith("{"):
            continue
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if rec.get("type") == ev.TRAIN:
            steps.append(rec)
        elif rec.get("type") == ev.FINISHED:
            finished = rec
    try:
        rc = proc.wait(timeout=timeout)
    finally:
        done.set()
    if rc != 0 or finished is None or finished.get("status") != "completed" or len(steps) < 2:
        raise RuntimeError(f"{name} run failed (rc={rc}, {len(steps)} steps): {''.join(err_lines)[-1500:]}")
    adapter = Path(finished["adapter_dir"])
    if not any(adapter.glob("adapter_model.*")):
        raise RuntimeError(f"{name}: no adapter in {adapter}")
    losses = [s["loss"] for s in steps if isinstance(s.get("loss"), (int, float))]
    return {"whole_s": round(finished["time"] - t0, 3), "steps_s": round(steps[-1]["time"] - steps[0]["time"], 3),
            "first_step_s": round(steps[0]["time"] - t0, 3), "steps": len(steps),
            "mean_loss": round(sum(losses) / len(losses), 5) if losses else None,
            "peak_rss_mb": round(peak["rss"] / 2**20, 1), "tokens_seen": steps[-1].get("tokens_seen"),
            "real_tokens": finished.get("real_tokens"), "profile": run_profile(prof_path, t0, finished["time"])}


def run_profile(path: Path, t0: float, finished: float) -> dict | None:
    """The contender's step profile (``backend/training/profile.py``) with the whole run around it.

    ``setup`` is process start → the loop's first callback (imports, data, model, Trainer set-up);
    ``finish`` the loop's end → the ``finished`` event (final save).  ``setup + loop_s + finish`` is
    the whole run.
    """
    try:
        prof = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if prof.get("loop_start") and prof.get("loop_end"):
        prof["setup_s"] = round(prof["loop_start"] - t0, 4)
        prof["finish_s"] = round(finished - prof["loop_end"], 4)
    return prof


PROFILE_ROWS = ("setup", "data", "collate", "forward", "backward", "clip", "optimizer", "scheduler", "callbacks",
                "events", "event_writes", "checkpoint", "evaluate", "other", "finish")


def summarise_phases(runs: dict[str, dict[str, dict]]) -> dict | None:
    """Per contender, the median over its timed runs of each phase's seconds (and ms per step)."""
    out: dict[str, Any] = {}
    for name in ("ours", "hf_tuned"):
        profs = [r["profile"] for tag, r in runs.get(name, {}).items() if tag.startswith("pair") and r.get("profile")]
        if not profs:
            continue
        steps = median([p["steps"] for p in profs]) or 1
        secs = {}
        for row in PROFILE_ROWS:
            key = row + "_s"
            vals = [p.get(key) if row in ("setup", "finish") else p["phases_s"].get(row) for p in profs]
            m = median([v for v in vals if v is not None])
            secs[row] = round(m, 4) if m is not None else None
        out[name] = {"runs": len(profs), "steps": steps, "loop_s": median([p["loop_s"] for p in profs]),
                     "covered": median([p.get("covered") for p in profs]), "phases_s": secs,
                     "per_step_ms": {k: (round(1000 * v / steps, 2) if v is not None and k not in ("setup", "finish")
                                         else None) for k, v in secs.items()}}
    if not out:
        return None
    if "ours" in out and "hf_tuned" in out:
        o, h = out["ours"]["phases_s"], out["hf_tuned"]["phases_s"]
        out["hf_minus_ours_s"] = {k: round(h[k] - o[k], 4) for k in PROFILE_ROWS
                                  if o.get(k) is not None and h.get(k) is not None}
    return out


# ---------------------------------------------------------------------------
# diagnostic: paired forward+backward, both paths in one process

def _load_model(path: str, device: str, attn: str = "sdpa"):
    import torch
    from transformers import AutoModelForCausalLM

    dtype = torch.bfloat16 if device == "cuda" and torch.cuda.is_bf16_supported() else torch.float32
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, attn_implementation=attn)
    model.config.use_cache = False
    if device != "cpu":
        model.to(device)
    return model


def _lora(model, seed: int):
    import torch

    from backend.config import RunConfig
    from backend.training import apply_method

    torch.manual_seed(seed)
    return apply_method(model, RunConfig())  # LoRA r=16, alpha 32, dropout 0.05, all linear layers


def _exact_check(model, tok, rows: list[dict], device: str) -> dict:
    """Loss of one micro-batch: padded HF path vs our fast path (eval mode, no dropout)."""
    import torch
    from transformers import DataCollatorForSeq2Seq

    from backend import fastpath

    base = fastpath._base(model)
    model.eval()
    feats = [{"input_ids": r["input_ids"], "labels": r["labels"]} for r in rows]
    n_items = sum(sum(1 for x in r["labels"][1:] if x != -100) for r in rows)
    with torch.no_grad():
        base.set_attn_implementation("sdpa")
        b = DataCollatorForSeq2Seq(tok, padding=True, label_pad_token_id=-100)(feats)
        b = {k: v.to(device) for k, v in b.items()}
        ref = float(model(**b, num_items_in_batch=torch.tensor(n_items, device=device)).loss)
        fastpath.enable(model)
        b = fastpath.FastPackingCollator()(feats)
        b = {k: (v.to(device) if hasattr(v, "to") else v) for k, v in b.items()}
        fast = float(model(**b, num_items_in_batch=torch.tensor(n_items, device=device)).loss)
        base.set_attn_implementation("sdpa")
    model.train()
    return {"reference_loss": round(ref, 6), "fast_loss": round(fast, 6),
            "rel_diff": abs(fast - ref) / abs(ref) if ref else None}


def run_paired(rows_path: str, opts: Opts, paths: tuple = ("hf_tuned", "ours")) -> dict:
    """Forward+backward of every micro-batch through each path in turn (A B, B A, ...), same model.

    DIAGNOSTIC, never the headline: no optimizer, no sampler, no Trainer, no I/O.
    The paths differ only in collator, attention, LoRA dropout and loss.  The
    speed-up is the sum over batches of the MEDIAN repeat, hf_tuned / ours.
    """
    setup_env()
    import torch
    if opts.threads > 0:
        torch.set_num_threads(opts.threads)
    from transformers import DataCollatorForSeq2Seq

    from backend import fastpath
    from backend.models import load_tokenizer, resolve_model

    rows = json.loads(Path(rows_path).read_text())
    device = opts.device
    path = resolve_model(opts.model)
    tok = load_tokenizer(path)
    model = _load_model(path, device)
    model, _, _ = _lora(model, opts.seed)
    exact = _exact_check(model, tok, rows[: opts.batch_size], device)
    model.train()
    base = fastpath._base(model)
    fastpath.register()
    fast_cls = fastpath._fast_dropout_class()
    drops = []  # both dropout flavours, swapped in place per path (same p)
    for m in model.modules():
        d = getattr(m, "lora_dropout", None)
        if isinstance(d, torch.nn.ModuleDict):
            for k, v in d.items():
                if type(v) is torch.nn.Dropout and v.p > 0:
                    drops.append((d, k, v, fast_cls(v.p)))
    loss_func = fastpath.enable_fused_ce(model)
    bs = opts.batch_size
    feats = [[{"input_ids": r["input_ids"], "labels": r["labels"]} for r in rows[i:i + bs]]
             for i in range(0, len(rows), bs)]
    n_items = [sum(sum(1 for x in r["labels"][1:] if x != -100) for r in f) for f in feats]
    collate = {"hf_tuned": DataCollatorForSeq2Seq(tok, padding=True, label_pad_token_id=-100),
               "ours": fastpath.FastPackingCollator()}
    batches = {p: [{k: (v.to(device) if hasattr(v, "to") else v) for k, v in collate[p](f).items()} for f in feats]
               for p in paths}

    def setup(p):
        (fastpath.fuse_lora if p == "ours" else fastpath.unfuse_lora)(model)
        base.set_attn_implementation(fastpath.ATTN_NAME if p == "ours" else "sdpa")
        for d, k, native, fast in drops:
            d[k] = fast if p == "ours" else native

    def step(p, i):
        b = dict(batches[p][i])
        n = torch.tensor(n_items[i], device=device)
        model.zero_grad(set_to_none=True)
        if device == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        if p == "ours":
            labels = b.pop("labels")
            loss = loss_func(model(**b), labels, num_items_in_batch=n)
        else:
            loss = model(**b, num_items_in_batch=n).loss
        loss.backward()
        if device == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t

    for p in paths:  # warm-up, not timed, for both
        setup(p)
        step(p, 0)
    times: dict[str, list[list[float]]] = {p: [[] for _ in feats] for p in paths}
    for r in range(max(1, opts.paired_repeats)):
        for i in range(len(feats)):
            order = list(paths) if (r + i) % 2 == 0 else list(paths)[::-1]
            for p in order:
                setup(p)
                times[p][i].append(step(p, i))
    real = sum(len(r["input_ids"]) for r in rows)
    out: dict[str, Any] = {"repeats": opts.paired_repeats, "batches": len(feats), "paths": list(paths),
                           "exact_check": exact}
    for p in paths:
        med = sum(median(t) for t in times[p])
        out[p] = {"real_tokens_per_s_median": round(real / med, 2),
                  "step_s": [[round(x, 4) for x in t] for t in times[p]]}
    out["note"] = ("diagnostic: forward+backward only, no optimizer / sampler / Trainer / I/O; "
                   "median repeat per batch")
    return out


# ---------------------------------------------------------------------------
# orchestration

def schedule(warmup: int, repeats: int) -> list[tuple[str, str]]:
    """``(contender, tag)`` in run order: untimed warm-ups, then timed pairs alternating A B, B A, …

    Tags starting with ``warmup`` are not timed; ``pair<i>`` runs are.
    """
    order: list[tuple[str, str]] = []
    for i in range(max(0, warmup)):
        order += [("hf_tuned", f"warmup{i}"), ("ours", f"warmup{i}")]
    for i in range(max(1, repeats)):
        pair = ("hf_tuned", "ours") if i % 2 == 0 else ("ours", "hf_tuned")
        order += [(c, f"pair{i}") for c in pair]
    return order


def pair_ratios(runs: dict[str, dict[str, dict]], key: str) -> list[float]:
    """``hf_tuned[key] ÷ ours[key]`` for every timed pair both finished (> 1: ours is faster)."""
    out = []
    for tag, r in sorted(runs.get("ours", {}).items()):
        h = runs.get("hf_tuned", {}).get(tag)
        if tag.startswith("pair") and h and r.get(key) and h.get(key):
            out.append(round(h[key] / r[key], 4))
    return out


def summarise(runs: dict[str, dict[str, dict]]) -> dict:
    """The headline keys from the timed runs: medians over pairs and their spread."""
    whole, steps = pair_ratios(runs, "whole_s"), pair_ratios(runs, "steps_s")
    block: dict[str, Any] = {
        "speedup_vs_hf_tuned": median(whole),
        "speedup_spread": [min(whole), max(whole)] if whole else None,
        "speedup_vs_hf_tuned_pairs": whole,
        "speedup_steps_vs_hf_tuned": median(steps),
        "speedup_steps_spread": [min(steps), max(steps)] if steps else None,
        "speedup_steps_vs_hf_tuned_pairs": steps,
    }
    for name in ("ours", "hf_tuned"):
        timed = [r for tag, r in runs.get(name, {}).items() if tag.startswith("pair")]
        block[name] = {k: median([r[k] for r in timed if r.get(k) is not None])
                       for k in ("whole_s", "steps_s", "first_step_s", "peak_rss_mb", "mean_loss")}
        block[name]["runs"] = len(timed)
    o, h = block["ours"], block["hf_tuned"]
    block["time_to_first_step_s"] = o.get("first_step_s")
    block["peak_rss_ratio_vs_hf_tuned"] = ratio(o.get("peak_rss_mb"), h.get("peak_rss_mb"))
    block["train_loss_ratio_vs_hf_tuned"] = ratio(o.get("mean_loss"), h.get("mean_loss"), 4)
    block["phases"] = summarise_phases(runs)
    seed = next(iter(runs.get("seed_recipe", {}).values()), None)
    if seed and o.get("steps_s"):
        block["seed_recipe"] = seed
        block["speedup_vs_seed_recipe"] = ratio(seed["steps_s"], o["steps_s"])
        block["speedup_vs_seed_recipe_whole"] = ratio(seed["whole_s"], o["whole_s"])
    return block


def lora_mfu(tokens_per_s: float, n_params: int, n_lora: int, gpu_name: str) -> float | None:
    """(4N + 6 N_lora) x tokens/s / peak bf16 FLOP/s (None for an unknown GPU)."""
    peak = next((v for k, v in PEAK_FLOPS.items() if k.lower() in gpu_name.lower()), None)
    if not peak or not tokens_per_s:
        return None
    return round((4 * (n_params - n_lora) + 6 * n_lora) * tokens_per_s / peak, 4)


def run(opts: Opts) -> dict:
    """Every whole run and the diagnostic; return the ``train_cpu`` (or ``train_cuda``) block."""
    setup_env()
    opts.threads = resolve_threads(opts.threads) if opts.device == "cpu" else max(opts.threads, 0)
    from backend.models import load_tokenizer, resolve_model

    t_start = time.perf_counter()
    workdir = Path(tempfile.mkdtemp(prefix="bench-train-"))
    records = chat_records(opts.rows, seed=opts.seed, lo=opts.min_len, hi=opts.max_len, median_len=opts.median_len)
    data = workdir / "train.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in records))
    tok = load_tokenizer(resolve_model(opts.model))
    rows = [tokenize_chat(tok, r, opts.max_length) for r in records]
    block: dict[str, Any] = {
        "workload": {"model": opts.model if opts.model != "default" else "SmolLM2-135M-Instruct (default)",
                     "method": "LoRA r=16 alpha=32 dropout=0.05, all linear layers (the defaults)",
                     "train": row_stats(rows), "max_length": opts.max_length, "batch_size": opts.batch_size,
                     "grad_accum": opts.grad_accum, "epochs": 1, "save_steps": opts.save_steps,
                     "threads": opts.threads, "device": opts.device, "warmup_runs": opts.warmup,
                     "timed_pairs": opts.repeats},
        "measured": {
            "speedup_vs_hf_tuned": "median over interleaved pairs of whole-run time, process start -> adapter on "
                                   "disk, tuned HF ÷ `tune train` (the real engine)",
            "speedup_steps_vs_hf_tuned": "the same pairs, first logged optimizer step -> last",
            "speedup_vs_seed_recipe": "the seed articles' recipe (padding to max_length, random sampler) ÷ ours, "
                                      "steps phase; not the engine's speed-up over a tuned baseline",
            "paired_fwd_bwd_speedup": "diagnostic: forward+backward only, both paths in one process",
        },
    }
    runs: dict[str, dict[str, dict]] = {}
    order = schedule(opts.warmup, opts.repeats) + ([("seed_recipe", "once")] if opts.seed_recipe else [])
    for name, tag in order:
        log(f"train {opts.device}: {name} ({tag}) …")
        try:
            r = whole_run(name, opts, data, workdir, tag)
        except Exception as e:  # one broken contender must not sink the others
            log(f"  {name} failed: {e}")
            block.setdefault("failures", []).append(f"{name} {tag}: {str(e)[-800:]}")
            continue
        log(f"  {name}: whole {r['whole_s']} s, steps {r['steps_s']} s ({r['steps']} logged), "
            f"rss {r['peak_rss_mb']} MB")
        runs.setdefault(name, {})[tag] = r
    block["runs"] = runs
    block.update(summarise(runs))
    if block["speedup_vs_hf_tuned"] is None:
        block["skipped"] = "failed: no timed pair finished: " + "; ".join(block.get("failures", []))[-1500:]
    if opts.paired_repeats > 0:
        log(f"train {opts.device}: diagnostic paired fwd+bwd, {opts.paired_repeats} repeats …")
        rows_path = workdir / "rows.json"
        rows_path.write_text(json.dumps(rows))
        try:
            pr = (run_paired(str(rows_path), opts) if opts.paired_inprocess else
                  run_json_subprocess("bench.train_cpu", ["--worker", "paired", "--rows-file", str(rows_path),
                                                          "--opts", json.dumps(asdict(opts))]))
            block["paired"] = pr
            block["paired_fwd_bwd_speedup"] = ratio(pr["ours"]["real_tokens_per_s_median"],
                                                    pr["hf_tuned"]["real_tokens_per_s_median"])
            block["exact_check"] = pr["exact_check"]
        except Exception as e:
            block["paired"] = {"skipped": f"failed: {str(e)[-800:]}"}
    if opts.device == "cuda" and block.get("ours", {}).get("steps_s"):
        import torch
        block["gpu"] = torch.cuda.get_device_name(0)
    block["bench_wall_s"] = round(time.perf_counter() - t_start, 1)
    return block


# the Opts fields with a --flag of their own
_FLAG_OPTS = ("model", "rows", "max_length", "min_len", "max_len", "median_len", "batch_size", "grad_accum",
              "save_steps", "threads", "warmup", "repeats", "paired_repeats", "seed")


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line flags; ``.opts`` is the :class:`Opts`."""
    d = Opts()
    p = argparse.ArgumentParser(prog="python -m bench.train_cpu", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny sizes (tests)")
    p.add_argument("--cuda", action="store_true", help="run on the GPU with the train_cuda sizes")
    for f in _FLAG_OPTS:
        p.add_argument("--" + f.replace("_", "-"), type=type(getattr(d, f)), default=None)
    p.add_argument("--no-seed-recipe", action="store_true", help="skip the seeds' recipe (slow)")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    p.add_argument("--rows-file", default=None, help=argparse.SUPPRESS)
    p.add_argument("--data", default=None, help=argparse.SUPPRESS)
    p.add_argument("--config", default=None, help=argparse.SUPPRESS)
    p.add_argument("--run-out", default=None, help=argparse.SUPPRESS)
    p.add_argument("--opts", default=None, help=argparse.SUPPRESS)
    p.add_argument("--out", default=None, help="also write this block as JSON here")
    a = p.parse_args(argv)
    if a.opts:
        o = Opts(**json.loads(a.opts))
    else:
        o = Opts()
        if a.quick:
            o = Opts(**{**asdict(o), **QUICK})
        if a.cuda:
            o = Opts(**{**asdict(o), **CUDA, "device": "cuda"})
        for f in _FLAG_OPTS:
            v = getattr(a, f)
            if v is not None:
                setattr(o, f, v)
        if a.no_seed_recipe:
            o.seed_recipe = False
    a.opts_obj = o
    return a


def main(argv: list[str] | None = None) -> int:
    a = parse(argv)
    setup_env()
    if a.worker == "paired":
        print(json.dumps(run_paired(a.rows_file, a.opts_obj), default=str), flush=True)
        return 0
    if a.worker in ("hf_tuned", "seed_recipe"):
        return hf_worker(a.worker, a.data, a.config, a.run_out)
    return emit(run(a.opts_obj), a.out)


if __name__ == "__main__":
    sys.exit(main())

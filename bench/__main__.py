"""``python -m bench`` (``make bench``): every benchmark, then ``bench/results.json`` and ``bench/results.md``.

Parts (each in its own process, so one cannot skew or sink another):

``train``    bench/train_cpu.py  -- seeds' recipe vs tuned HF vs the engine's fast path, real tokens/s
``cuda``     bench/train_cuda    -- the same on a GPU (only when CUDA is present)
``gui``      bench/gui.py        -- main-thread stall with live plots during training
``startup``  bench/startup.py    -- process start -> first window
``rag``      bench/rag.py        -- ingest chunks/s vs Chroma.from_documents, re-ingest, query p95

Every figure is a ratio against a baseline measured in the same run on the same
machine.  A part whose subsystem is missing is recorded as ``{"skipped": reason}``.

Flags: ``--quick`` (tiny sizes, for tests), ``--only train,gui``, ``--model PATH``
(train and gui), ``--out-dir DIR`` (default: bench/), ``--train-args "..."`` (passed to
bench.train_cpu, e.g. ``"--rows 64 --max-length 1024 --repeats 3"``).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import BENCH_DIR, log, machine_info, setup_env, write_json

PARTS = ("train", "cuda", "gui", "startup", "rag")

TARGETS = {  # key: (comparison, threshold, description)
    "train_cpu.speedup_vs_seed_recipe": (">=", 3.0, "≥ 3× seeds' recipe (real tokens/s)"),
    "train_cpu.speedup_vs_hf_tuned": (">=", 1.3, "≥ 1.3× tuned HF (real tokens/s)"),
    "train_cpu.loss_parity": ("within", 0.01, "eval loss ours ÷ tuned HF within ±1 %"),
    "train_cuda.speedup_vs_hf_tuned": (">=", 1.7, "≥ 1.7× tuned HF on the GPU"),
    "train_cuda.max_memory_ratio_vs_hf_tuned": ("<=", 0.6, "peak GPU memory ≤ 0.6× tuned HF"),
    "gui.stall_p99_ms": ("<", 16.0, "p99 < 16 ms"),
    "gui.stall_max_ms": ("<", 100.0, "max < 100 ms"),
    "startup_s": ("<", 2.0, "< 2 s"),
    "rag.ingest_speedup": (">=", 1.5, "≥ 1.5× Chroma.from_documents"),
    "rag.reingest_fraction": ("<=", 0.05, "≤ 5 % of the first ingest"),
}


def _get(d: dict, dotted: str) -> Any:
    cur: Any = d
    for part in dotted.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return None
        cur = cur[part]
    return cur


def _met(value: Any, rule: tuple) -> bool | None:
    if not isinstance(value, (int, float)):
        return None
    op, thr, _ = rule
    return {">=": value >= thr, "<=": value <= thr, "<": value < thr,
            "within": abs(value - 1.0) <= thr}[op]


def _run_part(module: str, args: list[str], timeout: float) -> dict:
    """Run ``python -m module args --out tmp`` and read its JSON; ``{"skipped": ...}`` if it fails.

    Its ``[bench ...]`` progress lines are passed through as they come.
    """
    out = Path(tempfile.mkstemp(prefix="bench-part-", suffix=".json")[1])
    env = dict(os.environ)
    env["PYTHONPATH"] = str(BENCH_DIR.parent) + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.Popen([sys.executable, "-m", module, *args, "--out", str(out)], cwd=str(BENCH_DIR.parent),
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    tail: list[str] = []
    deadline = time.monotonic() + timeout
    assert proc.stderr is not None
    for line in proc.stderr:
        if line.startswith("[bench"):
            print(line.rstrip(), file=sys.stderr, flush=True)
        tail = (tail + [line])[-40:]
        if time.monotonic() > deadline:
            proc.kill()
            return {"skipped": f"failed: {module} took longer than {timeout:.0f} s"}
    proc.wait()
    if proc.returncode != 0 or not out.exists() or not out.read_text().strip():
        return {"skipped": f"failed: {module} exited {proc.returncode}: {''.join(tail)[-1500:]}"}
    return json.loads(out.read_text())


def _fmt(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        if abs(v) < 10:
            return f"{v:.4f}".rstrip("0").rstrip(".") if v else "0"
        return f"{v:,.1f}" if abs(v) < 100 else f"{v:,.0f}"
    return str(v)


def markdown(res: dict) -> str:
    """The README table."""
    m = res.get("machine", {})
    lines = ["# Benchmarks", "",
             f"`python -m bench{' --quick' if res.get('quick') else ''}` on {m.get('cpu_model')} "
             f"({m.get('cpu_cores')} cores, load {m.get('load_avg_1m')}), torch {m.get('torch_version')}, "
             f"transformers {m.get('transformers_version')}, {m.get('date')}. "
             "Every ratio compares contenders measured in the same run on the same machine.", "",
             "| Metric | Value | Target | Met |", "|---|---|---|---|"]
    for key, rule in TARGETS.items():
        v = _get(res, key)
        block = key.split(".")[0]
        if v is None and isinstance(res.get(block), dict) and "skipped" in res[block]:
            lines.append(f"| `{key}` | skipped: {res[block]['skipped'][:120]} | {rule[2]} | – |")
            continue
        if v is None and key == "startup_s" and "skipped" in res.get("startup", {}):
            lines.append(f"| `{key}` | skipped: {res['startup']['skipped'][:120]} | {rule[2]} | – |")
            continue
        ok = _met(v, rule)
        lines.append(f"| `{key}` | {_fmt(v)} | {rule[2]} | {'yes' if ok else ('no' if ok is False else '–')} |")
    extra = [("train_cpu.speedup_vs_hf_tuned_paired", "ours ÷ tuned HF, fwd+bwd of the same batches alternated in one process (the headline)"),
             ("train_cpu.speedup_vs_hf_tuned_end_to_end", "ours ÷ tuned HF, whole Trainer runs (separate processes)"),
             ("train_cpu.speedup_vs_hf_tuned_cpu_time", "ours ÷ tuned HF, whole Trainer runs by process CPU time"),
             ("train_cpu.speedup_vs_seed_recipe_cpu_time", "ours ÷ seeds' recipe, by process CPU time"),
             ("train_cpu.eval_loss_before_training", "eval loss before training (all contenders start here)"),
             ("train_cpu.padding_efficiency", "padding efficiency, ours (real ÷ processed tokens)"),
             ("train_cpu.padding_efficiency_hf_tuned", "padding efficiency, tuned HF"),
             ("train_cpu.padding_efficiency_seed_recipe", "padding efficiency, seeds' recipe"),
             ("train_cpu.speedup_vs_packed_sdpa", "ours ÷ HF packing with stock sdpa (the engine before fastpath)"),
             ("train_cpu.peak_rss_ratio_vs_hf_tuned", "peak RSS ours ÷ tuned HF"),
             ("train_cuda.lora_mfu", "LoRA-MFU, ours on the GPU"),
             ("gui.idle_p99_ms", "GUI idle p99 (ms)"), ("gui.idle_max_ms", "GUI idle max (ms)"),
             ("gui.stall_p99_ms_child_process", "GUI stall p99, training in a child process (ms)"),
             ("gui.stall_max_ms_child_process", "GUI stall max, training in a child process (ms)"),
             ("gui.plot_update_ms_median", "plot update with 100k points, median (ms)"),
             ("gui.plot_update_ms_max", "plot update with 100k points, max (ms)"),
             ("rag.query_p95_ms", "RAG query p95 (ms)"),
             ("rag.ours_chunks_per_s", "RAG ingest, ours (chunks/s)"),
             ("rag.baseline_chunks_per_s", "RAG ingest, Chroma.from_documents (chunks/s)")]
    for key, label in extra:
        v = _get(res, key)
        if v is not None:
            lines.append(f"| {label} | {_fmt(v)} | | |")
    tc = res.get("train_cpu", {})
    if tc.get("contenders"):
        w = tc.get("workload", {})
        tr = w.get("train", {})
        sel = w.get("batches", {})
        pr = tc.get("paired", {})
        lines += ["", f"Training on {w.get('device', 'cpu')}: {w.get('model')}, {w.get('method')}; "
                  f"{tr.get('rows')} rows = {sel.get('batches_trained')} of the {sel.get('pool_batches')} "
                  f"length-grouped batches HF's group_by_length sampler makes of a {sel.get('pool_rows')}-row "
                  f"pool (lengths {w.get('pool', {}).get('min_len')}–{w.get('pool', {}).get('max_len')}, "
                  f"median {w.get('pool', {}).get('median_len')}); {tr.get('tokens')} real tokens, the same "
                  f"batches in the same order for every contender; max_length {w.get('max_length')}, batch "
                  f"{w.get('batch_size')} x {w.get('grad_accum')}, one epoch, {w.get('threads')} thread(s). "
                  f"Whole Trainer runs: {w.get('repeats')} per contender, each in its own process (time to first "
                  f"step, peak RSS, eval loss, end-to-end tokens/s). Headline speed-up vs tuned HF: forward+"
                  f"backward of every batch through both paths in one process, alternated A B / B A, "
                  f"{pr.get('repeats')} repeats, fastest repeat per batch.", "",
                  "| Contender | real tok/s | × seeds' recipe | time to first step (s) | peak RSS (MB) | "
                  "eval loss | padding eff. |", "|---|---|---|---|---|---|---|"]
        seed = tc["contenders"].get("seed_recipe", {}).get("real_tokens_per_s")
        for name, c in tc["contenders"].items():
            if "skipped" in c:
                lines.append(f"| {name} | skipped: {c['skipped'][:100]} | | | | | |")
                continue
            x = c.get("real_tokens_per_s")
            note = f" (timed {c['extrapolated_from_steps']} steps)" if c.get("extrapolated_from_steps") else ""
            lines.append(f"| {name}{note} | {_fmt(x)} | {_fmt(x / seed) if seed and x else '–'} | "
                         f"{_fmt(c.get('time_to_first_step_s'))} | {_fmt(c.get('peak_rss_mb'))} | "
                         f"{_fmt(c.get('eval_loss'))} | {_fmt(c.get('padding_efficiency'))} |")
    skipped = [f"- `{k}`: {v['skipped']}" for k, v in res.items() if isinstance(v, dict) and "skipped" in v]
    if skipped:
        lines += ["", "Skipped:", *skipped]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench", description="Tune Studio benchmarks")
    p.add_argument("--quick", action="store_true", help="tiny sizes (tests); figures are meaningless")
    p.add_argument("--only", default=",".join(PARTS), help="comma-separated parts: " + ", ".join(PARTS))
    p.add_argument("--model", default=None, help="model for train and gui (default: the bundled default)")
    p.add_argument("--out-dir", default=str(BENCH_DIR), help="where results.json / results.md go")
    p.add_argument("--train-args", default="", help="extra flags for bench.train_cpu")
    p.add_argument("--gui-args", default="", help="extra flags for bench.gui")
    p.add_argument("--rag-args", default="", help="extra flags for bench.rag, e.g. \"--chunks 500\"")
    p.add_argument("--merge", action="store_true", help="update the parts run in an existing results.json")
    p.add_argument("--md-only", action="store_true", help="only rewrite results.md from results.json")
    a = p.parse_args(argv)
    if a.md_only:
        res = json.loads((Path(a.out_dir) / "results.json").read_text())
        (Path(a.out_dir) / "results.md").write_text(markdown(res))
        print(markdown(res))
        return 0
    setup_env()
    parts = [x.strip() for x in a.only.split(",") if x.strip()]
    bad = [x for x in parts if x not in PARTS]
    if bad:
        p.error(f"unknown parts {bad}")
    q = ["--quick"] if a.quick else []
    mdl = ["--model", a.model] if a.model else []
    t0 = time.perf_counter()
    part_s: dict[str, float] = {}

    def _part(module: str, args: list[str], timeout: float, key: str) -> dict:
        tp = time.perf_counter()
        r = _run_part(module, args, timeout)
        part_s[key] = round(time.perf_counter() - tp, 1)
        return r

    out = Path(a.out_dir)
    res: dict[str, Any] = {}
    if a.merge and (out / "results.json").exists():
        res = json.loads((out / "results.json").read_text())
    res.update({"machine": machine_info(), "quick": a.quick})
    if "train" in parts:
        log("== train (CPU) ==")
        res["train_cpu"] = _part("bench.train_cpu", q + mdl + shlex.split(a.train_args), 3 * 3600, "train")
    if "cuda" in parts:
        import torch
        if torch.cuda.is_available():
            log("== train (CUDA) ==")
            res["train_cuda"] = _part("bench.train_cpu", q + mdl + ["--cuda"], 3 * 3600, "cuda")
        else:
            res["train_cuda"] = {"skipped": "no CUDA GPU on this machine"}
    if "gui" in parts:
        log("== gui ==")
        res["gui"] = _part("bench.gui", q + mdl + shlex.split(a.gui_args), 1800, "gui")
    if "startup" in parts:
        log("== startup ==")
        st = _part("bench.startup", q, 600, "startup")
        res["startup_s"] = st.get("startup_s")
        res["startup"] = st.get("startup", st)
    if "rag" in parts:
        log("== rag ==")
        res["rag"] = _part("bench.rag", q + shlex.split(a.rag_args), 3600, "rag")
    res["machine"]["load_avg_1m_end"] = machine_info().get("load_avg_1m")
    res["targets"] = {k: {"value": _get(res, k), "target": r[2], "met": _met(_get(res, k), r)}
                      for k, r in TARGETS.items()}
    res["bench_wall_s"] = round(time.perf_counter() - t0, 1)
    res.setdefault("part_wall_s", {}).update(part_s)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "results.json", res)
    (out / "results.md").write_text(markdown(res))
    log(f"wrote {out / 'results.json'} and {out / 'results.md'} in {res['bench_wall_s']} s")
    print(markdown(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())

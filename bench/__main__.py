"""``python -m bench`` (``make bench``): every benchmark, then ``bench/results.json`` and ``bench/results.md``.

Parts (each in its own process, so one cannot skew or sink another):

``train``        bench/train_cpu.py   -- ``tune train`` (the real engine) vs tuned HF + PEFT, whole runs
``cuda``         bench/train_cpu.py --cuda -- the same on a GPU (only when CUDA is present)
``first_model``  bench/first_model.py -- sample project, Quick CPU test, Start -> adapter, vs the estimate
``gui``          bench/gui.py         -- GUI-thread stall over a whole run (load, steps, end, a chat answer)
``startup``      bench/startup.py     -- process start -> first interactive Project page
``rag``          bench/rag.py         -- ingest vs Chroma.from_documents and vs the GEMM roofline
``chat``         bench/chat.py        -- first token of a RAG answer vs the seeds' pipeline; ``tune ask`` cold
``quality``      bench/quality.py     -- answer quality over the development suite (bench/projects/)

Every figure is measured in the same run on the same machine; a ratio compares
contenders measured side by side.  A part whose subsystem is missing is
recorded as ``{"skipped": reason}``; a target missed stays in the table as a miss.

Flags: ``--quick`` (tiny sizes, for tests), ``--only train,gui``, ``--model PATH``
(train, first_model, gui, chat), ``--out-dir DIR`` (default: bench/), ``--train-args "..."``
(passed to bench.train_cpu, e.g. ``"--rows 128 --repeats 5"``).
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

PARTS = ("train", "cuda", "first_model", "gui", "startup", "rag", "chat", "quality")

TARGETS = {  # key: (comparison, threshold, goal, what it measures)
    "train_cpu.speedup_vs_hf_tuned": (
        ">=", 1.3, "≥ 1.3×",
        "training, whole runs: `tune train` (the real engine, default settings, its events, fsyncs and "
        "checkpoints) vs a tuned HF Trainer + PEFT script, process start → adapter on disk; tuned HF time ÷ "
        "ours, median over interleaved pairs"),
    "first_model.estimate_ratio": (
        "between", (0.67, 1.5), "0.67–1.5",
        "time to the first tuned model (sample project, Quick CPU test, Start → adapter ready) ÷ the "
        "Configure page's estimate"),
    "gui.stall_p99_ms": (
        "<", 16.0, "< 16 ms",
        "GUI-thread stall p99 over a whole run from Start: model load, training, end of run, one chat answer "
        "streaming (5 ms QTimer lateness)"),
    "gui.stall_max_ms": ("<", 100.0, "< 100 ms", "GUI-thread stall max over the same whole run"),
    "startup_interactive_s": (
        "<", 2.0, "< 2 s",
        "process start → the Project page showing the sample project, the event loop turning (starts the app "
        "as `python -m desktop` does; the other pages are built when first shown; warm, median)"),
    "rag.ingest_roofline_fraction": (
        ">=", 0.85, "≥ 0.85",
        "RAG ingest throughput as a fraction of this CPU's float32 GEMM rate on the embedder's own shapes "
        "(measured in the same run)"),
    "rag.reingest_fraction": ("<=", 0.05, "≤ 5 %", "re-ingest of an unchanged corpus ÷ the first ingest"),
    "train_cuda.speedup_vs_hf_tuned": (">=", 1.7, "≥ 1.7×", "the training headline on a GPU"),
}

INFO = [  # key: what it measures (figures without a goal, shown as measured)
    ("train_cpu.speedup_spread", "training whole-run speed-up: [min, max] over the pairs"),
    ("train_cpu.speedup_steps_vs_hf_tuned", "training, first logged step → last (same pairs, median)"),
    ("train_cpu.paired_fwd_bwd_speedup",
     "DIAGNOSTIC: forward+backward only of the same micro-batches, both paths in one process (no optimizer, "
     "sampler, Trainer or I/O)"),
    ("train_cpu.speedup_vs_seed_recipe",
     "vs the seed articles' recipe (padding every row to max_length, random sampler), steps phase; not the "
     "engine's speed-up over a tuned baseline"),
    ("train_cpu.time_to_first_step_s", "`tune train`: process start → first logged optimizer step (s)"),
    ("train_cpu.peak_rss_ratio_vs_hf_tuned", "training peak RSS, ours ÷ tuned HF"),
    ("train_cpu.train_loss_ratio_vs_hf_tuned",
     "mean training loss ours ÷ tuned HF (dropout masks differ; exact loss and gradient parity is tested in "
     "tests/test_bench.py)"),
    ("first_model.seconds", "time to the first tuned model, Start → adapter ready (s)"),
    ("first_model.estimate_s", "the Configure page's time estimate for that run (s)"),
    ("gui.load_phase_max_ms", "GUI stall max during model load (part of the whole-run figure)"),
    ("gui.chat_phase_max_ms", "GUI stall max while a chat answer streams (part of the whole-run figure)"),
    ("gui.idle_p99_ms", "GUI idle p99 (ms), no job running"),
    ("gui.plot_update_ms_median", "live plots with 100k points: one update, median (ms)"),
    ("startup_s", "process start → first window shown (the pages not built at start are stand-ins)"),
    ("rag.ingest_speedup", "RAG ingest, ours ÷ Chroma.from_documents (same chunks, same embedding model)"),
    ("rag.ours_chunks_per_s", "RAG ingest, ours (chunks/s)"),
    ("rag.query_p95_ms", "RAG query p95: embed the question + top-4 (ms)"),
    ("chat.first_token_s", "RAG answer (default model, k = 4): question → first streamed token (s)"),
    ("chat.tokens_per_s", "RAG answer: streamed tokens/s after the first"),
    ("chat.first_token_speedup_vs_seed",
     "first token: the seeds' HuggingFacePipeline + retrieval chain ÷ ours (same model, documents, k)"),
    ("chat.seed_first_token_s", "the seeds' chain: question → first streamed piece (s)"),
    ("ask_cold_s", "`tune ask` process start → answer printed (s)"),
]


def _get(d: dict, dotted: str) -> Any:
    cur: Any = d
    for part in dotted.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return None
        cur = cur[part]
    return cur


def _met(value: Any, rule: tuple) -> bool | None:
    """Whether ``value`` meets ``rule`` (None when there is no value)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    op, thr = rule[0], rule[1]
    if op == "between":
        return thr[0] <= value <= thr[1]
    return {">=": value >= thr, "<=": value <= thr, "<": value < thr,
            "within": abs(value - 1.0) <= thr}[op]


def _skip_reason(res: dict, key: str) -> str | None:
    """Why ``key`` has no value: its block's (or, for a top-level key, its part's) ``skipped``."""
    block = key.split(".")[0] if "." in key else {"startup_interactive_s": "startup", "startup_s": "startup",
                                                   "ask_cold_s": "chat"}.get(key, key)
    b = res.get(block)
    return b.get("skipped") if isinstance(b, dict) else None


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
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_fmt(x) for x in v) + "]"
    if isinstance(v, float):
        if abs(v) < 10:
            return f"{v:.4f}".rstrip("0").rstrip(".") if v else "0"
        return f"{v:,.1f}" if abs(v) < 100 else f"{v:,.0f}"
    return str(v)


def markdown(res: dict) -> str:
    """``bench/results.md``: every row says what it measures; a missed target shows as a miss."""
    m = res.get("machine", {})
    lines = ["# Benchmarks", "",
             f"`python -m bench{' --quick' if res.get('quick') else ''}` on {m.get('cpu_model')} "
             f"({m.get('cpu_cores')} cores, load {m.get('load_avg_1m')} at the start, "
             f"{m.get('load_avg_1m_end', '–')} at the end), torch {m.get('torch_version')}, "
             f"transformers {m.get('transformers_version')}, {m.get('date')}. "
             "Every ratio compares contenders measured in the same run on the same machine."
             + (" **Quick run: tiny sizes, the figures mean nothing.**" if res.get("quick") else ""), "",
             "| Metric | What it measures | Value | Goal | Met |", "|---|---|---|---|---|"]
    for key, rule in TARGETS.items():
        v = _get(res, key)
        why = _skip_reason(res, key) if v is None else None
        if why:
            lines.append(f"| `{key}` | {rule[3]} | skipped: {_cell(why)[:160]} | {rule[2]} | – |")
            continue
        ok = _met(v, rule)
        lines.append(f"| `{key}` | {rule[3]} | {_fmt(v)} | {rule[2]} | "
                     f"{'yes' if ok else ('**no**' if ok is False else '–')} |")
    for key, what in INFO:
        v = _get(res, key)
        if v is not None:
            lines.append(f"| `{key}` | {what} | {_fmt(v)} | | |")
    tc = res.get("train_cpu", {})
    w = tc.get("workload") if isinstance(tc, dict) else None
    if w:
        tr = w.get("train", {})
        lines += ["", f"Training workload: {w.get('model')}, {w.get('method')}; {tr.get('rows')} generated chat rows "
                  f"(lengths {tr.get('min_len')}–{tr.get('max_len')}, median {tr.get('median_len')}; {tr.get('tokens')} "
                  f"tokens), one epoch, batch {w.get('batch_size')} × {w.get('grad_accum')}, max_length "
                  f"{w.get('max_length')}, a checkpoint every {w.get('save_steps')} steps, {w.get('threads')} "
                  f"thread(s) for every contender; {w.get('warmup_runs')} untimed warm-up run(s) each, then "
                  f"{w.get('timed_pairs')} timed pairs alternating the order.", "",
                  "| Contender | whole run (s, median) | steps 2..N (s, median) | start → first step (s) | "
                  "peak RSS (MB) |", "|---|---|---|---|---|"]
        for name in ("ours", "hf_tuned"):
            c = tc.get(name) or {}
            lines.append(f"| {name} | {_fmt(c.get('whole_s'))} | {_fmt(c.get('steps_s'))} | "
                         f"{_fmt(c.get('first_step_s'))} | {_fmt(c.get('peak_rss_mb'))} |")
        sr = tc.get("seed_recipe")
        if sr:
            lines.append(f"| seed_recipe (once) | {_fmt(sr.get('whole_s'))} | {_fmt(sr.get('steps_s'))} | "
                         f"{_fmt(sr.get('first_step_s'))} | {_fmt(sr.get('peak_rss_mb'))} |")
        lines += phase_table(tc.get("phases"))
    lines += ingest_table(res.get("rag"))
    qu = res.get("quality", {})
    if isinstance(qu, dict) and qu.get("projects"):
        from bench.quality import table

        lines += ["", "Answer quality (`quality.*`, issue 25): every project of the development suite on the path a "
                  "new project takes (the recommended preset, default options), its evalset answered as tuned + "
                  "documents, base + documents and tuned (`bench/quality.md`).", "", table(qu)]
    fm = res.get("first_model", {})
    if isinstance(fm, dict) and fm.get("path"):
        lines += ["", f"First model: {fm.get('path')}."]
    skipped = [f"- `{k}`: {_cell(v['skipped'])}" for k, v in res.items() if isinstance(v, dict) and "skipped" in v]
    if skipped:
        lines += ["", "Skipped:", *skipped]
    return "\n".join(lines) + "\n"


PHASE_WORDS = {  # row: what it holds (backend/training/profile.py: PHASES)
    "setup": "process start → the loop (imports, data, model, Trainer set-up)",
    "data": "batch fetch: sampler, dataset rows, loss-token count (less collation)",
    "collate": "collator: padding / packing",
    "forward": "`compute_loss`: forward + loss",
    "backward": "backward",
    "clip": "gradient clipping (norm)",
    "optimizer": "`optimizer.step`",
    "scheduler": "lr read, `lr_scheduler.step`, `zero_grad`",
    "callbacks": "callbacks (stop / pause polls, step hooks)",
    "events": "`log` + `on_log`: the train event, stdout line",
    "event_writes": "`metrics.jsonl` append + fsync",
    "checkpoint": "checkpoint saves + completion marker",
    "evaluate": "evaluation",
    "other": "rest of the loop (Trainer bookkeeping)",
    "finish": "loop end → adapter on disk (`finished`)",
}


def phase_table(ph: dict | None) -> list[str]:
    """``train_cpu.phases`` as a Markdown table: seconds per phase (median over the timed runs), both contenders."""
    if not isinstance(ph, dict) or not ph.get("ours") and not ph.get("hf_tuned"):
        return []
    o, h = ph.get("ours") or {}, ph.get("hf_tuned") or {}
    os_, hs = o.get("phases_s") or {}, h.get("phases_s") or {}
    om, hm = o.get("per_step_ms") or {}, h.get("per_step_ms") or {}
    lines = ["", f"Where the time goes (`train_cpu.phases`, backend/training/profile.py on the real loops; median "
             f"over the timed runs; {_fmt(o.get('steps'))} / {_fmt(h.get('steps'))} steps; the timed phases cover "
             f"{_fmt(o.get('covered'))} / {_fmt(h.get('covered'))} of the loop):", "",
             "| Phase | What | ours (s) | tuned HF (s) | HF − ours (s) | ours (ms/step) | tuned HF (ms/step) |",
             "|---|---|---|---|---|---|---|"]
    rows = [r for r in PHASE_WORDS if os_.get(r) is not None or hs.get(r) is not None]
    for r in rows:
        d = (hs[r] - os_[r]) if hs.get(r) is not None and os_.get(r) is not None else None
        lines.append(f"| {r} | {PHASE_WORDS[r]} | {_fmt(os_.get(r))} | {_fmt(hs.get(r))} | {_fmt(d)} | "
                     f"{_fmt(om.get(r))} | {_fmt(hm.get(r))} |")
    tot_o = sum(v for v in os_.values() if v is not None)
    tot_h = sum(v for v in hs.values() if v is not None)
    lines.append(f"| **sum** | setup + loop + finish (≈ whole run) | {_fmt(tot_o)} | {_fmt(tot_h)} | "
                 f"{_fmt(tot_h - tot_o)} | | |")
    return lines


INGEST_WORDS = {  # IngestReport.phases (backend/rag/index.py)
    "scan": "finding and hashing the files",
    "read_chunk": "reading, parsing and chunking",
    "load_model": "loading the embedder",
    "embed": "tokenising + encoding (as the ingest waits for it)",
    "chroma_write": "Chroma upserts / deletes",
    "bm25": "BM25 index update + save",
    "meta": "`index_meta.json` writes",
    "other": "the rest",
}


def ingest_table(rag: Any) -> list[str]:
    """``rag.ingest_phases`` as a Markdown table (seconds per phase)."""
    ph = rag.get("ingest_phases") if isinstance(rag, dict) else None
    if not isinstance(ph, dict):
        return []
    ours, files = ph.get("ours") or {}, (ph.get("files") or {}).get("phases") or {}
    lines = ["", f"Where ingest time goes (`rag.ingest_phases`, timed in backend/rag/index.py): `index_documents` on "
             f"{_fmt(rag.get('chunks'))} chunks (median over the rounds) and `tune ingest`'s path over the same text as "
             f"{_fmt((ph.get('files') or {}).get('files'))} files; the tokeniser alone on those chunks: "
             f"{_fmt(ph.get('tokenize_alone_s'))} s.", "",
             "| Phase | What | chunks (s) | files (s) |", "|---|---|---|---|"]
    for k, what in INGEST_WORDS.items():
        if k in ours or k in files:
            lines.append(f"| {k} | {what} | {_fmt(ours.get(k))} | {_fmt(files.get(k))} |")
    lines.append(f"| **sum** | | {_fmt(sum(ours.values()))} | {_fmt(sum(files.values()))} |")
    return lines


def _cell(text: Any) -> str:
    """One table cell: no newlines or pipes."""
    return " ".join(str(text).split()).replace("|", "/")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench", description="Tune Studio benchmarks")
    p.add_argument("--quick", action="store_true", help="tiny sizes (tests); figures are meaningless")
    p.add_argument("--only", default=",".join(PARTS), help="comma-separated parts: " + ", ".join(PARTS))
    p.add_argument("--model", default=None, help="model for train and gui (default: the bundled default)")
    p.add_argument("--out-dir", default=str(BENCH_DIR), help="where results.json / results.md go")
    p.add_argument("--train-args", default="", help="extra flags for bench.train_cpu")
    p.add_argument("--cuda-args", default="", help="extra flags for bench.train_cpu --cuda (gpu_check shrinks it)")
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
            res["train_cuda"] = _part("bench.train_cpu", q + mdl + ["--cuda"] + shlex.split(a.cuda_args), 3 * 3600,
                                      "cuda")
        else:
            res["train_cuda"] = {"skipped": "no CUDA GPU on this machine"}
    if "first_model" in parts:
        log("== first model ==")
        res["first_model"] = _part("bench.first_model", q + mdl, 1800, "first_model")
    if "gui" in parts:
        log("== gui ==")
        res["gui"] = _part("bench.gui", q + mdl + shlex.split(a.gui_args), 1800, "gui")
    if "startup" in parts:
        log("== startup ==")
        st = _part("bench.startup", q, 600, "startup")
        res["startup_s"] = st.get("startup_s")
        res["startup_interactive_s"] = st.get("startup_interactive_s")
        res["startup"] = st.get("startup", st)
    if "rag" in parts:
        log("== rag ==")
        res["rag"] = _part("bench.rag", q + shlex.split(a.rag_args), 3600, "rag")
    if "chat" in parts:
        log("== chat ==")
        ch = _part("bench.chat", q + mdl, 1800, "chat")
        res["ask_cold_s"] = ch.get("ask_cold_s")
        res["chat"] = ch
    if "quality" in parts:
        log("== quality ==")
        if (BENCH_DIR / "quality.py").exists():
            res["quality"] = _part("bench.quality", q + mdl + ["--suite", "--no-write"], 6 * 3600, "quality")
        else:
            res["quality"] = {"skipped": "bench/quality.py is not written yet"}
    res["machine"]["load_avg_1m_end"] = machine_info().get("load_avg_1m")
    res["targets"] = {k: {"value": _get(res, k), "target": r[2], "measures": r[3], "met": _met(_get(res, k), r)}
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

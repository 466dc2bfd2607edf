"""The benchmarks run (tiny sizes, so none can rot) and the training fast path keeps the maths.

No timed assertions: the figures of a ``--quick`` run mean nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# (--quick leaves out the seeds' recipe: the baseline script with its other collator, one process start less)
REQUIRED = ["train_cpu.speedup_vs_hf_tuned", "train_cpu.speedup_spread", "train_cpu.paired_fwd_bwd_speedup",
            "first_model.seconds", "first_model.estimate_ratio",
            "gui.stall_p99_ms", "gui.stall_max_ms", "startup_interactive_s", "rag.ingest_speedup",
            "rag.ingest_roofline_fraction", "rag.reingest_fraction", "chat.first_token_s",
            "chat.first_token_speedup_vs_seed", "ask_cold_s"]
TOP_LEVEL = {"startup_interactive_s": "startup", "ask_cold_s": "chat"}


def _get(d, dotted):
    for part in dotted.split("."):
        d = d.get(part) if isinstance(d, dict) else None
    return d


# ---------------------------------------------------------------------------
# backend.fastpath: same loss and gradients as the plain padded HF path

def _lora_model(model_dir):
    import torch
    from transformers import AutoModelForCausalLM

    from backend.config import RunConfig
    from backend.training import apply_method

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, attn_implementation="sdpa")
    model.config.use_cache = False
    model, _, _ = apply_method(model, RunConfig())
    with torch.no_grad():  # non-zero LoRA B so every adapter weight gets a gradient
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.02)
    return model


def _loss_and_grads(model, batch, n_items):
    import torch

    model.zero_grad()
    out = model(**batch, num_items_in_batch=torch.tensor(n_items))
    out.loss.backward()
    grads = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
    return float(out.loss.detach()), grads


def test_fastpath_matches_padded_hf_path(tiny_model_dir):
    import torch
    from transformers import AutoTokenizer, DataCollatorForSeq2Seq

    from backend import fastpath
    from bench.common import make_rows

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    rows = make_rows(tok, 4, seed=3, max_length=96, lo=12, hi=90, median_len=40)
    feats = [{"input_ids": r["input_ids"], "labels": r["labels"]} for r in rows]
    n_items = sum(sum(1 for x in r["labels"][1:] if x != -100) for r in rows)
    model = _lora_model(tiny_model_dir)
    model.eval()  # no dropout: the two paths must agree to float precision

    ref_loss, ref_g = _loss_and_grads(model, DataCollatorForSeq2Seq(tok, padding=True, label_pad_token_id=-100)(feats),
                                      n_items)
    assert fastpath.enable(model)
    assert fastpath._base(model).config._attn_implementation == fastpath.ATTN_NAME
    batch = fastpath.FastPackingCollator()(feats)
    assert batch["input_ids"].shape[0] == 1 and int(batch["logits_to_keep"].sum()) == n_items
    loss, g = _loss_and_grads(model, batch, n_items)
    assert loss == pytest.approx(ref_loss, rel=1e-5)
    assert float((g - ref_g).norm() / ref_g.norm()) < 1e-4
    # the same without label-only logits, and the stock flattening collator with sdpa_varlen
    loss2, _ = _loss_and_grads(model, fastpath.FastPackingCollator(label_only_logits=False)(feats), n_items)
    assert loss2 == pytest.approx(ref_loss, rel=1e-5)
    # generation-style calls (no packing) still work through the stock sdpa fallback
    with torch.no_grad():
        ids = torch.tensor([rows[0]["input_ids"][:10]])
        fast_logits = model(input_ids=ids).logits
        fastpath._base(model).set_attn_implementation("sdpa")
        ref_logits = model(input_ids=ids).logits
    assert torch.allclose(fast_logits, ref_logits, atol=1e-5)


def test_block_mask_attention_matches_the_per_row_loop():
    """CUDA's "mask" mode (one SDPA call, block-diagonal causal mask) = one causal SDPA call per packed row."""
    import torch

    from backend import fastpath

    torch.manual_seed(0)
    cu = torch.tensor([0, 5, 6, 13], dtype=torch.int32)  # rows of 5, 1 and 7 tokens
    q = torch.randn(1, 4, 13, 8, requires_grad=True)
    k, v = (torch.randn(1, 2, 13, 8, requires_grad=True) for _ in range(2))  # GQA: 4 query heads, 2 kv heads
    out = fastpath._masked_attention(q, k, v, cu, scaling=None)
    ref = torch.cat([torch.nn.functional.scaled_dot_product_attention(
        q[:, :, s:e], k[:, :, s:e].repeat_interleave(2, 1), v[:, :, s:e].repeat_interleave(2, 1), is_causal=True)
        for s, e in ((0, 5), (5, 6), (6, 13))], dim=2).transpose(1, 2)
    assert out.shape == (1, 13, 4, 8) and torch.allclose(out, ref, atol=1e-6)
    g, = torch.autograd.grad(out.sum(), k)
    g_ref, = torch.autograd.grad(ref.sum(), k)
    assert torch.allclose(g, g_ref, atol=1e-5)
    assert fastpath._block_causal_mask(cu, 13, q.device) is fastpath._block_causal_mask(cu, 13, q.device)  # per batch


def test_fused_ce_matches_hf_loss_and_gradients(tiny_model_dir):
    import torch
    from transformers import AutoTokenizer, DataCollatorForSeq2Seq

    from backend import fastpath
    from bench.common import make_rows

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    rows = make_rows(tok, 3, seed=5, max_length=96, lo=12, hi=90, median_len=40)
    feats = [{"input_ids": r["input_ids"], "labels": r["labels"]} for r in rows]
    n_items = sum(sum(1 for x in r["labels"][1:] if x != -100) for r in rows)
    model = _lora_model(tiny_model_dir)
    model.train()
    for m in model.modules():  # no dropout, so both paths see the same network
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    ref_loss, ref_g = _loss_and_grads(model, DataCollatorForSeq2Seq(tok, padding=True, label_pad_token_id=-100)(feats),
                                      n_items)
    fastpath.enable(model)
    loss_func = fastpath.enable_fused_ce(model)
    batch = fastpath.FastPackingCollator()(feats)
    labels = batch.pop("labels")
    model.zero_grad()
    out = model(**batch)
    assert out.logits.shape[0] == 1  # the head projected one row only
    loss = loss_func(out, labels, num_items_in_batch=torch.tensor(n_items))
    loss.backward()
    g = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
    assert float(loss.detach()) == pytest.approx(ref_loss, rel=1e-5)
    assert float((g - ref_g).norm() / ref_g.norm()) < 1e-4
    # small chunks and a trainable head (full fine-tuning) give the same sums and a weight gradient
    h = torch.randn(50, 8, requires_grad=True)
    w = torch.randn(30, 8, requires_grad=True)
    t = torch.randint(0, 30, (50,))
    t[::7] = -100
    ref = torch.nn.functional.cross_entropy(h @ w.t(), t, ignore_index=-100, reduction="sum")
    gh, gw = torch.autograd.grad(ref, (h, w))
    got = fastpath.fused_linear_cross_entropy(h, w, t, chunk=7)
    gh2, gw2 = torch.autograd.grad(got, (h, w))
    assert torch.allclose(got, ref, rtol=1e-5) and torch.allclose(gh, gh2, atol=1e-5) and torch.allclose(gw, gw2, atol=1e-5)
    # a reused logits buffer (kept in the workspace from call to call, chunk by chunk) changes nothing
    ws: dict = {}
    for _ in range(2):
        got3 = fastpath.fused_linear_cross_entropy(h, w, t, chunk=7, workspace=ws)
        gh3, gw3 = torch.autograd.grad(got3, (h, w))
        assert torch.equal(got3, got) and torch.equal(gh3, gh2) and torch.equal(gw3, gw2)
    assert ws["logits"].shape == (7, 30)
    # an all-ignored chunk adds nothing (and reuses the buffer)
    h4 = h.detach()[:7].clone().requires_grad_()
    w4 = w.detach().clone()
    t4 = t[:7].clone()
    t4[:] = -100
    assert float(fastpath.fused_linear_cross_entropy(h4, w4, t4, workspace=ws)) == 0.0


def test_fastpath_refuses_prompt_learning_and_eager(tiny_model_dir):
    import torch
    from transformers import AutoModelForCausalLM

    from backend import fastpath
    from backend.config import RunConfig
    from backend.training import apply_method

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32, attn_implementation="sdpa")
    cfg = RunConfig.from_dict({"method": {"method": "prompt_tuning", "num_virtual_tokens": 4},
                               "data": {"packing": False}})
    model, _, _ = apply_method(model, cfg)
    assert fastpath.enable(model) is False  # virtual tokens: packed boundaries would not line up
    eager = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32, attn_implementation="eager")
    assert fastpath.enable(eager) is False


def test_fast_lora_dropout_keeps_rate_and_scale(tiny_model_dir):
    import torch

    from backend import fastpath

    model = _lora_model(tiny_model_dir)
    n = fastpath.fast_lora_dropout(model)
    assert n > 0
    drop = next(m for m in model.modules() if type(m).__name__ == "FastDropout")
    drop.train()
    torch.manual_seed(0)
    x = torch.ones(400, 500, requires_grad=True)
    y = drop(x)
    kept = y != 0
    assert abs(1 - kept.float().mean().item() - drop.p) < 0.005
    assert torch.allclose(y[kept], torch.full_like(y[kept], 1 / (1 - drop.p)))
    y.sum().backward()
    assert torch.equal(x.grad != 0, kept)
    drop.eval()
    assert torch.equal(drop(x), x)


def test_fused_lora_dropout_masks_replay_under_gradient_checkpointing(tiny_model_dir):
    import torch

    from backend import fastpath

    model = _lora_model(tiny_model_dir)
    model.train()
    assert fastpath.fuse_lora(model) and fastpath.fast_lora_dropout(model)
    for m in model.modules():
        if type(m).__name__ == "FastDropout":
            m.p = 0.3
    ids = torch.randint(3, 200, (2, 9))

    def grads(checkpointing: bool) -> dict:
        if checkpointing:  # the recomputed forward must draw the very same masks
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        else:
            model.gradient_checkpointing_disable()
        model.zero_grad(set_to_none=True)
        torch.manual_seed(5)
        model(input_ids=ids, labels=ids).loss.backward()
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    plain, replayed = grads(False), grads(True)
    assert plain and plain.keys() == replayed.keys()
    for n in plain:
        assert torch.allclose(plain[n], replayed[n], rtol=1e-5, atol=1e-7), n
    torch.manual_seed(6)  # another seed, other masks: the check above is not vacuous
    model.zero_grad(set_to_none=True)
    model(input_ids=ids, labels=ids).loss.backward()
    assert any(not torch.allclose(p.grad, plain[n]) for n, p in model.named_parameters() if p.grad is not None)


def test_fused_lora_matches_peft_forward_and_gradients(tiny_model_dir):
    import torch

    from backend import fastpath

    model = _lora_model(tiny_model_dir)
    model.train()
    lora = [m for m in model.modules() if type(m).__name__ == "Linear" and hasattr(m, "lora_A")]
    for m in lora:  # non-zero B so the LoRA branch and every gradient are exercised
        torch.nn.init.normal_(m.lora_B["default"].weight, std=0.02)
    ids = torch.randint(3, 200, (2, 9))
    mask = torch.ones_like(ids)

    def run(fused: bool, p: float):
        for m in lora:
            m.lora_dropout["default"].p = p
        (fastpath.fuse_lora if fused else fastpath.unfuse_lora)(model)
        model.zero_grad(set_to_none=True)
        out = model(input_ids=ids, attention_mask=mask, labels=ids)
        out.loss.backward()
        grads = {n: q.grad.clone() for n, q in model.named_parameters() if q.requires_grad}
        return out.loss.detach(), out.logits.detach(), grads

    assert fastpath.fuse_lora(model) == len(lora) > 0
    ref_loss, ref_logits, ref_g = run(False, 0.0)
    loss, logits, g = run(True, 0.0)
    assert torch.allclose(loss, ref_loss, rtol=1e-5) and torch.allclose(logits, ref_logits, atol=1e-4)
    assert g.keys() == ref_g.keys()
    for n in g:
        assert torch.allclose(g[n], ref_g[n], rtol=1e-4, atol=1e-6), n
    # still an instance of PEFT's class (isinstance checks, saving); unfuse restores the class
    from peft.tuners.lora.layer import Linear as PeftLoraLinear
    assert all(isinstance(m, PeftLoraLinear) and type(m) is not PeftLoraLinear for m in lora)
    assert fastpath.unfuse_lora(model) == len(lora) and all(type(m) is PeftLoraLinear for m in lora)
    # no grad (generation, eval): PEFT's forward, same result
    fastpath.fuse_lora(model)
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(input_ids=ids).logits, model(input_ids=ids).logits)
    model.train()
    with torch.autocast("cpu", dtype=torch.bfloat16):  # mixed dtypes: PEFT's forward, no error
        model(input_ids=ids, labels=ids).loss.backward()


def test_fused_lora_dropout_uses_the_mask_in_both_passes():
    import torch

    from backend import fastpath

    torch.manual_seed(1)
    x = torch.randn(64, 40, requires_grad=True)
    w, a, b = torch.randn(24, 40), torch.randn(8, 40, requires_grad=True), torch.randn(24, 8, requires_grad=True)
    p, s = 0.3, 2.0
    torch.manual_seed(7)
    keep = fastpath._keep_mask(x.detach(), p)
    assert abs(keep.float().mean().item() - (1 - p)) < 0.03
    ref = x @ w.t() + s * ((x * keep / (1 - p)) @ a.t()) @ b.t()
    ref.square().sum().backward()
    ref_g = [t.grad.clone() for t in (x, a, b)]
    for t in (x, a, b):
        t.grad = None
    torch.manual_seed(7)  # the same draw inside the fused function
    out = fastpath._lora_linear_fn().apply(x, w, None, a, b, s, p)
    assert torch.allclose(out, ref, rtol=1e-5, atol=1e-4)
    out.square().sum().backward()
    for got, want in zip((x.grad, a.grad, b.grad), ref_g):
        assert torch.allclose(got, want, rtol=1e-4, atol=1e-3)


def test_results_markdown_and_targets():
    from bench.__main__ import INFO, TARGETS, _met, markdown

    assert _met(1.004, ("within", 0.01, "")) and not _met(1.02, ("within", 0.01, ""))
    assert _met(3.2, (">=", 3.0, "")) and _met(None, (">=", 3.0, "")) is None
    assert _met(1.2, ("between", (0.67, 1.5), "")) and not _met(1.6, ("between", (0.67, 1.5), ""))
    for key in ("train_cpu.speedup_vs_hf_tuned", "first_model.estimate_ratio", "gui.stall_p99_ms",
                "gui.stall_max_ms", "startup_interactive_s", "rag.ingest_roofline_fraction"):
        assert key in TARGETS and TARGETS[key][3], key  # the goals, each saying what it measures
    assert all(what for _, what in INFO)
    md = markdown({"machine": {"cpu_model": "x"}, "train_cpu": {"skipped": "no model"},
                   "startup_interactive_s": 2.5, "startup": {},
                   "gui": {"stall_p99_ms": 3.0, "stall_max_ms": 20.0}, "chat": {"skipped": "no chain"},
                   "first_model": {"seconds": 100.0, "estimate_s": 50.0, "estimate_ratio": 2.0}})
    row = next(line for line in md.splitlines() if line.startswith("| `startup_interactive_s`"))
    assert "| 2.5 | < 2 s | **no** |" in row  # a missed target stays a miss
    assert "| 3 | < 16 ms | yes |" in md and "skipped: no model" in md
    assert "| 2 | 0.67–1.5 | **no** |" in md and "Start → adapter ready" in md
    assert "- `chat`: no chain" in md


def test_train_schedule_alternates_and_summary_takes_medians():
    from bench.train_cpu import pair_ratios, schedule, summarise

    order = schedule(warmup=1, repeats=4)
    assert order[:2] == [("hf_tuned", "warmup0"), ("ours", "warmup0")]  # the same warm-up for both
    timed = order[2:]
    assert [c for c, _ in timed] == ["hf_tuned", "ours", "ours", "hf_tuned", "hf_tuned", "ours", "ours", "hf_tuned"]
    assert {t for _, t in timed} == {"pair0", "pair1", "pair2", "pair3"}

    def r(whole, steps):
        return {"whole_s": whole, "steps_s": steps, "first_step_s": 1.0, "peak_rss_mb": 100.0, "mean_loss": 2.0}

    runs = {"hf_tuned": {"warmup0": r(1.0, 1.0), "pair0": r(12.0, 6.0), "pair1": r(10.0, 5.0), "pair2": r(30.0, 9.0)},
            "ours": {"warmup0": r(100.0, 100.0), "pair0": r(10.0, 4.0), "pair1": r(10.0, 5.0), "pair2": r(10.0, 6.0)},
            "seed_recipe": {"once": r(40.0, 20.0)}}
    assert pair_ratios(runs, "whole_s") == [1.2, 1.0, 3.0]  # warm-ups never count
    s = summarise(runs)
    assert s["speedup_vs_hf_tuned"] == 1.2 and s["speedup_spread"] == [1.0, 3.0]  # the median, not the best
    assert s["speedup_steps_vs_hf_tuned"] == 1.5
    assert s["ours"]["whole_s"] == 10.0 and s["hf_tuned"]["whole_s"] == 12.0
    assert s["speedup_vs_seed_recipe"] == 4.0  # seeds' steps time ÷ ours (median 5.0)


def test_rag_roofline_counts_the_encoder_gemms():
    from bench.rag import flops_per_token, gemm_shapes

    minilm = {"hidden": 384, "intermediate": 1536, "layers": 6}
    assert gemm_shapes(384, 1536) == [(384, 1152), (384, 384), (384, 1536), (1536, 384)]
    assert flops_per_token(minilm) == 2 * 6 * (384 * 1152 + 384 * 384 + 2 * 384 * 1536)


# ---------------------------------------------------------------------------
# make gpu-check: its CPU-side logic (planning, budget, parsing, reporting) without a GPU

NO_GPU = {"cuda": False, "gpu": None, "bitsandbytes": False, "pyside6": True}
GPU = {"cuda": True, "gpu": "NVIDIA H200", "bitsandbytes": False, "bitsandbytes_error": "No module named 'bitsandbytes'",
       "pyside6": True}


def test_gpu_check_plan_fits_the_budget_and_says_why_it_skips():
    from bench.gpu_check import CHECKS, TOTAL_BUDGET_S, plan

    assert {c.name for c in CHECKS} == {"fused_vs_hf", "qlora", "oom_backoff", "gui_path", "bench_cuda"}
    assert sum(c.budget_s for c in CHECKS) <= TOTAL_BUDGET_S <= 480  # under 8 minutes on one GPU
    none = plan(NO_GPU)
    assert [c["name"] for c in none] == [c.name for c in CHECKS]
    assert all(c["skip"].startswith("no CUDA GPU") for c in none)
    gpu = {c["name"]: c for c in plan(GPU)}
    assert gpu["qlora"]["skip"].startswith("bitsandbytes does not import")
    assert all(c["skip"] is None for n, c in gpu.items() if n != "qlora")
    squeezed = plan(GPU, ["fused_vs_hf", "bench_cuda"], total_budget_s=130)
    assert sum(c["budget_s"] for c in squeezed) <= 130 and squeezed[1]["budget_s"] > squeezed[0]["budget_s"]
    with pytest.raises(ValueError, match="unknown checks"):
        plan(GPU, ["nope"])
    # a GPU machine without Qt (a lent machine with only what fits its transfer) skips the GUI path alone
    no_qt = {c["name"]: c["skip"] for c in plan({**GPU, "pyside6": False, "pyside6_error": "No module named 'PySide6'"})}
    assert no_qt["gui_path"].startswith("PySide6 does not import") and no_qt["fused_vs_hf"] is None


def test_gpu_check_random_weights_model_keeps_the_architecture_and_tokenizer(tmp_path):
    """--random-weights: a folder without weights becomes a loadable model with the same shapes."""
    from transformers import AutoModelForCausalLM, LlamaConfig

    from bench.gpu_check import random_weights_model

    src = tmp_path / "arch"
    src.mkdir()
    LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
                num_key_value_heads=1).save_pretrained(src)
    (src / "tokenizer.json").write_text("{}")
    out = random_weights_model(src, tmp_path / "model")
    assert (out / "tokenizer.json").read_text() == "{}" and list(out.glob("*.safetensors"))
    model = AutoModelForCausalLM.from_pretrained(out)
    assert model.config.hidden_size == 16 and model.config.num_hidden_layers == 2
    with pytest.raises(SystemExit, match="no config.json"):
        random_weights_model(tmp_path / "model" / "missing", tmp_path / "x")


def test_gpu_check_parses_each_outcome():
    from bench.gpu_check import RESULT_PREFIX, parse_result

    ok = parse_result("oom_backoff", 0, "noise\n" + RESULT_PREFIX + json.dumps(
        {"ok": True, "retries": 2, "final_batch_size": 16}), "", 41.0, 60)
    assert ok["status"] == "pass" and ok["figures"] == {"retries": 2, "final_batch_size": 16}
    bad = parse_result("qlora", 1, RESULT_PREFIX + json.dumps({"ok": False, "reason": "rc=3, failed"}), "", 5, 60)
    assert bad["status"] == "fail" and bad["reason"] == "rc=3, failed"
    crashed = parse_result("fused_vs_hf", -9, "", "Killed\n", 12, 70)
    assert crashed["status"] == "fail" and "without a result" in crashed["reason"] and "Killed" in crashed["stderr_tail"]
    late = parse_result("bench_cuda", None, "", "", 190, 190)
    assert late["status"] == "timeout" and "190 s" in late["reason"]
    # a result line that says ok from a process that then failed is a failure
    assert parse_result("gui_path", 1, RESULT_PREFIX + '{"ok": true}', "", 3, 90)["status"] == "fail"
    assert parse_result("gui_path", 0, RESULT_PREFIX + "{not json", "", 3, 90)["status"] == "fail"


def test_gpu_check_runs_the_plan_within_the_total_budget_and_tabulates():
    from bench.gpu_check import parse_result, plan, run_all, summary_table, RESULT_PREFIX

    calls = []

    def run_check(c, timeout):  # what a check process would have printed
        calls.append((c["name"], timeout))
        return parse_result(c["name"], 0, RESULT_PREFIX + json.dumps({"ok": True, "speedup": 1.8}), "", 1.0,
                            c["budget_s"])

    results = run_all(plan(GPU), run_check=run_check)
    assert [r["status"] for r in results] == ["pass", "skip", "pass", "pass", "pass"]
    assert [n for n, _ in calls] == ["fused_vs_hf", "oom_backoff", "gui_path", "bench_cuda"]
    assert all(t <= 480 for _, t in calls)
    table = summary_table(results)
    assert table.splitlines()[0].split() == ["CHECK", "STATUS", "SECONDS", "DETAILS"]
    assert "speedup=1.8" in table and "bitsandbytes does not import" in table
    # nothing left of the budget: the rest is recorded as skipped, not run
    calls.clear()
    spent = run_all(plan(GPU), run_check=run_check, total_budget_s=5)
    assert not calls and all(r["status"] == "skip" for r in spent)


def test_gpu_check_without_a_gpu_writes_its_json(tmp_path):
    from bench import gpu_check

    if gpu_check.probe_environment()["cuda"]:
        pytest.skip("this machine has a GPU: make gpu-check runs for real")
    out = tmp_path / "results-gpu.json"
    assert gpu_check.main(["--dry-run"]) == 0
    assert gpu_check.main(["--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["ran"] == 0 and doc["passed"] and len(doc["checks"]) == 5
    assert all(c["status"] == "skip" and c["reason"] for c in doc["checks"])


# ---------------------------------------------------------------------------
# every bench script once, tiny

@pytest.mark.slow
def test_python_m_bench_quick(tiny_model_dir, tmp_path):
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", TUNE_STUDIO_HOME=str(tmp_path / "home"),
               PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-m", "bench", "--quick", "--model", str(tiny_model_dir),
                           "--out-dir", str(tmp_path)], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads((tmp_path / "results.json").read_text())
    assert (tmp_path / "results.md").read_text().startswith("# Benchmarks")
    for block in ("train_cpu", "gui", "startup", "rag", "train_cuda"):
        b = res.get(block, {})
        assert not str(b.get("skipped", "")).startswith("failed"), f"{block}: {b.get('skipped')}"
    for key in REQUIRED:
        block = res.get(key.split(".")[0]) if "." in key else res.get(TOP_LEVEL[key])
        if isinstance(block, dict) and "skipped" in block and not str(block["skipped"]).startswith("failed"):
            continue  # subsystem not there yet: recorded, not faked
        assert _get(res, key) is not None, key
    assert res["machine"]["cpu_cores"] >= 1 and res["machine"]["torch_version"]
    tc = res["train_cpu"]
    assert tc["exact_check"]["rel_diff"] < 1e-4
    assert len(tc["speedup_vs_hf_tuned_pairs"]) >= 1 and tc["ours"]["runs"] >= 1


@pytest.mark.slow
def test_quality_suite_quick_runs_a_project_on_the_default_path(tiny_model_dir, tmp_path):
    # issue 25: a suite project copied as a new project, the recommended preset fitted by resolve_run_config,
    # trained 2 steps and 4 questions answered in the three modes (the figures mean nothing)
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", TUNE_STUDIO_HOME=str(tmp_path / "home"),
               PYTHONPATH=str(REPO))
    out = tmp_path / "quality.json"
    proc = subprocess.run([sys.executable, "-m", "bench.quality", "--quick", "--suite", "--model",
                           str(tiny_model_dir), "--out", str(out)], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(out.read_text())
    assert res["quick"] and len(res["projects"]) == 1  # --quick: the first project of the suite only
    (name, p), = res["projects"].items()
    assert p["train_status"] == "completed" and p["recipe"]["preset"] == "facts" and p["recipe"]["data.raft"]
    assert p["recipe"]["rows"] > p["recipe"]["rows_written"]  # the recipe's rows were added
    assert set(p["by_kind"]) == {"tuned+rag", "base+rag", "tuned"}
    assert {"tuned_rag_answerable", "base_rag_answerable", "gain_over_base_rag", "abstention"} <= set(p["figures"])
    s = res["summary"]  # a development project (suite.json's fitted_on) is shown, never summarised
    assert (name in s["development"] and not s["held_out"]) or s["worst_project"] == name
    assert "| project | role |" in proc.stderr  # the table


def test_quality_merge_reports_held_out_projects_only(tmp_path, monkeypatch):
    # never choose a default on the set you report it on: a project with fitted_on stays out of the suite figures
    from bench import quality

    suite = tmp_path / "suite.json"
    suite.write_text(json.dumps({"projects": [
        {"name": "dev", "path": "x", "evalset": "x", "fitted_on": "the recipe was chosen on it"},
        {"name": "a", "path": "x", "evalset": "x"}, {"name": "b", "path": "x", "evalset": "x"}]}))
    monkeypatch.setattr(quality, "SUITE_FILE", suite)

    def result(name, tuned, base, quick=False):
        figures = {"tuned_rag_answerable": tuned, "base_rag_answerable": base, "gain_over_base_rag": tuned - base,
                   "tuned_trained": 0.5, "abstention": 0.5, "false_abstention": 0.1}
        f = tmp_path / f"{name}.json"
        f.write_text(json.dumps({"quick": quick, "machine": {"date": name}, "overrides": {"data.x": 1},
                                 "projects": {name: {"figures": figures}}}))
        return str(f)

    res = quality.merge([result("dev", 0.9, 0.1), result("a", 0.6, 0.4), result("b", 0.3, 0.5)])
    s = res["summary"]
    assert s["held_out"] == ["a", "b"] and s["development"] == ["dev"] and s["worst_project"] == "b"
    assert s["figures"]["mean_tuned_rag_answerable"] == pytest.approx(0.45)
    assert s["figures"]["every_project_gains_10_points"] is False  # b lost 20 points; dev's +80 does not count
    assert res["projects"]["a"]["overrides"] == {"data.x": 1} and res["projects"]["b"]["machine"] == {"date": "b"}
    text = quality.table(res)
    assert "| dev | development |" in text and "| b | held out |" in text and "Worst held-out project: **b**" in text
    with pytest.raises(SystemExit, match="--quick"):
        quality.merge([result("q", 0.1, 0.1, quick=True)])

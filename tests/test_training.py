"""The training engine on tiny random-weight models (real Trainer, real PEFT, real files)."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from backend.config import RunConfig
from backend.errors import ModelError, RunError, TrainingError
from backend.events import read_events
from backend.training import latest_checkpoint, read_status, resume, train


def tiny_cfg(model_dir, data, out, **over) -> RunConfig:
    base = {"model.name_or_path": str(model_dir), "data.train_files": [str(data)],
            "output_dir": str(out), "data.max_length": 64, "data.validation_split": 0.2,
            "training.batch_size": 2, "training.gradient_accumulation": 1,
            "training.max_steps": 4, "training.save_steps": 2, "training.eval_steps": 2,
            "training.learning_rate": 1e-3, "training.warmup_ratio": 0.0, "method.lora_r": 4}
    base.update(over)
    return RunConfig().with_overrides(base)


def steps(run_dir, kind="train"):
    return [r["step"] for r in read_events(Path(run_dir) / "metrics.jsonl") if r["type"] == kind]


def test_lora_run_writes_run_folder_and_events(tiny_model_dir, chat_jsonl, tmp_path):
    seen = []
    res = train(tiny_cfg(tiny_model_dir, chat_jsonl, tmp_path / "run"), on_event=seen.append)
    run = tmp_path / "run"
    assert res.status == "completed" and res.adapter_dir == run / "adapter"
    for f in ("config.json", "status.json", "metrics.jsonl", "run.log", "adapter/adapter_config.json",
              "adapter/adapter_model.safetensors"):
        assert (run / f).exists(), f
    assert read_status(run)["status"] == "completed"
    assert steps(run) == [1, 2, 3, 4]
    rec = [r for r in seen if r["type"] == "train"][-1]
    for k in ("step", "epoch", "loss", "learning_rate", "grad_norm", "tokens_per_s", "tokens_seen",
              "eta_s", "memory_mb"):
        assert k in rec
    assert rec["tokens_seen"] > 0 and rec["memory_mb"] > 0
    assert [r for r in seen if r["type"] == "eval"], "no eval records"
    assert all("perplexity" in r for r in seen if r["type"] == "eval")
    # eval_steps divides the run: the final evaluation is the last step's, not a second pass
    assert steps(run, "eval") == [2, 4]
    assert not [r for r in seen if r["type"] == "progress" and r["stage"] == "evaluate"]
    assert res.metrics["eval_loss"] == [r for r in seen if r["type"] == "eval"][-1]["eval_loss"]
    assert [r["step"] for r in seen if r["type"] == "checkpoint"] == [2, 4]
    assert seen[-1]["type"] == "finished" and seen[-1]["status"] == "completed"
    # every event also on disk, in order
    disk = read_events(run / "metrics.jsonl")
    assert [r["type"] for r in disk] == [r["type"] for r in seen]

    from peft import AutoPeftModelForCausalLM
    m = AutoPeftModelForCausalLM.from_pretrained(str(run / "adapter"))
    out = m.generate(input_ids=torch.tensor([[1, 2, 3]]), max_new_tokens=3, do_sample=False)
    assert out.shape[1] == 6


def test_final_evaluation_when_the_last_step_was_not_evaluated(tiny_model_dir, chat_jsonl, tmp_path):
    res = train(tiny_cfg(tiny_model_dir, chat_jsonl, tmp_path / "run", **{"training.max_steps": 3}))
    assert steps(tmp_path / "run", "eval") == [2, 3]  # step 2 by eval_steps, step 3 by the final evaluation
    evals = [r for r in read_events(tmp_path / "run" / "metrics.jsonl") if r["type"] == "eval"]
    assert res.metrics["eval_loss"] == evals[-1]["eval_loss"]


def test_stop_then_resume_keeps_metrics_continuous(tiny_model_dir, chat_jsonl, tmp_path):
    run = tmp_path / "run"
    last = {"step": 0}

    def on_event(rec):
        if rec["type"] == "train":
            last["step"] = rec["step"]

    cfg = tiny_cfg(tiny_model_dir, chat_jsonl, run, **{"training.max_steps": 6, "training.save_steps": 4})
    res = train(cfg, on_event=on_event, should_stop=lambda: last["step"] >= 3)
    assert res.status == "cancelled" and res.adapter_dir is None
    assert read_status(run)["status"] == "cancelled"
    stopped_at = steps(run)[-1]
    assert stopped_at in (3, 4)  # after the step in progress when the flag was seen
    assert latest_checkpoint(run).name == f"checkpoint-{stopped_at}"
    res = resume(run)
    assert res.status == "completed"
    assert steps(run) == [1, 2, 3, 4, 5, 6]
    with pytest.raises(RunError, match="already completed"):
        resume(run)


def test_sigkill_then_resume(tiny_model_dir, chat_jsonl, tmp_path):
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "backend", "train", "--model", str(tiny_model_dir), "--data", str(chat_jsonl),
           "--output", str(run), "--max-steps", "24", "--save-steps", "3",
           "--set", "data.max_length=64", "--set", "training.batch_size=2",
           "--set", "training.gradient_accumulation=1", "--set", "training.eval_steps=0",
           "--set", "data.validation_split=0"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline:
        ck = latest_checkpoint(run) if run.exists() else None
        if ck is not None and int(ck.name.split("-")[1]) >= 3 and len(steps(run)) >= 5:
            break
        if proc.poll() is not None:
            pytest.fail(proc.stderr.read().decode())
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert read_status(run)["status"] == "running"  # killed: nobody could write more
    done = steps(run)
    assert done and done == list(range(1, len(done) + 1))
    res = subprocess.run([sys.executable, "-m", "backend", "resume", str(run)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert steps(run) == list(range(1, 25))
    assert read_status(run)["status"] == "completed"


@pytest.mark.parametrize("method,extra", [
    ("dora", {}), ("rslora", {}), ("ia3", {}),
    ("prompt_tuning", {"data.packing": False}), ("prefix_tuning", {"data.packing": False}),
    ("full", {"training.learning_rate": 1e-4}),
])
def test_methods_train(method, extra, tiny_model_dir, chat_jsonl, tmp_path):
    cfg = tiny_cfg(tiny_model_dir, chat_jsonl, tmp_path / "run", **{
        "method.method": method, "training.max_steps": 2, "training.eval_steps": 0,
        "data.validation_split": 0, **extra})
    res = train(cfg)
    assert res.status == "completed"
    losses = [r["loss"] for r in read_events(tmp_path / "run" / "metrics.jsonl") if r["type"] == "train"]
    assert len(losses) == 2 and all(l == l for l in losses)
    assert (res.adapter_dir / ("model.safetensors" if method == "full" else "adapter_model.safetensors")).exists()


def test_bitfit_needs_biases(tiny_model_dir, chat_jsonl, tmp_path):
    from backend.errors import ConfigError
    cfg = tiny_cfg(tiny_model_dir, chat_jsonl, tmp_path / "run", **{"method.method": "bitfit"})
    with pytest.raises(ConfigError, match="has none"):
        train(cfg)
    assert read_status(tmp_path / "run")["status"] == "failed"


def test_bitfit_on_model_with_biases(real_tokenizer_dir, chat_jsonl, tmp_path):
    import shutil

    from transformers import LlamaConfig, LlamaForCausalLM
    mdir = tmp_path / "biased"
    LlamaForCausalLM(LlamaConfig(vocab_size=49152, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                 num_attention_heads=2, num_key_value_heads=1, attention_bias=True,
                                 mlp_bias=True)).save_pretrained(mdir)
    for f in real_tokenizer_dir.iterdir():
        shutil.copy(f, mdir / f.name)
    res = train(tiny_cfg(mdir, chat_jsonl, tmp_path / "run", **{"method.method": "bitfit",
                                                               "training.max_steps": 2}))
    assert res.status == "completed" and (res.adapter_dir / "model.safetensors").exists()


def test_oom_halves_batch_and_continues(tiny_model_dir, chat_jsonl, tmp_path):
    state = {"step": 0, "raised": False}
    seen = []

    def on_event(rec):
        seen.append(rec)
        if rec["type"] == "train":
            state["step"] = rec["step"]

    def oom_once():  # a real torch OOM error, raised from inside the training loop after step 3
        if state["step"] == 3 and not state["raised"]:
            state["raised"] = True
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return False

    cfg = tiny_cfg(tiny_model_dir, chat_jsonl, tmp_path / "run", **{
        "training.batch_size": 4, "training.gradient_accumulation": 2, "training.max_steps": 5,
        "training.eval_steps": 0})
    res = train(cfg, should_stop=oom_once, on_event=on_event)
    assert res.status == "completed"
    ooms = [r for r in seen if r["type"] == "oom_retry"]
    assert len(ooms) == 1 and ooms[0]["batch_size"] == 2 and ooms[0]["gradient_accumulation"] == 4
    saved = RunConfig.load(tmp_path / "run" / "config.json")
    assert (saved.training.batch_size, saved.training.gradient_accumulation) == (2, 4)
    assert steps(tmp_path / "run") == [1, 2, 3, 4, 5]


def test_oom_at_batch_one_says_what_to_change(tiny_model_dir, chat_jsonl, tmp_path):
    def oom():
        raise torch.OutOfMemoryError("CUDA out of memory")

    cfg = tiny_cfg(tiny_model_dir, chat_jsonl, tmp_path / "run", **{"training.batch_size": 1})
    with pytest.raises(TrainingError, match="micro-batch 1.*gradient_checkpointing"):
        train(cfg, should_stop=oom)
    assert read_status(tmp_path / "run")["status"] == "failed"


def test_export_merged_loads_with_plain_transformers(tiny_model_dir, chat_jsonl, tmp_path):
    from peft import AutoPeftModelForCausalLM
    from transformers import AutoModelForCausalLM

    from backend.export import export_merged
    res = train(tiny_cfg(tiny_model_dir, chat_jsonl, tmp_path / "run", **{"training.max_steps": 2}))
    out = export_merged(res.run_dir, tmp_path / "merged")
    merged = AutoModelForCausalLM.from_pretrained(out)
    peft_model = AutoPeftModelForCausalLM.from_pretrained(str(res.adapter_dir))
    x = torch.tensor([[5, 6, 7, 8]])
    with torch.no_grad():
        assert torch.allclose(merged(x).logits, peft_model(x).logits, atol=1e-4)
    with pytest.raises(RunError, match="not empty"):
        export_merged(res.run_dir, tmp_path / "merged")


def test_model_folder_problems(tmp_path, tiny_model_dir):
    from backend.models import resolve_model
    empty = tmp_path / "noweights"
    empty.mkdir()
    (empty / "config.json").write_text(json.dumps({"model_type": "llama"}))
    with pytest.raises(ModelError, match="no weights"):
        resolve_model(str(empty))
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    (pickled / "config.json").write_text("{}")
    (pickled / "pytorch_model.bin").write_bytes(b"x")
    with pytest.raises(ModelError, match="pickle.*allow_pickle_weights"):
        resolve_model(str(pickled))
    with pytest.raises(ModelError, match="hub access is off"):
        resolve_model("HuggingFaceTB/SmolLM2-360M")
    with pytest.raises(ModelError, match="not found"):
        resolve_model(str(tmp_path / "nope"))
    assert resolve_model(str(tiny_model_dir)) == str(tiny_model_dir)


def test_gguf_conversion_key_is_the_file_content(tmp_path, monkeypatch):
    """A model installed again (new path, new mtime) maps to its existing conversion; new content does not."""
    from backend import models

    monkeypatch.setenv("TUNE_STUDIO_CACHE", str(tmp_path / "cache"))
    a = tmp_path / "venv1" / "m.gguf"
    b = tmp_path / "venv2" / "m.gguf"
    for p in (a, b):
        p.parent.mkdir()
        p.write_bytes(b"GGUF" + bytes(range(256)) * 64)
    os.utime(b, (time.time() - 3600,) * 2)
    assert models.converted_dir(a) == models.converted_dir(b)
    assert models.converted_dir(a).parent == tmp_path / "cache" / "models"
    memo = json.loads((tmp_path / "cache" / "gguf-hashes.json").read_text())
    assert sorted(k.rsplit("|", 2)[0] for k in memo) == sorted([str(a.resolve()), str(b.resolve())])
    before = models.converted_dir(a)
    b.unlink()  # gone: forgotten at the next hashing
    a.write_bytes(b"GGUF other weights")  # changed in place: hashed again, another key
    assert models.converted_dir(a) != before
    memo = json.loads((tmp_path / "cache" / "gguf-hashes.json").read_text())
    assert [k.rsplit("|", 2)[0] for k in memo] == [str(a.resolve())]
    with pytest.raises(ModelError, match="cannot read the GGUF file"):
        models.convert_gguf(b)


def test_cli_train_and_bad_config(tiny_model_dir, chat_jsonl, tmp_path):
    from backend.cli import main
    cfg = tmp_path / "run.json"
    cfg.write_text(json.dumps({"training": {"max_step": 3}}))
    assert main(["train", str(cfg)]) == 2
    rc = main(["train", "--model", str(tiny_model_dir), "--data", str(chat_jsonl), "--output",
               str(tmp_path / "r"), "--max-steps", "2", "--set", "data.max_length=64",
               "--set", "training.eval_steps=0"])
    assert rc == 0 and (tmp_path / "r" / "adapter").exists()


def test_memory_estimate_grows_with_batch(tiny_model_dir):
    from backend.models import estimate_memory, model_info
    from backend.runtime import DeviceInfo
    info = model_info(str(tiny_model_dir))
    dev = DeviceInfo("cuda", "test", 8.0, True)
    small = estimate_memory(RunConfig(), info, dev)
    big = estimate_memory(RunConfig().with_overrides({"training.batch_size": 16}), info, dev)
    ckpt = estimate_memory(RunConfig().with_overrides({"training.batch_size": 16,
                                                       "training.gradient_checkpointing": True}), info, dev)
    assert big.total_gb > small.total_gb > 0 and ckpt.total_gb < big.total_gb
    assert small.trainable_params > 0


@pytest.mark.e2e
def test_default_model_five_lora_steps(chat_jsonl, tmp_path):
    from peft import AutoPeftModelForCausalLM
    from transformers import AutoTokenizer
    cfg = RunConfig().with_overrides({"data.train_files": [str(chat_jsonl)], "output_dir": str(tmp_path / "run"),
                                      "training.max_steps": 5, "data.max_length": 128,
                                      "training.batch_size": 2, "training.gradient_accumulation": 1,
                                      "training.eval_steps": 0})
    res = train(cfg)
    assert res.status == "completed"
    model = AutoPeftModelForCausalLM.from_pretrained(str(res.adapter_dir))
    tok = AutoTokenizer.from_pretrained(str(res.adapter_dir))
    enc = tok.apply_chat_template([{"role": "user", "content": "What is 2 plus 2?"}], add_generation_prompt=True,
                                  return_tensors="pt", return_dict=True)
    out = model.generate(**enc, max_new_tokens=8, do_sample=False)
    assert tok.decode(out[0][enc["input_ids"].shape[1]:]).strip()


@pytest.mark.e2e
def test_default_model_converted_once_when_two_callers_ask_at_once(tmp_path, monkeypatch):
    """The app resolves the model in the background while a chat or a run may ask for it too."""
    import threading

    from backend import models

    monkeypatch.setenv("TUNE_STUDIO_CACHE", str(tmp_path / "cache"))
    gguf = models.default_gguf_path()
    out = models.converted_dir(gguf)
    out.parent.mkdir(parents=True)
    stale = out.with_name(out.name + ".tmp-1-1")  # left by a process killed a day ago
    (stale / "x").mkdir(parents=True)
    os.utime(stale, (time.time() - 2 * 86400,) * 2)
    live = out.with_name(out.name + ".tmp-2-2")  # another process converting right now
    live.mkdir()
    # a conversion keyed by path and time (before content keys): unreachable now, removed
    legacy = out.with_name(gguf.stem + "-0123456789ab")
    other = out.with_name("Other-Model.Q8_0-ba9876543210")  # another GGUF's conversion: kept
    for d, source in ((legacy, {"gguf": "/gone/x.gguf"}), (other, {"gguf": "/x/Other.gguf", "sha256": "ba98"})):
        d.mkdir()
        (d / "config.json").write_text("{}")
        (d / "model.safetensors").write_bytes(b"")
        (d / "tune_studio_source.json").write_text(json.dumps(source))
    events: list[tuple[int, str]] = []
    results: list = [None, None]

    def call(i: int) -> None:
        results[i] = models.convert_gguf(gguf, on_event=lambda e: events.append((i, e["message"])))

    threads = [threading.Thread(target=call, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [out, out]
    assert sum("Converting" in m for _, m in events) == 1 and sum("Waiting" in m for _, m in events) == 1
    assert sorted(p.name for p in out.parent.iterdir()) == sorted([out.name, live.name, other.name])
    assert (out / "model.safetensors").is_file() and json.loads((out / "config.json").read_text())
    assert models.convert_gguf(gguf) == out  # cached
    # the same model installed again elsewhere (a new venv: new path, new mtime) converts nothing
    again = tmp_path / "venv2" / gguf.name
    again.parent.mkdir()
    shutil.copyfile(gguf, again)
    events.clear()
    assert models.convert_gguf(again, on_event=lambda e: events.append((0, e["message"]))) == out
    assert events == [] and len(list(out.parent.iterdir())) == 3

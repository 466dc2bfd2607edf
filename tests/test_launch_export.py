"""Beyond one machine: the same run under torchrun (CPU, gloo), and the exported run folder.

Real processes, real Trainer and PEFT on the tiny random-weight model.  Which
rows each rank trains on is observed, not mocked: a ``sitecustomize`` put on the
workers' ``PYTHONPATH`` wraps ``Trainer.training_step`` and records every
micro-batch the rank feeds to the model.
"""

import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from backend.config import RunConfig
from backend.events import read_events
from backend.training import read_status, train

REPO = Path(__file__).resolve().parents[1]

# Settings that make one process at batch 4 and two at batch 2 the same maths:
# no dropout, no length grouping (its mega-batches depend on the batch size), no
# packing, no warmup, no validation split, one optimizer step per micro-batch.
SAME_MATHS = {"data.max_length": 64, "data.validation_split": 0, "data.packing": False,
              "training.group_by_length": False, "method.lora_dropout": 0.0, "method.lora_r": 4,
              "training.gradient_accumulation": 1, "training.learning_rate": 1e-3,
              "training.warmup_ratio": 0.0, "training.eval_steps": 0, "training.seed": 7}


def _rows(inputs):
    """The rows of a padded micro-batch, padding removed."""
    ids, mask = inputs["input_ids"], inputs.get("attention_mask")
    if mask is None:
        return [r.tolist() for r in ids]
    return [r[m.bool()].tolist() for r, m in zip(ids, mask)]


# Put on a worker's PYTHONPATH as sitecustomize.py: records each rank's micro-batches.
PROBE = "import json, os\n" + inspect.getsource(_rows) + '''
if os.environ.get("TUNE_PROBE_DIR") and "LOCAL_RANK" in os.environ:
    import transformers
    _orig = transformers.Trainer.training_step
    def training_step(self, model, inputs, num_items_in_batch=None):
        path = os.path.join(os.environ["TUNE_PROBE_DIR"], "rank%s.jsonl" % os.environ["RANK"])
        with open(path, "a") as fh:
            fh.write(json.dumps({"step": self.state.global_step + 1, "rows": _rows(inputs)}) + "\\n")
        return _orig(self, model, inputs, num_items_in_batch)
    transformers.Trainer.training_step = training_step
'''


def cfg_for(model_dir, data, out, **over) -> RunConfig:
    base = {"model.name_or_path": str(model_dir), "data.train_files": [str(data)], "output_dir": str(out),
            **SAME_MATHS}
    base.update(over)
    return RunConfig().with_overrides(base)


def env_for(*paths) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([*map(str, paths), str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def train_losses(run_dir) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in read_events(Path(run_dir) / "metrics.jsonl") if r["type"] == "train"}


def adapters(run_dir) -> list[Path]:
    """Every adapter weights file in a run folder outside its checkpoints."""
    return [p for p in Path(run_dir).rglob("adapter_model.safetensors") if "checkpoints" not in p.parts]


def by_step(records) -> dict[int, list]:
    out: dict[int, list] = {}
    for r in records:
        out.setdefault(r["step"], []).extend(tuple(x) for x in r["rows"])
    return out


@pytest.mark.slow
def test_torchrun_two_ranks_shard_the_data_and_match_one_process(tiny_model_dir, chat_jsonl, tmp_path,
                                                                 monkeypatch):
    steps = 3
    # One process, batch 4: the reference, with the rows it trained on recorded in-process.
    import transformers
    seen_single: list[dict] = []
    orig = transformers.Trainer.training_step

    def recording(self, model, inputs, num_items_in_batch=None):
        seen_single.append({"step": self.state.global_step + 1, "rows": _rows(inputs)})
        return orig(self, model, inputs, num_items_in_batch)

    monkeypatch.setattr(transformers.Trainer, "training_step", recording)
    single = train(cfg_for(tiny_model_dir, chat_jsonl, tmp_path / "single",
                           **{"training.batch_size": 4, "training.max_steps": steps}))
    monkeypatch.undo()
    assert single.status == "completed"

    # Two processes, batch 2 each, launched exactly like a user would (plus the probe).
    probe, seen = tmp_path / "probe", tmp_path / "seen"
    probe.mkdir()
    seen.mkdir()
    (probe / "sitecustomize.py").write_text(PROBE)
    run = tmp_path / "ddp"
    sets = [a for k, v in SAME_MATHS.items() for a in ("--set", f"{k}={v}")]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes", "1", "--nproc_per_node", "2",
           "-m", "backend", "train", "--model", str(tiny_model_dir), "--data", str(chat_jsonl), "--output", str(run),
           "--max-steps", str(steps), "--set", "training.batch_size=2", *sets]
    env = env_for(probe)
    env["TUNE_PROBE_DIR"] = str(seen)
    res = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]

    # rank 0 alone wrote the run folder: one status, one record per step, one adapter
    assert read_status(run)["status"] == "completed"
    assert sorted(train_losses(run)) == list(range(1, steps + 1))
    assert [r["step"] for r in read_events(run / "metrics.jsonl") if r["type"] == "train"] == [1, 2, 3]
    assert adapters(run) == [run / "adapter" / "adapter_model.safetensors"]
    assert not list(run.glob(".adapter*"))
    logs = [r["message"] for r in read_events(run / "metrics.jsonl") if r["type"] == "log"]
    assert any("Distributed: 2 processes" in m and "gloo" in m for m in logs), logs

    # each rank trained on its own shard; together they saw exactly the one-process batches
    ranks = [by_step(json.loads(line) for line in (seen / f"rank{r}.jsonl").read_text().splitlines())
             for r in (0, 1)]
    single_rows = by_step(seen_single)
    assert sorted(ranks[0]) == sorted(ranks[1]) == list(range(1, steps + 1))
    for step in range(1, steps + 1):
        r0, r1 = ranks[0][step], ranks[1][step]
        assert len(r0) == len(r1) == 2
        assert not set(r0) & set(r1), f"both ranks trained on the same rows at step {step}"
        assert sorted(r0 + r1) == sorted(single_rows[step])
    everything = [row for rk in ranks for rows in rk.values() for row in rows]
    assert len(set(everything)) == len(everything) == 4 * steps

    # the same effective batch gives the same loss, step by step, and the same adapter
    ddp_loss, single_loss = train_losses(run), train_losses(single.run_dir)
    for step in range(1, steps + 1):
        assert ddp_loss[step] == pytest.approx(single_loss[step], rel=1e-5), (step, ddp_loss, single_loss)
    from safetensors.torch import load_file
    a = load_file(run / "adapter" / "adapter_model.safetensors")
    b = load_file(single.adapter_dir / "adapter_model.safetensors")
    assert a.keys() == b.keys()
    diff = torch.cat([(a[k] - b[k]).flatten() for k in a]).norm()
    ref = torch.cat([b[k].flatten() for k in b]).norm()
    assert diff <= 1e-4 * ref, (float(diff), float(ref))  # measured: ~1e-8 relative


def test_distributed_run_needs_a_named_run_folder(tiny_model_dir, chat_jsonl, tmp_path, monkeypatch):
    from backend.errors import ConfigError
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ConfigError, match="--output"):  # else each process would pick its own folder
        train(cfg_for(tiny_model_dir, chat_jsonl, "", **{"output_dir": ""}))
    assert not (tmp_path / "runs").exists()


# ---------------------------------------------------------------------------
# the exported folder

def mixed_sources(tmp_path) -> dict:
    """Files in several formats: alpaca (mapped columns, a system column, a duplicate),
    prompt/completion (strings and message lists), plain text, and a document."""
    d = tmp_path / "src"
    d.mkdir()
    qa = [{"question": f"Capital of country {i}?", "answer": f"City {i}.", "system": "Be brief." if i % 2 else ""}
          for i in range(6)]
    qa.append(dict(qa[0]))  # an exact duplicate: removed
    (d / "qa.jsonl").write_text("".join(json.dumps(r) + "\n" for r in qa))
    pc = [{"prompt": f"Count to {i}:", "completion": " ".join(map(str, range(1, i + 2)))} for i in range(3)]
    pc += [{"prompt": [{"role": "user", "content": f"Say {w}"}], "completion": [{"role": "assistant", "content": w}]}
           for w in ("yes", "no")]
    (d / "pc.jsonl").write_text("".join(json.dumps(r) + "\n" for r in pc))
    (d / "notes.txt").write_text("Plain text line one.\nPlain text line two.\n")
    (d / "manual.md").write_text("# Manual\n\n" + "The device has a red button. " * 20)
    return {"data.train_files": [str(d / "qa.jsonl"), str(d / "pc.jsonl"), str(d / "notes.txt")],
            "data.document_files": [str(d / "manual.md")], "data.document_chunk_size": 200,
            "data.column_mapping": {"question": "instruction", "answer": "output"},
            "data.system_prompt": "You are helpful.", "data.validation_split": 0.25}


@pytest.mark.parametrize("validation", ["split", "files"])
def test_exported_dataset_prepares_to_the_same_rows(validation, tiny_model_dir, tmp_path, monkeypatch):
    from backend.data import prepare
    from backend.launch_export import export_run
    from backend.models import load_tokenizer

    over = mixed_sources(tmp_path)
    if validation == "files":
        val = tmp_path / "src" / "val.jsonl"
        val.write_text(json.dumps({"question": "Capital of country 9?", "answer": "City 9."}) + "\n"
                       + json.dumps({"question": "Capital of country 0?", "answer": "City 0."}) + "\n")  # dup
        over["data.validation_files"] = [str(val)]
    cfg = cfg_for(tiny_model_dir, "unused", tmp_path / "run", **over)
    tok = load_tokenizer(str(tiny_model_dir))
    before = prepare(cfg, tok)

    out = tmp_path / "export"
    res = export_run(cfg, out)
    exported = RunConfig.load(out / "config.json")
    d = exported.data
    assert d.format == "auto" and d.column_mapping == {} and d.system_prompt == "" and d.document_files == []
    assert exported.output_dir == ""
    for f in d.train_files + d.validation_files:
        assert not Path(f).is_absolute() and (out / f).is_file()
    assert res.train_files == d.train_files and len(d.train_files) >= 4  # one format per file, order kept

    monkeypatch.chdir(out)  # the launch scripts run from the folder
    after = prepare(exported, tok)
    assert after.train == before.train
    assert after.eval == before.eval
    assert after.report["rows_kept"] == before.report["rows_kept"]


def test_export_run_cli_writes_a_complete_folder(tiny_model_dir, chat_jsonl, tmp_path):
    import yaml
    from accelerate.commands.config.config_args import load_config_from_file

    from backend.cli import main

    run = tmp_path / "runs" / "20260101-120000-demo"
    run.mkdir(parents=True)
    cfg = cfg_for(tiny_model_dir, chat_jsonl, run, name="demo")
    (run / "config.json").write_text(cfg.to_json())
    out = tmp_path / "cluster"
    assert main(["export-run", str(run), str(out), "--gpus", "4", "--nodes", "2"]) == 0

    for f in ("config.json", "README.md", "launch_torchrun.sh", "launch_accelerate.sh", "slurm.sbatch",
              "accelerate_ddp.yaml", "accelerate_fsdp.yaml"):
        assert (out / f).is_file(), f
    assert len(list((out / "data").glob("*.jsonl"))) == 1
    for script in ("launch_torchrun.sh", "launch_accelerate.sh", "slurm.sbatch"):
        assert os.access(out / script, os.X_OK), script
        check = subprocess.run(["bash", "-n", str(out / script)], capture_output=True, text=True)
        assert check.returncode == 0, (script, check.stderr)

    ddp = yaml.safe_load((out / "accelerate_ddp.yaml").read_text())
    fsdp = yaml.safe_load((out / "accelerate_fsdp.yaml").read_text())
    assert ddp["distributed_type"] == "MULTI_GPU" and fsdp["distributed_type"] == "FSDP"
    for c in (ddp, fsdp):
        assert (c["num_processes"], c["num_machines"], c["machine_rank"]) == (8, 2, 0)
    assert fsdp["fsdp_config"]["fsdp_auto_wrap_policy"] == "TRANSFORMER_BASED_WRAP"
    for f in ("accelerate_ddp.yaml", "accelerate_fsdp.yaml"):  # accelerate's own loader accepts them
        assert load_config_from_file(str(out / f)).num_processes == 8

    sbatch = (out / "slurm.sbatch").read_text()
    assert "#SBATCH --nodes=2" in sbatch and "#SBATCH --gpus-per-node=4" in sbatch and "srun" in sbatch
    torchrun = (out / "launch_torchrun.sh").read_text()
    assert 'NPROC_PER_NODE="${NPROC_PER_NODE:-4}"' in torchrun and "-m backend" in torchrun
    readme = (out / "README.md").read_text()
    for cmd in ("./launch_torchrun.sh", "./launch_accelerate.sh", "ACCELERATE_CONFIG=accelerate_fsdp.yaml",
                "sbatch slurm.sbatch", "MODE=resume", "runs/demo"):
        assert cmd in readme, cmd
    exported = RunConfig.load(out / "config.json")
    assert exported.model.name_or_path == str(tiny_model_dir) and exported.data.train_files == [
        "data/train-01-chat.jsonl"]

    assert main(["export-run", str(run), str(out)]) == 2  # not empty
    assert main(["export-run", str(tmp_path / "nope"), str(tmp_path / "x")]) == 2


@pytest.mark.slow
def test_exported_torchrun_script_trains(tiny_model_dir, chat_jsonl, tmp_path):
    from backend.launch_export import export_run

    cfg = cfg_for(tiny_model_dir, chat_jsonl, tmp_path / "run", name="tiny", **{"training.batch_size": 2})
    out = export_run(cfg, tmp_path / "export", gpus=1, copy_model=True).out
    assert RunConfig.load(out / "config.json").model.name_or_path == "model"
    env = env_for()
    env.update(PYTHON=sys.executable, NPROC_PER_NODE="1")
    res = subprocess.run([str(out / "launch_torchrun.sh"), "--max-steps", "2"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    run = out / "runs" / "tiny"
    assert read_status(run)["status"] == "completed"
    assert [r["step"] for r in read_events(run / "metrics.jsonl") if r["type"] == "train"] == [1, 2]
    assert adapters(run) == [run / "adapter" / "adapter_model.safetensors"]
    saved = RunConfig.load(run / "config.json")
    assert saved.data.train_files == ["data/train-01-chat.jsonl"] and saved.model.name_or_path == "model"

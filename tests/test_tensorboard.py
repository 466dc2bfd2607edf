"""Every run also writes TensorBoard event files, through the Trainer's own reporting (docs/architecture.md, "Training")."""

from __future__ import annotations

from pathlib import Path

from backend import runs
from backend.config import RunConfig
from backend.events import read_events
from backend.training import train


def test_a_run_writes_tensorboard_events_that_tensorboard_reads(tiny_model_dir, chat_jsonl, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / "run"
    cfg = RunConfig().with_overrides({
        "model.name_or_path": str(tiny_model_dir), "data.train_files": [str(chat_jsonl)], "output_dir": str(run),
        "data.max_length": 64, "data.validation_split": 0.2, "training.batch_size": 2,
        "training.gradient_accumulation": 1, "training.max_steps": 4, "training.save_steps": 4,
        "training.eval_steps": 2, "training.logging_steps": 1, "training.learning_rate": 1e-3,
        "training.warmup_ratio": 0.0, "method.lora_r": 4, "training.answer_check": False})
    assert train(cfg).status == "completed"
    folder = runs.tensorboard_dir(run)
    assert folder == run / "tensorboard"
    files = list(folder.glob("events.out.tfevents.*"))
    assert files, f"no event file in {folder}: {list(folder.iterdir()) if folder.exists() else 'missing'}"
    assert not (runs.checkpoints_dir(run) / "runs").exists()  # not the callback's default place
    acc = EventAccumulator(str(folder))
    acc.Reload()
    tags = acc.Tags()["scalars"]
    assert {"train/loss", "train/learning_rate", "eval/loss"} <= set(tags), tags
    # the same losses as metrics.jsonl, step for step
    tb = {e.step: e.value for e in acc.Scalars("train/loss")}
    ours = {r["step"]: r["loss"] for r in read_events(Path(run) / "metrics.jsonl")
            if r["type"] == "train" and r.get("loss") is not None}
    assert sorted(tb) == sorted(ours) == [1, 2, 3, 4]
    assert all(abs(tb[s] - ours[s]) < 1e-4 * max(1.0, abs(ours[s])) for s in ours), (tb, ours)
    assert [e.step for e in acc.Scalars("eval/loss")] == [2, 4]

"""A checkpoint from elsewhere whose pickle would run code: nothing runs, and the message is in words (issue 27)."""

from __future__ import annotations

from pathlib import Path

import torch

from backend.cli import main
from backend.config import RunConfig
from backend.training import latest_checkpoint, train


def tiny_cfg(model_dir, data, out, **over) -> RunConfig:
    base = {"model.name_or_path": str(model_dir), "data.train_files": [str(data)], "output_dir": str(out),
            "data.max_length": 64, "data.validation_split": 0.2, "training.batch_size": 2,
            "training.gradient_accumulation": 1, "training.learning_rate": 1e-3, "training.warmup_ratio": 0.0,
            "method.lora_r": 4}
    return RunConfig().with_overrides({**base, **over})


class _Payload:
    """Unpickling this calls ``open(marker, "w")``: the file appears if any of its code runs."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_malicious_checkpoint_pickle_runs_no_code_and_says_so(tiny_model_dir, chat_jsonl, tmp_path, capsys,
                                                              monkeypatch):
    monkeypatch.setenv("TUNE_STUDIO_HOME", str(tmp_path / "home"))
    run = tmp_path / "run"
    seen = {"step": 0}
    cfg = tiny_cfg(tiny_model_dir, chat_jsonl, run, **{"training.max_steps": 6, "training.save_steps": 2})
    res = train(cfg, on_event=lambda r: seen.update(step=r.get("step", seen["step"])),
                should_stop=lambda: seen["step"] >= 2)
    assert res.status == "cancelled"
    ck = latest_checkpoint(run)
    assert ck is not None and (ck / "rng_state.pth").is_file()
    marker = tmp_path / "pwned"
    torch.save({"python": _Payload(marker)}, ck / "rng_state.pth")
    assert not marker.exists()

    rc = main(["resume", str(run)])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert not marker.exists(), "the checkpoint's pickle ran code"
    assert "rng_state.pth" in err and "could run code, so it was not loaded" in err and "training_args" not in err
    assert "weights_only" not in err and "Traceback" not in err
    assert "delete this checkpoint folder" in err

"""A copied run folder can't switch on remote code or pickle weights (trust is this machine's answer)."""

from __future__ import annotations

import json
import shutil

import pytest

from backend import runs
from backend.config import RunConfig
from backend.trust import restrict


def _planted_run(tmp_path, tiny_model_dir):
    """A completed run whose config asks for remote code, with an adapter whose tokenizer carries auto_map."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    run = tmp_path / "runs" / "copied"
    run.mkdir(parents=True)
    cfg = RunConfig.from_dict({"model": {"name_or_path": str(tiny_model_dir), "trust_remote_code": True,
                                         "allow_pickle_weights": True}})
    runs.config_path(run).write_text(json.dumps(cfg.to_dict()))
    torch.manual_seed(0)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model_dir),
                           LoraConfig(r=2, target_modules=["q_proj"]))
    adapter = runs.adapter_dir(run)
    model.save_pretrained(adapter)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if (tiny_model_dir / name).exists():
            shutil.copy(tiny_model_dir / name, adapter / name)
    marker = tmp_path / "EXECUTED"
    (adapter / "evil_tok.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n"
                                         "from transformers import PreTrainedTokenizerFast as EvilTokenizer\n")
    tc = json.loads((adapter / "tokenizer_config.json").read_text())
    tc["auto_map"] = {"AutoTokenizer": [None, "evil_tok.EvilTokenizer"]}
    (adapter / "tokenizer_config.json").write_text(json.dumps(tc))
    runs.write_status(run, "completed")
    return run, marker


def test_run_folder_cannot_switch_on_remote_code(tmp_path, tiny_model_dir):
    from backend.rag.chat_model import load_chat_model

    run, marker = _planted_run(tmp_path, tiny_model_dir)
    said = []
    try:
        load_chat_model(run, on_event=said.append)
    except Exception:
        pass  # refusing to load is fine too; running the file is not
    assert not marker.exists(), "the run folder's code was executed"
    warnings = [e["message"] for e in said if e.get("type") == "log" and e.get("level") == "warning"]
    assert any("asks for trust_remote_code" in w and "--trust-remote-code" in w for w in warnings)


def test_restrict_keeps_the_machine_answer():
    cfg = RunConfig.from_dict({"model": {"trust_remote_code": True, "allow_pickle_weights": True}})
    fixed, said = restrict(cfg, source="The run folder x")
    assert not fixed.model.trust_remote_code and not fixed.model.allow_pickle_weights
    assert len(said) == 2 and said[0].startswith("The run folder x asks for trust_remote_code")
    fixed, said = restrict(cfg, trust_remote_code=True)
    assert fixed.model.trust_remote_code and not fixed.model.allow_pickle_weights and len(said) == 1
    clean, said = restrict(RunConfig())
    assert said == []


def test_resume_does_not_take_trust_from_the_run_folder(tmp_path, tiny_model_dir):
    from backend.errors import TuneError
    from backend.training import resume

    run, marker = _planted_run(tmp_path, tiny_model_dir)
    runs.write_status(run, "cancelled")
    shutil.rmtree(runs.adapter_dir(run))
    said = []
    with pytest.raises(TuneError):
        resume(run, on_event=said.append)  # no data files: it fails after the trust check
    assert any("asks for trust_remote_code" in (e.get("message") or "") for e in said)


def test_completed_run_whose_adapter_was_deleted_says_so(tmp_path, tiny_model_dir):
    from backend.errors import RunError
    from backend.rag.chat_model import load_chat_model

    run, _ = _planted_run(tmp_path, tiny_model_dir)
    shutil.rmtree(runs.adapter_dir(run))
    with pytest.raises(RunError, match="the run completed, but its adapter/ .* is gone.*put the folder back"):
        load_chat_model(run)

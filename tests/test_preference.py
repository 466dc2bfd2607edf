"""Preference tuning (DPO, ORPO) on LoRA from the expert's corrections (backend/training/preference.py)."""

from __future__ import annotations

import json
import math

import pytest
import torch

from backend import corrections, methods
from backend.config import RunConfig
from backend.errors import ConfigError, DataError
from backend.events import read_events
from backend.training import preference, train

PAIRS = [("What does error E4 mean?", "The Wi-Fi password was rejected.", "The battery is low."),
         ("How long is the warranty?", "Two years from purchase.", "Ninety days only."),
         ("What is the default geofence radius?", "Five hundred metres.", "Two kilometres."),
         ("Can it be mounted outdoors?", "No, indoor use only.", "Yes, it is weatherproof.")]


def _project_with_corrections(root):
    for q, good, bad in PAIRS:
        corrections.add(root, q, good, rejected=bad, mode="tuned+rag", run="r1")
    corrections.add(root, "Old row?", "Only the answer.")  # no rejected answer: SFT only, not a pair
    return corrections.corrections_path(root)


def _cfg(model_dir, data, out, method, **over):
    base = {"model.name_or_path": str(model_dir), "data.train_files": [str(data)], "output_dir": str(out),
            "method.method": method, "data.max_length": 64, "data.validation_split": 0.0,
            "training.batch_size": 2, "training.gradient_accumulation": 1, "training.max_steps": 12,
            "training.save_steps": 12, "training.eval_steps": 0, "training.learning_rate": 5e-3,
            "training.warmup_ratio": 0.0, "method.lora_r": 8, "method.lora_alpha": 16,
            "method.lora_dropout": 0.0, "training.answer_check": False}
    base.update(over)
    return RunConfig().with_overrides(base)


def _margin(model, tokenizer, data) -> float:
    """Mean log p(chosen) - log p(rejected) over the pairs of ``data``."""
    rows, _ = preference.encode_pairs(preference.read_pairs([data]), tokenizer, 64)
    batch = preference.PairCollator(tokenizer.eos_token_id)(rows)
    model.eval()
    with torch.no_grad():
        logps, _ = preference.sequence_logps(model, batch)
    b = len(rows)
    return float((logps[:b] - logps[b:]).mean())


def test_the_registry_has_dpo_and_orpo_on_lora():
    for name in ("dpo", "orpo"):
        m = methods.get(name)
        assert m.family == "lora" and m.is_adapter and m.is_preference and m.objective == name
        assert "method.pref_beta" in m.fields
    assert not methods.get("lora").is_preference
    RunConfig().with_overrides({"method.method": "dpo"})  # packing on (the default) is fine: pairs are padded
    with pytest.raises(ConfigError, match="pref_beta"):
        RunConfig().with_overrides({"method.method": "dpo", "method.pref_beta": 0})


def test_pairs_come_from_corrections_and_prompt_chosen_rejected_rows(tmp_path):
    fb = _project_with_corrections(tmp_path)
    other = tmp_path / "pairs.jsonl"
    other.write_text("\n".join([
        json.dumps({"prompt": "Q?", "chosen": "Yes.", "rejected": "No."}),
        json.dumps({"prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Q2?"}],
                    "chosen": "A.", "rejected": "B."}),
        json.dumps({"prompt": "Q3?", "chosen": "", "rejected": "B."}),
        json.dumps({"messages": [{"role": "user", "content": "plain"}, {"role": "assistant", "content": "row"}]}),
    ]) + "\n")
    skipped: list = []
    pairs = preference.read_pairs([fb, other], skipped)
    assert [p["chosen"] for p in pairs] == [g for _, g, _ in PAIRS] + ["Yes.", "A."]
    assert pairs[0]["prompt"] == [{"role": "user", "content": PAIRS[0][0]}] and pairs[0]["rejected"] == PAIRS[0][2]
    assert pairs[-1]["prompt"][0] == {"role": "system", "content": "Be brief."}
    assert [s.line for s in skipped] == [3] and "'chosen'" in skipped[0].what


def test_pairs_are_encoded_with_answer_labels_only(tmp_path, tiny_model_dir):
    from backend.models import load_tokenizer

    tok = load_tokenizer(str(tiny_model_dir))
    rows, counts = preference.encode_pairs(preference.read_pairs([_project_with_corrections(tmp_path)]), tok, 64)
    assert counts == {"pairs": 4, "truncated": 0, "dropped": 0} and len(rows) == 4
    for r in rows:
        for side, text in (("chosen", None), ("rejected", None)):
            ids, labels = r[f"{side}_input_ids"], r[f"{side}_labels"]
            trained = [i for i, x in zip(ids, labels) if x != -100]
            assert trained and labels[0] == -100
    answer = tok.decode([i for i, x in zip(rows[0]["chosen_input_ids"], rows[0]["chosen_labels"]) if x != -100])
    assert "The Wi-Fi password was rejected." in answer and "E4" not in answer


def test_the_losses_match_their_formulas():
    policy = torch.tensor([-5.0, -7.0, -9.0, -6.0])    # chosen rows 0-1, rejected rows 2-3
    reference = torch.tensor([-6.0, -7.0, -8.0, -6.0])
    loss, m = preference.preference_loss("dpo", 0.5, policy, torch.tensor([5, 7, 9, 6]), reference)
    z = torch.tensor([0.5 * ((-5 + 6) - (-9 + 8)), 0.5 * ((-7 + 7) - (-6 + 6))])
    assert math.isclose(loss.item(), float(-torch.nn.functional.logsigmoid(z).mean()), rel_tol=1e-6)
    assert math.isclose(m["rewards/margins"], float(z.mean()), rel_tol=1e-6) and m["rewards/accuracies"] == 0.5
    loss, m = preference.preference_loss("orpo", 0.1, policy, torch.tensor([5, 7, 9, 6]))
    mc, mr = torch.tensor([-1.0, -1.0]), torch.tensor([-1.0, -1.0])
    assert math.isclose(loss.item(), 1.0 - 0.1 * math.log(0.5), rel_tol=1e-5)  # equal odds: log sigma(0)
    with pytest.raises(ValueError, match="reference"):
        preference.preference_loss("dpo", 0.1, policy, torch.tensor([1, 1, 1, 1]))


@pytest.mark.parametrize("method", ["dpo", "orpo"])
def test_a_preference_run_raises_the_chosen_over_rejected_margin(method, tmp_path, tiny_model_dir):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from backend.models import load_tokenizer

    fb = _project_with_corrections(tmp_path / "p")
    run = tmp_path / "run"
    res = train(_cfg(tiny_model_dir, fb, run, method))
    assert res.status == "completed" and (run / "adapter" / "adapter_config.json").exists()
    tok = load_tokenizer(str(tiny_model_dir))
    base = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir))
    before = _margin(base, tok, fb)
    tuned = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(str(tiny_model_dir)), str(run / "adapter"))
    after = _margin(tuned, tok, fb)
    assert after > before + 1.0, (before, after)
    # the reward margins are in the train events (and so in metrics.jsonl and TensorBoard)
    recs = [r for r in read_events(run / "metrics.jsonl") if r["type"] == "train"]
    assert all(r.get("reward_margin") is not None and r.get("logps_chosen") is not None for r in recs)
    assert recs[-1]["reward_margin"] > recs[0]["reward_margin"]
    report = json.loads((run / "data_report.json").read_text())
    assert report["objective"] == method and report["rows"] == 4


def test_a_preference_run_without_pairs_says_how_to_make_some(tmp_path, tiny_model_dir, chat_jsonl):
    with pytest.raises(DataError, match="hold none.*Wrong\\? Correct it"):
        train(_cfg(tiny_model_dir, chat_jsonl, tmp_path / "run", "dpo"))


def test_tune_train_method_dpo(tmp_path, tiny_model_dir, capsys):
    from backend.cli import main as tune

    fb = _project_with_corrections(tmp_path / "p")
    rc = tune(["train", "--method", "dpo", "--model", str(tiny_model_dir), "--data", str(fb),
               "--output", str(tmp_path / "run"), "--max-steps", "2", "--set", "data.validation_split=0",
               "--set", "training.answer_check=false", "--set", "training.eval_steps=0"])
    assert rc == 0, capsys.readouterr().err
    cfg = json.loads((tmp_path / "run" / "config.json").read_text())
    assert cfg["method"]["method"] == "dpo"


def test_the_estimate_counts_a_pair_as_two_sequences_and_dpo_its_reference_pass(tiny_model_dir):
    from backend.models import estimate_memory, estimate_step_seconds, model_info
    from backend.runtime import detect_device

    info, dev = model_info(str(tiny_model_dir)), detect_device("cpu")
    lora = RunConfig()
    dpo, orpo = (lora.with_overrides({"method.method": m}) for m in ("dpo", "orpo"))
    step = estimate_step_seconds(lora, info, dev)
    assert estimate_step_seconds(dpo, info, dev) == pytest.approx(8 / 3 * step)
    assert estimate_step_seconds(orpo, info, dev) == pytest.approx(2 * step)
    assert estimate_memory(dpo, info, dev).tokens_per_step == 2 * estimate_memory(lora, info, dev).tokens_per_step

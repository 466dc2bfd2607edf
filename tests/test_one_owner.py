"""Rules written once: each has one owner module that every user imports (docs/architecture.md, "Layers")."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_stamped_path_counts_up_while_the_name_is_taken(tmp_path, monkeypatch):
    from backend import fsutil

    monkeypatch.setattr(fsutil, "timestamp", lambda: "20260102-030405")
    first = fsutil.stamped_path(tmp_path, "transcript-", ".jsonl")
    assert first == tmp_path / "transcript-20260102-030405.jsonl"
    first.write_text("")
    second = fsutil.stamped_path(tmp_path, "transcript-", ".jsonl")
    assert second == tmp_path / "transcript-20260102-030405-2.jsonl"
    second.mkdir()  # a folder takes the name too
    assert fsutil.stamped_path(tmp_path, "transcript-", ".jsonl").name == "transcript-20260102-030405-3.jsonl"
    assert fsutil.stamped_path(tmp_path, tail="-my-run") == tmp_path / "20260102-030405-my-run"


def test_every_stamped_name_comes_from_the_one_helper(tmp_path, monkeypatch):
    """A run folder, a transcript cleared twice in one second, a damaged index moved aside twice."""
    from backend import fsutil, transcript
    from backend.rag import storecheck
    from backend.workspace import new_run_dir

    monkeypatch.setattr(fsutil, "timestamp", lambda: "20260102-030405")
    run = new_run_dir(tmp_path / "runs", "my run!")
    assert run.name == "20260102-030405-my-run"
    run.mkdir(parents=True)
    assert new_run_dir(tmp_path / "runs", "my run!").name == "20260102-030405-my-run-2"
    chat = tmp_path / "chat" / "transcript.jsonl"
    chat.parent.mkdir()
    moved = []
    for _ in range(2):
        chat.write_text('{"v": 1}\n')
        moved.append(transcript.archive(chat).name)
    assert moved == ["transcript-20260102-030405.jsonl", "transcript-20260102-030405-2.jsonl"]
    index = tmp_path / "index"
    aside = []
    for _ in range(2):
        index.mkdir()
        aside.append(storecheck.move_aside(index).name)
    assert aside == ["index.broken-20260102-030405", "index.broken-20260102-030405-2"]
    # and nobody else formats the stamp
    copies = [str(p.relative_to(ROOT)) for pkg in ("backend", "desktop") for p in sorted((ROOT / pkg).rglob("*.py"))
              if "%Y%m%d-%H%M%S" in p.read_text(encoding="utf-8") and p.name != "fsutil.py"]
    assert not copies, f"use backend.fsutil.stamped_path / timestamp instead: {copies}"


def test_the_answer_modes_are_listed_once():
    from backend.rag import chain, evaluate, modes
    from desktop import eval_adapter

    assert chain.MODES is modes.MODES and evaluate.MODES is modes.MODES and eval_adapter.MODES is modes.MODES
    pattern = re.compile(r"""\(\s*["']tuned\+rag["'],\s*["']tuned["'],\s*["']base\+rag["'],\s*["']base["']\s*\)""")
    copies = [str(p.relative_to(ROOT)) for pkg in ("backend", "desktop") for p in sorted((ROOT / pkg).rglob("*.py"))
              if pattern.search(p.read_text(encoding="utf-8")) and p.name != "modes.py"]
    assert not copies, f"import MODES from backend.rag.modes: {copies}"


def _info():
    from backend.models import ModelInfo

    return ModelInfo(path="", architecture="LlamaForCausalLM", model_type="llama", parameters=1_000_000,
                     hidden_size=64, layers=2, heads=4, kv_heads=2, intermediate_size=128, vocab_size=100,
                     max_positions=256, tied_embeddings=True, chat_template=True)


def test_every_method_has_a_trainable_parameter_count():
    """The memory estimate counts each method's own parameters, never "all of them" by accident."""
    from backend import methods
    from backend.models import trainable_parameters

    counts = {name: trainable_parameters(_info(), name, 8, [], 20) for name in methods.NAMES}
    assert all(n > 0 for n in counts.values()), counts
    assert counts["full"] == 1_000_000 and all(n < 1_000_000 for k, n in counts.items() if k != "full"), counts
    assert counts["dora"] > counts["lora"] == counts["rslora"]


def test_a_method_without_a_count_is_an_error_not_every_weight(monkeypatch):
    import pytest

    from backend import methods
    from backend.models import trainable_parameters

    with pytest.raises(KeyError, match="unknown method 'nope'; choose one of lora"):
        trainable_parameters(_info(), "nope", 8, [], 20)
    monkeypatch.setitem(methods.METHODS, "loha", methods.Method("loha", "loha", "adapter", True, True, True, False,
                                                                True, True, (), "LoHa"))
    with pytest.raises(NotImplementedError, match="no count for method 'loha' .family 'loha'.; add one there"):
        trainable_parameters(_info(), "loha", 8, [], 20)


def test_a_run_ends_with_one_result_type_in_process_and_in_the_training_child():
    """The Train page reads what `supervise` returns exactly as what `train` returns (backend.runs.RunResult)."""
    import inspect

    from backend import runs
    from backend.training import engine
    from desktop import train_process

    assert engine.RunResult is runs.RunResult and train_process.RunResult is runs.RunResult
    for fn in (engine.train, engine.resume, train_process.supervise):
        assert inspect.signature(fn).return_annotation == "RunResult", fn
    assert not hasattr(train_process, "TrainOutcome")
    res = runs.RunResult(Path("r"), "completed", None)
    assert res.to_dict() == {"run_dir": "r", "status": "completed", "adapter_dir": None, "reason": "", "metrics": None}


def test_run_config_and_answer_settings_files_are_read_by_one_helper(tmp_path):
    """`RunConfig.load` and `AnswerSettings.load` (backend.fields.load_file) say the same about the same bad file."""
    import pytest

    from backend.config import RunConfig
    from backend.errors import ConfigError
    from backend.rag.settings import AnswerSettings

    bad = {"latin1.json": "{\"x\": \"caf\xe9\"}".encode("latin-1"), "broken.json": b"{\"a\": ", "list.json": b"[1, 2]",
           "deep.json": b"[" * 100_000 + b"]" * 100_000, "unknown.json": b"{\"nope\": 1}"}
    for name, data in bad.items():
        (tmp_path / name).write_bytes(data)
    for cls, what in ((RunConfig, "config file"), (AnswerSettings, "settings file")):
        for name, match in (("latin1.json", f"the {what} is not UTF-8 text"), ("broken.json", "not valid JSON: "),
                            ("list.json", f"a {what} must hold a JSON object"), ("deep.json", "not valid JSON"),
                            ("missing.json", f"cannot read the {what}"), ("unknown.json", "nope")):
            with pytest.raises(ConfigError, match=match) as e:
                cls.load(tmp_path / name)
            assert e.value.file == str(tmp_path / name), (cls, name)
    (tmp_path / "good.json").write_text(AnswerSettings().to_json(), encoding="utf-8")
    assert AnswerSettings.load(tmp_path / "good.json") == AnswerSettings()
    (tmp_path / "run.json").write_text(RunConfig().to_json(), encoding="utf-8")
    assert RunConfig.load(tmp_path / "run.json").to_dict() == RunConfig().to_dict()

"""The event vocabulary (backend/events.py): typed records, one JSON encoding, unknown types fail loudly."""

import dataclasses
import json
from pathlib import Path

import pytest

from backend import events as ev


def test_every_type_round_trips_through_the_one_encoding():
    samples = {
        ev.PROGRESS: ev.progress("embed", 3, 10, "Embedding…"),
        ev.LOG: ev.log("hello", level="warning"),
        ev.TRAIN: ev.event(ev.TRAIN, step=1, max_steps=4, loss=2.5, tokens_seen=100),
        ev.EVAL: ev.event(ev.EVAL, step=2, eval_loss=1.5, perplexity=4.48),
        ev.CHECKPOINT: ev.event(ev.CHECKPOINT, step=2, path="/x/checkpoint-2"),
        ev.OOM_RETRY: ev.event(ev.OOM_RETRY, step=2, batch_size=2, gradient_accumulation=4, message="m"),
        ev.STARTED: ev.event(ev.STARTED, run_dir="/x", config={"name": "n"}),
        ev.FINISHED: ev.event(ev.FINISHED, status="completed", run_dir="/x", adapter_dir="/x/adapter"),
        ev.ANSWER_START: ev.event(ev.ANSWER_START, mode="tuned"),
        ev.TOKEN: ev.event(ev.TOKEN, mode="tuned", text="Hi"),
        ev.SOURCES: ev.event(ev.SOURCES, mode="tuned+rag", sources=[{"source": "a.md"}]),
        ev.ANSWER: ev.event(ev.ANSWER, mode="tuned", answer={"text": "Hi"}),
        ev.ANSWER_CHECK: ev.event(ev.ANSWER_CHECK, status="done", verdict="helped", n=6, tuned_right=5,
                                  base_right=3, message="Tuning helped.", questions=[{"question": "q?"}]),
        ev.RESULT: ev.event(ev.RESULT, value={"rows": [1, 2], "overlap": []}),
    }
    assert set(samples) == set(ev.EVENT_TYPES)
    for t, rec in samples.items():
        assert rec["type"] == t and isinstance(rec["time"], float)
        line = ev.encode(rec)
        assert "\n" not in line and ev.decode(line) == json.loads(line) == rec
        typed = ev.from_dict(rec)
        assert type(typed) is ev.EVENT_CLASSES[t] and typed.to_dict() == rec and typed.to_json() == line


def test_unknown_types_and_fields_fail_loudly():
    with pytest.raises(ev.EventError, match="unknown event type 'paused'"):
        ev.event("paused", step=3)
    with pytest.raises(ev.EventError, match="train events have no field"):
        ev.event(ev.TRAIN, step=1, los=2.0)  # a typo is not a new field
    with pytest.raises(ev.EventError, match="checkpoint event"):
        ev.event(ev.CHECKPOINT)  # step is required
    with pytest.raises(ev.EventError, match="unknown event type"):
        ev.decode('{"type": "progres", "stage": "x", "current": 1}')
    with pytest.raises(ev.EventError, match="unknown event type"):
        ev.encode({"type": "nope"})
    with pytest.raises(ev.EventError, match="not an event record"):
        ev.decode("[1, 2]")
    assert issubclass(ev.EventError, ValueError)  # callers that caught ValueError still do


def test_objects_inside_records_encode_as_their_dict_or_text(tmp_path):
    @dataclasses.dataclass
    class Ans:
        text: str

        def to_dict(self):
            return {"text": self.text}

    line = ev.encode(ev.event(ev.ANSWER, mode="base", answer=Ans("x")))
    assert json.loads(line)["answer"] == {"text": "x"}
    line = ev.encode(ev.event(ev.STARTED, run_dir=tmp_path))
    assert json.loads(line)["run_dir"] == str(tmp_path)


def test_metrics_log_writes_and_reads_the_vocabulary(tmp_path):
    path = tmp_path / "m.jsonl"
    with ev.MetricsLog(path) as m:
        m.write(ev.event(ev.TRAIN, step=1, loss=1.0))
        m.write(ev.event(ev.EVAL, step=1, eval_loss=0.9))
        m.write(ev.event(ev.TRAIN, step=2, loss=0.8))
        with pytest.raises(ev.EventError):
            m.write({"type": "bogus"})
        assert m.trim_after(1) == 1
    assert [(r["type"], r["step"]) for r in ev.read_events(path)] == [("train", 1), ("eval", 1)]
    Path(path).write_text(path.read_text() + '{"type": "mystery"}\n')
    with pytest.raises(ev.EventError, match="mystery"):
        ev.read_events(path)

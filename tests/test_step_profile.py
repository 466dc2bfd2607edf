"""The step profiler (backend/training/profile.py) on the real engine loop: its phases add up to the loop."""

from __future__ import annotations

import json

from backend.config import RunConfig
from backend.training import train
from backend.training.profile import PHASES, PROFILE_ENV, StepProfiler


def _cfg(model_dir, data, out, **over) -> RunConfig:
    base = {"model.name_or_path": str(model_dir), "data.train_files": [str(data)], "output_dir": str(out),
            "data.max_length": 64, "data.validation_split": 0.2, "training.batch_size": 2,
            "training.gradient_accumulation": 1,
            "training.max_steps": 4, "training.save_steps": 2, "training.eval_steps": 2,
            "training.logging_steps": 1, "training.warmup_ratio": 0.0, "method.lora_r": 4,
            "training.answer_check": False}
    base.update(over)
    return RunConfig().with_overrides(base)


def test_profile_phases_sum_to_the_loop_time(tiny_model_dir, chat_jsonl, tmp_path):
    prof = StepProfiler()
    res = train(_cfg(tiny_model_dir, chat_jsonl, tmp_path / "run"), profiler=prof)
    assert res.status == "completed"
    s = prof.summary()
    assert s["steps"] == 4
    ph = s["phases_s"]
    assert set(ph) == set(PHASES)
    # every phase of a step that runs here was seen, once per step where it is per step
    assert prof.calls["forward"] == 4 and prof.calls["backward"] == 4 and prof.calls["optimizer"] == 4
    assert prof.calls["scheduler"] == 4 and prof.calls["clip"] == 4 and prof.calls["collate"] >= 4
    assert prof.calls["checkpoint"] >= 2 and prof.calls["evaluate"] == 2
    assert prof.calls["event_writes"] >= 4  # one train record per step, fsynced
    for p in ("data", "collate", "forward", "backward", "optimizer", "events", "event_writes", "checkpoint",
              "evaluate"):
        assert ph[p] > 0, p
    timed = sum(v for k, v in ph.items() if k != "other")
    # the timed phases cover the loop: what is left is the Trainer's own bookkeeping
    assert 0.8 * s["loop_s"] <= timed <= s["loop_s"] * 1.001 + 1e-4
    assert abs(timed + ph["other"] - s["loop_s"]) < 1e-3
    assert s["loop_start"] < s["loop_end"]


def test_profile_written_when_the_environment_asks(tiny_model_dir, chat_jsonl, tmp_path, monkeypatch):
    out = tmp_path / "profile.json"
    monkeypatch.setenv(PROFILE_ENV, str(out))
    train(_cfg(tiny_model_dir, chat_jsonl, tmp_path / "run", **{"data.validation_split": 0.0,
                                                                 "training.max_steps": 2}))
    s = json.loads(out.read_text())
    assert s["steps"] == 2 and s["phases_s"]["forward"] > 0 and s["covered"] > 0.8


def test_nested_phases_are_exclusive_and_owning_phases_keep_their_insides():
    t = [0.0]
    prof = StepProfiler(clock=lambda: t[0])
    prof._active = True
    prof.begin("data")
    t[0] += 1
    prof.begin("collate")
    t[0] += 2
    prof.end()
    t[0] += 1
    prof.end()
    prof.begin("evaluate")
    prof.begin("forward")  # inside evaluate: evaluate's
    t[0] += 5
    prof.end()
    prof.end()
    assert prof.total["data"] == 2 and prof.total["collate"] == 2
    assert prof.total["evaluate"] == 5 and prof.total["forward"] == 0


def test_step_metrics_log_fsyncs_train_records_off_the_caller_thread(tmp_path, monkeypatch):
    import os
    import threading

    from backend import events as ev
    from backend.events import read_events
    from backend.training.eventlog import StepMetricsLog

    real, callers = os.fsync, []

    def fsync(fd):
        callers.append(threading.current_thread() is threading.main_thread())
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    path = tmp_path / "metrics.jsonl"
    log = StepMetricsLog(path)
    for step in (1, 2, 3):
        log.write(ev.event(ev.TRAIN, step=step, loss=1.0))
        # written and flushed at once: a reader (or a process killed now) has it
        assert [r["step"] for r in read_events(path) if r["type"] == ev.TRAIN][-1] == step
    assert not any(callers), "a train record was fsynced on the step path"
    log.write(ev.event(ev.CHECKPOINT, step=3, path="x"))  # synchronous, as before
    assert callers and callers[-1] is True
    assert log.trim_after(2) == 2  # the train record of step 3 and the checkpoint
    log.write(ev.event(ev.TRAIN, step=3, loss=0.5))  # the thread runs again after the rewrite
    log.close()
    assert [r["step"] for r in read_events(path)] == [1, 2, 3]
    assert not log._thread.is_alive() and log._fh.closed


def test_ingest_phases_add_up_to_the_ingest(tmp_path):
    from conftest import build_tiny_embedder

    from backend.rag.embeddings import load_embeddings
    from backend.rag.index import ingest

    emb = load_embeddings(build_tiny_embedder(tmp_path / "tiny-embedder"))
    docs = tmp_path / "p" / "documents"
    docs.mkdir(parents=True)
    for i in range(3):
        (docs / f"d{i}.md").write_text(f"# Part {i}\n\n" + "The river floods in spring. " * 40, encoding="utf-8")
    rep = ingest(tmp_path / "p", [docs], embeddings=emb)
    ph = rep.phases
    assert rep.chunks_embedded > 0
    for k in ("scan", "read_chunk", "embed", "chroma_write", "bm25", "meta"):
        assert ph.get(k, 0) > 0, k
    assert abs(sum(ph.values()) - rep.seconds) < 0.01
    assert ph["other"] < 0.2 * rep.seconds
    again = ingest(tmp_path / "p", [docs], embeddings=emb)  # unchanged: nothing read or embedded
    assert "embed" not in again.phases and "read_chunk" not in again.phases


def test_bench_phase_table_takes_medians_and_adds_up(tmp_path):
    from bench.__main__ import markdown, phase_table
    from bench.train_cpu import PROFILE_ROWS, run_profile, summarise_phases

    def prof(scale):
        phases = {p: scale * 0.1 for p in PHASES}
        return {"steps": 4, "loop_s": scale * 0.1 * len(PHASES), "loop_start": 100.0, "loop_end": 100.0 + scale,
                "phases_s": phases, "covered": 0.9}

    runs = {}
    for name, scale in (("ours", 1.0), ("hf_tuned", 2.0)):
        for i, extra in enumerate((0.0, 1.0, 0.5)):
            p = tmp_path / f"{name}{i}.json"
            p.write_text(json.dumps(prof(scale + extra)))
            runs.setdefault(name, {})[f"pair{i}"] = {"profile": run_profile(p, 90.0, 100.0 + scale + extra + 3.0)}
    out = summarise_phases(runs)
    assert out["ours"]["phases_s"]["setup"] == 10.0 and out["ours"]["phases_s"]["finish"] == 3.0
    assert out["ours"]["phases_s"]["forward"] == 0.15  # the median of 0.1, 0.2, 0.15
    assert out["hf_tuned"]["phases_s"]["forward"] == 0.25
    assert set(out["hf_minus_ours_s"]) == set(PROFILE_ROWS)
    table = "\n".join(phase_table(out))
    assert "| forward |" in table and "| **sum** |" in table
    assert "Where the time goes" in markdown({"train_cpu": {"workload": {"train": {}}, "phases": out}})

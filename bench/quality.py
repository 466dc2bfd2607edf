"""Answer quality on the sample project: train with the default small-data recipe, evaluate four modes.

End to end as a user would: a copy of ``resources/sample_project``, its
documents ingested (hybrid index), a run trained with the preset the app picks
for a dataset of this size ("Learn the facts", :func:`backend.recipes.facts_recipe`, RAFT on), then
the sample evalset ``brisa`` answered in the four modes {base, tuned} x {with
documents, without} plus the forgetting probe.  The scorecard goes to
``bench/results.json`` under ``quality.*``; the goals of issue 18 are checked
and a miss stays a miss.

``--run RUN`` evaluates an existing run instead of training one (the project
copy is then the run's project); ``--quick`` trains 2 steps and answers 4
questions (for tests of the bench itself: the figures mean nothing).
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import REPO, emit, log, machine_info, setup_env

GOALS = {  # key: (comparison, threshold, what)
    "tuned_rag_accuracy": (">=", 0.85, "tuned + documents, accuracy over all answerable and unanswerable questions"),
    "tuned_rag_documents_accuracy": (">=", 0.70, "tuned + documents, accuracy on questions only the documents answer"),
    "base_rag_accuracy": (">=", 0.60, "base + documents, accuracy over all questions"),
    "abstention": (">=", 0.80, "tuned + documents: share of unanswerable questions answered with an abstention"),
    "false_abstention": ("<=", 0.10, "tuned + documents: share of answerable questions wrongly abstained on"),
}


def _met(value: float | None, cmp: str, threshold: float) -> bool | None:
    if value is None:
        return None
    return value >= threshold if cmp == ">=" else value <= threshold


def _by_kind(questions: list[dict], modes: list[str]) -> dict[str, dict[str, Any]]:
    """Accuracy per mode and evalset kind (trained / documents / unanswerable)."""
    out: dict[str, dict[str, Any]] = {}
    for mode in modes:
        kinds: dict[str, list[bool]] = {}
        for q in questions:
            m = (q.get("modes") or {}).get(mode)
            if m is None:
                continue
            ok = bool(m.get("abstained")) if q.get("answerable") is False else bool(m.get("correct"))
            kinds.setdefault(q.get("kind") or "other", []).append(ok)
        out[mode] = {k: {"correct": sum(v), "n": len(v), "accuracy": round(sum(v) / len(v), 4)}
                     for k, v in kinds.items() if v}
        allv = [x for v in kinds.values() for x in v]
        out[mode]["all"] = {"correct": sum(allv), "n": len(allv),
                            "accuracy": round(sum(allv) / len(allv), 4) if allv else None}
    return out


def run(*, quick: bool = False, run_dir: str | None = None, model: str | None = None,
        raft: bool = True, keep: str | None = None, forgetting: bool = True) -> dict[str, Any]:
    """Train (unless ``run_dir``) and evaluate; the ``quality`` block of results.json."""
    setup_env()
    from backend.evalsets import read_evalset
    from backend.presets import preset_overrides
    from backend.rag.chain import MODES
    from backend.rag.evaluate import evaluate
    from backend.rag.index import ingest
    from backend.training import train
    from backend.workspace import Project, fact_set_size, resolve_run_config

    out: dict[str, Any] = {"machine": machine_info(), "quick": quick}
    tmp = Path(keep).resolve() if keep else Path(tempfile.mkdtemp(prefix="bench-quality-"))
    try:
        if run_dir:
            run = Path(run_dir).resolve()
            proj = Project.open(run.parent.parent)
        else:
            root = tmp / "sample_project"
            shutil.copytree(REPO / "resources" / "sample_project", root,
                            ignore=shutil.ignore_patterns("runs", "index", "evalsets"))
            shutil.copytree(REPO / "resources" / "sample_project" / "evalsets", root / "evalsets")
            proj = Project.open(root)
        t0 = time.perf_counter()
        rep = ingest(proj, [proj.documents_dir])
        out["ingest_s"] = round(time.perf_counter() - t0, 2)
        out["chunks"] = rep.total_chunks
        if not run_dir:
            base = resolve_run_config(proj)
            if model:
                base = base.with_overrides({"model.name_or_path": model})
            base = base.with_overrides({"data.raft": raft})
            n_rows, mean_tokens = fact_set_size([str(p) for p in proj.files_with_role("train")], base)
            overrides = {"training.max_steps": 2, "training.save_steps": 2} if quick else {}
            cfg = resolve_run_config(proj, base=base, preset="facts", rows=n_rows, mean_tokens=mean_tokens,
                                     overrides=overrides)
            recipe = preset_overrides("facts", base, rows=n_rows, mean_tokens=mean_tokens)
            out["recipe"] = {"rows": n_rows, "mean_tokens": round(mean_tokens or 0, 1), "data.raft": raft, **recipe}
            log(f"training {n_rows} rows: {cfg.training.epochs:g} epochs, raft={raft}")
            t0 = time.perf_counter()
            result = train(cfg, project_dir=proj.root)
            out["train_s"] = round(time.perf_counter() - t0, 1)
            run = Path(result.run_dir)
            out["train_status"] = result.status
        rows_eval = read_evalset(proj.root / "evalsets" / "brisa.jsonl")
        if quick:
            rows_eval = rows_eval[:3] + [r for r in rows_eval if not r.answerable][:1]
        log(f"evaluating {len(rows_eval)} questions in {len(MODES)} modes")
        t0 = time.perf_counter()
        report = evaluate(proj, rows_eval, run, name="brisa", modes=MODES, forgetting=forgetting and not quick,
                          with_loss=False)
        out["eval_s"] = round(time.perf_counter() - t0, 1)
        d = report.to_dict()
        out["retrieval"] = d["settings"]["retrieval"]  # what the scorecard answered with
        out["scorecard"] = d["scorecard"]
        out["by_kind"] = _by_kind(d["questions"], list(d["modes"]))
        out["forgetting"] = d.get("forgetting")
        card = d["scorecard"]
        tr, br = out["by_kind"].get("tuned+rag", {}), out["by_kind"].get("base+rag", {})

        def val(mode: str, metric: str) -> float | None:
            v = (card.get(mode) or {}).get(metric)
            return v.get("value") if isinstance(v, dict) else v

        figures = {"tuned_rag_accuracy": (tr.get("all") or {}).get("accuracy"),
                   "tuned_rag_documents_accuracy": (tr.get("documents") or {}).get("accuracy"),
                   "base_rag_accuracy": (br.get("all") or {}).get("accuracy"),
                   "abstention": val("tuned+rag", "abstention"),
                   "false_abstention": val("tuned+rag", "false_abstention")}
        out["goals"] = {k: {"value": figures[k], "goal": f"{c} {t}", "met": _met(figures[k], c, t), "what": w}
                        for k, (c, t, w) in GOALS.items()}
        fg = d.get("forgetting") or {}
        out["goals"]["no_forgetting"] = {"value": not fg.get("flag") if fg else None, "goal": "no regression beyond "
                                         "the interval", "met": (not fg.get("flag")) if fg else None,
                                         "what": fg.get("message", "forgetting probe not run")}
        out["run_dir"] = str(run)
        out["questions"] = [{"id": q.get("id"), "kind": q.get("kind"),
                             "answers": {m: (q["modes"][m].get("answer") or "")[:200] for m in q.get("modes", {})},
                             "correct": {m: q["modes"][m].get("correct") for m in q.get("modes", {})}}
                            for q in d["questions"]]
        return out
    finally:
        if run_dir is None and keep is None:
            shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.quality", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="2 training steps, 4 questions (tests the bench only)")
    p.add_argument("--run", default=None, help="evaluate this run instead of training one")
    p.add_argument("--model", default=None, help="base model (default: the bundled SmolLM2-135M-Instruct)")
    p.add_argument("--no-raft", action="store_true", help="train without RAFT (plain question-answer rows)")
    p.add_argument("--no-forgetting", action="store_true", help="skip the forgetting probe (100 answers)")
    p.add_argument("--keep", default=None, metavar="DIR",
                   help="build the project copy (and its run) in DIR and keep it, for --run later")
    p.add_argument("--out", default=None, help="write the JSON here too")
    a = p.parse_args(argv)
    return emit(run(quick=a.quick, run_dir=a.run, model=a.model, raft=not a.no_raft, keep=a.keep,
                    forgetting=not a.no_forgetting), a.out)


if __name__ == "__main__":
    raise SystemExit(main())

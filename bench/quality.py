"""Answer quality over the development suite: each project on the path a new project takes, then its evalset.

For every project listed in ``bench/projects/suite.json`` (the sample included; a
missing suite file gives the sample alone), as a new user would:

1. the project folder copied to a temporary folder, without runs, index or saved
   run configuration (``project.json``'s ``run_config``): a new project;
2. its documents ingested (hybrid index);
3. the preset the app recommends for its rows (:func:`backend.presets.recommended_preset`,
   "Learn the facts" for a small set) fitted by :func:`backend.planning.resolve_run_config`,
   exactly as Start or ``tune train --project P --preset facts`` fits it (RAFT on
   because the project has documents, the knowledge recipe's rows, the best checkpoint kept);
4. trained, then its evalset answered in the modes tuned + documents, base +
   documents and tuned (greedy), scored per kind (trained / documents / unanswerable).

The issue 25 goals are checked per project and over the suite (mean and worst
project), and a miss stays a miss.  ``--suite`` runs every project, ``--projects a,b``
some; without either, the sample alone.  A full run writes ``quality`` into
``bench/results.json`` and the per-project table into ``bench/quality.md`` (between
the ``suite-table`` markers); ``--quick`` (2 training steps, 4 questions per project,
the first project only unless ``--projects``) writes nothing unless ``--out``: for
tests of the bench itself, its figures mean nothing.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import BENCH_DIR, REPO, emit, log, machine_info, setup_env, write_json

SUITE_FILE = BENCH_DIR / "projects" / "suite.json"
SAMPLE = {"name": "brisa_sample", "path": "resources/sample_project", "evalset": "brisa"}
MODES = ("tuned+rag", "base+rag", "tuned")
TABLE_START, TABLE_END = "<!-- suite-table -->", "<!-- /suite-table -->"

# issue 25's goals: per project (checked on every one) and over the suite
PROJECT_GOALS = {  # key: (comparison, threshold, what)
    "gain_over_base_rag": (">=", 0.10, "tuned + documents minus base + documents, answerable questions"),
    "tuned_rag_answerable": (">=", 0.75, "tuned + documents, answerable questions (the worst project's goal)"),
    "abstention": (">=", 0.80, "tuned + documents: unanswerable questions answered with an abstention"),
    "false_abstention": ("<=", 0.10, "tuned + documents: answerable questions wrongly abstained on"),
}
SUITE_GOALS = {
    "every_project_gains_10_points": ("==", True, "tuned + documents ≥ base + documents + 10 points on every project"),
    "mean_tuned_rag_answerable": (">=", 0.85, "tuned + documents, answerable, mean over the projects"),
    "worst_tuned_rag_answerable": (">=", 0.75, "tuned + documents, answerable, worst project"),
    "mean_tuned_trained": (">=", 0.50, "tuned without documents, paraphrases of trained facts, mean"),
    "mean_abstention": (">=", 0.80, "tuned + documents, abstention on unanswerable questions, mean"),
    "max_false_abstention": ("<=", 0.10, "tuned + documents, false abstentions, worst project"),
}


def _met(value: Any, cmp: str, threshold: Any) -> bool | None:
    if value is None:
        return None
    if cmp == "==":
        return value == threshold
    return value >= threshold if cmp == ">=" else value <= threshold


def suite_projects(names: list[str] | None = None) -> list[dict[str, Any]]:
    """The suite's projects (``suite.json``; the sample alone when there is none), or those named."""
    try:
        projects = json.loads(SUITE_FILE.read_text(encoding="utf-8"))["projects"]
    except (OSError, ValueError, KeyError):
        projects = [SAMPLE]
    if names:
        known = {p["name"]: p for p in projects}
        missing = [n for n in names if n not in known]
        if missing:
            raise SystemExit(f"unknown project(s) {', '.join(missing)}; the suite has {', '.join(known)}")
        projects = [known[n] for n in names]
    return projects


def _ratio(ok: list[bool]) -> float | None:
    return round(sum(ok) / len(ok), 4) if ok else None


def _by_kind(questions: list[dict], modes: list[str]) -> dict[str, dict[str, Any]]:
    """Accuracy per mode and evalset kind (trained / documents / unanswerable), ``answerable`` and ``all``."""
    out: dict[str, dict[str, Any]] = {}
    for mode in modes:
        kinds: dict[str, list[bool]] = {}
        answerable: list[bool] = []
        for q in questions:
            m = (q.get("modes") or {}).get(mode)
            if m is None:
                continue
            ok = bool(m.get("abstained")) if q.get("answerable") is False else bool(m.get("correct"))
            kinds.setdefault(q.get("kind") or "other", []).append(ok)
            if q.get("answerable") is not False:
                answerable.append(ok)
        out[mode] = {k: {"correct": sum(v), "n": len(v), "accuracy": _ratio(v)} for k, v in kinds.items() if v}
        allv = [x for v in kinds.values() for x in v]
        out[mode]["answerable"] = {"correct": sum(answerable), "n": len(answerable), "accuracy": _ratio(answerable)}
        out[mode]["all"] = {"correct": sum(allv), "n": len(allv), "accuracy": _ratio(allv)}
    return out


def _false_abstention(questions: list[dict], mode: str) -> float | None:
    ok = [bool((q.get("modes") or {}).get(mode, {}).get("abstained")) for q in questions
          if q.get("answerable") is not False and mode in (q.get("modes") or {})]
    return _ratio(ok)


def new_project_copy(entry: dict[str, Any], dest: Path) -> Path:
    """``entry``'s project folder copied to ``dest`` as a new project: no runs, index or saved run configuration."""
    src = REPO / entry["path"]
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns("runs", "index", "chat"))
    pj = dest / "project.json"
    d = json.loads(pj.read_text(encoding="utf-8"))
    for key in ("run_config", "preset"):
        (d.get("settings") or {}).pop(key, None)
    pj.write_text(json.dumps(d, indent=2), encoding="utf-8")
    return dest


def run_project(entry: dict[str, Any], tmp: Path, *, quick: bool = False, model: str | None = None,
                forgetting: bool = False, overrides: dict[str, Any] | None = None,
                run_dir: str | None = None) -> dict[str, Any]:
    """One project on the default path: copy, ingest, recommended preset, train, evaluate."""
    from backend.evalsets import read_evalset
    from backend.presets import recommended_preset
    from backend.rag.evaluate import evaluate
    from backend.rag.index import ingest
    from backend.training import train
    from backend.planning import fact_set, resolve_run_config
    from backend.workspace import Project

    out: dict[str, Any] = {"name": entry["name"], "path": entry["path"], "overrides": dict(overrides or {})}
    if run_dir:
        run = Path(run_dir).resolve()
        proj = Project.open(run.parent.parent)
    else:
        proj = Project.open(new_project_copy(entry, tmp / entry["name"]))
    t0 = time.perf_counter()
    rep = ingest(proj, [proj.documents_dir])
    out["ingest_s"], out["chunks"] = round(time.perf_counter() - t0, 2), rep.total_chunks
    if not run_dir:
        extra = dict(overrides or {})
        if model:
            extra["model.name_or_path"] = model
        base = resolve_run_config(proj, overrides=extra)  # the new project's defaults (RAFT on with documents)
        t0 = time.perf_counter()
        written = fact_set(list(base.data.train_files), base)
        key = recommended_preset(written.written or written.rows)
        quick_steps = {"training.max_steps": 2, "training.save_steps": 2, "training.eval_steps": 1} if quick else {}
        cfg = resolve_run_config(proj, preset=key, overrides={**extra, **quick_steps})
        facts = fact_set(list(cfg.data.train_files), cfg) if key else written  # cached passages: quick
        out["fit_s"] = round(time.perf_counter() - t0, 1)
        d = cfg.to_dict()
        out["recipe"] = {"preset": key, "rows_written": facts.written, "rows": facts.rows,
                         "mean_tokens": facts.mean_tokens, "rows_per_fact": facts.rows_per_fact,
                         "epochs": d["training"]["epochs"], "learning_rate": d["training"]["learning_rate"],
                         "effective_batch": d["training"]["batch_size"] * d["training"]["gradient_accumulation"],
                         "exposures_per_fact": (facts.rows_per_fact or 0) * d["training"]["epochs"],
                         **{f"data.{k}": d["data"][k] for k in ("raft", "rewordings", "raft_closed_book",
                                                                 "raft_abstain_share", "heldout_rewordings",
                                                                 "raft_p_without_gold", "raft_distractors",
                                                                 "max_length")},
                         "training.keep_best": d["training"]["keep_best"]}
        log(f"{entry['name']}: {facts.written} rows as written -> {facts.rows} shaped, preset {key}, "
            f"{cfg.training.epochs:g} epochs")
        t0 = time.perf_counter()
        result = train(cfg, project_dir=proj.root)
        out["train_s"] = round(time.perf_counter() - t0, 1)
        out["train_status"] = result.status
        out["train_metrics"] = {k: v for k, v in (result.metrics or {}).items()
                                if k in ("train_loss", "eval_loss", "global_step", "best_checkpoint", "tokens_seen")}
        run = Path(result.run_dir)
    rows = read_evalset(proj.root / "evalsets" / f"{entry['evalset']}.jsonl")
    if quick:
        rows = [r for r in rows if r.answerable][:3] + [r for r in rows if not r.answerable][:1]
    log(f"{entry['name']}: evaluating {len(rows)} questions in {len(MODES)} modes")
    t0 = time.perf_counter()
    report = evaluate(proj, rows, run, name=entry["evalset"], modes=MODES, forgetting=forgetting and not quick,
                      with_loss=False)
    out["eval_s"] = round(time.perf_counter() - t0, 1)
    d = report.to_dict()
    out["by_kind"] = _by_kind(d["questions"], list(d["modes"]))
    tr, br, tu = (out["by_kind"].get(m, {}) for m in MODES)
    acc = lambda block, k: (block.get(k) or {}).get("accuracy")  # noqa: E731
    figures = {"tuned_rag_answerable": acc(tr, "answerable"), "base_rag_answerable": acc(br, "answerable"),
               "tuned_trained": acc(tu, "trained"), "tuned_rag_documents": acc(tr, "documents"),
               "tuned_rag_trained": acc(tr, "trained"), "abstention": acc(tr, "unanswerable"),
               "false_abstention": _false_abstention(d["questions"], "tuned+rag")}
    a, b = figures["tuned_rag_answerable"], figures["base_rag_answerable"]
    figures["gain_over_base_rag"] = round(a - b, 4) if a is not None and b is not None else None
    out["figures"] = figures
    out["goals"] = {k: {"value": figures.get(k), "goal": f"{c} {t}", "met": _met(figures.get(k), c, t), "what": w}
                    for k, (c, t, w) in PROJECT_GOALS.items()}
    fg = d.get("forgetting") or {}
    out["forgetting"] = ({"flag": fg.get("flag"), "message": fg.get("message")} if fg else None)
    out["run_dir"] = str(run)
    out["questions"] = [{"id": q.get("id"), "kind": q.get("kind"),
                         "answers": {m: (q["modes"][m].get("answer") or "")[:200] for m in q.get("modes", {})},
                         "correct": {m: q["modes"][m].get("correct") for m in q.get("modes", {})}}
                        for q in d["questions"]]
    return out


def development_projects() -> dict[str, str]:
    """Projects a default was chosen on (``suite.json``'s ``fitted_on``: name -> what was fitted on it).

    Their figures are shown but never enter the suite's mean, worst project or goals
    (never choose a default on the set it is reported on).
    """
    try:
        projects = json.loads(SUITE_FILE.read_text(encoding="utf-8"))["projects"]
    except (OSError, ValueError, KeyError):
        return {}
    return {p["name"]: str(p["fitted_on"]) for p in projects if p.get("fitted_on")}


def summarise(projects: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Mean and worst held-out project, and the suite goals (development projects left out)."""
    dev = development_projects()
    done = {n: p for n, p in projects.items() if "figures" in p and n not in dev}
    if not done:
        return {"held_out": [], "development": sorted(n for n in projects if n in dev)}

    def vals(key: str) -> list[float]:
        return [p["figures"][key] for p in done.values() if p["figures"].get(key) is not None]

    def mean(key: str) -> float | None:
        v = vals(key)
        return round(statistics.fmean(v), 4) if v else None

    worst = min(done, key=lambda n: done[n]["figures"].get("tuned_rag_answerable") or 0.0)
    gains = vals("gain_over_base_rag")
    figures = {"every_project_gains_10_points": (all(g >= 0.10 for g in gains) if gains else None),
               "mean_tuned_rag_answerable": mean("tuned_rag_answerable"),
               "worst_tuned_rag_answerable": done[worst]["figures"].get("tuned_rag_answerable"),
               "mean_tuned_trained": mean("tuned_trained"), "mean_abstention": mean("abstention"),
               "max_false_abstention": max(vals("false_abstention"), default=None)}
    return {"held_out": sorted(done), "development": sorted(n for n in projects if n in dev),
            "worst_project": worst, "worst": {k: done[worst]["figures"].get(k) for k in
                                              ("tuned_rag_answerable", "base_rag_answerable", "gain_over_base_rag")},
            "figures": figures,
            "goals": {k: {"value": figures[k], "goal": f"{c} {t}", "met": _met(figures[k], c, t), "what": w}
                      for k, (c, t, w) in SUITE_GOALS.items()}}


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{100 * v:.0f} %"


def _count(p: dict, mode: str, kind: str) -> str:
    k = ((p.get("by_kind") or {}).get(mode) or {}).get(kind) or {}
    return f"{k['correct']}/{k['n']}" if k else "–"


def table(res: dict[str, Any]) -> str:
    """The per-project Markdown table (and the suite's goals)."""
    dev = development_projects()
    lines = ["| project | role | rows → shaped | epochs | training | tuned + docs (answerable) | base + docs | gain | "
             "tuned: trained facts | abstains | false abstentions |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, p in res.get("projects", {}).items():
        role = "development" if name in dev else "held out"
        if "figures" not in p:
            lines.append(f"| {name} | {role} | {p.get('error', 'not run')} |||||||||")
            continue
        f, r = p["figures"], p.get("recipe") or {}
        gain = "–" if f["gain_over_base_rag"] is None else f"{100 * f['gain_over_base_rag']:+.0f}"
        lines.append(f"| {name} | {role} | {r.get('rows_written', '–')} → {r.get('rows', '–')} | {r.get('epochs', '–')} | "
                     f"{p.get('train_s', '–')} s | {_count(p, 'tuned+rag', 'answerable')} ({_pct(f['tuned_rag_answerable'])}) | "
                     f"{_count(p, 'base+rag', 'answerable')} ({_pct(f['base_rag_answerable'])}) | "
                     f"{gain} | "
                     f"{_count(p, 'tuned', 'trained')} | {_count(p, 'tuned+rag', 'unanswerable')} | "
                     f"{_pct(f['false_abstention'])} |")
    s = res.get("summary") or {}
    if s.get("development"):
        lines += ["", f"Development projects (a default was chosen on them; not in the figures below): "
                      f"{', '.join(s['development'])}."]
    if s.get("goals"):
        lines += ["", f"Held-out projects: {', '.join(s['held_out'])}. Worst held-out project: "
                      f"**{s['worst_project']}**.", "", "| suite goal (held-out projects) | value | goal | met |",
                  "|---|---|---|---|"]
        for k, g in s["goals"].items():
            v = g["value"]
            shown = v if isinstance(v, bool) or v is None else _pct(v)
            lines.append(f"| {g['what']} | {shown} | {g['goal']} | "
                         f"{'yes' if g['met'] else ('**no**' if g['met'] is False else '–')} |")
    return "\n".join(lines)


def write_outputs(res: dict[str, Any]) -> None:
    """``quality`` into bench/results.json (other parts kept) and the table into bench/quality.md."""
    path = BENCH_DIR / "results.json"
    try:
        allres = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        allres = {}
    allres["quality"] = res
    write_json(path, allres)
    md = BENCH_DIR / "quality.md"
    text = md.read_text(encoding="utf-8") if md.exists() else ""
    block = (f"{TABLE_START}\n_Written by `python -m bench.quality` on {res['machine'].get('date')} "
             f"(load {res['machine'].get('load_avg_1m')}); projects: {', '.join(res.get('projects', {}))}._\n\n"
             f"{table(res)}\n{TABLE_END}")
    if TABLE_START in text and TABLE_END in text:
        text = text[:text.index(TABLE_START)] + block + text[text.index(TABLE_END) + len(TABLE_END):]
    else:
        text = text.rstrip("\n") + "\n\n## The suite on the default path (latest run)\n\n" + block + "\n"
    md.write_text(text, encoding="utf-8")


def merge(paths: list[str]) -> dict[str, Any]:
    """One ``quality`` block from several runs' JSON (``--out``): projects measured separately, later files win.

    Each project keeps its own machine record, options and the code it ran (``commit``); the
    summary is recomputed over the held-out projects.
    """
    out: dict[str, Any] = {"merged_from": [], "modes": list(MODES), "projects": {}}
    for path in paths:
        try:
            res = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise SystemExit(f"{path}: not a bench.quality result ({e})") from None
        if not isinstance(res, dict) or not isinstance(res.get("projects"), dict):
            raise SystemExit(f"{path}: not a bench.quality result (no 'projects')")
        if res.get("quick"):
            raise SystemExit(f"{path}: a --quick result; its figures mean nothing")
        out["merged_from"].append({"file": Path(path).name, "machine": res.get("machine"),
                                   "overrides": res.get("overrides") or {}})
        for name, p in res["projects"].items():
            out["projects"][name] = {**p, "machine": res.get("machine"),
                                     "overrides": p.get("overrides", res.get("overrides") or {})}
    out["machine"] = (out["merged_from"][-1]["machine"] if out["merged_from"] else None) or machine_info()
    out["summary"] = summarise(out["projects"])
    out["goals"] = (out["summary"] or {}).get("goals", {})
    return out


def run(*, quick: bool = False, names: list[str] | None = None, suite: bool = False, model: str | None = None,
        keep: str | None = None, forgetting: bool = False, run_dir: str | None = None,
        overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Every chosen project on the default path; the ``quality`` block of results.json."""
    setup_env()
    if names or suite:
        entries = suite_projects(names)
    else:
        entries = [next((p for p in suite_projects() if p["path"] == SAMPLE["path"]), SAMPLE)]
    if quick and not names:
        entries = entries[:1]
    import subprocess

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout
    out: dict[str, Any] = {"machine": {**machine_info(), "commit": commit.strip() or None}, "quick": quick,
                           "modes": list(MODES),
                           "path": "new project copy, recommended preset via resolve_run_config, default options",
                           "overrides": overrides or {}, "projects": {}}
    tmp = Path(keep).resolve() if keep else Path(tempfile.mkdtemp(prefix="bench-quality-"))
    tmp.mkdir(parents=True, exist_ok=True)
    try:
        for entry in entries:
            log(f"== {entry['name']} ==")
            t0 = time.perf_counter()
            try:
                out["projects"][entry["name"]] = run_project(entry, tmp, quick=quick, model=model,
                                                             forgetting=forgetting, overrides=overrides,
                                                             run_dir=run_dir)
            except Exception as e:  # one project's failure is recorded, the others still run
                if quick:
                    raise
                out["projects"][entry["name"]] = {"error": f"{type(e).__name__}: {e}"}
            out["projects"][entry["name"]]["wall_s"] = round(time.perf_counter() - t0, 1)
        out["summary"] = summarise(out["projects"])
        out["goals"] = (out["summary"] or {}).get("goals", {})
        return out
    finally:
        if keep is None and run_dir is None:
            shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.quality", description=__doc__.split("\n")[0])
    p.add_argument("--suite", action="store_true", help="every project of bench/projects/suite.json")
    p.add_argument("--projects", default=None, help="comma-separated project names from the suite")
    p.add_argument("--quick", action="store_true", help="2 training steps, 4 questions (tests the bench only)")
    p.add_argument("--run", default=None, help="evaluate this run instead of training one (one project)")
    p.add_argument("--model", default=None, help="base model (default: the bundled SmolLM2-135M-Instruct)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="an option over the default path (e.g. data.rewordings=0), to measure one part")
    p.add_argument("--forgetting", action="store_true", help="also run the forgetting probe (100 answers x 2)")
    p.add_argument("--keep", default=None, metavar="DIR", help="build the project copies (and runs) in DIR and keep them")
    p.add_argument("--no-write", action="store_true", help="do not write bench/results.json and bench/quality.md")
    p.add_argument("--out", default=None, help="write the JSON here too")
    p.add_argument("--merge", nargs="+", default=None, metavar="JSON",
                   help="combine earlier runs' --out files (one project each, say) and write them as one result")
    a = p.parse_args(argv)
    if a.merge:
        res = merge(a.merge)
        if not a.no_write:
            write_outputs(res)
        log("\n" + table(res))
        return emit(res, a.out)
    from backend.config import parse_set

    names = [n.strip() for n in a.projects.split(",") if n.strip()] if a.projects else None
    model = None if a.model in (None, "default") else a.model
    res = run(quick=a.quick, names=names, suite=a.suite, model=model, keep=a.keep, forgetting=a.forgetting,
              run_dir=a.run, overrides=dict(parse_set(a.set)))
    if not a.quick and not a.no_write:
        write_outputs(res)
    log("\n" + table(res))
    return emit(res, a.out)


if __name__ == "__main__":
    raise SystemExit(main())

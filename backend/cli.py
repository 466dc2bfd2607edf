"""The ``tune`` command line: the second consumer of the backend functions.

Subcommands: train, resume, runs, corrections, export, doctor, new (this module); data check,
docs add (backend.data.cli); ingest, ask, eval (backend.rag.cli);
export-run (backend.launch_export).  Heavy libraries are imported inside the
handlers so ``tune --help`` is instant.  The extension modules are imported
here, plainly: one that fails to import fails ``tune`` with its own error
instead of silently losing its commands (docs/architecture.md, "Layers").
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from backend import events as ev
from backend import launch_export, methods
from backend.cliutil import StopFlag, print_notices, quiet_libraries, trust_flags
from backend.data import cli as data_cli
from backend.errors import TuneError, disk_problem, from_os_error
from backend.export_types import EXPORT_KINDS, dialog_kinds, needs_quant
from backend.presets import PRESET_KEYS
from backend.rag import cli as rag_cli

if TYPE_CHECKING:  # pragma: no cover
    from backend.config import RunConfig

# Feature modules that add their own subcommands with register(subparsers).
EXTENSIONS = (data_cli, rag_cli, launch_export)


def _print_event(rec: dict, as_json: bool) -> None:
    if int(os.environ.get("RANK", "0")) != 0:  # under torchrun, one console line per event
        return
    if as_json:
        print(ev.encode(rec), flush=True)
        return
    t = rec.get("type")
    if t == ev.TRAIN:
        parts = [f"step {rec['step']}/{rec.get('max_steps')}", f"loss {rec['loss']:.4f}" if rec.get("loss") is not None else ""]
        if rec.get("learning_rate") is not None:
            parts.append(f"lr {rec['learning_rate']:.2e}")
        if rec.get("grad_norm") is not None:
            parts.append(f"grad {rec['grad_norm']:.3f}")
        if rec.get("tokens_per_s"):
            parts.append(f"{rec['tokens_per_s']:.0f} tok/s")
        if rec.get("eta_s") is not None:
            parts.append(f"eta {_fmt_s(rec['eta_s'])}")
        print("  ".join(p for p in parts if p), flush=True)
    elif t == ev.EVAL:
        print(f"eval  step {rec['step']}  loss {rec['eval_loss']:.4f}  ppl {rec.get('perplexity')}", flush=True)
    elif t == ev.CHECKPOINT:
        print(f"checkpoint  step {rec['step']}  {rec['path']}", flush=True)
    elif t in (ev.LOG, ev.OOM_RETRY):
        print(rec.get("message", ""), flush=True)
    elif t == ev.PROGRESS:
        if rec.get("message"):
            print(rec["message"], flush=True)
    elif t == ev.STARTED:
        print(f"run folder: {rec['run_dir']}", flush=True)
    elif t == ev.ANSWER_CHECK:
        print(check_words(rec), flush=True)
    elif t == ev.FINISHED:
        msg = f"{rec['status']}"
        if rec.get("adapter_dir"):
            msg += f": {rec['adapter_dir']}"
        if rec.get("reason"):
            msg += f" ({rec['reason']})"
        print(msg, flush=True)


def check_words(rec: dict) -> str:
    """The check after training in words (``tune train`` prints it; backend/rag/check.py)."""
    status = rec.get("status")
    if status == "done":
        lines = [f"check: {rec.get('message', '')}"] + ([f"  {rec['notes']}"] if rec.get("notes") else [])
        lines += [f"  likely cause: {rec['cause']}"] if rec.get("cause") else []
        lines += [f"  what to change: {rec['advice']}"] if rec.get("advice") else []
        lines.append(f"  ({rec.get('source') or 'held-out questions'}, {rec.get('seconds', 0):.0f} s)")
        return "\n".join(lines)
    if status == "skipped":
        return f"check skipped: {rec.get('reason', '')}"
    if status == "cancelled":
        return "check stopped: the run is saved; evaluate it on the Evaluate page or with `tune eval`"
    return f"check failed: {rec.get('reason', '')} (the run is saved)"


def _fmt_s(s: float) -> str:
    s = int(s)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def train_config(args) -> tuple["RunConfig", list[str]]:
    """The configuration ``tune train`` runs, and notices to print before it starts.

    With ``--project`` this is :func:`backend.planning.resolve_run_config`, the
    function the GUI's Start calls: the project's saved configuration (or the
    config file, when one is named), then ``--preset``, then ``--set`` and the
    quick flags, over the project's dataset roles and documents marked "train on".
    The notices name trust flags (remote code, pickle weights, hub access) the
    config file or the project asked for and was not given: only the person's
    flags (``--trust-remote-code``, ``--allow-pickle-weights``, ``--allow-hub`` or
    ``TUNE_ALLOW_HUB=1``) switch them on (docs/architecture.md, "Trust").
    """
    from backend.config import ModelConfig, RunConfig, parse_set
    from backend.presets import fit_preset
    from backend.trust import hub_allowed, restrict
    from backend.planning import fact_set, resolve_run_config
    from backend.workspace import Project

    hub = hub_allowed() or bool(getattr(args, "allow_hub", False))
    trust = {"trust_remote_code": args.trust_remote_code, "allow_pickle_weights": args.allow_pickle_weights,
             "allow_hub": hub}
    base, notices = None, []
    if args.config:  # a file (a copied run's config.json) never switches trust on: backend/trust.py
        base, notices = restrict(RunConfig.load(args.config), **trust, source=f"The config file {args.config}")
    overrides: dict = dict(parse_set(args.set or []))
    quick = {"model.name_or_path": args.model, "output_dir": args.output, "method.method": args.method,
             "training.max_steps": args.max_steps, "training.save_steps": args.save_steps,
             "training.epochs": args.epochs}
    if args.data:
        overrides["data.train_files"] = args.data
    overrides.update({k: v for k, v in quick.items() if v is not None})
    if args.project:
        project = Project.open(args.project)
        cfg = resolve_run_config(project, base=base, preset=args.preset, overrides=overrides, **trust)
        granted = {k for k, v in trust.items() if v}
        notices += [n for name, n in zip(project.trust_requests, project.trust_notices(cli=True))
                    if name not in granted]
        return cfg, notices
    cfg = base or RunConfig(model=ModelConfig(**trust))
    if args.preset:  # fitted after --set and --data, to the rows of --data (or the config's training files)
        cfg = fit_preset(cfg, args.preset, lambda c: fact_set(list(c.data.train_files), c), after=overrides)
    return cfg.with_overrides(overrides) if overrides else cfg, notices


def cmd_train(args) -> int:
    from backend.estimate import start_warnings
    from backend.training import train

    cfg, notices = train_config(args)
    quiet_libraries()
    on_event = lambda r: _print_event(r, args.json)  # noqa: E731
    print_notices(notices, as_json=args.json)  # what a file or the project asked for and did not get
    if int(os.environ.get("RANK", "0")) == 0:  # the same warnings the Train page shows before a start
        for message in start_warnings(cfg, on_event=on_event):
            _print_warning(message, args.json)
    stop = StopFlag()
    stop.install()
    result = train(cfg, project_dir=args.project, on_event=on_event, should_stop=stop)
    return 0 if result.status == "completed" else 3


def _print_warning(message: str, as_json: bool) -> None:
    if as_json:
        from backend import events as ev

        print(ev.encode(ev.log(message, level="warning")), flush=True)
    else:
        print(f"warning: {message}", file=sys.stderr, flush=True)


def _best_eval_loss(run_dir: Path) -> float | None:
    from backend import runs

    losses = [r["eval_loss"] for r in runs.read_metrics(run_dir)[0]
              if r.get("type") == ev.EVAL and isinstance(r.get("eval_loss"), (int, float))]
    return min(losses) if losses else None


def cmd_runs(args) -> int:
    from backend import runs
    from backend.confine import printable
    from backend.workspace import Project

    project = Project.open(args.project)
    if getattr(args, "delete", None):
        run_dir = runs.find_run(project.root, args.delete)
        removed = runs.delete_run(run_dir, project.root)
        print(printable(f"deleted {run_dir} ({removed.describe()})"))
        return 0
    if getattr(args, "rename", None):
        key, name = args.rename
        run_dir = runs.find_run(project.root, key)
        print(printable(f"{run_dir.name} is now shown as {runs.rename_run(run_dir, name)!r}"))
        return 0
    rows = []
    for r in runs.list_runs(project.root):
        best = _best_eval_loss(r.run_dir)
        rows.append({"run_dir": str(r.run_dir), "id": r.run_dir.name, "name": r.name, "status": r.status,
                     "interrupted": r.interrupted, "resumable": r.resumable, "method": r.method,
                     "step": r.step, "max_steps": r.max_steps, "train_loss": r.train_loss,
                     "best_eval_loss": best if best is not None else r.eval_loss, "created": r.when,
                     "reason": r.reason})
    if args.json:
        print(json.dumps(rows, indent=2, default=str))
        return 0
    if not rows:
        print(f"no runs yet in {project.runs_dir}")
        return 0
    table = [("RUN", "STATUS", "METHOD", "STEP", "RESUMABLE", "BEST EVAL LOSS", "STARTED", "NAME")]
    for row in rows:
        status = "interrupted" if row["interrupted"] else row["status"]
        step = f"{row['step']}/{row['max_steps']}" if row["max_steps"] else str(row["step"] or "-")
        best = f"{row['best_eval_loss']:.4f}" if row["best_eval_loss"] is not None else "-"
        # every cell may come from a project made elsewhere: control characters are shown escaped
        table.append(tuple(printable(c) for c in (row["id"], status, row["method"], step,
                                                   "yes" if row["resumable"] else "no", best, row["created"],
                                                   row["name"])))
    widths = [max(len(str(r[i])) for r in table) for i in range(len(table[0]))]
    for r in table:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip())
    return 0


def cmd_corrections(args) -> int:
    from backend import corrections, records
    from backend.confine import printable
    from backend.workspace import Project

    project = Project.open(args.project)
    if args.delete:
        c = corrections.delete(project, args.delete)
        print(printable(f"deleted correction {c.id} ({c.question!r})"))
        return 0
    if args.test or args.untest:
        c = corrections.update(project, args.test or args.untest, test=bool(args.test))
        where = corrections.test_set_path(project).relative_to(project.root)
        print(printable(f"{c.id} is {'now' if c.test else 'no longer'} in the test set ({where})"))
        return 0
    skipped: list = []
    items = corrections.load(project, skipped)
    for s in skipped:  # a bad line is skipped and named (docs/architecture.md, "Readers")
        print(printable(f"warning: skipped {s}"), file=sys.stderr)
    if args.json:
        print(json.dumps([c.to_dict() for c in items], indent=2, ensure_ascii=False))
        return 0
    if not items:
        print(f"no corrections yet in {corrections.corrections_path(project)}")
        return 0
    table = [("ID", "MODE", "RUN", "TEST", "QUESTION", "MODEL'S ANSWER", "EXPERT'S ANSWER")]

    def cut(t: str, n: int = 40) -> str:
        t = " ".join(t.split())
        return t if len(t) <= n else t[: n - 1] + "…"

    for c in items:
        table.append(tuple(printable(x) for x in (c.id, c.mode or "-", c.run or "-", "yes" if c.test else "no",
                                                   cut(c.question), cut(c.rejected) if c.rejected else "-",
                                                   cut(c.chosen))))
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    for r in table:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    print(f"{len(items)} correction(s), {sum(c.is_pair for c in items)} preference pair(s), "
          f"{sum(c.test for c in items)} in the test set")
    return 0


def cmd_resume(args) -> int:
    from backend.config import parse_set
    from backend.training import resume
    from backend.trust import hub_allowed

    quiet_libraries()
    stop = StopFlag()
    stop.install()
    result = resume(args.run_dir, on_event=lambda r: _print_event(r, args.json), should_stop=stop,
                    overrides=parse_set(args.set or []), trust_remote_code=args.trust_remote_code,
                    allow_pickle_weights=args.allow_pickle_weights, allow_hub=hub_allowed())
    return 0 if result.status == "completed" else 3


def cmd_export(args) -> int:
    from backend.export import export_run
    from backend.gguf_export import K_QUANTS_NOTE, check_quant
    from backend.parity import recheck
    from backend.runtime import quiet_library_output

    quiet_libraries()
    if not args.verbose:
        quiet_library_output()  # the GGUF loader's tqdm bar and peft's FutureWarning look like errors here
    targets = [(k, getattr(args, k)) for k in EXPORT_KINDS if getattr(args, k)]
    if not targets and not args.check:
        flags = [f"--{k.key} {k.metavar}" for k in dialog_kinds()]
        print(f"nothing to export: give {', '.join(flags[:-1])} or {flags[-1]} "
              "(or --check to compare the recorded exports again)", file=sys.stderr)
        return 2
    if args.quant:
        check_quant(args.quant)  # a K-quant or a typo fails before any work
    stop = StopFlag()
    stop.install()
    show = lambda r: _print_event(r, args.json)  # noqa: E731
    worst = 0
    for kind, out in targets:
        rec = export_run(args.run_dir, kind, out, quant=args.quant or "q8_0", check=not args.no_check,
                         evalset=args.evalset, questions=args.questions, on_event=show, should_stop=stop,
                         force=args.force)
        if rec is None:
            print("export stopped; nothing was written", file=sys.stderr)
            return 3
        print(f"{kind} written to {rec.path} ({rec.size_bytes / 2**20:.1f} MiB, sha256 {(rec.sha256 or '')[:12]})")
        if rec.parity:
            print(f"parity: {rec.parity['summary']}")
            worst = max(worst, 0 if rec.parity.get("ok") else 1)
    if any(needs_quant(k) for k, _out in targets) and (args.quant or "").startswith(("q4", "q5")):
        print(K_QUANTS_NOTE)  # those asking for 4/5 bits may want llama.cpp's K-quants
    if args.check and not targets:
        results = recheck(args.run_dir, evalset=args.evalset, limit=args.questions, on_event=show, should_stop=stop)
        if not results:
            print("no recorded exports to check", file=sys.stderr)
            return 2
        for r in results:
            print(f"{r.export}: {r.summary()}")
            worst = max(worst, 0 if r.ok else 1)
    return 0 if not args.strict else worst


def cmd_new(args) -> int:
    from backend.workspace import Project

    p = Project.create(args.project, args.name)
    print(f"project: {p.root}")
    return 0


def cmd_doctor(args) -> int:
    from backend.doctor import doctor

    report = doctor(resolve_default=not args.no_convert)
    if args.json:
        print(json.dumps(report, indent=2, default=str))
    else:
        from backend.doctor import format_report
        print(format_report(report))
    return 0 if report.get("ok") else 1


def build_parser() -> argparse.ArgumentParser:
    """The full ``tune`` parser, the extension modules' subcommands included."""
    from backend import __version__

    p = argparse.ArgumentParser(prog="tune", description="Tune Studio: fine-tune language models offline.")
    p.add_argument("--version", action="version", version=f"tune-studio {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="show tracebacks and library logs")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    t = sub.add_parser("train", help="fine-tune a model (LoRA by default)")
    t.add_argument("config", nargs="?", help="run config JSON (optional; defaults otherwise)")
    t.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override a config field, e.g. --set training.learning_rate=1e-4 (repeatable)")
    t.add_argument("--model", help="base model: 'default', a folder, a .gguf file")
    t.add_argument("--method", choices=methods.NAMES,
                   help="fine-tuning method (default lora); dpo / orpo: preference tuning on LoRA from the "
                        "corrections' chosen / rejected answers (datasets/feedback.jsonl)")
    t.add_argument("--data", action="append", metavar="FILE", help="training data file (repeatable)")
    t.add_argument("--output", help="run folder to create")
    t.add_argument("--project", help="project folder: train what the GUI would (its datasets and roles, "
                   "documents marked 'train on', saved settings); runs go to PROJECT/runs/")
    t.add_argument("--preset", choices=PRESET_KEYS,
                   help="start from a preset (the Configure page's Quick CPU test / Balanced LoRA / Quality / "
                        "Learn the facts, which is fitted to the training rows)")
    trust_flags(t)
    t.add_argument("--max-steps", type=int, dest="max_steps")
    t.add_argument("--save-steps", type=int, dest="save_steps")
    t.add_argument("--epochs", type=float)
    t.add_argument("--json", action="store_true", help="print events as JSON lines")
    t.set_defaults(func=cmd_train)

    rl = sub.add_parser("runs", help="list a project's runs: status, resumable, best eval loss")
    rl.add_argument("project", help="project folder")
    rl.add_argument("--json", action="store_true", help="print the list as JSON")
    rl.add_argument("--delete", metavar="RUN", help="delete a run folder (its id or name) and everything in it")
    rl.add_argument("--rename", nargs=2, metavar=("RUN", "NAME"),
                    help="give a run a display name (the folder keeps its id; '' removes the name)")
    rl.set_defaults(func=cmd_runs)

    c = sub.add_parser("corrections", help="list a project's corrected answers (question, model's answer, "
                                           "expert's answer, mode, run); delete or mark for the test set")
    c.add_argument("project", help="project folder")
    c.add_argument("--json", action="store_true", help="print every field as JSON (passages included)")
    cg = c.add_mutually_exclusive_group()
    cg.add_argument("--delete", metavar="ID", help="delete a correction (the next run no longer trains on it)")
    cg.add_argument("--test", metavar="ID", help="also test it: a reworded copy goes to evalsets/corrections.jsonl")
    cg.add_argument("--untest", metavar="ID", help="take it out of the test set")
    c.set_defaults(func=cmd_corrections)

    r = sub.add_parser("resume", help="continue a run from its latest checkpoint")
    r.add_argument("run_dir")
    r.add_argument("--set", action="append", metavar="KEY=VALUE")
    r.add_argument("--json", action="store_true")
    trust_flags(r)
    r.set_defaults(func=cmd_resume)

    e = sub.add_parser("export", help="export a run: adapter, merged model, GGUF or Ollama folder (+ parity check)",
                       description="Export a run and compare the export with the in-app model (parity check). "
                                   "K-quants (Q4_K_M, ...) are not available: gguf-py cannot write them; "
                                   "quantize an f16 export with llama.cpp's llama-quantize for those.")
    e.add_argument("run_dir")
    for kind in dialog_kinds():
        e.add_argument(f"--{kind.key}", metavar=kind.metavar, help=kind.flag_help)
    e.add_argument("--quant", metavar="TYPE",
                   help="GGUF quantization: f16, bf16, q8_0 (default), q5_1, q5_0, q4_1, q4_0, f32")
    e.add_argument("--check", action="store_true",
                   help="alone: run the parity check again on the run's recorded exports")
    e.add_argument("--no-check", action="store_true", dest="no_check", help="skip the parity check after exporting")
    e.add_argument("--force", action="store_true",
                   help="replace an earlier export at the target (an existing .gguf file or export folder); "
                        "never replaces a file or folder that is not an export")
    e.add_argument("--evalset", help="questions for the parity check: an evalset name or file "
                                     "(default: the project's first evalset, else the validation rows)")
    e.add_argument("--questions", type=int, default=20, help="questions compared (default 20)")
    e.add_argument("--strict", action="store_true", help="exit 1 when the parity check finds a difference")
    e.add_argument("--json", action="store_true", help="print events as JSON lines")
    e.set_defaults(func=cmd_export)

    n = sub.add_parser("new", help="create a project folder")
    n.add_argument("project")
    n.add_argument("--name")
    n.set_defaults(func=cmd_new)

    d = sub.add_parser("doctor", help="versions, device, default models, memory estimate")
    d.add_argument("--json", action="store_true")
    d.add_argument("--no-convert", action="store_true", help="do not convert the default model if not cached")
    d.set_defaults(func=cmd_doctor)

    for module in EXTENSIONS:
        module.register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``tune``; returns the exit code (2 for user errors)."""
    from backend.runtime import set_offline
    from backend.trust import hub_allowed, set_hub_access

    set_offline(allow_hub=hub_allowed())  # TUNE_ALLOW_HUB=1: the person's answer, never a file's
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "allow_hub", False):
        set_hub_access(True)  # --allow-hub: for this command and the processes it starts
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except TuneError as e:
        if args.verbose:
            import traceback
            traceback.print_exc()
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("aborted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`tune ... --json | head`): no traceback, and none at exit either.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except OSError as e:
        # a full or read-only disk, no permission: a message, and the traceback only in the log
        problem = from_os_error(e, resume_hint=_resume_hint(args), folder=_folder(args))
        print(f"error: {problem}{_logged(e)}", file=sys.stderr)
        return problem.exit_code
    except Exception as e:
        # a full disk as a library words it (safetensors, SQLite, torch's writer) is a full disk, not damage
        full = disk_problem(e, _folder(args) or os.getcwd(), then=_resume_hint(args))
        if full is not None:
            print(f"error: {full}{_logged(e)}", file=sys.stderr)
            return full.exit_code
        if type(e).__name__ != "SafetensorError":
            raise
        print(f"error: a weights file (.safetensors) is damaged or cut off ({e}) — re-export or re-train it; "
              f"a copy interrupted mid-way is the usual cause{_logged(e)}", file=sys.stderr)
        return 2


def _folder(args) -> str | None:
    """The folder the command writes into, as named on the command line (for a disk's message)."""
    return next((getattr(args, a) for a in ("project", "output", "run_dir", "run", "out")
                 if isinstance(getattr(args, a, None), str)), None)


def _resume_hint(args) -> str:
    """What to run again after fixing the disk, for the commands that write a run."""
    if getattr(args, "func", None) is cmd_resume:
        return "then `tune resume` the run again"
    if getattr(args, "func", None) is cmd_train:
        return "then run the command again, or `tune resume` the run if it had started"
    return "then run the command again"


def _logged(e: BaseException) -> str:
    """Write the traceback to the user's log file; returns where, for the message."""
    import traceback

    from backend.runtime import data_dir

    try:
        log = data_dir() / "logs" / "tune.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "a", encoding="utf-8") as fh:
            fh.write("".join(traceback.format_exception(e)) + "\n")
        return f" (details in {log})"
    except OSError:
        return ""

"""``tune ingest``, ``ask``, ``eval``, ``report`` and ``distill-questions``: the RetrievalQA commands.

Registered into the ``tune`` parser by :mod:`backend.cli`.  Heavy libraries are
imported inside the handlers, so ``tune --help`` stays instant.  User errors
are raised as :class:`~backend.errors.TuneError`; the main CLI prints them and
exits with code 2.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path
from typing import Any

from backend import events as ev
from backend.rag.modes import MODES


def register(subparsers: Any) -> None:
    """Add ``ingest``, ``ask``, ``eval``, ``report`` and ``distill-questions`` to ``tune``'s subparsers."""
    from backend.rag.settings import EMBEDDING_BACKENDS  # light: dataclasses only

    i = subparsers.add_parser("ingest", help="index documents for questions (incremental)",
                              description="Chunk and embed documents into PROJECT/index. Unchanged files are "
                                          "skipped; indexed files that are gone from disk are dropped.")
    i.add_argument("project", help="project folder (created if missing)")
    i.add_argument("files", nargs="*", metavar="FILE",
                   help="files or folders; none = the documents recorded in the project (`tune docs add`)")
    i.add_argument("--rebuild", action="store_true",
                   help="drop the index and embed everything again (needed after changing the embedding model)")
    i.add_argument("--chunk-size", type=int, dest="chunk_size", help="characters per chunk (default 1000)")
    i.add_argument("--chunk-overlap", type=int, dest="chunk_overlap", help="characters shared by neighbouring chunks (default 150)")
    i.add_argument("--embedding-model", dest="embedding_model", metavar="FOLDER",
                   help="a local sentence-transformers folder (default: the bundled all-MiniLM-L6-v2)")
    i.add_argument("--batch-size", type=int, dest="batch_size", help="chunks per embedding batch (default: auto)")
    i.add_argument("--embedding-backend", dest="embedding_backend", choices=EMBEDDING_BACKENDS,
                   help="what computes the vectors: auto (ONNX Runtime on the CPU, torch on a GPU; default), "
                        "torch or onnx; the vectors are the same")
    i.add_argument("--json", action="store_true", help="print the report as JSON")
    i.set_defaults(func=cmd_ingest)

    a = subparsers.add_parser("ask", help="ask a question over the project's documents",
                              description="Answer a question with the tuned model (--run) or the base model, "
                                          "with retrieval from the project's index unless --no-rag.")
    a.add_argument("project", help="project folder")
    a.add_argument("question")
    a.add_argument("--run", metavar="RUN_DIR", help="run folder whose adapter to apply (tuned model)")
    a.add_argument("--base", action="store_true", help="answer as the base model (the run's adapter disabled)")
    a.add_argument("--no-rag", action="store_true", dest="no_rag", help="no retrieval: the question alone")
    a.add_argument("-k", type=int, default=None, help="passages to retrieve (default 4)")
    a.add_argument("--max-new-tokens", type=int, dest="max_new_tokens", help="longest answer in tokens (default 256)")
    a.add_argument("--temperature", type=float, help="0 = greedy (default)")
    _answer_flags(a)
    a.add_argument("--json", action="store_true", help="print answer, mode and sources as JSON")
    a.set_defaults(func=cmd_ask)

    e = subparsers.add_parser("eval", help="evaluate a run in the four chat modes over an evalset",
                              description="Answer every question as base and tuned, with and without the documents "
                                          "(one model load), score it with 95%% intervals and write "
                                          "RUN_DIR/eval/<evalset>.json and .md. Evalset rows: {\"question\", "
                                          "\"answer\" and/or \"keywords\", optional \"source\", \"answerable\"}.")
    e.add_argument("project", help="project folder (its index is used)")
    e.add_argument("questions", nargs="?", metavar="FILE|NAME",
                   help="a questions file (.jsonl/.csv) or the name of one of the project's evalsets")
    e.add_argument("--evalset", metavar="NAME", help="an evalset of the project (PROJECT/evalsets/NAME.jsonl)")
    e.add_argument("--run", metavar="RUN_DIR", required=True, help="run folder to evaluate")
    e.add_argument("--from-validation", action="store_true", dest="from_validation",
                   help="add the run's validation rows (never trained on) as questions")
    e.add_argument("--limit", type=int, default=50, help="validation rows to use with --from-validation (default 50)")
    e.add_argument("--forgetting", action="store_true",
                   help="also score a general-knowledge probe as base and tuned (flags forgetting)")
    e.add_argument("--modes", help=f"comma-separated subset of {','.join(MODES)}")
    e.add_argument("--name", help="report name (default: the evalset's name)")
    e.add_argument("--out", metavar="DIR", help="output folder (default RUN_DIR/eval)")
    e.add_argument("-k", type=int, default=None, help="passages to retrieve (default 4)")
    e.add_argument("--max-new-tokens", type=int, dest="max_new_tokens", help="longest answer in tokens (default 256)")
    _answer_flags(e)
    e.add_argument("--no-loss", action="store_true", dest="no_loss", help="skip the validation loss before/after")
    e.add_argument("--json", action="store_true", help="print the report as JSON")
    e.set_defaults(func=cmd_eval)

    r = subparsers.add_parser("report", help="write a run's self-contained offline HTML report",
                              description="Configuration, data files (sha256, rows), environment, training curves, "
                                          "scorecards and per-question tables, exports: one HTML file that loads "
                                          "nothing from the network.")
    r.add_argument("run", metavar="RUN_DIR", help="run folder")
    r.add_argument("--evalset", metavar="NAME", action="append",
                   help="evaluation to include (repeatable; default: all of the run's)")
    r.add_argument("-o", "--out", metavar="FILE", help="HTML file to write (default RUN_DIR/report.html)")
    r.set_defaults(func=cmd_report)

    dq = subparsers.add_parser("distill-questions", help="draft test questions from the documents with a teacher model",
                               description="A local teacher model writes question/reference-answer pairs from the "
                                           "project's documents, saved as a reviewable evalset "
                                           "(PROJECT/evalsets/NAME.jsonl, every row status \"draft\"). Review it "
                                           "(set status accepted/rejected, edit answers) before trusting it.")
    dq.add_argument("project", help="project folder")
    dq.add_argument("-n", type=int, default=20, help="questions to draft (default 20)")
    dq.add_argument("--teacher", metavar="PATH", help="a local model folder or .gguf (default: the bundled model)")
    dq.add_argument("--name", help="evalset name (default drafted-<date>)")
    dq.add_argument("--max-new-tokens", type=int, dest="max_new_tokens", default=160,
                    help="longest teacher answer in tokens (default 160)")
    dq.add_argument("--json", action="store_true", help="print the drafted rows as JSON")
    dq.set_defaults(func=cmd_distill_questions)


def _answer_flags(parser: Any) -> None:
    """``--set`` over the project's answer settings (keys generated from ``AnswerSettings``) and ``--allow-hub``."""
    from backend.cliutil import trust_flags
    from backend.fields import set_help
    from backend.rag.settings import AnswerSettings

    parser.add_argument("--set", action="append", metavar="KEY=VALUE",
                        help="answer setting over the project's saved ones (the Chat page's); "
                             + set_help(AnswerSettings, "retrieval.section_weight=0.6"))
    trust_flags(parser, remote_code=False, pickle=False)


def answer_settings(args: Any, project: Any):
    """The settings ``tune ask`` / ``tune eval`` answer with: the project's, then the quick flags, then ``--set``.

    Raises
    ------
    ConfigError
        Invalid saved settings (naming project.json and the field), an unknown
        ``--set`` key (with the closest one) or a bad value.
    """
    from backend.fields import parse_set

    settings = project.answer_settings(strict=True)
    quick = {"retrieval.k": getattr(args, "k", None), "generation.max_new_tokens": getattr(args, "max_new_tokens", None),
             "generation.temperature": getattr(args, "temperature", None)}
    overrides: dict[str, Any] = {k: v for k, v in quick.items() if v is not None}
    overrides.update(parse_set(getattr(args, "set", None) or [], example="retrieval.section_weight=0.6"))
    return settings.with_overrides(overrides) if overrides else settings


def _progress_printer(enabled: bool):
    """An on_event that prints progress messages to stderr (stdout keeps the results)."""
    shown: dict[str, int] = {}

    def on_event(rec: dict) -> None:
        if not enabled:
            return
        if rec.get("type") == ev.PROGRESS and rec.get("message"):
            stage, cur, tot = rec.get("stage", ""), rec.get("current") or 0, rec.get("total") or 0
            if stage in ("embed", "eval") and tot:
                # one line per ~10% for the long stages, not one per batch
                tenth = cur * 10 // tot
                if cur not in (0, tot) and shown.get(stage) == tenth:
                    return
                shown[stage] = tenth
            print(rec["message"], file=sys.stderr, flush=True)
        elif rec.get("type") == ev.LOG and rec.get("level") in ("warning", "error"):
            print(rec.get("message", ""), file=sys.stderr, flush=True)

    return on_event


def _quiet(args: Any) -> None:
    """Keep library progress bars and logs out of the output (the main CLI's setting; -v keeps them)."""
    if getattr(args, "verbose", False):
        return
    from backend.cliutil import quiet_libraries

    quiet_libraries()


def _stop_flag():
    """Ctrl-C stops at the next batch or token (twice: abort)."""
    from backend.cliutil import StopFlag

    flag = StopFlag("Stopping after this batch (what is finished is kept); Ctrl-C again to abort.")
    flag.install()
    return flag


def cmd_ingest(args: Any) -> int:
    """``tune ingest PROJECT FILE...``."""
    _quiet(args)
    from backend.rag.index import ingest
    from backend.rag.settings import IndexSettings
    from backend.workspace import Project

    project = Project.create(args.project)
    kw = {k: v for k, v in {"chunk_size": args.chunk_size, "chunk_overlap": args.chunk_overlap,
                            "embedding_model": args.embedding_model, "embed_batch_size": args.batch_size,
                            "embedding_backend": getattr(args, "embedding_backend", None)}.items()
          if v is not None}
    settings = IndexSettings(**kw)
    files = list(args.files)
    if not files:
        try:
            from backend.documents import project_documents
            files = project_documents(project)
        except ImportError:
            files = []
    if not files:
        loose = project.documents_dir.is_dir() and any(
            f.is_file() and f.name != project.manifest_path.name for f in project.documents_dir.rglob("*"))
        example = f"tune ingest {args.project} {project.documents_dir}" if loose else f"tune ingest {args.project} FILE..."
        hint = (f"name files or folders (`{example}`) or record them first (`tune docs add {args.project} FILE...`)")
        if not project.index_dir.exists():
            print(f"error: {project.root}: no documents to index — none were named and none are recorded in the "
                  f"project; {hint}", file=sys.stderr)
            return 2
        print(f"note: no documents named or recorded in the project, so nothing new is indexed; to add some, {hint}",
              file=sys.stderr)
    rep = ingest(project, files, settings=settings, rebuild=args.rebuild,
                 on_event=_progress_printer(not args.json), should_stop=_stop_flag())
    if args.json:
        print(json.dumps(rep.to_dict(), indent=2))
    else:
        for f in rep.failed:
            print(f"not indexed: {f['error']}", file=sys.stderr)
        print(rep.describe())
    return 3 if rep.cancelled else (1 if rep.failed else 0)


@contextlib.contextmanager
def _one_question_embedder():
    """Embed ``tune ask``'s one question with torch unless the person chose a backend (``TUNE_STUDIO_EMBED_BACKEND``).

    ONNX Runtime pays for itself over many texts (an ingest, the model host's
    questions); for one question its set-up in a fresh process (hashing the
    weights for the cache key, loading the export, the parity check against the
    torch model, which is loaded anyway) costs seconds and saves milliseconds.
    The vectors are the same either way (``index.embedding_backend``).
    """
    from backend.rag.embeddings import BACKEND_ENV

    if os.environ.get(BACKEND_ENV, "").strip():
        yield
        return
    os.environ[BACKEND_ENV] = "torch"
    try:
        yield
    finally:
        os.environ.pop(BACKEND_ENV, None)


def cmd_ask(args: Any) -> int:
    """``tune ask PROJECT "question" [--run RUN_DIR] [--base] [--no-rag] [--json]``."""
    _quiet(args)
    from backend.rag.chain import ask
    from backend.workspace import Project

    project = Project.open(args.project)
    settings = answer_settings(args, project)
    stream = not args.json
    printed: list[str] = []

    def on_token(t: str) -> None:
        printed.append(t)
        print(t, end="", flush=True)

    with _one_question_embedder():
        answer = ask(project, args.question, run_dir=args.run, tuned=bool(args.run) and not args.base,
                     rag=not args.no_rag, settings=settings,
                     on_token=on_token if stream else None, on_event=_progress_printer(stream),
                     should_stop=_stop_flag())
    if args.json:
        d = answer.to_dict()
        print(json.dumps(d, indent=2, ensure_ascii=False))
        return 0
    print() if printed else print(answer.answer)
    if printed and answer.withheld:
        print(f"\n[withheld: it states {', '.join(answer.unsupported)}, which the documents don't contain]\n"
              f"{answer.answer}")
    if answer.quoted:
        from backend.transcript import QUOTED_NOTE

        print(f"[{QUOTED_NOTE}]")
    print(f"\n[{answer.mode}, {answer.seconds:.1f}s]")
    if answer.sources:
        print("Sources:")
        for n, s in enumerate(answer.sources, 1):
            snippet = " ".join(s.text.split())[:100]
            print(f"  [{n}] {s.label()}  score {s.score:.3f}  {snippet}")
    return 0


def cmd_eval(args: Any) -> int:
    """``tune eval PROJECT (FILE|NAME | --evalset NAME) --run RUN_DIR [--from-validation] [--forgetting] [--json]``."""
    _quiet(args)
    from backend.errors import DataError
    from backend.evalsets import from_validation, read_evalset, resolve_evalset
    from backend.rag.evaluate import evaluate
    from backend.workspace import Project

    project = Project.open(args.project)
    settings = answer_settings(args, project)
    if args.questions and args.evalset:
        raise DataError("give the evalset either as FILE|NAME or with --evalset, not both", field="evalset")
    chosen = args.questions or args.evalset
    if not chosen and not args.from_validation:
        raise DataError("no questions to evaluate", field="evalset",
                        hint="give a questions file, --evalset NAME (PROJECT/evalsets/NAME.jsonl) or --from-validation")
    modes = tuple(m.strip() for m in args.modes.split(",")) if args.modes else MODES
    printer = _progress_printer(not args.json)
    evalset: Any = chosen
    name = args.name
    if args.from_validation:
        rows = read_evalset(resolve_evalset(project, chosen)) if chosen else []
        rows += from_validation(args.run, limit=args.limit, on_event=printer)
        name = name or ((Path(str(chosen)).stem + "-validation") if chosen else "validation")
        evalset = rows
    rep = evaluate(project, evalset, args.run, name=name, modes=modes, forgetting=args.forgetting, out_dir=args.out,
                   settings=settings, with_loss=not args.no_loss, on_event=printer, should_stop=_stop_flag())
    if args.json:
        d = rep.to_dict()
        d.update(json=rep.json_path, markdown=rep.markdown_path)
        print(json.dumps(d, indent=2, ensure_ascii=False))
    else:
        print(rep.markdown())
        print(f"written: {rep.json_path}, {rep.markdown_path}")
    return 3 if rep.cancelled else 0


def cmd_report(args: Any) -> int:
    """``tune report RUN_DIR [--evalset NAME] [-o report.html]``."""
    from backend.report import write_report

    out = write_report(args.run, args.out, args.evalset)
    print(f"written: {out}")
    return 0


def cmd_distill_questions(args: Any) -> int:
    """``tune distill-questions PROJECT [-n 20] [--teacher PATH] [--name NAME]``: a reviewable evalset."""
    _quiet(args)
    from backend.errors import DataError
    from backend.evalsets import check_name, draft_from_documents, evalset_path, training_overlap, write_evalset
    from backend.fsutil import timestamp
    from backend.workspace import Project

    project = Project.open(args.project)
    name = check_name(args.name or f"drafted-{timestamp()}")
    path = evalset_path(project, name)
    if path.exists():
        raise DataError("an evalset of this name exists; drafting never overwrites one", file=path, field="name",
                        hint="choose another --name")
    rows = draft_from_documents(project, n=args.n, teacher=args.teacher, max_new_tokens=args.max_new_tokens,
                                on_event=_progress_printer(not args.json), should_stop=_stop_flag())
    if not rows:
        print("stopped before any question was drafted; nothing written", file=sys.stderr)
        return 3
    write_evalset(path, rows)
    overlap = training_overlap(rows, project)
    if args.json:
        print(json.dumps({"path": str(path), "rows": [r.to_dict() for r in rows], "overlap": overlap},
                         indent=2, ensure_ascii=False))
        return 0
    for r in rows:
        print(f"{r.id}  {r.question}\n      → {r.answer}  [{r.source} #{r.lineage.get('chunk')}]")
    for o in overlap:
        print(f"note: {o['id']} is also a training question ({o['file']}:{o['line']})", file=sys.stderr)
    print(f"\n{len(rows)} draft questions written to {path}; review them (status accepted/rejected) before use.")
    return 0

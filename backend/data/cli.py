"""``tune data ...`` and ``tune docs ...`` subcommands (registered by backend.cli).

``tune data check FILE... [--model M] [--format F] [--max-length N] [--json] [--preview N]``
    Exit 0 when the data is usable, 2 when not.
``tune data distill PROJECT --teacher M [FILE...]``
    Question/answer pairs from documents into ``<project>/datasets/``.
``tune docs add PROJECT FILE...``
    Record documents in ``documents/manifest.json`` (unchanged files skipped).
``tune docs list PROJECT`` / ``tune docs text PROJECT [--out F]``
    Show the manifest / write the documents as a plain-text training dataset.

Heavy modules are imported inside the handlers so ``tune --help`` stays instant.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from backend import events as ev
from backend.cliutil import trust_flags

FORMAT_CHOICES = ("auto", "alpaca", "sharegpt", "messages", "prompt_completion", "text")

_DIM, _GREEN, _RESET = "\x1b[2m", "\x1b[32m", "\x1b[0m"


def register(subparsers: Any) -> None:
    """Add the ``data`` and ``docs`` command groups to ``tune``'s subparsers."""
    data = subparsers.add_parser("data", help="check and preview datasets; distil Q/A pairs from documents")
    dsub = data.add_subparsers(dest="data_command", metavar="COMMAND")
    data.set_defaults(func=lambda args: _group_help(data))

    c = dsub.add_parser("check", help="validate dataset files against a model's tokenizer",
                        description="Detected format, rows, roles, token lengths (min/median/p95/max), rows over "
                                    "max length, duplicates and every problem as file:line. Exit 0 when usable, 2 "
                                    "when not.")
    c.add_argument("files", nargs="*", metavar="FILE",
                   help="dataset files or datasets.save_to_disk folders (default: the --config's data files)")
    c.add_argument("--model", help="model whose tokenizer and chat template to use (default: the config's, "
                                   "else the bundled default)")
    c.add_argument("--config", metavar="RUN_JSON", help="take data settings (format, mapping, max length, ...) "
                                                        "from a run config")
    c.add_argument("--format", choices=FORMAT_CHOICES, help="dataset format (default: auto-detect)")
    c.add_argument("--max-length", type=int, metavar="N", help="maximum tokens per row")
    c.add_argument("--overlong", choices=("truncate", "drop"), help="what to do with rows over max length")
    c.add_argument("--column-mapping", metavar="JSON", help='map your columns to ours, e.g. '
                                                           '\'{"question": "instruction", "answer": "output"}\'')
    c.add_argument("--system-prompt", help="system message added to conversations that have none")
    c.add_argument("--train-on-prompt", action="store_true", help="loss on all tokens, not only answers")
    c.add_argument("--json", action="store_true", help="print one JSON object (for machines)")
    trust_flags(c)
    c.add_argument("--preview", type=int, default=0, metavar="N",
                   help="print N rendered rows; text without loss is shown dim (or inside ⟦ ⟧ when not a terminal)")
    c.set_defaults(func=cmd_data_check)

    d = dsub.add_parser("distill", help="generate question/answer pairs from documents with a teacher model",
                        description="A local teacher model reads document chunks and writes question/answer "
                                    "pairs, saved as a messages dataset in <project>/datasets/ for review.")
    d.add_argument("project", help="project folder")
    d.add_argument("files", nargs="*", metavar="FILE", help="documents (default: the project's documents)")
    d.add_argument("--teacher", default="default", help="teacher model: 'default', a folder or a .gguf file")
    d.add_argument("--questions", type=int, default=2, help="questions per chunk")
    d.add_argument("--chunk-size", type=int, default=1500, help="characters per chunk")
    d.add_argument("--max-chunks", type=int, help="stop after this many chunks")
    d.add_argument("--max-new-tokens", type=int, default=256)
    d.add_argument("--batch-size", type=int, default=4)
    d.add_argument("--json", action="store_true")
    d.set_defaults(func=cmd_data_distill)

    docs = subparsers.add_parser("docs", help="add documents to a project")
    ssub = docs.add_subparsers(dest="docs_command", metavar="COMMAND")
    docs.set_defaults(func=lambda args: _group_help(docs))

    a = ssub.add_parser("add", help="record documents in the project's manifest (unchanged files are skipped)")
    a.add_argument("project", help="project folder")
    a.add_argument("files", nargs="+", metavar="FILE", help=".txt .md .pdf .docx .html .csv files")
    a.add_argument("--chunk-size", type=int, default=800, help="characters per chunk")
    a.add_argument("--chunk-overlap", type=int, default=100, help="characters shared by neighbouring chunks")
    a.add_argument("--json", action="store_true")
    a.set_defaults(func=cmd_docs_add)

    ls = ssub.add_parser("list", help="the project's documents and their status")
    ls.add_argument("project")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=cmd_docs_list)

    t = ssub.add_parser("text", help="write the project's documents as a plain-text training dataset")
    t.add_argument("project")
    t.add_argument("--out", help="output .jsonl (default: a new file in <project>/datasets/)")
    t.add_argument("--chunk-size", type=int, default=2000)
    t.add_argument("--chunk-overlap", type=int, default=0)
    t.set_defaults(func=cmd_docs_text)


def _group_help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 0


# ---------------------------------------------------------------------------
# data check

def _check_config(args: argparse.Namespace):
    from backend.config import RunConfig
    from backend.errors import ConfigError

    from backend.cliutil import print_notices
    from backend.trust import hub_allowed, restrict

    # the person's flags, never the --config file's (a copied run's config.json): backend/trust.py
    cfg, refused = restrict(RunConfig.load(args.config) if args.config else RunConfig(),
                            trust_remote_code=bool(getattr(args, "trust_remote_code", False)),
                            allow_pickle_weights=bool(getattr(args, "allow_pickle_weights", False)),
                            allow_hub=hub_allowed() or bool(getattr(args, "allow_hub", False)),
                            source=f"The config file {args.config}")
    print_notices(refused)
    overrides: dict[str, Any] = {}
    if args.model:
        overrides["model.name_or_path"] = args.model
    if args.format:
        overrides["data.format"] = args.format
    if args.max_length is not None:
        overrides["data.max_length"] = args.max_length
    if args.overlong:
        overrides["data.overlong"] = args.overlong
    if args.column_mapping:
        try:
            mapping = json.loads(args.column_mapping)
        except json.JSONDecodeError as e:
            raise ConfigError(f"--column-mapping is not JSON ({e.msg})", field="data.column_mapping",
                              hint='write it like \'{"question": "instruction"}\'') from None
        overrides["data.column_mapping"] = mapping
    if args.system_prompt is not None:
        overrides["data.system_prompt"] = args.system_prompt
    if args.train_on_prompt:
        overrides["data.train_on_prompt"] = True
    return cfg.with_overrides(overrides) if overrides else cfg


def _load_tokenizer(cfg, on_event=None):
    from backend import events as ev
    from backend.models import load_tokenizer, resolve_model

    path = resolve_model(cfg.model.name_or_path, allow_hub=cfg.model.allow_hub,
                         allow_pickle_weights=True, on_event=on_event or ev.no_event)
    return load_tokenizer(path, trust_remote_code=cfg.model.trust_remote_code)


def format_preview(rows, color: bool) -> str:
    """Preview rows as text; masked (no-loss) text dim in colour, else inside ⟦ ⟧."""
    out = []
    for i, r in enumerate(rows, start=1):
        out.append(f"--- row {i}: {r.file}:{r.line} ({r.format}, {r.tokens} tokens, {r.trained_tokens} with loss"
                   + (f", {r.status}" if r.status != "kept" else "") + ") ---")
        if color:
            out.append("".join(f"{_GREEN}{t}{_RESET}" if b else f"{_DIM}{t}{_RESET}" for t, b in r.segments))
        else:
            out.append(r.marked())
    if rows:
        out.append("(legend: " + ("dim = no loss, green = trained" if color else "⟦…⟧ = no loss (masked)") + ")")
    return "\n".join(out)


def cmd_data_check(args: argparse.Namespace) -> int:
    """``tune data check``: print the report; 0 when usable, 2 when not."""
    from backend.data.pipeline import check_files, preview

    from backend.errors import DataError

    cfg = _check_config(args)
    files = args.files or [*cfg.data.train_files, *cfg.data.validation_files]
    if not files:
        raise DataError("no files to check", hint="give dataset files, or --config with data.train_files")
    tok = _load_tokenizer(cfg, None if args.json else _print_progress)
    report = check_files(files, tok, cfg)
    rows = preview(files, tok, cfg, args.preview) if args.preview > 0 else []
    if args.json:
        d = report.to_dict()
        if args.preview > 0:
            d["preview"] = [r.to_dict() for r in rows]
        print(json.dumps(d, indent=2, ensure_ascii=False, default=str))
    else:
        print(report.text())
        if rows:
            print()
            print(format_preview(rows, sys.stdout.isatty()))
    return 0 if report.usable else 2


def _print_progress(rec: dict) -> None:
    if rec.get("type") == ev.PROGRESS and rec.get("stage") == "convert" and rec.get("message"):
        print(rec["message"], file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------
# docs

def _open_project(path: str):
    from backend.workspace import Project

    return Project.open(path)


def cmd_docs_add(args: argparse.Namespace) -> int:
    """``tune docs add``: record documents; 2 when any file failed."""
    from pathlib import Path

    from backend.documents import add_documents

    project = _open_project(args.project)
    res = add_documents(project, args.files, chunk_size=args.chunk_size, chunk_overlap=args.chunk_overlap)
    if args.json:
        print(json.dumps(res.to_dict(), indent=2, default=str))
    else:
        for key in res.added:
            print(f"added      {Path(key).name} ({res.chunks[key]} chunks)")
        for key in res.updated:
            print(f"updated    {Path(key).name} ({res.chunks[key]} chunks)")
        for key in res.unchanged:
            print(f"unchanged  {Path(key).name} (skipped)")
        for key, err in res.failed:
            print(f"error      {err}", file=sys.stderr)
        print(f"{len(res.added)} added, {len(res.updated)} updated, {len(res.unchanged)} unchanged, "
              f"{len(res.failed)} failed — manifest: {project.manifest_path}")
    return 0 if res.ok else 2


def cmd_docs_list(args: argparse.Namespace) -> int:
    """``tune docs list``: the manifest, one document a line."""
    from backend.documents import read_manifest

    m = read_manifest(_open_project(args.project))
    if args.json:
        print(json.dumps(m, indent=2))
        return 0
    docs = m["documents"]
    if not docs:
        print("no documents yet — add some with `tune docs add PROJECT FILE...`")
    for e in docs.values():
        state = e.get("status")
        extra = f"{e.get('chunks', 0)} chunks, sha256 {str(e.get('sha256', ''))[:12]}" if state == "ok" else e.get("error")
        print(f"{state:<6} {e['path']}  ({extra})")
    return 0


def cmd_docs_text(args: argparse.Namespace) -> int:
    """``tune docs text``: documents -> plain-text dataset in <project>/datasets/."""
    from backend.documents import export_text_dataset, project_documents
    from backend.errors import DocumentError

    project = _open_project(args.project)
    files = project_documents(project)
    if not files:
        raise DocumentError("the project has no documents", file=project.root,
                            hint="add some with `tune docs add PROJECT FILE...`")
    out = export_text_dataset(files, args.out or project.datasets_dir, chunk_size=args.chunk_size,
                              chunk_overlap=args.chunk_overlap)
    n = sum(1 for _ in open(out, encoding="utf-8"))
    print(f"wrote {n} text rows to {out}")
    return 0


def cmd_data_distill(args: argparse.Namespace) -> int:
    """``tune data distill``: teacher-written Q/A pairs into <project>/datasets/."""
    from backend.data.distill import distill
    from backend.documents import project_documents
    from backend.errors import DocumentError

    project = _open_project(args.project)
    files = args.files or project_documents(project)
    if not files:
        raise DocumentError("no documents to distil", file=project.root,
                            hint="give document files, or add some with `tune docs add PROJECT FILE...`")

    def show(rec: dict) -> None:
        if not args.json and rec.get("type") == ev.PROGRESS and rec.get("message"):
            print(rec["message"], flush=True)

    res = distill(files, project.datasets_dir, teacher=args.teacher, questions_per_chunk=args.questions,
                  chunk_size=args.chunk_size, max_chunks=args.max_chunks, batch_size=args.batch_size,
                  max_new_tokens=args.max_new_tokens, on_event=show)
    if args.json:
        print(json.dumps(res.to_dict(), indent=2))
    else:
        print(f"wrote {res.rows} question/answer pairs from {res.chunks} chunks to {res.path} — review and edit "
              "them, then train on the file")
    return 0

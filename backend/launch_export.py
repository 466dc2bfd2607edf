"""Launch folders: export a run as a self-contained folder to train it on a cluster.

The same ``tune train`` runs under ``torchrun`` and ``accelerate launch``
(DDP, FSDP) through the Trainer's own accelerate integration; rank 0 alone
writes the run folder.  This module only *packages* a run for that:

``tune export-run RUN_DIR OUT [--gpus N] [--nodes M] [--copy-model]``
    writes ``OUT/`` with

    ``config.json``               the run's config, pointing at the files below (relative paths)
    ``data/*.jsonl``              the normalised dataset: every row after reading, column
                                  mapping, system prompt, document chunking and duplicate
                                  removal, one file per source file (order kept, so the
                                  seeded validation split and the data order are the same)
    ``launch_torchrun.sh``        torchrun (DDP), N processes per node x M nodes
    ``launch_accelerate.sh``      accelerate launch with a generated config:
    ``accelerate_ddp.yaml``       multi-GPU DDP, and
    ``accelerate_fsdp.yaml``      FSDP (full shard; adapters wrapped by the Trainer's PEFT policy)
    ``slurm.sbatch``              a Slurm batch example (one torchrun per node)
    ``README.md``                 the commands

No distribution logic of our own lives here: PyTorch, accelerate and the
Trainer do the work.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from backend import events as ev
from backend import runs
from backend.config import RunConfig
from backend.errors import DataError, RunError

DATA_DIR = "data"
SCRIPTS = ("launch_torchrun.sh", "launch_accelerate.sh", "slurm.sbatch")


@dataclass
class ExportedRun:
    """What :func:`export_run` wrote."""

    out: Path
    files: list[str] = field(default_factory=list)          # relative to ``out``
    train_files: list[str] = field(default_factory=list)    # data files, relative
    validation_files: list[str] = field(default_factory=list)
    train_rows: int = 0                                       # normalised rows (before the split)
    validation_rows: int = 0
    gpus: int = 1
    nodes: int = 1

    def to_dict(self) -> dict:
        """JSON-serialisable."""
        return {"out": str(self.out), "files": self.files, "train_files": self.train_files,
                "validation_files": self.validation_files, "train_rows": self.train_rows,
                "validation_rows": self.validation_rows, "gpus": self.gpus, "nodes": self.nodes}


# ---------------------------------------------------------------------------
# the normalised dataset

def example_record(ex) -> dict[str, Any]:
    """One normalised :class:`~backend.data.Example` as a row that normalises back to it.

    ``messages`` for conversations, ``prompt``/``completion`` for completions and
    for conversations whose loss starts later (``train_from``), ``text`` for text.
    """
    if ex.messages is not None:
        msgs = [{"role": m["role"], "content": m["content"]} for m in ex.messages]
        if ex.train_from:
            return {"prompt": msgs[:ex.train_from], "completion": msgs[ex.train_from:]}
        return {"messages": msgs}
    if ex.prompt is not None:
        return {"prompt": ex.prompt, "completion": ex.completion or ""}
    return {"text": ex.text or ""}


def _record_format(rec: dict) -> str:
    return "messages" if "messages" in rec else "prompt_completion" if "prompt" in rec else "text"


def _slug(text: str, default: str = "run") -> str:
    s = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")[:48]
    return s or default


def _raise_errors(results) -> None:
    errs = [p for res in results for p in res.problems if p.severity == "error"]
    if errs:
        more = f"({len(errs) - 1} more; run `tune data check` to list them)" if len(errs) > 1 else ""
        raise errs[0].to_error(DataError, more)


def _write_rows(results, out: Path, prefix: str) -> tuple[list[str], int]:
    """Write the usable examples of each file to ``out/data/<prefix>-NN-<name>.jsonl``.

    A new file starts whenever the row format changes (a file holds one format),
    so the order of rows across files is the original order.
    """
    written: list[str] = []
    total = 0
    part = 0
    for res in results:
        recs = [example_record(r.example) for r in res.rows if r.usable]
        total += len(recs)
        runs: list[list[dict]] = []
        for rec in recs:
            if runs and _record_format(runs[-1][-1]) == _record_format(rec):
                runs[-1].append(rec)
            else:
                runs.append([rec])
        for chunk in runs:
            part += 1
            rel = f"{DATA_DIR}/{prefix}-{part:02d}-{_slug(Path(res.path).stem, 'data')}.jsonl"
            with open(out / rel, "w", encoding="utf-8") as fh:
                for rec in chunk:
                    fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
            written.append(rel)
    return written, total


def export_dataset(cfg: RunConfig, out: Path, *, on_event: ev.OnEvent = ev.no_event) -> tuple[RunConfig, dict]:
    """Write the normalised training (and validation) rows of ``cfg`` under ``out/data``.

    Returns the config pointing at them (relative paths, format ``auto``, no
    column mapping, system prompt or documents: those are applied already) and
    a summary.  Tokenisation, truncation and the seeded validation split are
    left to training, which does them exactly as it would on this machine.

    Raises
    ------
    DataError
        Unreadable or malformed input (file:line), or no rows.
    """
    from backend.data.pipeline import dedupe, document_results, read_and_normalise

    dc = cfg.data
    if not dc.train_files and not dc.document_files:
        raise DataError("the run has no training files", field="data.train_files",
                        hint="add dataset files to the run before exporting it")
    (out / DATA_DIR).mkdir(parents=True, exist_ok=True)
    results = read_and_normalise(dc.train_files, dc, strict_files=True, on_event=on_event)
    results += document_results(dc.document_files, dc, strict_files=True, on_event=on_event)
    _raise_errors(results)
    seen: dict[str, str] = {}
    if dc.dedupe:
        dedupe(results, seen)
    train_files, n_train = _write_rows(results, out, "train")
    if not n_train:
        raise DataError("no usable training rows", field="data.train_files",
                        hint="check the files with `tune data check`")
    val_files: list[str] = []
    n_val = 0
    if dc.validation_files:
        vres = read_and_normalise(dc.validation_files, dc, strict_files=True, on_event=on_event)
        _raise_errors(vres)
        if dc.dedupe:
            dedupe(vres, dict(seen))
        val_files, n_val = _write_rows(vres, out, "validation")
    d = cfg.to_dict()
    d["data"].update(train_files=train_files, validation_files=val_files, format="auto", column_mapping={},
                     system_prompt="", document_files=[])
    summary = {"train_files": train_files, "validation_files": val_files, "train_rows": n_train,
               "validation_rows": n_val}
    return RunConfig.from_dict(d), summary


# ---------------------------------------------------------------------------
# launch scripts

_TUNE_ARGS = r'''MODE="${MODE:-auto}"
if [ "$MODE" = auto ]; then
  if [ -f "$OUTPUT/config.json" ]; then MODE=resume; else MODE=train; fi
fi
case "$MODE" in
  train)
    TUNE=(train config.json --output "$OUTPUT")
    if [ -n "${MODEL:-}" ]; then TUNE+=(--model "$MODEL"); fi ;;
  resume)
    TUNE=(resume "$OUTPUT") ;;
  *)
    echo "MODE must be train, resume or auto, not '$MODE'" >&2; exit 2 ;;
esac'''

_SETTINGS = r'''#   NPROC_PER_NODE [@@GPUS@@]     processes on this node: one per GPU (CPU works too, with gloo)
#   NNODES [@@NODES@@]             nodes; with more than one also NODE_RANK [0], MASTER_ADDR, MASTER_PORT [29500]
#   OUTPUT [runs/@@NAME@@]   run folder, relative to this folder (on a filesystem all nodes share)
#   MODE [auto]            train | resume | auto (resume when OUTPUT already holds the run)
#   MODEL                  base model instead of the one in config.json (a folder on the nodes)
#   PYTHON [python3]       the Python of the environment where Tune Studio is installed'''

_HEAD = r'''set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
PYTHON="${PYTHON:-python3}"
NPROC_PER_NODE="${NPROC_PER_NODE:-@@GPUS@@}"
NNODES="${NNODES:-@@NODES@@}"
NODE_RANK="${NODE_RANK:-0}"
MASTER_ADDR="${MASTER_ADDR:-127.0.0.1}"
MASTER_PORT="${MASTER_PORT:-29500}"
OUTPUT="${OUTPUT:-runs/@@NAME@@}"
'''

TORCHRUN_SH = r'''#!/usr/bin/env bash
# Tune Studio: train this exported run with torchrun (PyTorch DDP; NCCL on GPUs, gloo on CPU).
#
#   ./launch_torchrun.sh [more `tune train` options, e.g. --max-steps 100 or --set KEY=VALUE]
#
# Settings (environment variables) [default]:
''' + _SETTINGS + r'''
#   TORCHRUN_ARGS          more torchrun options
''' + _HEAD + _TUNE_ARGS + r'''
if [ "$NNODES" = 1 ]; then
  RDZV=(--standalone --nnodes 1)
else
  RDZV=(--nnodes "$NNODES" --node_rank "$NODE_RANK" --master_addr "$MASTER_ADDR" --master_port "$MASTER_PORT")
fi
# shellcheck disable=SC2086  # TORCHRUN_ARGS is a list of options
exec "$PYTHON" -m torch.distributed.run "${RDZV[@]}" --nproc_per_node "$NPROC_PER_NODE" ${TORCHRUN_ARGS:-} \
  -m backend "${TUNE[@]}" "$@"
'''

ACCELERATE_SH = r'''#!/usr/bin/env bash
# Tune Studio: train this exported run with `accelerate launch` and a generated accelerate config.
#
#   ./launch_accelerate.sh [more `tune train` options]                           # DDP
#   ACCELERATE_CONFIG=accelerate_fsdp.yaml ./launch_accelerate.sh               # FSDP
#
# Settings (environment variables) [default]:
''' + _SETTINGS + r'''
#   ACCELERATE_CONFIG [accelerate_ddp.yaml]   or accelerate_fsdp.yaml
#   ACCELERATE_ARGS        more `accelerate launch` options
# On a machine without GPUs the DDP config runs CPU processes (gloo); FSDP needs GPUs.
''' + _HEAD + r'''ACCELERATE_CONFIG="${ACCELERATE_CONFIG:-accelerate_ddp.yaml}"
''' + _TUNE_ARGS + r'''
LAUNCH=(--config_file "$ACCELERATE_CONFIG" --num_machines "$NNODES" --num_processes "$((NPROC_PER_NODE * NNODES))")
if [ "$NNODES" != 1 ]; then
  LAUNCH+=(--machine_rank "$NODE_RANK" --main_process_ip "$MASTER_ADDR" --main_process_port "$MASTER_PORT")
fi
# shellcheck disable=SC2086  # ACCELERATE_ARGS is a list of options
exec "$PYTHON" -m accelerate.commands.launch "${LAUNCH[@]}" ${ACCELERATE_ARGS:-} -m backend "${TUNE[@]}" "$@"
'''

SLURM_SBATCH = r'''#!/bin/bash
# Tune Studio: Slurm batch job for this exported run: @@NODES@@ node(s) x @@GPUS@@ GPU(s), one torchrun per node.
#
#   cd THIS_FOLDER && sbatch slurm.sbatch          (submitting it again resumes from the latest checkpoint)
#
# Adapt the #SBATCH lines to your cluster (partition, account, memory, time), and activate the
# environment where Tune Studio is installed below.  This folder must be on a shared filesystem.
#SBATCH --job-name=tune-@@NAME@@
#SBATCH --nodes=@@NODES@@
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=@@GPUS@@
#SBATCH --cpus-per-task=@@CPUS@@
#SBATCH --time=24:00:00
#SBATCH --output=slurm-%j.out
set -euo pipefail
cd "${SLURM_SUBMIT_DIR:-.}"
# source /path/to/tune-studio/.venv/bin/activate

export NNODES="${SLURM_JOB_NUM_NODES}"
export NPROC_PER_NODE="${NPROC_PER_NODE:-@@GPUS@@}"
MASTER_ADDR="$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)"
export MASTER_ADDR
export MASTER_PORT="${MASTER_PORT:-29500}"
export OUTPUT="${OUTPUT:-runs/@@NAME@@}"
# Train or resume: decided once here, the same on every node.
if [ -f "$OUTPUT/config.json" ]; then export MODE=resume; else export MODE=train; fi
# ./launch_accelerate.sh works here too (with ACCELERATE_CONFIG=accelerate_fsdp.yaml for FSDP).
export LAUNCHER="${LAUNCHER:-./launch_torchrun.sh}"

srun --kill-on-bad-exit=1 bash -c 'NODE_RANK="$SLURM_NODEID" exec "$LAUNCHER"'
'''


def accelerate_config(kind: str, gpus: int, nodes: int) -> dict[str, Any]:
    """An ``accelerate launch`` config for ``gpus`` per node x ``nodes`` (``kind``: ``ddp`` or ``fsdp``).

    Mixed precision is left to the run config (the Trainer sets it).  FSDP
    follows PEFT's recipe: full shard, wrapping by the model's decoder layers
    (``_no_split_modules``; the Trainer adds PEFT's policy that wraps the
    adapter layers apart), sharded checkpoints for resuming; the engine gathers
    the final adapter in full.
    """
    cfg: dict[str, Any] = {
        "compute_environment": "LOCAL_MACHINE",
        "debug": False,
        "distributed_type": "MULTI_GPU" if kind == "ddp" else "FSDP",
        "downcast_bf16": "no",
        "machine_rank": 0,
        "main_training_function": "main",
        "mixed_precision": "no",
        "num_machines": nodes,
        "num_processes": gpus * nodes,
        "rdzv_backend": "static",
        "same_network": True,
        "gpu_ids": "all",
        "use_cpu": False,
    }
    if nodes > 1:
        cfg.update(main_process_ip="127.0.0.1", main_process_port=29500)  # set per job by the launch script
    if kind == "fsdp":
        fsdp: dict[str, Any] = {
            "fsdp_version": 1,
            "fsdp_reshard_after_forward": "FULL_SHARD",
            "fsdp_auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
            "fsdp_backward_prefetch": "BACKWARD_PRE",
            "fsdp_forward_prefetch": False,
            "fsdp_offload_params": False,
            "fsdp_state_dict_type": "SHARDED_STATE_DICT",
            "fsdp_sync_module_states": True,
            "fsdp_use_orig_params": False,
            "fsdp_cpu_ram_efficient_loading": False,
            "fsdp_activation_checkpointing": False,
        }
        cfg["fsdp_config"] = fsdp
    return cfg


def _yaml(obj: dict[str, Any]) -> str:
    """``obj`` as block YAML in its own key order (PyYAML; accelerate reads it with the same library)."""
    import yaml

    return yaml.safe_dump(obj, sort_keys=False, default_flow_style=False).rstrip("\n")


def _fill(template: str, **values: Any) -> str:
    for k, v in values.items():
        template = template.replace(f"@@{k}@@", str(v))
    return template


def _write_exec(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


# ---------------------------------------------------------------------------
# README

def _readme(name: str, cfg: RunConfig, summary: dict, gpus: int, nodes: int, model_note: str) -> str:
    t = cfg.training
    eff_local = t.batch_size * t.gradient_accumulation
    procs = gpus * nodes
    keep = ""
    if procs > 1 and t.gradient_accumulation % procs == 0:
        keep = (f" To keep the workstation's effective batch ({eff_local}), add "
                f"`--set training.gradient_accumulation={t.gradient_accumulation // procs}` to the train command.")
    elif procs > 1:
        keep = (f" To keep the workstation's effective batch ({eff_local}), lower "
                "`training.gradient_accumulation` or `training.batch_size` with `--set`.")
    files = "\n".join(f"    {f}" for f in summary["train_files"] + summary["validation_files"])
    one = "NNODES=1 " if nodes > 1 else ""
    rows = f"{summary['train_rows']} training rows"
    if summary["validation_rows"]:
        rows += f" and {summary['validation_rows']} validation rows"
    if summary["validation_files"]:
        split = "the validation files"
    elif cfg.data.validation_split > 0:
        split = f"{cfg.data.validation_split:g} of the rows, chosen by seed {t.seed}"
    else:
        split = "none: validation_split is 0"
    return f"""# {name}: Tune Studio run, exported for torchrun / accelerate / Slurm

This folder is self-contained: `config.json` (the run configuration), the normalised
dataset under `data/`, and launch scripts for {gpus} GPU(s) per node x {nodes} node(s).
Training is plain `tune train` (`python -m backend train`) started once per GPU by
`torchrun` or `accelerate launch`; the Hugging Face Trainer and accelerate do the data
parallelism (DDP, or FSDP with the FSDP config). Only rank 0 writes the run folder:
`status.json`, `metrics.jsonl`, `run.log`, checkpoints' markers and the final `adapter/`.

## Setup on every node

* Install the same Tune Studio version (`make install` in its source folder, or
  `pip install -e .` there), and activate that environment (or set `PYTHON=/path/to/python`).
* Keep this folder on a filesystem all nodes share: every process reads `config.json`
  and `data/`, and checkpoints are written under the run folder.
* Base model: {model_note}

## Commands (run from this folder)

One node, {gpus} GPU(s), DDP with torchrun:

    {one}./launch_torchrun.sh
    # the same, by hand:
    python -m torch.distributed.run --standalone --nproc_per_node {gpus} \\
        -m backend train config.json --output runs/{name}

DDP or FSDP with accelerate (configs generated for {gpus} GPU(s) x {nodes} node(s)):

    {one}./launch_accelerate.sh
    {one}ACCELERATE_CONFIG=accelerate_fsdp.yaml ./launch_accelerate.sh
    # by hand, one node:
    accelerate launch --config_file accelerate_ddp.yaml --num_machines 1 --num_processes {gpus} \\
        -m backend train config.json --output runs/{name}

Several nodes by hand: start the same command on every node, with NODE_RANK 0 on the
node whose address is MASTER_ADDR and 1, 2, ... on the others:

    NNODES={max(nodes, 2)} NODE_RANK=0 MASTER_ADDR=node0.example MODE=train ./launch_torchrun.sh

Slurm ({nodes} node(s) x {gpus} GPU(s); edit the #SBATCH lines first):

    sbatch slurm.sbatch

Resume after a stop, crash or preemption: run the same command again (`MODE=auto`
resumes when `runs/{name}` already holds the run; Slurm decides once per job), or

    {one}MODE=resume ./launch_torchrun.sh
    python -m torch.distributed.run --standalone --nproc_per_node {gpus} -m backend resume runs/{name}

Try it on a machine without GPUs (CPU processes with the gloo backend; FSDP needs GPUs):

    NNODES=1 NPROC_PER_NODE=2 ./launch_torchrun.sh --max-steps 4
    NNODES=1 NPROC_PER_NODE=2 ./launch_accelerate.sh --max-steps 4

Extra arguments go to `tune train` (`--max-steps N`, `--set training.learning_rate=1e-4`, ...);
`tune resume` takes `--set` only. The scripts read NPROC_PER_NODE, NNODES, NODE_RANK,
MASTER_ADDR, MASTER_PORT, OUTPUT, MODE, MODEL, PYTHON, TORCHRUN_ARGS / ACCELERATE_ARGS
and ACCELERATE_CONFIG (see their headers).

The result: `runs/{name}/adapter/` (load it with `tune export runs/{name} --merged OUT`
or PEFT's `AutoPeftModelForCausalLM`), progress in `runs/{name}/metrics.jsonl`.

## Batch size

Every process trains on its own shard of each batch: the effective batch is
batch_size x gradient_accumulation x processes = {t.batch_size} x {t.gradient_accumulation} x {procs}
= {eff_local * procs} (on the workstation: {eff_local}).{keep}

## Data

{rows}, normalised
(formats, column mapping, system prompt, document chunks and duplicates already applied), in
their original order:

{files}

Tokenisation, truncation to max_length {cfg.data.max_length} and the validation split
({split}) happen at training time,
exactly as on the workstation.

Tested on CPU (gloo) with torchrun and accelerate (DDP). On GPUs the same code runs with
the NCCL backend chosen by PyTorch; that path and FSDP are not tested yet.
"""


# ---------------------------------------------------------------------------
# the export

def _load_config(src: str | Path | RunConfig) -> tuple[RunConfig, str]:
    if isinstance(src, RunConfig):
        return src, _slug(src.name or Path(src.output_dir or "run").name)
    p = Path(src).expanduser()
    if p.is_dir():
        if not runs.is_run_dir(p):
            raise RunError(f"not a run folder (no {runs.CONFIG})", file=p,
                           hint="give a run folder (under <project>/runs/) or a run config JSON file")
        cfg = RunConfig.load(runs.config_path(p))
        return cfg, _slug(cfg.name or p.name)
    if p.is_file():
        cfg = RunConfig.load(p)
        return cfg, _slug(cfg.name or p.stem)
    raise RunError("run folder or config file not found", file=p, hint="check the path")


def export_run(run_dir_or_config: str | Path | RunConfig, out: str | Path, *, gpus: int = 1, nodes: int = 1,
               copy_model: bool = False, on_event: ev.OnEvent = ev.no_event) -> ExportedRun:
    """Write a self-contained folder to train this run on ``gpus`` x ``nodes`` elsewhere.

    Parameters
    ----------
    run_dir_or_config
        A run folder (its ``config.json``), a run config JSON file, or a ``RunConfig``.
    out
        The folder to create (must not exist, or be empty).
    gpus, nodes
        Processes (GPUs) per node and nodes: the defaults of the launch scripts
        and the generated accelerate configs (the scripts take overrides).
    copy_model
        Copy the base model folder into ``out/model`` (``config.json`` then points
        there); otherwise the config keeps the model as it is (``default`` works on
        any Tune Studio install, a folder must exist on the nodes or be given with
        ``MODEL=``).

    Returns
    -------
    ExportedRun

    Raises
    ------
    TuneError
        A bad run folder or config, unreadable data, a non-empty ``out``, a
        model that cannot be copied (``ModelError``).
    """
    if gpus < 1 or nodes < 1:
        raise RunError("--gpus and --nodes must be at least 1", hint="e.g. --gpus 8 --nodes 2")
    cfg, name = _load_config(run_dir_or_config)
    out = Path(out).expanduser()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise RunError("the output folder is not empty", file=out, hint="choose a new folder")
    out.mkdir(parents=True, exist_ok=True)
    try:
        return _export(cfg, name, out.resolve(), gpus, nodes, copy_model, on_event)
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)
        raise


def _export(cfg: RunConfig, name: str, out: Path, gpus: int, nodes: int, copy_model: bool,
            on_event: ev.OnEvent) -> ExportedRun:
    from backend.models import resolve_model

    on_event(ev.progress("export", 0, 3, "Normalising the dataset…"))
    cfg, summary = export_dataset(cfg, out, on_event=on_event)

    on_event(ev.progress("export", 1, 3, "Base model…"))
    model = cfg.model.name_or_path
    if copy_model:
        local_model = resolve_model(model, allow_hub=False, allow_pickle_weights=cfg.model.allow_pickle_weights,
                                    on_event=on_event)
        shutil.copytree(local_model, out / "model", ignore=shutil.ignore_patterns("training_args.bin", ".*"))
        cfg = cfg.with_overrides({"model.name_or_path": "model"})
        model_note = "copied into `model/` (config.json points there)."
    elif model in ("", "default"):
        model_note = ("`default` (the bundled SmolLM2-135M-Instruct, part of a Tune Studio install; "
                      "converted once per node into the user cache).")
    elif cfg.model.allow_hub and not Path(model).expanduser().exists():
        model_note = (f"`{model}` from the Hugging Face hub: each node downloads it, when the launch passes "
                      "`--allow-hub` (or sets `TUNE_ALLOW_HUB=1`); config.json cannot switch hub access on.")
    else:
        model_note = (f"`{model}` as in config.json: it must exist at that path on every node, or set "
                      "`MODEL=/path/on/the/nodes` when launching (or export again with `--copy-model`).")
    cfg = cfg.replace(output_dir="")

    on_event(ev.progress("export", 2, 3, "Launch scripts…"))
    (out / "config.json").write_text(cfg.to_json(), encoding="utf-8")
    values = dict(GPUS=gpus, NODES=nodes, NAME=name, CPUS=max(4, 8 * gpus))
    _write_exec(out / "launch_torchrun.sh", _fill(TORCHRUN_SH, **values))
    _write_exec(out / "launch_accelerate.sh", _fill(ACCELERATE_SH, **values))
    _write_exec(out / "slurm.sbatch", _fill(SLURM_SBATCH, **values))
    header = (f"# accelerate config for Tune Studio run '{name}': {{}} on {gpus} GPU(s) x {nodes} node(s).\n"
              "# Used by ./launch_accelerate.sh, which sets num_processes / num_machines / machine_rank and\n"
              "# the main process address from its environment.\n")
    (out / "accelerate_ddp.yaml").write_text(header.format("DDP") + _yaml(accelerate_config("ddp", gpus, nodes))
                                             + "\n", encoding="utf-8")
    (out / "accelerate_fsdp.yaml").write_text(header.format("FSDP") + _yaml(accelerate_config(
        "fsdp", gpus, nodes)) + "\n", encoding="utf-8")
    (out / "README.md").write_text(_readme(name, cfg, summary, gpus, nodes, model_note), encoding="utf-8")
    on_event(ev.progress("export", 3, 3, f"Exported to {out}"))

    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    return ExportedRun(out, files, summary["train_files"], summary["validation_files"], summary["train_rows"],
                       summary["validation_rows"], gpus, nodes)


# ---------------------------------------------------------------------------
# CLI

def register(subparsers: Any) -> None:
    """Add ``tune export-run`` to ``tune``'s subparsers."""
    p = subparsers.add_parser(
        "export-run", help="export a run as a folder to train it with torchrun / accelerate / Slurm",
        description="Write OUT/ with config.json, the normalised dataset, torchrun and accelerate launch "
                    "scripts (DDP and FSDP configs), a Slurm sbatch example and a README with the commands.")
    p.add_argument("run_dir", metavar="RUN_DIR", help="run folder (or a run config JSON file)")
    p.add_argument("out", metavar="OUT", help="folder to create")
    p.add_argument("--gpus", type=int, default=1, metavar="N", help="GPUs (processes) per node (default 1)")
    p.add_argument("--nodes", type=int, default=1, metavar="M", help="nodes (default 1)")
    p.add_argument("--copy-model", action="store_true", dest="copy_model",
                   help="copy the base model folder into OUT/model")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=cmd_export_run)


def cmd_export_run(args: argparse.Namespace) -> int:
    """``tune export-run``."""
    res = export_run(args.run_dir, args.out, gpus=args.gpus, nodes=args.nodes, copy_model=args.copy_model)
    if args.json:
        print(json.dumps(res.to_dict(), indent=2))
        return 0
    print(f"exported to {res.out}: {res.train_rows} training rows"
          + (f", {res.validation_rows} validation rows" if res.validation_rows else "")
          + f"; scripts for {res.gpus} GPU(s) x {res.nodes} node(s)")
    print(f"next: cd {res.out} && ./launch_torchrun.sh   (see README.md)")
    return 0


__all__ = ["ExportedRun", "accelerate_config", "example_record", "export_dataset", "export_run", "register"]

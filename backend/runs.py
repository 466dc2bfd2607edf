"""The run folder as a type: the one owner of its file names and rules.

A run folder (docs/architecture.md, "The run folder")::

    config.json        the RunConfig the run trains with
    status.json        queued | running | completed | failed | cancelled, reason, pid, times, metrics
    metrics.jsonl      one event per line (backend.events), appended as the run goes
    run.log            the log records of backend / transformers / peft
    data_report.json   what data preparation kept, cut and dropped
    checkpoints/checkpoint-<step>/   Trainer checkpoints; complete once tune_complete.json is in
    adapter/           the final PEFT adapter (adapter methods)       } one of the two,
    model/             the final whole model (full fine-tuning, BitFit) } written atomically
    eval/<evalset>.json, eval/<evalset>.md   evaluation reports
    check.json         the check after training (an ``answer_check`` event: did tuning help?)
    tensorboard/       TensorBoard event files, written by the Trainer's own reporting
    exports/           exported models (merged, GGUF)
    report.html        the self-contained run report
    label.json         the name a person gave the run (rename_run); the folder keeps its id

Every other module (CLI, GUI, training, export, chat, eval, bench) asks this
module for a path or a rule instead of writing a name itself; a test greps
the source tree for stray literals.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from backend import events as ev
from backend import methods, records
from backend.confine import ConfinementError, confine, is_link, printable, resolved
from backend.errors import RunError
from backend.fsutil import atomic_write_json, read_json

# -- the names (nothing else in the source tree spells them) -------------------------------
CONFIG = "config.json"
STATUS = "status.json"
METRICS = "metrics.jsonl"
RUN_LOG = "run.log"
DATA_REPORT = "data_report.json"
CHECKPOINTS = "checkpoints"
CHECKPOINT_PREFIX = "checkpoint-"
COMPLETE_MARKER = "tune_complete.json"
"""Written into a checkpoint folder once every file of it is on disk (a resume needs it)."""
TRAINER_STATE = "trainer_state.json"
ADAPTER = "adapter"
MODEL = "model"
PROVENANCE = "tune_studio.json"
"""Written into adapter/, model/ and exported folders: where the weights came from."""
EVAL = "eval"
CHECK = "check.json"
"""The check after training (backend/rag/check.py): the ``answer_check`` event, also in metrics.jsonl."""
TENSORBOARD = "tensorboard"
"""TensorBoard event files (the Trainer's ``report_to=["tensorboard"]``); ``tensorboard --logdir <project>/runs``."""
EXPORTS = "exports"
REPORT = "report.html"
PROJECT_RUNS = "runs"
LABEL = "label.json"
"""The display name a person gave the run (the folder name never changes: other files point at it)."""
"""The folder under a project that holds its runs."""

STATUSES = ("queued", "running", "completed", "failed", "cancelled")
FINAL_DIRS = (ADAPTER, MODEL)


# -- paths -----------------------------------------------------------------------------------
def config_path(run_dir: str | Path) -> Path:
    """``config.json`` of a run."""
    return Path(run_dir) / CONFIG


def status_path(run_dir: str | Path) -> Path:
    """``status.json`` of a run."""
    return Path(run_dir) / STATUS


def metrics_path(run_dir: str | Path) -> Path:
    """``metrics.jsonl`` of a run."""
    return Path(run_dir) / METRICS


def log_path(run_dir: str | Path) -> Path:
    """``run.log`` of a run."""
    return Path(run_dir) / RUN_LOG


def data_report_path(run_dir: str | Path) -> Path:
    """``data_report.json`` of a run."""
    return Path(run_dir) / DATA_REPORT


def checkpoints_dir(run_dir: str | Path) -> Path:
    """The Trainer's ``output_dir``: ``checkpoints/``."""
    return Path(run_dir) / CHECKPOINTS


def checkpoint_dir(run_dir: str | Path, step: int) -> Path:
    """The folder of the checkpoint at ``step``."""
    return checkpoints_dir(run_dir) / f"{CHECKPOINT_PREFIX}{step}"


def checkpoint_step(checkpoint: str | Path) -> int:
    """The step of a checkpoint folder (``checkpoint-40`` → 40)."""
    return int(Path(checkpoint).name.rsplit("-", 1)[-1])


def adapter_dir(run_dir: str | Path) -> Path:
    """Where a PEFT method's final adapter goes."""
    return Path(run_dir) / ADAPTER


def model_dir(run_dir: str | Path) -> Path:
    """Where full fine-tuning / BitFit write the final model."""
    return Path(run_dir) / MODEL


def final_dir_for(run_dir: str | Path, method: str) -> Path:
    """``adapter/`` or ``model/``: where ``method`` saves its result (the method registry says)."""
    return Path(run_dir) / methods.get(method).saves


def eval_dir(run_dir: str | Path) -> Path:
    """``eval/``: the run's evaluation reports."""
    return Path(run_dir) / EVAL


def eval_path(run_dir: str | Path, name: str, suffix: str = ".json") -> Path:
    """The evaluation report of evalset ``name`` (``eval/<name>.json``; ``suffix=".md"`` for the text one)."""
    return eval_dir(run_dir) / f"{name}{suffix}"


def exports_dir(run_dir: str | Path) -> Path:
    """``exports/``: models exported from the run."""
    return Path(run_dir) / EXPORTS


def report_path(run_dir: str | Path) -> Path:
    """``report.html``: the run report."""
    return Path(run_dir) / REPORT


def tensorboard_dir(run_dir: str | Path) -> Path:
    """``tensorboard/`` of a run: the TensorBoard event files its training wrote."""
    return Path(run_dir) / TENSORBOARD


def check_path(run_dir: str | Path) -> Path:
    """``check.json`` of a run: the check after training (did tuning help?)."""
    return Path(run_dir) / CHECK


def write_check(run_dir: str | Path, record: dict[str, Any]) -> Path:
    """Atomically write the check after training (an ``answer_check`` event dict); returns the path."""
    path = check_path(run_dir)
    atomic_write_json(path, record)
    return path


def read_check(run_dir: str | Path) -> dict[str, Any] | None:
    """The check after training of a run, or ``None`` (none made, or unreadable).

    A file that is not an ``answer_check`` record (edited, from another version) counts as none.
    """
    try:
        rec = read_json(check_path(run_dir), None)
    except (OSError, ValueError):
        return None
    if not isinstance(rec, dict) or rec.get("type") != ev.ANSWER_CHECK:
        return None
    try:
        ev.from_dict(rec)
    except ev.EventError:
        return None
    return rec


def provenance_path(folder: str | Path) -> Path:
    """``tune_studio.json`` inside an adapter, model or export folder."""
    return Path(folder) / PROVENANCE


def label_path(run_dir: str | Path) -> Path:
    """``label.json`` of a run: its display name, when renamed."""
    return Path(run_dir) / LABEL


def runs_dir(project_root: str | Path) -> Path:
    """A project's ``runs/`` folder."""
    return Path(project_root) / PROJECT_RUNS


def is_run_dir(path: str | Path) -> bool:
    """Whether ``path`` is a run folder (it has ``config.json``)."""
    return config_path(path).is_file()


def require_run_dir(run_dir: str | Path) -> Path:
    """``run_dir`` as a ``Path`` after checking it is a run folder.

    Raises
    ------
    RunError
        When the folder does not exist or has no ``config.json``.
    """
    p = Path(run_dir).expanduser()
    if not p.is_dir():
        raise RunError("run folder not found", file=p, hint="give the path of a folder under <project>/runs/")
    if not is_run_dir(p):
        raise RunError(f"not a run folder (no {CONFIG})", file=p,
                       hint="give the path of a folder under <project>/runs/")
    return p


def require_project_run(run_dir: str | Path, project_root: str | Path | None = None) -> Path:
    """``run_dir`` resolved, after checking it is a run of this project: what may be deleted.

    The rule (docs/architecture.md, "Confinement"): the folder is not a link, it
    resolves to a direct child of ``<project>/runs/``, and it holds the two files
    every run gets when it is created — ``config.json`` and a ``status.json``
    with a known status — as plain files.  A folder with only a ``config.json``
    (every Hugging Face model folder has one) is not a run.

    Parameters
    ----------
    run_dir
        The folder.
    project_root
        The project it must belong to; by default the folder above its ``runs/``
        (and then ``run_dir`` must sit in a folder named ``runs``).

    Raises
    ------
    ConfinementError
        The folder is a link, or lies outside the project.
    RunError
        It is not a direct child of ``runs/``, or lacks the run files.
    """
    p = Path(run_dir).expanduser()
    hint = "give the id of a run (the RUN column of `tune runs PROJECT`)"
    if is_link(p):
        raise ConfinementError("this run folder is a link; a run is deleted only from inside its project",
                               file=p, hint="remove the link itself if you want it gone")
    real = resolved(p)
    if project_root is None:
        if real.parent.name != PROJECT_RUNS:
            raise RunError(f"not a run folder (runs live in <project>/{PROJECT_RUNS}/<id>/)", file=p, hint=hint)
        project_root = real.parent.parent
    confine(real, project_root, source=p, what="the run folder")
    if real.parent != resolved(runs_dir(project_root)):
        raise RunError(f"not a run folder of this project (runs live in <project>/{PROJECT_RUNS}/<id>/)",
                       file=p, hint=hint)
    cfg, st = config_path(real), status_path(real)
    marked = (real.is_dir() and cfg.is_file() and st.is_file() and not is_link(cfg) and not is_link(st)
              and read_status(real).get("status") in STATUSES)
    if not marked:
        raise RunError(f"not a run folder (a run has {CONFIG} and {STATUS} with its status)", file=p, hint=hint)
    return real


def read_config(run_dir: str | Path) -> dict[str, Any]:
    """A run's ``config.json`` as a dict.

    Raises
    ------
    RunError
        When the folder or its config is missing or unreadable.
    """
    p = require_run_dir(run_dir)
    try:
        data = read_json(config_path(p))
    except (OSError, ValueError) as e:
        raise RunError(f"the run's {CONFIG} is unreadable ({e})", file=config_path(p),
                       hint="the run folder may be damaged; pick another run") from None
    if not isinstance(data, dict):
        raise RunError(f"the run's {CONFIG} is not a JSON object", file=config_path(p),
                       hint="the run folder may be damaged; pick another run")
    return data


def load_config(run_dir: str | Path):
    """A run's ``config.json`` as a :class:`~backend.config.RunConfig` (validated)."""
    from backend.config import RunConfig

    return RunConfig.load(config_path(require_run_dir(run_dir)))


# -- status ----------------------------------------------------------------------------------
_STATUS_FIELDS = {"status": "text", "reason": "text", "pid": "integer", "created": "number", "started": "number",
                  "updated": "number", "finished": "number", "metrics": "object", "error": "object?",
                  "adapter_dir": "text?"}


def read_status(run_dir: str | Path, skipped: "list[records.Skipped] | None" = None) -> dict[str, Any]:
    """``status.json`` of a run (``{}`` when absent or unreadable).

    The file is a project's (docs/architecture.md, "Readers"): a field of the
    wrong type (a ``pid`` that is text, a ``status`` that is a list) is left
    out, and named in ``skipped`` when given, so every caller can trust what it gets.
    """
    path = status_path(run_dir)
    try:
        st = read_json(path, {})
    except (OSError, ValueError) as e:
        if skipped is not None:
            skipped.append(records.Skipped(str(path), None, f"unreadable ({e})"))
        return {}
    if not isinstance(st, dict):
        if skipped is not None:
            skipped.append(records.Skipped(str(path), None, "not a JSON object"))
        return {}
    for key, want in _STATUS_FIELDS.items():
        if key not in st:
            continue
        problem = records.field_problem(st, {key: want})
        if problem is None and key == "status" and st[key] not in STATUSES:
            problem = f"unknown status {str(st[key])[:40]!r}"
        if problem is None and key == "pid" and not 0 < st[key] < 1 << 31:
            problem = f"no process has the id {st[key]}"
        if problem is None and key == "metrics":
            bad = [k for k, v in st[key].items() if records.number(v) is None]
            for k in bad:
                st[key].pop(k)
        if problem:
            st.pop(key)
            if skipped is not None:
                skipped.append(records.Skipped(str(path), None, problem))
    if isinstance(st.get("pid"), float):
        st["pid"] = int(st["pid"])
    return st


def write_status(run_dir: str | Path, status: str, **extra: Any) -> dict[str, Any]:
    """Atomically replace ``status.json``, keeping earlier fields; returns what was written.

    The caller decides who writes (under ``torchrun`` only rank 0 does:
    ``backend.training.write_status``).
    """
    if status not in STATUSES:
        raise ValueError(f"unknown run status {status!r}")
    st = read_status(run_dir)
    st.update(extra)
    st.update(status=status, updated=time.time(), pid=os.getpid())
    atomic_write_json(status_path(run_dir), st)
    return st


# -- checkpoints and the resume rule ----------------------------------------------------------
def is_complete_checkpoint(checkpoint: str | Path) -> bool:
    """Whether every file of a checkpoint is on disk (our marker and the Trainer's state)."""
    c = Path(checkpoint)
    return (c / COMPLETE_MARKER).is_file() and (c / TRAINER_STATE).is_file()


def mark_checkpoint_complete(checkpoint: str | Path, step: int) -> None:
    """Write the completion marker into a checkpoint folder (after all ranks wrote their part)."""
    atomic_write_json(Path(checkpoint) / COMPLETE_MARKER, {"step": step, "time": time.time()})


def checkpoints(run_dir: str | Path) -> list[Path]:
    """Every checkpoint folder of a run (complete or not), oldest first."""
    ck = checkpoints_dir(run_dir)
    if not ck.is_dir():
        return []
    found = []
    for d in ck.glob(f"{CHECKPOINT_PREFIX}*"):
        try:
            found.append((checkpoint_step(d), d))
        except ValueError:
            continue
    return [d for _, d in sorted(found)]


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest *complete* checkpoint, the one ``tune resume`` continues from (``None``: none)."""
    done = [d for d in checkpoints(run_dir) if is_complete_checkpoint(d)]
    return done[-1] if done else None


def final_dir(run_dir: str | Path) -> Path | None:
    """The finished ``adapter/`` or ``model/`` on disk, when there is one."""
    for d in (adapter_dir(run_dir), model_dir(run_dir)):
        if d.is_dir():
            return d
    return None


def is_finished(run_dir: str | Path) -> bool:
    """Completed, with its adapter or model written: nothing left to resume."""
    return read_status(run_dir).get("status") == "completed" and final_dir(run_dir) is not None


def is_resumable(run_dir: str | Path) -> bool:
    """Whether ``tune resume`` continues this run from a checkpoint (not from step 0).

    The one rule for the CLI and the GUI: not finished, and a complete
    checkpoint (one with the completion marker) exists.  A checkpoint folder
    without the marker was cut off mid-write and cannot be resumed from.
    """
    return not is_finished(run_dir) and latest_checkpoint(run_dir) is not None


def has_chat_model(run_dir: str | Path) -> bool:
    """Whether the chat can load this run: a finished adapter, or a finished whole model."""
    a, m = adapter_dir(run_dir), model_dir(run_dir)
    return (a / "adapter_config.json").is_file() or (m / "config.json").is_file()


def kind(run_dir: str | Path, method: str | None = None) -> str:
    """What the run produces: ``adapter``, ``prompt`` (a prompt-learning adapter) or ``model``.

    What is on disk decides (``model/`` → ``model``); otherwise the method
    registry, from ``method`` or the run's config; ``unknown`` when neither says.
    """
    if model_dir(run_dir).is_dir():
        return "model"
    if method is None:
        try:
            section = read_config(run_dir).get("method")
            method = section.get("method") if isinstance(section, dict) else None
        except RunError:
            method = None
    m = methods.METHODS.get(method) if isinstance(method, str) else None
    if m is None:
        return "adapter" if adapter_dir(run_dir).is_dir() else "unknown"
    if m.saves == "model":
        return "model"
    return "prompt" if m.is_prompt_learning else "adapter"


# -- metrics -----------------------------------------------------------------------------------
def read_metrics(run_dir: str | Path, offset: int = 0,
                 skipped: "list[records.Skipped] | None" = None) -> tuple[list[dict], int]:
    """Complete ``metrics.jsonl`` records after byte ``offset``, and the offset to read from next.

    For tailing a run that is being written: a torn last line (no newline yet)
    is left for the next call.  The file is a project's (docs/architecture.md,
    "Readers"): a line that is not JSON, not in the event vocabulary or has a
    field of the wrong type (:func:`backend.events.problem`) is skipped, and
    named in ``skipped`` when given (its line number counts from ``offset``).
    """
    path = metrics_path(run_dir)
    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            data = fh.read()
    except OSError:
        return [], offset
    end = data.rfind(b"\n") + 1
    out = []
    for n, line in enumerate(data[:end].split(b"\n"), 1):
        line = line.strip()
        if not line:
            continue
        if len(line) > records.MAX_LINE_BYTES:
            what = f"longer than {records.MAX_LINE_BYTES >> 20} MB"
        else:
            try:
                rec = records.parse(line)
                what = ev.problem(rec)
            except records.BadRecord as e:
                what = str(e)
        if what is None:
            out.append(rec)
        elif skipped is not None:
            skipped.append(records.Skipped(str(path), n if offset == 0 else None, what))
    return out, offset + end


def events(run_dir: str | Path, skipped: "list[records.Skipped] | None" = None) -> list[dict]:
    """Every usable record of a run's ``metrics.jsonl`` (for replaying its plots); see :func:`read_metrics`."""
    return read_metrics(run_dir, 0, skipped)[0]


def last_record(run_dir: str | Path, type: str, tail_bytes: int = 16384) -> dict | None:
    """The last usable record of ``type`` in ``metrics.jsonl``, reading only the file's tail."""
    path = metrics_path(run_dir)
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            fh.seek(max(0, size - tail_bytes))
            tail = fh.read().splitlines()
    except OSError:
        return None
    for line in reversed(tail):
        try:
            rec = records.parse(line)
        except records.BadRecord:
            continue
        if isinstance(rec, dict) and rec.get("type") == type and ev.problem(rec) is None:
            return rec
    return None


# -- listing ------------------------------------------------------------------------------------
def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists (ours counts)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


@dataclass
class RunResult:
    """What a run ended with: ``training.train`` / ``resume`` return it, the GUI's training child reports it."""

    run_dir: Path
    status: str                  # completed | failed | cancelled
    adapter_dir: Path | None
    reason: str = ""
    metrics: dict | None = None  # final train/eval summary

    def to_dict(self) -> dict:
        """JSON-serialisable."""
        return {"run_dir": str(self.run_dir), "status": self.status,
                "adapter_dir": str(self.adapter_dir) if self.adapter_dir else None,
                "reason": self.reason, "metrics": self.metrics}


@dataclass
class RunSummary:
    """One row of a project's run history (cheap to build: no model is loaded).

    Attributes
    ----------
    run_dir, name, status, created, method, model
        The folder, its name, ``status.json``'s status, start time, method and base model.
    step, max_steps, train_loss, eval_loss
        The last known progress (the final metrics, else the last ``train`` record).
    reason, pid
        Why it ended (failed / cancelled) and the process that last wrote its status.
    """

    run_dir: Path
    name: str
    status: str
    created: float
    method: str
    model: str
    step: int | None
    max_steps: int | None
    train_loss: float | None
    eval_loss: float | None
    reason: str
    pid: int | None

    @property
    def final_dir(self) -> Path | None:
        """The finished ``adapter/`` or ``model/``, when there is one."""
        return final_dir(self.run_dir)

    @property
    def has_adapter(self) -> bool:
        """A finished adapter or whole model is on disk (so it can be exported)."""
        return self.final_dir is not None

    @property
    def adapter_dir(self) -> Path | None:
        """The finished ``adapter/`` or ``model/`` (kept for callers of the old name)."""
        return self.final_dir

    @property
    def has_chat_model(self) -> bool:
        """The chat can load it (see :func:`has_chat_model`)."""
        return has_chat_model(self.run_dir)

    @property
    def kind(self) -> str:
        """``adapter``, ``prompt`` or ``model`` (see :func:`kind`)."""
        return kind(self.run_dir, self.method)

    @property
    def when(self) -> str:
        """Local start time, for people."""
        return time.strftime("%Y-%m-%d %H:%M", time.localtime(self.created)) if self.created else "?"

    @property
    def interrupted(self) -> bool:
        """Left ``running`` by a process that is gone (crash, killed, closed window)."""
        if self.status not in ("running", "queued"):
            return False
        return self.pid is None or not pid_alive(self.pid)

    @property
    def resumable(self) -> bool:
        """``tune resume`` continues it from a checkpoint (see :func:`is_resumable`)."""
        return is_resumable(self.run_dir)

    @property
    def display_status(self) -> str:
        """``status``, except ``interrupted`` for a run whose process is gone (what people are shown)."""
        return "interrupted" if self.interrupted else self.status


def read_run(run_dir: str | Path) -> RunSummary | None:
    """Summarise one run folder; ``None`` when it is not a run."""
    run_dir = Path(run_dir)
    try:
        cfg = read_json(config_path(run_dir))
    except (OSError, ValueError):
        cfg = None
    if not isinstance(cfg, dict):
        return None
    st = read_status(run_dir)
    metrics = st.get("metrics") or {}
    step = max_steps = train_loss = eval_loss = None
    if isinstance(metrics, dict):
        step = records.integer(metrics.get("global_step"))
        train_loss = records.number(metrics.get("train_loss"))
        eval_loss = records.number(metrics.get("eval_loss"))
    if step is None or train_loss is None:
        last = last_record(run_dir, "train")
        if last:
            step = last.get("step") if step is None else step
            max_steps = last.get("max_steps")
            train_loss = last.get("loss") if train_loss is None else train_loss
    created = records.finite(st.get("created") or st.get("started"), 0.0)
    if not 0 < created < 1e11:  # a time a calendar can show
        created = _mtime(run_dir)
    method, model = cfg.get("method"), cfg.get("model")
    method = records.text(method.get("method"), "?") if isinstance(method, dict) else "?"
    model = records.text(model.get("name_or_path"), "?") if isinstance(model, dict) else "?"
    # a name comes from the project's files: never raw control characters on a terminal or in a label
    name = printable(read_label(run_dir) or records.text(cfg.get("name")).strip() or run_dir.name)
    return RunSummary(run_dir, name, st.get("status", "unknown"), created, method, model,
                      step, max_steps, train_loss, eval_loss, st.get("reason") or "", st.get("pid"))


def read_label(run_dir: str | Path) -> str:
    """The display name given with :func:`rename_run` (``""`` when none)."""
    try:
        data = read_json(label_path(run_dir), {})
    except (OSError, ValueError):
        return ""
    name = data.get("name") if isinstance(data, dict) else None
    return name.strip() if isinstance(name, str) else ""


MAX_LABEL = 120


def check_run_name(name: str) -> None:
    """Refuse a display name that could be taken for a path or garble a terminal.

    Raises
    ------
    RunError
        A line break or another control character, only dots (``.``, ``..``), or a
        path separator (``/`` or ``\\``).
    """
    if any(c in name for c in "\r\n\t"):
        raise RunError("a run name is one line", field="name", hint="remove the line break from the name")
    if printable(name) != name:
        raise RunError("a run name has no control characters", field="name",
                       hint="type the name again without escape or control characters")
    if name and set(name) == {"."}:
        raise RunError(f"a run name cannot be {name!r}", field="name",
                       hint="use letters or digits (a name of dots reads as a folder)")
    if "/" in name or "\\" in name:
        raise RunError("a run name is not a path (no / or \\)", field="name", hint="use - or _ instead")


def rename_run(run_dir: str | Path, name: str) -> str:
    """Give a run a display name (written to ``label.json``; the folder keeps its id).

    The folder is not renamed: logs, reports, exports and the Chat's choice of
    run point at it.  An empty ``name`` removes the label, so the run shows its
    configured name again.

    Parameters
    ----------
    run_dir
        The run folder.
    name
        The new name; surrounding white space is dropped, line breaks are refused.

    Returns
    -------
    str
        The name the run now shows.

    Raises
    ------
    RunError
        When ``run_dir`` is not a run folder, or the name has a line break or is too long.
    """
    p = require_run_dir(run_dir)
    name = (name or "").strip()
    check_run_name(name)
    if len(name) > MAX_LABEL:
        raise RunError(f"a run name is at most {MAX_LABEL} characters (this one has {len(name)})",
                       field="name", hint="give a shorter name")
    if name:
        atomic_write_json(label_path(p), {"name": name, "renamed": time.time()})
    else:
        label_path(p).unlink(missing_ok=True)
    r = read_run(p)
    return r.name if r is not None else p.name


@dataclass
class RunContents:
    """What deleting a run removes (for a confirmation that names it).

    Attributes
    ----------
    run_dir
        The folder.
    size_bytes
        Its size on disk, every file included.
    has_final
        A finished ``adapter/`` or ``model/`` is in it.
    checkpoints, exports, evaluations
        How many checkpoints, exported models and evaluation reports it holds.
    """

    run_dir: Path
    size_bytes: int
    has_final: bool
    checkpoints: int
    exports: int
    evaluations: int

    def describe(self) -> str:
        """One line for people: ``"41.2 MB: the adapter, 2 checkpoints, 1 export, no evaluations"``."""
        def n(count: int, what: str) -> str:
            return f"{count or 'no'} {what}{'' if count == 1 else 's'}"
        parts = [("the " + ("model" if model_dir(self.run_dir).is_dir() else "adapter")) if self.has_final
                 else "no adapter", n(self.checkpoints, "checkpoint"), n(self.exports, "export"),
                 n(self.evaluations, "evaluation")]
        return f"{format_size(self.size_bytes)}: " + ", ".join(parts)


def format_size(n: int) -> str:
    """``1234567`` → ``"1.2 MB"`` (decimal units, as file managers show)."""
    size = float(n)
    for unit in ("bytes", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{int(size)} bytes" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} GB"  # pragma: no cover


def run_contents(run_dir: str | Path) -> RunContents:
    """What is in a run folder: size, adapter, checkpoints, exports, evaluations (see :class:`RunContents`)."""
    p = require_run_dir(run_dir)
    size = 0
    for dirpath, _dirs, files in os.walk(p):
        for f in files:
            try:
                size += os.lstat(os.path.join(dirpath, f)).st_size
            except OSError:
                continue
    exp = exports_dir(p)
    exports = sum(1 for _ in exp.iterdir()) if exp.is_dir() else 0
    evals = len(list(eval_dir(p).glob("*.json"))) if eval_dir(p).is_dir() else 0
    return RunContents(p, size, final_dir(p) is not None, len(checkpoints(p)), exports, evals)


def is_live(run_dir: str | Path) -> bool:
    """Whether a process is training this run now (``running`` / ``queued`` and its process exists)."""
    st = read_status(run_dir)
    if st.get("status") not in ("running", "queued"):
        return False
    pid = st.get("pid")
    return isinstance(pid, int) and pid_alive(pid)


def delete_run(run_dir: str | Path, project_root: str | Path | None = None) -> RunContents:
    """Delete a run folder and everything in it (adapter, checkpoints, exports, evaluations).

    The GUI moves a run to the system trash when it can and only falls back
    to this; the CLI (``tune runs PROJECT --delete RUN``) calls it directly.

    Parameters
    ----------
    run_dir
        The run folder; it must be a run of the project (:func:`require_project_run`),
        so a wrong path, a link or a forged name never removes anything else.
    project_root
        The project; by default the folder above the run's ``runs/``.

    Returns
    -------
    RunContents
        What was removed.

    Raises
    ------
    RunError
        When it is not a run folder, or a process is training it now.
    ConfinementError
        When it is a link or lies outside the project.
    """
    p = require_project_run(run_dir, project_root)
    if is_live(p):
        raise RunError("this run is training now; it cannot be deleted", file=p,
                       hint="stop it first (Stop on the Train page, or Ctrl-C in its terminal)")
    contents = run_contents(p)
    shutil.rmtree(p)
    return contents


def find_run(project_root: str | Path, key: str) -> Path:
    """The run folder of a project named by ``key``: its folder id, its display name or its path.

    A path (absolute, or with a separator) must lead to a run of this project
    (:func:`require_project_run`); ``.``, ``..`` and other names of dots are refused,
    whatever a ``label.json`` says.

    Raises
    ------
    RunError
        When no run, or more than one run, has that name, or ``key`` is only dots.
    ConfinementError
        When a path or a folder id leads outside the project's ``runs/`` (a link included).
    """
    key = str(key).strip()
    hint = "give the run's folder id (the RUN column of `tune runs PROJECT`) or its name"
    if not key or set(key) == {"."}:
        raise RunError(f"{printable(key)!r} is not a run name", field="run", hint=hint)
    seps = {"/", os.sep, os.altsep or "/"}
    direct = Path(key).expanduser()
    if direct.is_absolute() or any(c in key for c in seps):
        full = direct if direct.is_absolute() else runs_dir(project_root) / direct
        confine(full, project_root, source=full, what="the run")
        return require_project_run(full, project_root)
    by_id = runs_dir(project_root) / key
    if is_link(by_id):
        return require_project_run(by_id, project_root)  # raises: a link is not a run of this project
    if is_run_dir(by_id):
        return require_project_run(by_id, project_root)
    hits = [r.run_dir for r in list_runs(project_root) if r.name == key]
    if len(hits) == 1:
        return require_project_run(hits[0], project_root)
    if hits:
        raise RunError(f"{len(hits)} runs are named {printable(key)!r}", field="run",
                       hint="give the run's folder id instead (the RUN column of `tune runs`)")
    raise RunError(f"no run {printable(key)!r} in this project", file=runs_dir(project_root), field="run",
                   hint="`tune runs PROJECT` lists the runs with their ids")


def _mtime(p: Path) -> float:
    try:
        return p.stat().st_mtime
    except OSError:
        return 0.0


def iter_run_dirs(project_root: str | Path) -> Iterator[Path]:
    """The run folders under a project's ``runs/``."""
    d = runs_dir(project_root)
    if d.is_dir():
        # a link in runs/ is not a run of this project (it may lead anywhere): never listed
        yield from (p for p in sorted(d.iterdir()) if not is_link(p) and p.is_dir() and is_run_dir(p))


def list_runs(project_root: str | Path) -> list[RunSummary]:
    """Every run of the project, newest first."""
    out = [r for d in iter_run_dirs(project_root) for r in [read_run(d)] if r is not None]
    return sorted(out, key=lambda r: r.created, reverse=True)


def interrupted_runs(project_root: str | Path) -> list[RunSummary]:
    """Runs left ``running`` by a process that no longer exists and that can be resumed."""
    return [r for r in list_runs(project_root) if r.interrupted and r.resumable]


class RunFolder:
    """One run folder: its paths and rules as attributes (the functions above, bound).

    Parameters
    ----------
    path
        The run folder (need not exist yet: ``train`` creates it).
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"

    def __fspath__(self) -> str:
        return str(self.path)

    config_path = property(lambda self: config_path(self.path))
    status_path = property(lambda self: status_path(self.path))
    metrics_path = property(lambda self: metrics_path(self.path))
    log_path = property(lambda self: log_path(self.path))
    data_report_path = property(lambda self: data_report_path(self.path))
    checkpoints_dir = property(lambda self: checkpoints_dir(self.path))
    adapter_dir = property(lambda self: adapter_dir(self.path))
    model_dir = property(lambda self: model_dir(self.path))
    eval_dir = property(lambda self: eval_dir(self.path))
    exports_dir = property(lambda self: exports_dir(self.path))
    report_path = property(lambda self: report_path(self.path))
    final_dir = property(lambda self: final_dir(self.path))
    status = property(lambda self: read_status(self.path).get("status", "unknown"))
    is_resumable = property(lambda self: is_resumable(self.path))
    is_finished = property(lambda self: is_finished(self.path))
    has_chat_model = property(lambda self: has_chat_model(self.path))
    kind = property(lambda self: kind(self.path))
    latest_checkpoint = property(lambda self: latest_checkpoint(self.path))

    def eval_path(self, name: str, suffix: str = ".json") -> Path:
        """See :func:`eval_path`."""
        return eval_path(self.path, name, suffix)

    def read_status(self) -> dict[str, Any]:
        """See :func:`read_status`."""
        return read_status(self.path)

    def write_status(self, status: str, **extra: Any) -> dict[str, Any]:
        """See :func:`write_status`."""
        return write_status(self.path, status, **extra)

    def read_config(self) -> dict[str, Any]:
        """See :func:`read_config`."""
        return read_config(self.path)

    def read_metrics(self, offset: int = 0) -> tuple[list[dict], int]:
        """See :func:`read_metrics`."""
        return read_metrics(self.path, offset)

    def summary(self) -> RunSummary | None:
        """See :func:`read_run`."""
        return read_run(self.path)

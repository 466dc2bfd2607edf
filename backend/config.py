"""The run configuration: one ``RunConfig`` shared by the GUI, the CLI and tests.

Every field has a default and a help text (``metadata["help"]``); choices are
``Literal`` types; numeric ranges live in ``metadata["min"]`` / ``["max"]`` so
the GUI can build spin boxes from them.  Cross-field checks raise
:class:`~backend.errors.ConfigError` (a ``ValueError``) naming the field and the
fix.  Unknown keys are rejected with a "did you mean".
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from backend import methods
from backend.errors import ConfigError

DEFAULT_MODEL = "default"

Method = Literal[methods.NAMES]  # type: ignore[valid-type]  # the registry is the one list
DatasetFormat = Literal["auto", "alpaca", "sharegpt", "messages", "prompt_completion", "text"]


def _f(default: Any, help: str, **meta: Any) -> Any:
    """A dataclass field with a default, a help text and optional GUI metadata."""
    meta["help"] = help
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda d=default: type(d)(d), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class ModelConfig:
    """Which base model to load and how."""

    name_or_path: str = _f(DEFAULT_MODEL, "Base model: 'default' (bundled SmolLM2-135M-Instruct), a local Hugging Face folder, a .gguf file, or a hub id (needs allow_hub).", label="Base model")
    allow_hub: bool = _f(False, "Allow downloading a model from the Hugging Face hub. Off by default: Tune Studio works offline.", label="Allow hub downloads")
    trust_remote_code: bool = _f(False, "Run Python code shipped with the model folder. Only turn on for models you trust.", label="Trust remote code")
    allow_pickle_weights: bool = _f(False, "Allow loading pickle (.bin) weights, which can run arbitrary code. Prefer safetensors.", label="Allow pickle weights")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = _f("auto", "Weight dtype: auto = bfloat16 on GPUs that support it, else float32.", label="Weight dtype")
    attn_implementation: Literal["sdpa", "eager"] = _f("sdpa", "Attention kernel. sdpa (PyTorch scaled-dot-product attention) is fastest and supports padding-free packing.", label="Attention")
    device: Literal["auto", "cuda", "mps", "cpu"] = _f("auto", "Where to train: auto picks CUDA, then Apple MPS, then CPU.", label="Device")
    load_in_4bit: bool = _f(False, "QLoRA: load the base weights in 4-bit (CUDA and bitsandbytes only).", label="4-bit (QLoRA)")


@dataclass
class DataConfig:
    """Which data to train on and how to turn it into token sequences."""

    train_files: list[str] = _f([], "Dataset files (jsonl, json, csv, tsv, parquet, txt) or folders saved by datasets.save_to_disk.", label="Training files")
    validation_files: list[str] = _f([], "Separate validation files. When empty, validation_split of the training rows is held out.", label="Validation files")
    format: DatasetFormat = _f("auto", "Dataset format; auto detects alpaca, sharegpt, messages, prompt/completion or plain text.", label="Format")
    column_mapping: dict[str, str] = _f({}, "Map your column names to ours, e.g. {\"question\": \"instruction\", \"answer\": \"output\"}.", label="Column mapping")
    system_prompt: str = _f("", "System message added to every conversation that has none.", label="System prompt")
    validation_split: float = _f(0.1, "Fraction of training rows held out for evaluation when no validation files are given (0 = none).", min=0.0, max=0.5, label="Validation split")
    max_length: int = _f(1024, "Maximum tokens per training row.", min=16, max=131072, label="Max length")
    overlong: Literal["truncate", "drop"] = _f("truncate", "What to do with rows longer than max_length (always reported).", label="Overlong rows")
    train_on_prompt: bool = _f(False, "Compute the loss on all tokens, not only the assistant's answers.", label="Train on prompt")
    dedupe: bool = _f(True, "Remove exact duplicate rows.", label="Remove duplicates")
    document_files: list[str] = _f([], "Documents (txt, md, pdf, docx, html, csv) whose text is cut into chunks that become plain-text training rows (domain adaptation), deduplicated and split like the datasets.", label="Documents as training text")
    document_chunk_size: int = _f(2000, "Characters per training chunk cut from document_files.", min=100, max=100_000, label="Document chunk size")
    document_chunk_overlap: int = _f(0, "Characters shared by neighbouring document chunks (must be below the chunk size).", min=0, max=50_000, label="Document chunk overlap")
    packing: bool = _f(True, "Padding-free packing: concatenate rows in a batch without pad tokens (position ids keep them apart). Same maths, less wasted compute.", label="Packing")
    raft: bool = _f(False, "Train the model to answer from your documents (retrieval-augmented fine-tuning): each question-answer row is shown with the passages the chat retrieves for it, in the chat's own prompt format, plus distractor passages and sometimes without the right passage, so the model learns to find and copy answers from context. Needs the project's document index.", label="Train the model to answer from your documents")
    raft_distractors: int = _f(1, "RAFT: unrelated passages added to each row's retrieved ones.", min=0, max=20, label="Distractor passages")
    raft_p_without_gold: float = _f(0.2, "RAFT: share of rows shown without the passage that holds the answer (they learn to recall it).", min=0.0, max=1.0, label="Rows without the right passage")
    raft_project: str = _f("", "RAFT: the project folder whose document index is searched; empty = the project that holds the training files.", label="Documents project")
    raft_closed_book: bool = _f(False, "RAFT: also train each question without passages (as written and in its rewordings), so the facts are stored in the model as well as read from the documents.", label="Also train without passages")
    raft_abstain_share: float = _f(0.0, "RAFT: abstention rows per question-answer row. Each is a project question with its most specific word replaced by something no document mentions (checked against the documents' words), shown with the passages the chat retrieves for it, and the chat's abstention as the answer, so declining is learned. 0 = none.", min=0.0, max=1.0, label="Rows that teach abstaining")
    rewordings: int = _f(0, "Extra rows per question-answer row: the question reworded by fixed templates (deterministic), with the same answer and without passages. A fact seen in several phrasings is recalled from phrasings never seen (Allen-Zhu & Li 2024). 0 = the rows as written.", min=0, max=6, label="Question rewordings")
    heldout_rewordings: int = _f(0, "RAFT, when there are no validation files: this many facts get one more rewording, never trained, asked with its passages; their loss is the validation loss (with training.keep_best, the checkpoint kept is the one that answers them best). 0 = use validation_split.", min=0, max=1000, label="Held-out rewordings")


@dataclass
class MethodConfig:
    """The fine-tuning method and its adapter settings."""

    method: Method = _f("lora", "lora (default), dora, rslora, ia3, prompt_tuning, prefix_tuning, bitfit (biases only) or full fine-tuning.", label="Method")
    lora_r: int = _f(16, "LoRA rank: the size of the low-rank update. Higher = more capacity and memory.", min=1, max=1024, label="LoRA rank")
    lora_alpha: int = _f(32, "LoRA scaling numerator (scale = alpha / r, or alpha / sqrt(r) for rslora).", min=1, max=4096, label="LoRA alpha")
    lora_dropout: float = _f(0.05, "Dropout on the LoRA input.", min=0.0, max=0.9, label="LoRA dropout")
    target_modules: list[str] = _f([], "Module names to adapt, e.g. [\"q_proj\", \"v_proj\"]. Empty = all linear layers.", label="Target modules")
    num_virtual_tokens: int = _f(20, "Prompt / prefix tuning: number of learned virtual tokens.", min=1, max=512, label="Virtual tokens")


@dataclass
class TrainingConfig:
    """Optimiser, schedule, batch and checkpoint settings."""

    learning_rate: float = _f(2e-4, "Peak learning rate. LoRA: 1e-4..5e-4; full fine-tuning: 1e-5..5e-5.", min=1e-8, max=1.0, label="Learning rate")
    lr_scheduler: Literal["cosine", "linear", "constant", "constant_with_warmup"] = _f("cosine", "Learning-rate schedule after warmup.", label="Scheduler")
    warmup_ratio: float = _f(0.03, "Fraction of steps spent warming the learning rate up from 0.", min=0.0, max=0.5, label="Warmup ratio")
    epochs: float = _f(3.0, "Passes over the training data (ignored when max_steps > 0).", min=0.01, max=1000.0, label="Epochs")
    max_steps: int = _f(0, "Stop after this many optimizer steps; 0 = use epochs.", min=0, max=10_000_000, label="Max steps")
    batch_size: int = _f(4, "Micro-batch: rows per forward pass on each device.", min=1, max=4096, label="Batch size")
    gradient_accumulation: int = _f(4, "Micro-batches per optimizer step. Effective batch = batch_size x this x devices.", min=1, max=4096, label="Gradient accumulation")
    gradient_checkpointing: bool = _f(False, "Recompute activations in the backward pass: much less memory, about 30% slower.", label="Gradient checkpointing")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = _f("auto", "Mixed precision: auto = bf16 on GPUs that support it, fp32 on CPU.", label="Precision")
    weight_decay: float = _f(0.0, "AdamW weight decay.", min=0.0, max=1.0, label="Weight decay")
    max_grad_norm: float = _f(1.0, "Clip the gradient norm to this value (0 = no clipping).", min=0.0, max=1000.0, label="Max grad norm")
    eval_steps: int = _f(50, "Evaluate on the validation split every N steps (0 = only at the end).", min=0, max=1_000_000, label="Eval every")
    save_steps: int = _f(50, "Save a resumable checkpoint every N steps.", min=1, max=1_000_000, label="Save every")
    save_total_limit: int = _f(2, "Keep at most this many checkpoints (the latest are kept).", min=1, max=1000, label="Checkpoints kept")
    keep_best: bool = _f(False, "Keep the checkpoint with the lowest validation loss (evaluated and saved every eval_steps) as the run's adapter, not the last one. Needs validation rows and eval_steps > 0.", label="Keep the best checkpoint")
    early_stopping_patience: int = _f(0, "Stop when eval loss has not improved for N evaluations (0 = off).", min=0, max=1000, label="Early stopping patience")
    logging_steps: int = _f(1, "Write a metrics record every N optimizer steps.", min=1, max=100_000, label="Log every")
    group_by_length: bool = _f(True, "Batch rows of similar length together (less padding, faster).", label="Group by length")
    torch_compile: bool = _f(False, "Compile the model with torch.compile (slow start, can be faster on GPU).", label="torch.compile")
    seed: int = _f(42, "Random seed for data order, splits and adapter init.", min=0, max=2**31 - 1, label="Seed")
    oom_retry: bool = _f(True, "On CUDA out-of-memory, halve the micro-batch, double accumulation and continue from the last checkpoint.", label="Recover from OOM")


SECTIONS = {"model": ModelConfig, "data": DataConfig, "method": MethodConfig,
            "training": TrainingConfig}


@dataclass
class RunConfig:
    """Everything a training run needs.  Saved as ``runs/<id>/config.json``."""

    name: str = _f("", "A name for the run (shown in run history).", label="Run name")
    output_dir: str = _f("", "Run folder. Empty = <project>/runs/<timestamp>, or ./runs/<timestamp> without a project.", label="Run folder")
    model: ModelConfig = field(default_factory=ModelConfig, metadata={"help": "Base model"})
    data: DataConfig = field(default_factory=DataConfig, metadata={"help": "Data"})
    method: MethodConfig = field(default_factory=MethodConfig, metadata={"help": "Method"})
    training: TrainingConfig = field(default_factory=TrainingConfig, metadata={"help": "Training"})

    def __post_init__(self) -> None:
        validate(self)

    # -- serialisation -----------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable dict."""
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        """Sorted, indented JSON."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RunConfig":
        """Build from a dict; unknown keys and wrong types raise ``ConfigError``."""
        return _build(cls, d, "")

    @classmethod
    def load(cls, path: str | Path) -> "RunConfig":
        """Read a JSON config file.

        Raises
        ------
        ConfigError
            When the file is missing, not JSON, or holds unknown / invalid keys.
        """
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as e:
            raise ConfigError(f"cannot read the config file ({e.strerror})", file=path,
                              hint="check the path") from None
        try:
            d = json.loads(text)
        except json.JSONDecodeError as e:
            raise ConfigError(f"not valid JSON: {e.msg} (column {e.colno})", file=path,
                              line=e.lineno, hint="fix the JSON syntax") from None
        if not isinstance(d, dict):
            raise ConfigError("a config file must hold a JSON object", file=path)
        try:
            return cls.from_dict(d)
        except ConfigError as e:
            e.file = str(path)
            e.args = (str(e),)
            raise

    def with_overrides(self, overrides: dict[str, Any]) -> "RunConfig":
        """A copy with dotted keys (``training.max_steps``) set; values are parsed."""
        d = self.to_dict()
        for key, value in overrides.items():
            set_dotted(d, key, value)
        return RunConfig.from_dict(d)

    def replace(self, **sections: Any) -> "RunConfig":
        """A copy with whole fields replaced (validated again)."""
        return RunConfig.from_dict({**self.to_dict(), **{
            k: dataclasses.asdict(v) if dataclasses.is_dataclass(v) else v
            for k, v in sections.items()}})


# ---------------------------------------------------------------------------
# field introspection (used by the GUI form builder and --set)

def field_info(cls: type, name: str) -> dataclasses.Field:
    """The dataclass field ``name`` of ``cls``."""
    return {f.name: f for f in dataclasses.fields(cls)}[name]


def field_choices(cls: type, name: str) -> tuple | None:
    """The ``Literal`` choices of a field, or ``None``."""
    tp = typing.get_type_hints(cls)[name]
    if get_origin(tp) is Literal:
        return get_args(tp)
    return None


def iter_fields(section: str | None = None):
    """Yield ``(dotted_key, section_cls, field, type)`` for every leaf field."""
    sections = [section] if section else [None, *SECTIONS]
    for sec in sections:
        cls = SECTIONS[sec] if sec else RunConfig
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if sec is None and f.name in SECTIONS:
                continue
            yield (f"{sec}.{f.name}" if sec else f.name), cls, f, hints[f.name]


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check and convert ``value`` to the field type ``tp``."""
    origin = get_origin(tp)
    if origin is Literal:
        choices = get_args(tp)
        if value not in choices:
            close = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"choose one of {', '.join(map(str, choices))}"
            raise ConfigError(f"'{value}' is not a valid choice", field=key, hint=hint)
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "on", "false", "0", "no", "off"):
            return value.lower() in ("true", "1", "yes", "on")
        raise ConfigError(f"expected true or false, got {value!r}", field=key)
    if tp is int:
        if isinstance(value, bool):
            raise ConfigError(f"expected a whole number, got {value!r}", field=key)
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, int):
            return value
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
        raise ConfigError(f"expected a whole number, got {value!r}", field=key)
    if tp is float:
        if isinstance(value, bool):
            raise ConfigError(f"expected a number, got {value!r}", field=key)
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"expected a number, got {value!r}", field=key) from None
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"expected text, got {value!r}", field=key)
        return value
    if origin is list:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()] if value.strip() else []
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"expected a list of strings, got {value!r}", field=key)
        return list(value)
    if origin is dict:
        if isinstance(value, str):
            try:
                value = json.loads(value) if value.strip() else {}
            except json.JSONDecodeError:
                raise ConfigError(f"expected a JSON object, got {value!r}", field=key) from None
        if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
            raise ConfigError(f"expected an object of string to string, got {value!r}", field=key)
        return dict(value)
    return value


def _unknown(key: str, known: list[str], prefix: str) -> ConfigError:
    close = difflib.get_close_matches(key, known, n=1)
    full = f"{prefix}{key}"
    hint = f"did you mean '{prefix}{close[0]}'?" if close else f"known keys: {', '.join(sorted(known))}"
    return ConfigError(f"unknown key '{full}'", field=full, hint=hint)


def _build(cls: type, d: Any, prefix: str) -> Any:
    if not isinstance(d, dict):
        raise ConfigError(f"expected an object, got {type(d).__name__}", field=prefix.rstrip(".") or None)
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    for key in d:
        if key not in names:
            raise _unknown(key, names, prefix)
    kwargs = {}
    for name in names:
        if name not in d:
            continue
        tp = hints[name]
        if dataclasses.is_dataclass(tp):
            kwargs[name] = _build(tp, d[name], f"{prefix}{name}.")
        else:
            kwargs[name] = _coerce(d[name], tp, f"{prefix}{name}")
    if cls is RunConfig:
        return cls(**kwargs)
    obj = cls(**kwargs)
    _check_ranges(obj, prefix)
    return obj


def _check_ranges(obj: Any, prefix: str) -> None:
    for f in dataclasses.fields(obj):
        v = getattr(obj, f.name)
        lo, hi = f.metadata.get("min"), f.metadata.get("max")
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            # NaN fails every comparison, so it would pass both range checks below
            if not math.isfinite(v):
                raise ConfigError(f"{v} is not a number", field=f"{prefix}{f.name}",
                                  hint="use a finite value" + (f" between {lo} and {hi}" if lo is not None or hi is not None else ""))
            if lo is not None and v < lo:
                raise ConfigError(f"{v} is below the minimum {lo}", field=f"{prefix}{f.name}",
                                  hint=f"use a value between {lo} and {hi}")
            if hi is not None and v > hi:
                raise ConfigError(f"{v} is above the maximum {hi}", field=f"{prefix}{f.name}",
                                  hint=f"use a value between {lo} and {hi}")


def set_dotted(d: dict, key: str, value: Any) -> None:
    """Set ``d['a']['b'] = value`` for ``key='a.b'``, rejecting unknown keys."""
    parts = key.split(".")
    if len(parts) == 1 and parts[0] not in {f.name for f in dataclasses.fields(RunConfig)}:
        # bare leaf name: find the section that owns it
        owners = [s for s, c in SECTIONS.items() if parts[0] in {f.name for f in dataclasses.fields(c)}]
        if len(owners) == 1:
            parts = [owners[0], parts[0]]
    if len(parts) == 2 and parts[0] in SECTIONS:
        sec = SECTIONS[parts[0]]
        names = [f.name for f in dataclasses.fields(sec)]
        if parts[1] not in names:
            raise _unknown(parts[1], names, f"{parts[0]}.")
        d[parts[0]][parts[1]] = _coerce(value, typing.get_type_hints(sec)[parts[1]], key)
        return
    names = [f.name for f in dataclasses.fields(RunConfig) if f.name not in SECTIONS]
    all_keys = names + [f"{s}.{f.name}" for s, c in SECTIONS.items() for f in dataclasses.fields(c)]
    if len(parts) == 1 and parts[0] in names:
        d[parts[0]] = _coerce(value, typing.get_type_hints(RunConfig)[parts[0]], key)
        return
    raise _unknown(key, all_keys, "")


def validate(cfg: RunConfig) -> None:
    """Cross-field checks; raise ``ConfigError`` naming the field and the fix."""
    for name, cls in SECTIONS.items():
        sec = getattr(cfg, name)
        if isinstance(sec, dict):  # built directly with dicts: convert
            setattr(cfg, name, _build(cls, sec, f"{name}."))
        else:
            _check_ranges(sec, f"{name}.")
    m, t, mdl, data = cfg.method, cfg.training, cfg.model, cfg.data
    method = methods.METHODS.get(m.method)
    if method is None:
        raise ConfigError(f"unknown method '{m.method}'", field="method.method",
                          hint="choose one of " + ", ".join(methods.NAMES))
    if method.family == "lora" and m.lora_alpha < 1:
        raise ConfigError("must be at least 1", field="method.lora_alpha")
    if mdl.load_in_4bit and not method.quantized:
        raise ConfigError(f"4-bit loading only works with adapter methods ({', '.join(methods.names(quantized=True))}), "
                          f"not '{m.method}'",
                          field="model.load_in_4bit", hint="turn it off or choose method 'lora'")
    if mdl.load_in_4bit and mdl.device in ("cpu", "mps"):
        raise ConfigError("4-bit (QLoRA) needs a CUDA GPU", field="model.load_in_4bit",
                          hint="turn it off or set model.device to 'auto' or 'cuda'")
    if t.precision == "fp16" and m.method == "full":
        raise ConfigError("fp16 mixed precision with full fine-tuning is unstable (fp16 master weights)",
                          field="training.precision", hint="use 'bf16' or 'fp32'")
    if t.precision in ("bf16", "fp16") and mdl.device == "cpu" and t.precision == "fp16":
        raise ConfigError("fp16 is not supported on the CPU", field="training.precision",
                          hint="use 'auto' or 'fp32'")
    if t.eval_steps and data.validation_split == 0 and not data.validation_files and t.early_stopping_patience:
        raise ConfigError("early stopping needs a validation set", field="training.early_stopping_patience",
                          hint="set data.validation_split > 0, give data.validation_files, or set patience to 0")
    if t.early_stopping_patience and t.eval_steps == 0:
        raise ConfigError("early stopping needs periodic evaluation", field="training.early_stopping_patience",
                          hint="set training.eval_steps > 0 or patience to 0")
    if data.packing and mdl.attn_implementation == "eager":
        raise ConfigError("padding-free packing needs sdpa attention", field="data.packing",
                          hint="set model.attn_implementation to 'sdpa' or turn packing off")
    if not method.packing and data.packing:
        raise ConfigError(f"packing cannot be combined with {m.method} (virtual tokens are prepended per row)",
                          field="data.packing", hint="turn packing off for this method")


def parse_set(items: list[str]) -> dict[str, str]:
    """Parse ``["a.b=1", ...]`` from ``--set`` into a dict."""
    out = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"'--set {item}' is not key=value", hint="write e.g. --set training.learning_rate=1e-4")
        k, v = item.split("=", 1)
        out[k.strip()] = v.strip()
    return out

"""The run configuration: one ``RunConfig`` shared by the GUI, the CLI and tests.

Every field has a default and a help text (``metadata["help"]``); choices are
``Literal`` types; numeric ranges live in ``metadata["min"]`` / ``["max"]`` so
the GUI can build spin boxes from them.  Cross-field checks raise
:class:`~backend.errors.ConfigError` (a ``ValueError``) naming the field and the
fix.  Unknown keys are rejected with a "did you mean".
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from backend import fields
from backend import methods
from backend.errors import ConfigError
from backend.fields import build, check_ranges, field_choices, field_info  # noqa: F401  (re-exported)

DEFAULT_MODEL = "default"

Method = Literal[methods.NAMES]  # type: ignore[valid-type]  # the registry is the one list
DatasetFormat = Literal["auto", "alpaca", "sharegpt", "messages", "prompt_completion", "text"]


_f = fields.setting  # the one field helper (backend/fields.py), shared with backend/rag/settings.py


@dataclass
class ModelConfig:
    """Which base model to load and how."""

    name_or_path: str = _f(DEFAULT_MODEL, "Base model: 'default' (bundled SmolLM2-135M-Instruct), a local Hugging Face folder, a .gguf file, or a hub id (needs allow_hub).", label="Base model")
    allow_hub: bool = _f(False, "Allow downloading a model from the Hugging Face hub. Off by default: Tune Studio works offline. Your choice on this machine (--allow-hub, TUNE_ALLOW_HUB=1, the Model page): a project, run folder or config file cannot switch it on.", label="Allow hub downloads")
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
    raft_closed_book: bool = _f(False, "RAFT: also train each question as written once without passages, so the facts are stored in the model as well as read from the documents.", label="Also train without passages")
    raft_abstain_share: float = _f(0.0, "RAFT: abstention rows per question-answer row. Each is a project question with its most specific word replaced by something no document mentions (checked against the documents' words), shown with the passages the chat retrieves for it, and the chat's abstention as the answer, so declining is learned. 0 = none.", min=0.0, max=1.0, label="Rows that teach abstaining")
    raft_counterfactual_share: float = _f(0.0, "RAFT: share of the question rewordings shown with the right passage whose figures (numbers the answer and the passages share) are changed in the passages and the answer alike, so the model learns to take figures from the passages rather than from memory. 0 = none.", min=0.0, max=1.0, label="Rows with changed figures")
    rewordings: int = _f(0, "Extra rows per question-answer row: the question reworded by fixed templates (deterministic), with the same answer; with RAFT each rewording is shown with the passages retrieved for it, without RAFT it has none. A fact seen in several phrasings is recalled from phrasings never seen (Allen-Zhu & Li 2024). 0 = the rows as written.", min=0, max=6, label="Question rewordings")
    heldout_rewordings: int = _f(0, "RAFT, when there are no validation files: this many facts get one more rewording, never trained, asked with its passages; their loss is the validation loss (with training.keep_best, the checkpoint kept is the one that answers them best). 0 = use validation_split.", min=0, max=1000, label="Held-out rewordings")


@dataclass
class MethodConfig:
    """The fine-tuning method and its adapter settings."""

    method: Method = _f("lora", "lora (default), dora, rslora, ia3, prompt_tuning, prefix_tuning, bitfit (biases only), full fine-tuning, or preference tuning on LoRA from the expert's corrections: dpo, orpo.", label="Method")
    lora_r: int = _f(16, "LoRA rank: the size of the low-rank update. Higher = more capacity and memory.", min=1, max=1024, label="LoRA rank")
    lora_alpha: int = _f(32, "LoRA scaling numerator (scale = alpha / r, or alpha / sqrt(r) for rslora).", min=1, max=4096, label="LoRA alpha")
    lora_dropout: float = _f(0.05, "Dropout on the LoRA input.", min=0.0, max=0.9, label="LoRA dropout")
    target_modules: list[str] = _f([], "Module names to adapt, e.g. [\"q_proj\", \"v_proj\"]. Empty = all linear layers.", label="Target modules")
    num_virtual_tokens: int = _f(20, "Prompt / prefix tuning: number of learned virtual tokens.", min=1, max=512, label="Virtual tokens")
    pref_beta: float = _f(0.1, "DPO: beta, how strongly the tuned model is held near the untuned one while it learns to prefer the corrected answers (0.1 is the usual value; higher = smaller steps away). ORPO: lambda, the weight of the preference term beside the corrected answers' own loss.", min=0.001, max=10.0, label="Preference beta")


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
    answer_check: bool = _f(True, "When training ends, ask a few held-out questions (validation rows, else the project's test questions, else questions drafted from the documents) with your documents, as the tuned and the untuned model, and say whether tuning helped (about a minute on a CPU; Stop skips it). Needs the project's documents: without them nothing is asked.", label="Check the answers after training")


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
        return fields.load_file(path, cls.from_dict, "config file")

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
# field introspection (used by the GUI form builder and --set): backend/fields.py

def iter_fields(section: str | None = None):
    """Yield ``(dotted_key, section_cls, field, type)`` for every leaf field (of one section)."""
    for key, cls, f, tp in fields.leaf_fields(RunConfig):
        sec = key.split(".", 1)[0] if "." in key else None
        if section is None or sec == section:
            yield key, cls, f, tp


def _build(cls: type, d: Any, prefix: str) -> Any:
    return build(cls, d, prefix)


def set_dotted(d: dict, key: str, value: Any) -> None:
    """Set ``d['a']['b'] = value`` for ``key='a.b'``, rejecting unknown keys (:func:`backend.fields.set_dotted`)."""
    fields.set_dotted(RunConfig, d, key, value)


def validate(cfg: RunConfig) -> None:
    """Cross-field checks; raise ``ConfigError`` naming the field and the fix."""
    for name, cls in SECTIONS.items():
        sec = getattr(cfg, name)
        if isinstance(sec, dict):  # built directly with dicts: convert
            setattr(cfg, name, _build(cls, sec, f"{name}."))
        else:
            check_ranges(sec, f"{name}.")
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
    if not method.packing and data.packing and not method.is_preference:  # preference pairs are padded, never packed
        raise ConfigError(f"packing cannot be combined with {m.method} (virtual tokens are prepended per row)",
                          field="data.packing", hint="turn packing off for this method")


def parse_set(items: list[str]) -> dict[str, str]:
    """Parse ``["a.b=1", ...]`` from ``--set`` into a dict."""
    return fields.parse_set(items)

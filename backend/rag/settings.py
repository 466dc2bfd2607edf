"""Settings of the RetrievalQA chat: one :class:`AnswerSettings` per answer, and indexing.

:class:`AnswerSettings` is everything that shapes an answer — its ``retrieval``
section (:class:`RetrievalSettings`: k, hybrid search, evidence, grounding,
abstention…) and its ``generation`` section (:class:`GenerationSettings`).  It
is saved in ``project.json`` under ``settings.answer`` (through
:class:`backend.workspace.Project`), drawn by the Chat page's form, used by the
Chat and Evaluate pages, ``tune ask`` and ``tune eval`` (``--set
retrieval.section_weight=0.6``), and named by every scorecard (see
docs/architecture.md, "RAG").

Plain dataclasses built with the field helpers of :mod:`backend.fields`, like
:mod:`backend.config`: every field has a default and a help text
(``metadata["help"]``), ranges in ``metadata["min"]`` / ``["max"]``, choices
as ``Literal``, so the GUI builds its controls from them.  No heavy imports
here: the GUI reads these before any model is loaded.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

from backend.errors import ConfigError
from backend.fields import build, check_ranges, leaf_fields, load_file, set_dotted
from backend.fields import setting as _f

# Short and concrete: small instruct models follow "copy the exact words" better than
# "use the passages", and an invitation to say "I don't know" makes them refuse answerable
# questions (bench/quality.md); abstention is decided by the evidence score instead.
DEFAULT_SYSTEM_PROMPT = ("Answer the question in one short sentence using only the context. "
                         "Copy the exact words, names and numbers from the context.")
NO_RAG_SYSTEM_PROMPT = "You are a helpful assistant. Answer the question briefly."
EVIDENCE_CHARS = 900  # chosen by measurement: bench/quality.md
COPY_BIAS = 0.0  # chosen by measurement: bench/quality.md
SECTION_WEIGHT = 0.6  # chosen by measurement: bench/quality.md
GROUNDING = "quote"  # the same rule for tuned and untuned answers: bench/quality.md (2026-12-08)
ABSTAIN_THRESHOLD = 0.5  # calibrated on the sample evalset: bench/quality.md
EmbeddingBackend = Literal["auto", "torch", "onnx"]
Grounding = Literal["auto", "abstain", "quote", "off"]
GROUNDINGS: tuple[str, ...] = get_args(Grounding)
EMBEDDING_BACKENDS: tuple[str, ...] = get_args(EmbeddingBackend)


@dataclass
class GenerationSettings:
    """How the chat model writes its answer."""

    temperature: float = _f(0.0, "Randomness of the answer. 0 = greedy: the same question always gets the same answer (best for comparing base and tuned).", min=0.0, max=2.0, label="Temperature")
    top_p: float = _f(0.9, "Nucleus sampling: sample only from the most likely tokens whose probabilities add up to this (used when temperature > 0).", min=0.05, max=1.0, label="Top-p")
    max_new_tokens: int = _f(256, "Longest answer, in tokens.", min=1, max=8192, label="Max new tokens")
    repetition_penalty: float = _f(1.1, "Penalise tokens already written (1 = off). Small models loop without it.", min=1.0, max=2.0, label="Repetition penalty")

    def __post_init__(self) -> None:
        check_ranges(self, "generation.")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable dict."""
        return dataclasses.asdict(self)


@dataclass
class RetrievalSettings:
    """How questions find passages in the index, and how they are shown to the model."""

    k: int = _f(4, "Passages retrieved per question and put into the prompt.", min=1, max=50, label="Passages (k)")
    max_context_chars: int = _f(6000, "Cut the retrieved passages to this many characters in the prompt, so small models keep room to answer (with evidence sentences off).", min=200, max=200_000, label="Context limit (chars)")
    system_prompt: str = _f(DEFAULT_SYSTEM_PROMPT, "Instruction given to the model with retrieval on.", label="System prompt")
    no_rag_system_prompt: str = _f(NO_RAG_SYSTEM_PROMPT, "Instruction given to the model with retrieval off.", label="System prompt (no retrieval)")
    hybrid: bool = _f(True, "Hybrid retrieval: also find passages by their words (BM25) and fuse both rankings, so codes, numbers and names such as 'E4' or 'PA-2' are found. Off = meaning (vectors) alone.", label="Hybrid retrieval (words + meaning)")
    vector_weight: float = _f(1.0, "Weight of the meaning (vector) ranking in the fusion.", min=0.0, max=10.0, label="Meaning weight")
    bm25_weight: float = _f(1.0, "Weight of the word (BM25) ranking in the fusion; 0 = vectors alone.", min=0.0, max=10.0, label="Word weight")
    rrf_k: int = _f(60, "Reciprocal rank fusion constant: larger values flatten the difference between ranks.", min=1, max=1000, label="Fusion constant")
    bm25_min_share: float = _f(0.3, "Word matches scoring below this share of the best word match are left out of the word ranking (they share only common words with the question).", min=0.0, max=1.0, label="Word match cut-off")
    candidates: int = _f(20, "How deep each ranking is read before fusing.", min=1, max=500, label="Fusion depth")
    evidence: bool = _f(True, "Evidence sentences: put the sentences of the passages that best match the question first in the prompt, with their neighbours, inside a short budget (small models read a short context far better). Off = whole passages up to the context limit.", label="Evidence sentences")
    evidence_chars: int = _f(EVIDENCE_CHARS, "Characters of evidence in the prompt.", min=100, max=20_000, label="Evidence budget (chars)")
    evidence_neighbours: int = _f(1, "Sentences before and after each chosen sentence that come with it.", min=0, max=10, label="Neighbour sentences")
    lexical_weight: float = _f(0.5, "Weight of shared rare words next to meaning when sentences are ranked.", min=0.0, max=10.0, label="Sentence word weight")
    section_weight: float = _f(SECTION_WEIGHT, "Weight of the section title's match with the question when sentences are ranked: a sentence under \"Limited warranty\" answers \"How long is the warranty?\" even when it says \"warrants\" (0 = the sentence alone).", min=0.0, max=10.0, label="Section title weight")
    copy_bias: float = _f(COPY_BIAS, "Copy from the documents: added to the score of every word piece that occurs in the evidence while the answer is written, so a small model copies names and numbers instead of inventing them (0 = off).", min=0.0, max=20.0, label="Copy bias")
    grounding: Grounding = _f(GROUNDING, "abstain = when the model's answer states numbers or codes that neither the evidence nor the question contains, say \"Your documents don't say.\" instead (small models invent figures next to the right sentence); quote = when it states such numbers, codes or names, show the best evidence sentence instead; abstain keeps the answer's first sentences when only later ones invent; auto = abstain for the tuned model, quote for the base model (the default until 2026-12-08: on projects it was not fitted to, it withheld a third of the tuned model's answers to facts it was not trained on); off = always the model's words. Default: quote, the same rule for both, so the tuned and untuned answers are compared fairly. The withheld words stay visible under the answer.", label="Unsupported answers")
    abstain: bool = _f(True, "Say \"Your documents don't say.\" instead of answering when the best evidence scores below the threshold.", label="Abstain if nothing relevant")
    abstain_threshold: float = _f(ABSTAIN_THRESHOLD, "Relevance of the best evidence sentence (similarity + word weight x share of the question's rare words) below which the chat abstains.", min=0.0, max=3.0, label="Abstention threshold")

    def __post_init__(self) -> None:
        if self.grounding not in GROUNDINGS:
            raise ConfigError(f"unknown grounding {self.grounding!r}", field="retrieval.grounding",
                              hint=f"use one of {', '.join(GROUNDINGS)}")
        check_ranges(self, "retrieval.")
        if self.hybrid and self.vector_weight == 0 and self.bm25_weight == 0:
            raise ConfigError("hybrid retrieval with both ranking weights at 0 ranks nothing",
                              field="retrieval.vector_weight",
                              hint="give retrieval.vector_weight or retrieval.bm25_weight a weight above 0, "
                                   "or turn retrieval.hybrid off")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable dict."""
        return dataclasses.asdict(self)


@dataclass
class AnswerSettings:
    """Everything that shapes an answer: how passages are found and shown, and how the model writes.

    Saved in ``project.json`` under ``settings.answer``; ``to_dict`` /
    ``from_dict`` reject unknown keys and name the field at fault.
    """

    retrieval: RetrievalSettings = field(default_factory=RetrievalSettings, metadata={"help": "Retrieval",
                                                                                    "label": "Retrieval"})
    generation: GenerationSettings = field(default_factory=GenerationSettings, metadata={"help": "Generation",
                                                                                       "label": "Generation"})

    def __post_init__(self) -> None:
        for name, cls in (("retrieval", RetrievalSettings), ("generation", GenerationSettings)):
            sec = getattr(self, name)
            if isinstance(sec, dict):  # built directly with dicts: convert (and check)
                setattr(self, name, build(cls, sec, f"{name}."))
            elif not isinstance(sec, cls):
                raise ConfigError(f"expected {cls.__name__}, got {type(sec).__name__}", field=name)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable dict: ``{"retrieval": {...}, "generation": {...}}``."""
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        """Sorted, indented JSON."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, d: Any) -> "AnswerSettings":
        """Build from a dict; unknown keys, wrong types and values out of range raise ``ConfigError``."""
        return build(cls, d)

    @classmethod
    def load(cls, path: str | Path) -> "AnswerSettings":
        """Read a JSON file of answer settings.

        Raises
        ------
        ConfigError
            When the file is missing, not JSON, or holds unknown / invalid keys.
        """
        return load_file(path, cls.from_dict, "settings file")

    def with_overrides(self, overrides: dict[str, Any]) -> "AnswerSettings":
        """A copy with dotted keys (``retrieval.section_weight``, or a bare ``k``) set; values are parsed.

        Raises
        ------
        ConfigError
            An unknown key (with the closest one), a wrong value or a failed cross-field check.
        """
        d = self.to_dict()
        for key, value in overrides.items():
            set_dotted(AnswerSettings, d, key, value)
        return AnswerSettings.from_dict(d)


#: Every key ``--set`` accepts for an answer, generated from the fields.
ANSWER_KEYS: tuple[str, ...] = tuple(k for k, *_ in leaf_fields(AnswerSettings))


def describe_settings(d: dict[str, Any] | None) -> str:
    """The settings an answer or a scorecard used, in one line: what differs from the defaults.

    Parameters
    ----------
    d
        An :meth:`AnswerSettings.to_dict` (as stored in ``eval/<evalset>.json``);
        ``None`` or ``{}``: an older report that did not record them.
    """
    if not d:
        return "settings not recorded"
    defaults = AnswerSettings().to_dict()
    changed = []
    for section in ("retrieval", "generation"):
        for key, value in (d.get(section) or {}).items():
            if key in defaults[section] and defaults[section][key] != value:
                shown = value if not isinstance(value, str) or len(value) <= 40 else value[:37] + "…"
                changed.append(f"{section}.{key} = {shown}")
    return "default settings" if not changed else "settings: defaults except " + ", ".join(changed)


@dataclass
class IndexSettings:
    """How documents are cut into chunks and embedded."""

    chunk_size: int = _f(1000, "Characters per chunk. Smaller chunks give more precise sources; larger ones more context per passage.", min=100, max=20_000, label="Chunk size")
    chunk_overlap: int = _f(150, "Characters shared by neighbouring chunks, so a sentence cut at a boundary is still found.", min=0, max=5000, label="Chunk overlap")
    embed_batch_size: int = _f(0, "Chunks embedded per batch; 0 = automatic (16 with ONNX Runtime on the CPU, 64 with torch on the CPU, 256 on a GPU). One progress event per batch.", min=0, max=4096, label="Embedding batch")
    embedding_model: str = _f("", "A local sentence-transformers folder; empty = the bundled all-MiniLM-L6-v2. Changing it needs a rebuild of the index.", label="Embedding model")
    embedding_backend: EmbeddingBackend = _f("auto", "What computes the vectors: auto = ONNX Runtime on the CPU (the same float32 maths as torch, faster; exported once into the cache and checked against torch), torch on a GPU; torch = always sentence-transformers; onnx = ONNX Runtime also on a GPU. The vectors are the same either way, so the index does not need a rebuild. Falls back to torch, with the reason in the log, when ONNX Runtime cannot be used.", label="Embedding backend")

    def __post_init__(self) -> None:
        check_ranges(self, "index.")
        if self.embedding_backend not in EMBEDDING_BACKENDS:
            raise ConfigError(f"unknown embedding backend {self.embedding_backend!r}", field="index.embedding_backend",
                              hint=f"use one of {', '.join(EMBEDDING_BACKENDS)}")
        if self.chunk_overlap >= self.chunk_size:
            raise ConfigError(f"the overlap ({self.chunk_overlap}) must be smaller than the chunk size ({self.chunk_size})",
                              field="index.chunk_overlap", hint="lower the overlap or raise the chunk size")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable dict."""
        return dataclasses.asdict(self)

"""Data distillation: a local teacher model writes question/answer pairs from document chunks.

The pairs are saved as a ``messages`` dataset in ``<project>/datasets/`` (a new
file each time, written atomically) for the user to review and edit before
training the student on it.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from backend import events as ev
from backend.errors import DataError
from backend.fsutil import atomic_write_text, stamped_path

PROMPT = (
    "Read the text below. Write {n} question{s} that the text answers, each followed by its answer. "
    "Answers must use only facts from the text and be complete sentences.\n"
    "Use exactly this format:\n"
    "Question: ...\nAnswer: ...\n\n"
    "Text:\n\"\"\"\n{chunk}\n\"\"\""
)

_QA = re.compile(
    r"(?:^|\n)\s*(?:\*\*)?(?:Question|Q)\s*\d*\s*(?:\*\*)?\s*[:.)]\s*(?P<q>.+?)\s*\n?\s*(?:\*\*)?(?:Answer|A)\s*\d*\s*"
    r"(?:\*\*)?\s*[:.)]\s*(?P<a>.+?)(?=\n\s*(?:\*\*)?(?:Question|Q)\s*\d*\s*(?:\*\*)?\s*[:.)]|\Z)",
    re.S | re.I)


def parse_pairs(text: str) -> list[tuple[str, str]]:
    """``(question, answer)`` pairs from a teacher's ``Question: … Answer: …`` output."""
    out = []
    for m in _QA.finditer(text.strip()):
        q, a = m.group("q").strip(" *\n\t"), m.group("a").strip(" *\n\t")
        if len(q) >= 3 and a:
            out.append((q, a))
    return out


@dataclass
class DistillResult:
    """What :func:`distill` produced."""

    path: Path | None
    rows: int
    chunks: int
    chunks_without_pairs: int
    cancelled: bool = False
    problems: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        """JSON-serialisable."""
        return {"path": str(self.path) if self.path else None, "rows": self.rows, "chunks": self.chunks,
                "chunks_without_pairs": self.chunks_without_pairs, "cancelled": self.cancelled,
                "problems": self.problems}


GenerateFn = Callable[[list[str]], list[str]]


def teacher_generate_fn(teacher: str, *, max_new_tokens: int = 256, allow_hub: bool = False,
                        trust_remote_code: bool = False, device: str = "auto",
                        on_event: ev.OnEvent = ev.no_event) -> GenerateFn:
    """Load a local teacher model and return ``prompts -> completions`` (greedy, batched).

    Raises
    ------
    ModelError
        When the teacher cannot be found or loaded.
    """
    import torch

    from backend.models import load_model, load_tokenizer, resolve_model
    from backend.runtime import detect_device

    path = resolve_model(teacher, allow_hub=allow_hub, on_event=on_event)
    on_event(ev.progress("distill", 0, None, f"Loading the teacher model {teacher}…"))
    tok = load_tokenizer(path, trust_remote_code=trust_remote_code)
    tok.padding_side = "left"
    dev = detect_device(device)
    model = load_model(path, device=dev, trust_remote_code=trust_remote_code)
    model.eval()

    def generate(prompts: list[str]) -> list[str]:
        texts = tok.apply_chat_template([[{"role": "user", "content": p}] for p in prompts], tokenize=False,
                                        add_generation_prompt=True)
        enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
        with torch.inference_mode():
            out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False,
                                 pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
        new = out[:, enc["input_ids"].shape[1]:]
        return tok.batch_decode(new, skip_special_tokens=True)

    return generate


def generate_pairs(chunks: Sequence[Any], generate_fn: GenerateFn, *, questions_per_chunk: int = 2,
                   batch_size: int = 4, on_event: ev.OnEvent = ev.no_event,
                   should_stop: ev.ShouldStop = ev.never_stop, stop_after: int | None = None,
                   state: dict[str, Any] | None = None) -> Iterator[tuple[Any, str, str]]:
    """Ask the teacher for question/answer pairs, chunk batch by chunk batch.

    Used by :func:`distill` (training rows) and
    :func:`backend.evalsets.draft_from_documents` (test questions).

    Parameters
    ----------
    chunks
        LangChain documents with ``page_content`` and ``metadata``.
    generate_fn
        ``prompts -> completions``.
    questions_per_chunk, batch_size
        Pairs asked per chunk; chunks per teacher call.
    on_event, should_stop
        ``progress`` per batch (stage ``distill``); stopping ends the iteration.
    stop_after
        Stop once this many pairs were yielded.
    state
        Filled with ``without`` (chunks without a usable pair), ``done``
        (chunks sent to the teacher) and ``cancelled``.

    Yields
    ------
    tuple
        ``(chunk, question, answer)``, each question once (case-insensitive).
    """
    state = state if state is not None else {}
    state.update(without=0, done=0, cancelled=False)
    n = max(1, questions_per_chunk)
    seen: set[str] = set()
    made = 0
    total = len(chunks)
    t0 = time.time()
    for start in range(0, total, batch_size):
        if should_stop():
            state["cancelled"] = True
            return
        batch = chunks[start:start + batch_size]
        prompts = [PROMPT.format(n=n, s="s" if n > 1 else "", chunk=c.page_content) for c in batch]
        outputs = generate_fn(prompts)
        done = min(start + batch_size, total)
        state["done"] = done
        for c, text in zip(batch, outputs):
            pairs = parse_pairs(text)[:n]
            if not pairs:
                state["without"] += 1
            for q, a in pairs:
                if q.lower() in seen:
                    continue
                seen.add(q.lower())
                made += 1
                yield c, q, a
                if stop_after is not None and made >= stop_after:
                    on_event(ev.progress("distill", done, total, f"{made} question/answer pairs"))
                    return
        elapsed = time.time() - t0
        on_event(ev.progress("distill", done, total, f"{done}/{total} chunks, {made} question/answer pairs"
                             + (f", ~{elapsed / done * (total - done):.0f}s left" if done < total else "")))


def distill(files: Sequence[str | Path], out: str | Path, *, teacher: str | None = None,
            generate_fn: GenerateFn | None = None, questions_per_chunk: int = 2, chunk_size: int = 1500,
            chunk_overlap: int = 0, max_chunks: int | None = None, batch_size: int = 4, max_new_tokens: int = 256,
            system_prompt: str = "", on_event: ev.OnEvent = ev.no_event,
            should_stop: ev.ShouldStop = ev.never_stop) -> DistillResult:
    """Generate question/answer pairs from document chunks with a teacher model.

    Parameters
    ----------
    files
        Documents (see :func:`backend.documents.load_and_chunk`).
    out
        A ``.jsonl`` path that must not exist yet, or a folder (``<project>/datasets``)
        in which a new ``distilled-<timestamp>.jsonl`` is created.
    teacher
        The teacher model (``"default"``, a folder, a ``.gguf``); loaded with
        transformers and run greedily.  Ignored when ``generate_fn`` is given.
    generate_fn
        ``prompts -> completions``, instead of loading ``teacher`` (tests, other backends).
    questions_per_chunk, chunk_size, chunk_overlap, max_chunks, batch_size, max_new_tokens
        How much to generate.
    system_prompt
        Stored as the system message of every generated row, if given.
    on_event, should_stop
        ``progress`` events per batch (stage ``distill``); stopping keeps what
        was generated so far.

    Returns
    -------
    DistillResult
        ``path`` of the ``messages`` dataset; each row also records its
        ``source``, ``page`` and ``chunk``.

    Raises
    ------
    DataError
        When ``out`` exists, no teacher is given, or no pair could be parsed.
    DocumentError
        When a document cannot be read.
    """
    from backend.documents import load_and_chunk

    out = Path(out)
    if out.suffix == ".jsonl":
        if out.exists():
            raise DataError("the output file exists; distillation never overwrites a dataset", file=out,
                            hint="choose a new file name, or give the datasets folder")
    else:
        out = stamped_path(out, "distilled-", ".jsonl")
    if generate_fn is None and not teacher:
        raise DataError("no teacher model given", field="teacher",
                        hint="choose a local instruct model (a folder or .gguf), or 'default'")
    chunks = []
    for f in files:
        chunks.extend(load_and_chunk(f, chunk_size, chunk_overlap))
    if max_chunks:
        chunks = chunks[:max_chunks]
    if not chunks:
        raise DataError("the documents hold no text to ask questions about", hint="add documents with text")
    if generate_fn is None:
        generate_fn = teacher_generate_fn(teacher, max_new_tokens=max_new_tokens, on_event=on_event)
    n = max(1, questions_per_chunk)
    rows: list[dict[str, Any]] = []
    progress = {"without": 0, "done": 0, "cancelled": False}
    for c, q, a in generate_pairs(chunks, generate_fn, questions_per_chunk=n, batch_size=batch_size,
                                  on_event=on_event, should_stop=should_stop, state=progress):
        msgs = ([{"role": "system", "content": system_prompt}] if system_prompt else []) + [
            {"role": "user", "content": q}, {"role": "assistant", "content": a}]
        rows.append({"messages": msgs, "source": c.metadata.get("source"), "page": c.metadata.get("page"),
                     "chunk": c.metadata.get("chunk")})
    without, cancelled, total = progress["without"], progress["cancelled"], len(chunks)
    if not rows:
        if cancelled:
            return DistillResult(None, 0, 0, without, True)
        raise DataError(f"the teacher wrote no usable question/answer pairs for {total} chunk(s)",
                        hint="use a larger instruct model as teacher, or raise max_new_tokens")
    atomic_write_text(out, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return DistillResult(out, len(rows), progress["done"], without, cancelled)

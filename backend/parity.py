"""Export parity: does the exported model answer like the model the user tested in the app?

After every export (and with ``tune export RUN --check``) the exported artifact
is loaded back the way its users will load it -- the merged folder with plain
``transformers``, a GGUF file through transformers' ``gguf_file=`` loader (and
through llama.cpp when ``llama_cpp`` happens to be installed), an adapter on a
fresh copy of its base model -- and compared with the in-app model (base model
+ the run's adapter) on the project's evalset (or the run's validation rows):

- greedy answers: how many are token-for-token identical (the changed ones are
  kept, to be shown);
- next-token distributions on the reference answers (teacher-forced): mean and
  max per-token KL(app || export);
- the chat template: whether the export renders the same prompt string, and
  whether its tokenizer gives the same ids (for an Ollama folder, also whether
  the Modelfile's TEMPLATE renders the same string).

The result is stored as ``<run>/exports/<name>/parity.json`` and summarised in
words ("20/20 answers identical; max KL 0.003").  See ``docs/architecture.md``,
"Export".
"""

from __future__ import annotations

import importlib.util
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from backend import events as ev
from backend import runs
from backend.errors import DataError, TuneError
from backend.export_types import PARITY_RECORD, ExportError, ExportRecord, list_exports, record_dir
from backend.fsutil import atomic_write_json
from backend.trust import hub_allowed

log = logging.getLogger(__name__)

MAX_NEW_TOKENS = 48  # enough to see an answer diverge; 20 questions x 2 models stay quick on a CPU
KL_SAME = 0.01       # below this max per-token KL the distributions are practically the same


@dataclass
class Question:
    """A parity question: the prompt and, when known, the reference answer."""

    id: str
    question: str
    answer: str


@dataclass
class ParityResult:
    """How an exported model compares with the in-app model."""

    export: str
    kind: str
    quant: str | None
    source: str                      # where the questions came from
    questions: int = 0
    identical: int = 0
    changed: list[dict] = field(default_factory=list)   # {id, question, app, export}
    mean_kl: float | None = None
    max_kl: float | None = None
    kl_tokens: int = 0
    template_same: bool | None = None
    tokenizer_same: bool | None = None
    modelfile_same: bool | None = None
    llama_cpp: dict | None = None
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    created: float = 0.0
    cancelled: bool = False

    @property
    def ok(self) -> bool:
        """Every answer identical, distributions close, templates equal."""
        return (self.questions > 0 and self.identical == self.questions and (self.max_kl or 0.0) < KL_SAME
                and self.template_same is not False and self.tokenizer_same is not False
                and self.modelfile_same is not False)

    def summary(self) -> str:
        """The result in words, e.g. ``20/20 answers identical; max KL 0.003``."""
        if self.cancelled:
            return "Parity check stopped."
        n, same = self.questions, self.identical
        what = f"{self.quant} " if self.quant else ""
        head = (f"{same}/{n} answers identical" if same == n else
                f"{what}changed {n - same}/{n} answers") if n else "no questions compared"
        parts = [head]
        if self.max_kl is not None and self.mean_kl is not None:
            parts.append(f"mean KL {_kl_text(self.mean_kl)}, max KL {_kl_text(self.max_kl)}")
        if self.template_same is False:
            parts.append("the chat template renders a DIFFERENT prompt")
        elif self.template_same:
            parts.append("same chat template")
        if self.tokenizer_same is False:
            parts.append("the tokenizer gives DIFFERENT ids")
        if self.modelfile_same is False:
            parts.append("the Modelfile TEMPLATE renders a DIFFERENT prompt")
        elif self.modelfile_same:
            parts.append("Modelfile TEMPLATE matches")
        if self.llama_cpp and self.llama_cpp.get("questions"):
            parts.append(f"llama.cpp: {self.llama_cpp['identical']}/{self.llama_cpp['questions']} identical")
        return "; ".join(parts)

    def to_dict(self) -> dict:
        """JSON-serialisable, with ``summary`` and ``ok``."""
        return {**asdict(self), "summary": self.summary(), "ok": self.ok}


def _kl_text(x: float) -> str:
    """A KL value people can read: 0.003, or 4.2e-05 when tiny."""
    return f"{x:.3f}" if x >= 0.001 else ("0" if x == 0 else f"{x:.1e}")


# ---------------------------------------------------------------------------
# questions


def _project_of(run_dir: Path) -> Path | None:
    root = run_dir.resolve().parent.parent
    return root if (root / "project.json").is_file() and run_dir.resolve().parent == runs.runs_dir(root) else None


def parity_questions(run_dir: str | Path, evalset: str | Path | None = None, limit: int = 20, *,
                     on_event: ev.OnEvent = ev.no_event) -> tuple[list[Question], str]:
    """The questions to compare on, and where they come from.

    The named evalset (a name of the project's or a file); else the project's
    first evalset; else the run's validation rows.

    Raises
    ------
    DataError
        No evalset and no validation rows with questions and answers.
    """
    from backend import evalsets

    run_dir = Path(run_dir)
    project = _project_of(run_dir)
    path: Path | None = None
    if evalset is not None:
        path = evalsets.resolve_evalset(project, evalset)
    elif project is not None and evalsets.list_evalsets(project):
        path = evalsets.evalset_path(project, evalsets.list_evalsets(project)[0])
    if path is not None:
        rows = [r for r in evalsets.read_evalset(path) if getattr(r, "status", "") != "rejected"]
        source = f"evalset {path.stem}"
    else:
        rows = evalsets.from_validation(run_dir, limit=limit, on_event=on_event)
        source = "validation rows"
    qs = [Question(str(r.id), r.question, r.answer or "") for r in rows][:limit]
    if not qs:
        raise DataError("no questions to compare the export on", file=path, hint="add questions to the evalset")
    return qs, f"{source} ({len(qs)} questions)"


# ---------------------------------------------------------------------------
# models


def _messages(system: str, question: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": system}, {"role": "user", "content": question}]


def _prompt_ids(tok, messages) -> tuple[str, list[int]]:
    text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return text, tok(text, add_special_tokens=False)["input_ids"]


def _eos_ids(tok, model) -> list[int]:
    ids = {tok.eos_token_id, getattr(model.config, "eos_token_id", None)}
    return sorted(i for i in ids if isinstance(i, int))


def _greedy(model, tok, ids: list[int], gen, max_new: int) -> list[int]:
    import torch

    dev = next(model.parameters()).device
    x = torch.tensor([ids], device=dev)
    eos = _eos_ids(tok, model)
    with torch.inference_mode():
        out = model.generate(input_ids=x, attention_mask=torch.ones_like(x), do_sample=False,
                             max_new_tokens=max_new, repetition_penalty=float(gen.repetition_penalty),
                             eos_token_id=eos or None, pad_token_id=(tok.pad_token_id if tok.pad_token_id is not None
                                                                     else (eos or [0])[0]))
    return out[0, len(ids):].tolist()


def _kl(app, exp, ids: list[int], n_prompt: int) -> list[float]:
    """Per-token KL(app || export) of the next-token distributions over the answer positions."""
    import torch

    dev_a = next(app.parameters()).device
    dev_e = next(exp.parameters()).device
    with torch.inference_mode():
        la = app(input_ids=torch.tensor([ids], device=dev_a)).logits[0, n_prompt - 1:-1].float()
        le = exp(input_ids=torch.tensor([ids], device=dev_e)).logits[0, n_prompt - 1:-1].float().to(dev_a)
    pa = torch.log_softmax(la, -1)
    pe = torch.log_softmax(le, -1)
    kl = (pa.exp() * (pa - pe)).sum(-1).clamp_min(0.0)
    return kl.tolist()


def _load_export(rec: ExportRecord, run_dir: Path, device, notes: list[str]):
    """(model, tokenizer, gguf file or None) of an export, loaded as its users would load it."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from backend.models import load_model, load_tokenizer

    path = Path(rec.path)
    if not path.exists():
        raise ExportError("the exported file or folder is gone", file=path, hint="export again")
    if rec.kind == "merged":
        model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32)
        return model.to(device.kind), AutoTokenizer.from_pretrained(str(path)), None
    if rec.kind == "adapter":
        from peft import PeftModel

        from backend.models import resolve_model

        cfg = runs.load_config(run_dir)
        base = resolve_model(cfg.model.name_or_path, allow_hub=hub_allowed())  # the person's, never the run folder's
        model = PeftModel.from_pretrained(load_model(base, device=device, dtype="float32"), str(path))
        return model, load_tokenizer(base), None
    gguf = path if rec.kind == "gguf" else next(iter(sorted(path.glob("*.gguf"))), None)
    if gguf is None:
        raise ExportError("the Ollama folder has no .gguf file", file=path, hint="export again")
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    notes.append("GGUF loaded back with transformers' gguf_file= loader (de-quantized to float32)")
    return model.to(device.kind), tok, gguf


def _llama_cpp_answers(gguf: Path, prompts: list[str], app_answers: list[str], gen, max_new: int,
                       should_stop: ev.ShouldStop) -> dict:
    """Greedy answers from llama.cpp (``llama_cpp`` bindings) compared with the app's, as text."""
    from llama_cpp import Llama  # optional: only called when importable

    llm = Llama(model_path=str(gguf), n_ctx=4096, verbose=False, seed=0)
    same = 0
    changed = []
    for prompt, ref in zip(prompts, app_answers):
        if should_stop():
            break
        out = llm.create_completion(prompt, max_tokens=max_new, temperature=0.0, top_k=1,
                                    repeat_penalty=float(gen.repetition_penalty))
        text = out["choices"][0]["text"]
        if text.strip() == ref.strip():
            same += 1
        else:
            changed.append({"app": ref, "llama_cpp": text})
    return {"questions": same + len(changed), "identical": same, "changed": changed[:5]}


def check_export(run_dir: str | Path, rec: ExportRecord, *, evalset: str | Path | None = None, limit: int = 20,
                 max_new_tokens: int = MAX_NEW_TOKENS, generation=None, system_prompt: str | None = None,
                 on_event: ev.OnEvent = ev.no_event, should_stop: ev.ShouldStop = ev.never_stop) -> ParityResult:
    """Compare an export with the in-app model and store ``parity.json`` beside its record.

    Parameters
    ----------
    run_dir
        The run the export came from (its base model + adapter is the in-app model).
    rec
        The export (from :func:`backend.export.export_run` or :func:`backend.export_types.list_exports`).
    evalset, limit
        Questions (see :func:`parity_questions`), at most ``limit``.
    max_new_tokens
        Length of each greedy answer compared.
    generation, system_prompt
        The chat's settings (repetition penalty, system prompt without retrieval).

    Returns
    -------
    ParityResult
        Also written to ``<run>/exports/<name>/parity.json``.
    """
    import torch

    from backend.rag.chat_model import load_chat_model
    from backend.rag.settings import GenerationSettings, RetrievalSettings
    from backend.runtime import detect_device

    t0 = time.monotonic()
    run_dir = Path(run_dir)
    gen = generation or GenerationSettings()
    system = system_prompt if system_prompt is not None else RetrievalSettings().no_rag_system_prompt
    res = ParityResult(rec.name, rec.kind, rec.quant, "", created=round(time.time(), 3))
    qs, res.source = parity_questions(run_dir, evalset, limit, on_event=on_event)
    total = 3 + 2 * len(qs)
    on_event(ev.progress("parity", 0, total, "Parity check: loading the in-app model…"))
    device = detect_device("auto")
    chat = load_chat_model(run_dir, device=device.kind, dtype="float32")
    app, app_tok = chat.hf_model, chat.tokenizer
    on_event(ev.progress("parity", 1, total, f"Parity check: loading the export ({rec.kind})…"))
    exp, exp_tok, gguf = _load_export(rec, run_dir, device, res.notes)
    app.eval()
    exp.eval()
    on_event(ev.progress("parity", 2, total, "Parity check: comparing answers…"))
    kls: list[float] = []
    tmpl_same = tok_same = True
    prompts: list[str] = []
    app_answers: list[str] = []
    step = 2
    for q in qs:
        if should_stop():
            res.cancelled = True
            break
        msgs = _messages(system, q.question)
        a_text, a_ids = _prompt_ids(app_tok, msgs)
        e_text, e_ids = _prompt_ids(exp_tok, msgs)
        tmpl_same &= a_text == e_text
        tok_same &= a_ids == e_ids
        a_out = _greedy(app, app_tok, a_ids, gen, max_new_tokens)
        e_out = _greedy(exp, exp_tok, e_ids, gen, max_new_tokens)
        a_ans = app_tok.decode(a_out, skip_special_tokens=True)
        prompts.append(a_text)
        app_answers.append(a_ans)
        res.questions += 1
        if a_out == e_out:
            res.identical += 1
        else:
            res.changed.append({"id": q.id, "question": q.question, "app": a_ans,
                                "export": exp_tok.decode(e_out, skip_special_tokens=True)})
        step += 1
        on_event(ev.progress("parity", step, total, f"Parity check: {res.identical}/{res.questions} identical"))
        if q.answer:
            ans_ids = app_tok(q.answer, add_special_tokens=False)["input_ids"]
            if ans_ids:
                kls.extend(_kl(app, exp, a_ids + ans_ids, len(a_ids)))
        step += 1
    res.template_same, res.tokenizer_same = tmpl_same, tok_same
    if kls:
        res.mean_kl = float(sum(kls) / len(kls))
        res.max_kl = float(max(kls))
        res.kl_tokens = len(kls)
    elif not res.cancelled:
        res.notes.append("no reference answers, so no KL")
    if rec.kind == "ollama":
        res.modelfile_same = _modelfile_matches(Path(rec.path), app_tok, system, res.notes)
    if gguf is not None and not res.cancelled:
        if importlib.util.find_spec("llama_cpp") is not None:
            try:
                res.llama_cpp = _llama_cpp_answers(gguf, prompts, app_answers, gen, max_new_tokens, should_stop)
            except Exception as e:  # an optional third-party runtime: report, never fail the export
                res.notes.append(f"llama.cpp check failed ({type(e).__name__}: {e})")
        else:
            res.notes.append("llama.cpp check skipped (llama-cpp-python is not installed; optional)")
    del app, exp, chat
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    res.seconds = round(time.monotonic() - t0, 2)
    d = record_dir(run_dir, rec.name)
    d.mkdir(parents=True, exist_ok=True)
    atomic_write_json(d / PARITY_RECORD, res.to_dict())
    on_event(ev.progress("parity", total, total, f"Parity: {res.summary()}"))
    return res


def _modelfile_matches(folder: Path, tok, system: str, notes: list[str]) -> bool:
    """Whether the Modelfile's TEMPLATE (with its SYSTEM) renders the chat template's prompt for 3-turn chats."""
    from backend.ollama import GoTemplateError, ollama_messages, read_modelfile, render_go_template

    mf = read_modelfile(folder / "Modelfile")
    conv = [{"role": "user", "content": "What does E4 mean?"}, {"role": "assistant", "content": "A Wi-Fi error."},
            {"role": "user", "content": "How do I fix it?"}, {"role": "assistant", "content": "Re-enter the password."},
            {"role": "user", "content": "Thanks, and E5?"}]
    sys_mf = mf.get("system") or None
    try:
        for msgs in (conv, [{"role": "system", "content": system}] + conv):
            hf_msgs = msgs if msgs[0]["role"] == "system" or not sys_mf else [{"role": "system", "content": sys_mf}] + msgs
            want = tok.apply_chat_template(hf_msgs, tokenize=False, add_generation_prompt=True)
            got = render_go_template(mf["template"] or "", {"Messages": ollama_messages(msgs, sys_mf)})
            bos = tok.bos_token or ""
            if bos and want.startswith(bos) and not got.startswith(bos):
                got = bos + got  # llama.cpp adds the BOS token itself
            if want != got:
                notes.append("Modelfile TEMPLATE differs from the chat template")
                return False
    except GoTemplateError as e:
        notes.append(f"Modelfile TEMPLATE not checked ({e})")
        return False
    return True


def recheck(run_dir: str | Path, *, evalset: str | Path | None = None, limit: int = 20,
            on_event: ev.OnEvent = ev.no_event, should_stop: ev.ShouldStop = ev.never_stop) -> list[ParityResult]:
    """Run the parity check again for every recorded export of a run that still exists."""
    out = []
    for rec in list_exports(run_dir):
        if should_stop():
            break
        if not Path(rec.path).exists():
            on_event(ev.log(f"{rec.name}: {rec.path} is gone; skipped"))
            continue
        try:
            out.append(check_export(run_dir, rec, evalset=evalset, limit=limit, on_event=on_event,
                                    should_stop=should_stop))
        except TuneError as e:
            on_event(ev.log(f"{rec.name}: {e}", level="warning"))
    return out

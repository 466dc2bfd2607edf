"""A transformers causal LM (with an optional PEFT adapter) as a LangChain chat model.

One model is held in memory.  When a run's adapter is applied, the *base*
model is the same weights with the adapter switched off
(``PeftModel.disable_adapter()``), so comparing base and tuned costs no second
copy.  Pass ``adapter=False`` per call (``chat.invoke(msgs, adapter=False)``,
or ``chat.bind(adapter=False)`` in a chain) to answer as the base model.

A full fine-tuning or BitFit run saves a whole model (``model/``), which is
loaded as a plain model and answers as the tuned model.  Its base is other
weights: the first base answer (``adapter=False``) loads the base model as a
second model, kept until the chat model is dropped — two models in memory,
only when a comparison asks for it.

Streaming uses transformers' ``TextIteratorStreamer``: ``generate`` runs in a
helper thread and text pieces are yielded as they are decoded.
"""

from __future__ import annotations

import contextlib
import json
import threading
from pathlib import Path
from typing import Any, Callable, Iterator

from langchain_core.callbacks.manager import CallbackManagerForLLMRun
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import ConfigDict, Field, PrivateAttr

from backend import events as ev
from backend import runs
from backend.errors import ModelError, RunError
from backend.rag.settings import GenerationSettings
from backend.specials import neutralise, special_strings
from backend.trust import asked, hub_allowed, notices

_ROLES = {"human": "user", "ai": "assistant", "system": "system", "tool": "tool"}
_GEN_KEYS = ("temperature", "top_p", "max_new_tokens", "repetition_penalty")


class HFChatModel(BaseChatModel):
    """LangChain chat model over a loaded transformers model and its tokenizer.

    Parameters
    ----------
    hf_model
        A causal LM, or a ``peft.PeftModel`` wrapping one.
    tokenizer
        Its tokenizer; the chat template formats the messages.
    settings
        Default generation settings; any of ``temperature``, ``top_p``,
        ``max_new_tokens``, ``repetition_penalty`` can be overridden per call.
    base_model_path, adapter_dir
        Where the weights came from (shown to the user, written to eval reports).
    tuned_model_dir
        A full fine-tune's ``model/`` folder when ``hf_model`` is that whole
        model (no adapter); then ``base_loader`` loads the base on demand.
    base_loader
        Called once, on the first base answer of a full fine-tune: returns the base model.

    Per-call keyword arguments (``invoke(..., adapter=False)`` or ``bind``):
    ``adapter`` (use the adapter when present, default True), ``should_stop``
    (a callable checked after every token) and the generation settings.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    hf_model: Any
    tokenizer: Any
    settings: GenerationSettings = Field(default_factory=GenerationSettings)
    base_model_path: str = ""
    adapter_dir: str = ""
    tuned_model_dir: str = ""
    base_loader: Any = None

    # generation flips global adapter switches: one generation at a time
    _lock: Any = PrivateAttr(default_factory=threading.Lock)
    _base_model: Any = PrivateAttr(default=None)

    @property
    def _llm_type(self) -> str:
        return "tune-studio-transformers"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"base_model": self.base_model_path, "adapter": self.adapter_dir or self.tuned_model_dir,
                **self.settings.to_dict()}

    @property
    def is_full_model(self) -> bool:
        """Whether ``hf_model`` is a whole fine-tuned model (full / BitFit run), not base + adapter."""
        return bool(self.tuned_model_dir)

    @property
    def has_adapter(self) -> bool:
        """Whether base and tuned differ: an adapter is applied, or a full fine-tune is loaded."""
        if self.is_full_model:
            return self.base_loader is not None
        return hasattr(self.hf_model, "disable_adapter") and hasattr(self.hf_model, "peft_config")

    # -- helpers ----------------------------------------------------------
    def model_for(self, adapter: bool):
        """The module that answers as tuned (``adapter=True``) or base; use it inside :meth:`adapter_context`.

        For an adapter run both are ``hf_model``; for a full fine-tune the base
        is a second model, loaded on first use.
        """
        if adapter or not self.is_full_model:
            return self.hf_model
        if self._base_model is None:
            if self.base_loader is None:
                raise ModelError("this chat model holds a full fine-tune and no base model to compare with",
                                 hint="load the base model on its own (no run) to ask it")
            self._base_model = self.base_loader()
        return self._base_model

    def adapter_context(self, adapter: bool):
        """Context in which :meth:`model_for` answers as tuned (``adapter=True``) or base."""
        if adapter or self.is_full_model:
            return contextlib.nullcontext()
        if self.has_adapter:
            return self.hf_model.disable_adapter()
        return contextlib.nullcontext()  # no adapter: the model is the base model

    def _inputs(self, messages: list[BaseMessage], max_new_tokens: int, model: Any = None):
        """Token ids of the conversation through the chat template, cut from the left to fit."""
        import torch

        model = model if model is not None else self.hf_model
        # content (question, passages) must not open or close a turn: docs/architecture.md, "Trust"
        specials = special_strings(self.tokenizer)
        chat = [{"role": _ROLES.get(m.type, "user"), "content": neutralise(_text(m.content), specials)}
                for m in messages]
        prompt = self.tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
        ids = self.tokenizer(prompt, add_special_tokens=False, return_tensors="pt")["input_ids"]
        limit = int(getattr(model.config, "max_position_embeddings", 0) or 0)
        if limit and ids.shape[1] + max_new_tokens > limit:
            # keep the end (the question and the start of the answer); the
            # retrieved context is already cut to size by the chain
            ids = ids[:, -(max(limit - max_new_tokens, 1)):]
        device = next(model.parameters()).device
        ids = ids.to(device)
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}

    def _generate_kwargs(self, stop: list[str] | None, kwargs: dict[str, Any]) -> tuple[dict, bool, Callable | None]:
        """``generate`` arguments from the settings and per-call overrides."""
        from transformers import GenerationConfig, StoppingCriteria, StoppingCriteriaList

        s = {**self.settings.to_dict(), **{k: kwargs[k] for k in _GEN_KEYS if kwargs.get(k) is not None}}
        GenerationSettings(**s)  # range checks for per-call overrides
        tok = self.tokenizer
        eos = [i for i in {tok.eos_token_id, getattr(self.hf_model.config, "eos_token_id", None)}
               if isinstance(i, int)]
        cfg: dict[str, Any] = dict(max_new_tokens=int(s["max_new_tokens"]),
                                   repetition_penalty=float(s["repetition_penalty"]),
                                   pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else (eos or [0])[0],
                                   eos_token_id=eos or None)
        if s["temperature"] > 0:
            cfg.update(do_sample=True, temperature=float(s["temperature"]), top_p=float(s["top_p"]), top_k=0)
        else:
            cfg.update(do_sample=False)
        if stop:
            cfg["stop_strings"] = list(stop)
        gen: dict[str, Any] = {"generation_config": GenerationConfig(**cfg)}
        if stop:
            gen["tokenizer"] = tok  # generate needs it to match stop strings
        should_stop = kwargs.get("should_stop")
        if should_stop is not None:
            class _Stop(StoppingCriteria):
                def __call__(self, input_ids, scores, **kw):
                    return bool(should_stop())
            gen["stopping_criteria"] = StoppingCriteriaList([_Stop()])
        bias = kwargs.get("copy_bias")
        if bias and float(bias[1]) > 0:
            # (context text, strength): favour the tokens of the retrieved evidence, so a small
            # model copies names and numbers instead of inventing them (docs/architecture.md, RAG)
            import torch
            from transformers import LogitsProcessor, LogitsProcessorList

            ids = sorted(set(tok(str(bias[0]), add_special_tokens=False)["input_ids"]))
            strength = float(bias[1])

            class _CopyBias(LogitsProcessor):
                def __call__(self, input_ids, scores):
                    idx = torch.tensor(ids, device=scores.device)
                    scores[:, idx] += strength
                    return scores
            if ids:
                gen["logits_processor"] = LogitsProcessorList([_CopyBias()])
        return gen, bool(kwargs.get("adapter", True)), should_stop

    # -- LangChain interface ----------------------------------------------
    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> ChatResult:
        import torch

        gen, adapter, _ = self._generate_kwargs(stop, kwargs)
        with self._lock:
            model = self.model_for(adapter)
            inputs = self._inputs(messages, gen["generation_config"].max_new_tokens, model)
            n_in = inputs["input_ids"].shape[1]
            with self.adapter_context(adapter), torch.inference_mode():
                out = model.generate(**inputs, **gen)
        new = out[0, n_in:]
        text = _cut_stop(self.tokenizer.decode(new, skip_special_tokens=True), stop)
        msg = AIMessage(content=text, response_metadata={"new_tokens": int(new.shape[0]), "adapter": adapter})
        return ChatResult(generations=[ChatGeneration(message=msg)])

    def _stream(self, messages: list[BaseMessage], stop: list[str] | None = None,
                run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> Iterator[ChatGenerationChunk]:
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

        gen, adapter, _ = self._generate_kwargs(stop, kwargs)
        with self._lock:
            model = self.model_for(adapter)
        inputs = self._inputs(messages, gen["generation_config"].max_new_tokens, model)
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        abandoned = threading.Event()  # the consumer stopped reading: end generation early

        class _Abandoned(StoppingCriteria):
            def __call__(self, input_ids, scores, **kw):
                return abandoned.is_set()

        criteria = StoppingCriteriaList(list(gen.pop("stopping_criteria", [])) + [_Abandoned()])
        error: list[BaseException] = []

        def work() -> None:
            try:
                with self.adapter_context(adapter), torch.inference_mode():
                    model.generate(**inputs, **gen, streamer=streamer, stopping_criteria=criteria)
            except BaseException as e:  # re-raised in the consumer's thread
                error.append(e)
                streamer.end()

        with self._lock:
            thread = threading.Thread(target=work, name="tune-studio-generate", daemon=True)
            thread.start()
            sent = ""
            try:
                for piece in streamer:
                    if not piece:
                        continue
                    if stop:
                        # hold back text until it cannot be the start of a stop string
                        full = sent + piece
                        cut = _cut_stop(full, stop)
                        if cut != full:
                            piece = cut[len(sent):]
                            if piece:
                                yield self._chunk(piece, run_manager)
                            abandoned.set()
                            break
                    sent += piece
                    yield self._chunk(piece, run_manager)
            finally:
                abandoned.set()
                thread.join()
        if error:
            raise error[0]

    def _chunk(self, piece: str, run_manager: CallbackManagerForLLMRun | None) -> ChatGenerationChunk:
        chunk = ChatGenerationChunk(message=AIMessageChunk(content=piece))
        if run_manager is not None:
            run_manager.on_llm_new_token(piece, chunk=chunk)
        return chunk


def _text(content: Any) -> str:
    """Message content as plain text (LangChain allows lists of parts)."""
    if isinstance(content, str):
        return content
    parts = []
    for p in content or []:
        parts.append(p if isinstance(p, str) else str(p.get("text", "")) if isinstance(p, dict) else str(p))
    return "".join(parts)


def _cut_stop(text: str, stop: list[str] | None) -> str:
    """Text up to the first stop string."""
    if not stop:
        return text
    cut = len(text)
    for s in stop:
        i = text.find(s)
        if i != -1:
            cut = min(cut, i)
    return text[:cut]


# ---------------------------------------------------------------------------
# loading a run


def read_run_config(run_dir: str | Path) -> dict[str, Any]:
    """A run folder's ``config.json`` as a dict.

    Raises
    ------
    RunError
        When the folder or its config is missing or unreadable.
    """
    return runs.read_config(run_dir)


def _same_model(a: str | Path, b: str | Path) -> bool:
    """Whether two resolved model folders hold the same architecture and shapes."""
    if Path(a).resolve() == Path(b).resolve():
        return True
    from backend.models import model_info

    try:
        ia, ib = model_info(str(a)), model_info(str(b))
    except ModelError:
        return False
    keys = ("architecture", "hidden_size", "layers", "heads", "kv_heads", "intermediate_size", "vocab_size")
    return all(getattr(ia, k) == getattr(ib, k) for k in keys)


def load_chat_model(run_dir: str | Path | None = None, base_model: str | None = None, *,
                    settings: GenerationSettings | None = None, device: str = "auto", dtype: str = "auto",
                    trust_remote_code: bool = False, allow_pickle_weights: bool = False,
                    allow_hub: bool | None = None, on_event: ev.OnEvent = ev.no_event) -> HFChatModel:
    """Load a base model, with a run's adapter applied when a run is given.

    Parameters
    ----------
    run_dir
        A finished run folder: ``adapter/`` is applied to the base model its
        config names; ``model/`` (full fine-tuning, BitFit) is loaded as a
        plain model, and the base model is loaded as a second model only when
        a base answer is asked for.  ``None``: the base model alone (no tuned mode).
    base_model
        The base model to use instead of the run's (``"default"``, a folder, a
        ``.gguf``).  With an adapter run, it must be the model the adapter was trained on.
    settings
        Generation settings (defaults: :class:`GenerationSettings`).
    device, dtype
        Where and in which precision to load (``"auto"``: CUDA bf16 when
        available, else CPU float32).
    trust_remote_code, allow_pickle_weights
        This machine's answer (CLI flags, GUI settings).  The run folder's
        ``config.json`` never switches them on; when it asks, a warning ``log``
        event says so (see :mod:`backend.trust`).
    allow_hub
        Whether a hub id may be resolved (network): the person's answer, ``None``
        = :func:`backend.trust.hub_allowed` (``TUNE_ALLOW_HUB=1``, the Model page).
        The run folder's ``model.allow_hub`` is never read.
    on_event
        Receives ``progress`` events (stage ``load``).

    Returns
    -------
    HFChatModel

    Raises
    ------
    RunError
        A missing run folder or config, or a run with neither adapter nor model yet.
    ModelError
        A base model that cannot be loaded, or an adapter trained on a
        different base model.
    """
    from backend.models import load_model, load_tokenizer, resolve_model
    from backend.runtime import detect_device

    run_cfg: dict[str, Any] = {}
    adapter_dir: Path | None = None
    full_dir: Path | None = None
    if run_dir is not None:
        run_cfg = read_run_config(run_dir)
        if not runs.has_chat_model(run_dir):
            if runs.read_status(run_dir).get("status") == "completed":
                raise RunError("the run completed, but its adapter/ (or model/) folder is gone: deleted or moved",
                               file=run_dir, hint="put the folder back, or train the run again")
            raise RunError("the run has no adapter yet and no model (it has not finished)", file=run_dir,
                           hint="pick a completed run, or resume this one with `tune resume`")
        if runs.kind(run_dir) == "model":
            full_dir = runs.model_dir(Path(run_dir).expanduser())
        else:
            adapter_dir = runs.adapter_dir(Path(run_dir).expanduser())
    mcfg = run_cfg.get("model") or {}
    run_base = mcfg.get("name_or_path") or "default"
    name = base_model or run_base
    # this machine's answer, never the run folder's (a copied run must not run its code): backend/trust.py
    trust, pickle_ok = bool(trust_remote_code), bool(allow_pickle_weights)
    hub = hub_allowed() if allow_hub is None else bool(allow_hub)
    granted = {"trust_remote_code": trust, "allow_pickle_weights": pickle_ok, "allow_hub": hub}
    for message in notices([n for n in asked(mcfg) if not granted[n]], f"The run folder {Path(run_dir).name}"
                           if run_dir is not None else "The run", cli=True):
        on_event(ev.log(message, level="warning"))
    dev = detect_device(device if device in ("auto", "cuda", "mps", "cpu") else "auto")
    load_dtype = dtype if dtype != "auto" else mcfg.get("dtype", "auto")

    def resolve_base() -> str:
        return resolve_model(name, allow_hub=hub,
                             allow_pickle_weights=pickle_ok, on_event=on_event)

    def load(path: str):
        m = load_model(path, device=dev, dtype=load_dtype, trust_remote_code=trust, allow_pickle_weights=pickle_ok)
        m.eval()
        return m

    if full_dir is not None:
        on_event(ev.progress("load", 1, 3, "Loading the fine-tuned model…"))
        tokenizer = load_tokenizer(str(full_dir), trust_remote_code=trust)
        model = load(str(full_dir))
        on_event(ev.progress("load", 3, 3, "Model ready"))
        return HFChatModel(hf_model=model, tokenizer=tokenizer, settings=settings or GenerationSettings(),
                           base_model_path=name, tuned_model_dir=str(full_dir),
                           base_loader=lambda: load(resolve_base()))

    on_event(ev.progress("load", 0, 3, f"Resolving the base model {name}…"))
    path = resolve_base()
    if adapter_dir is not None:
        _check_adapter_base(adapter_dir, path, run_base, base_model, hub)
    on_event(ev.progress("load", 1, 3, "Loading the model…"))
    tok_dir = adapter_dir if adapter_dir is not None and (adapter_dir / "tokenizer_config.json").is_file() else path
    tokenizer = load_tokenizer(str(tok_dir), trust_remote_code=trust)
    model = load(path)
    if adapter_dir is not None:
        on_event(ev.progress("load", 2, 3, "Applying the adapter…"))
        from peft import PeftModel

        try:
            model = PeftModel.from_pretrained(model, str(adapter_dir), is_trainable=False)
        except (RuntimeError, ValueError, KeyError) as e:
            raise ModelError(f"the adapter does not fit this base model ({type(e).__name__}: {str(e)[:300]})",
                             file=adapter_dir, hint="load it with the base model it was trained on "
                             f"(the run's config says '{run_base}')") from e
        model.eval()
    on_event(ev.progress("load", 3, 3, "Model ready"))
    return HFChatModel(hf_model=model, tokenizer=tokenizer, settings=settings or GenerationSettings(),
                       base_model_path=str(path), adapter_dir=str(adapter_dir or ""))


def _check_adapter_base(adapter_dir: Path, path: str, run_base: str, base_model: str | None, hub: bool) -> None:
    """Raise ``ModelError`` when the adapter was trained on another base model than ``path``."""
    from backend.models import resolve_model

    try:
        acfg = json.loads((adapter_dir / "adapter_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise RunError(f"the adapter's config is unreadable ({e})", file=adapter_dir / "adapter_config.json") from None
    trained_on = acfg.get("base_model_name_or_path") or ""
    expected: str | None = None
    if base_model is not None and base_model != run_base:
        try:
            expected = resolve_model(run_base, allow_hub=hub)
        except ModelError:
            expected = trained_on if trained_on and Path(trained_on).is_dir() else None
    elif trained_on and Path(trained_on).is_dir():
        expected = trained_on
    if expected and not _same_model(expected, path):
        raise ModelError(f"the adapter was trained on a different base model ({run_base}: {expected}), "
                         f"not on {base_model or run_base}: {path}", file=adapter_dir,
                         hint=f"use the run's own base model (leave the base model unset), or train a run on {path}")

"""The one registry of fine-tuning methods (docs/architecture.md, "How to add a method").

Every module that needs to know something about a method — the config's list
of choices, training's ``apply_method``, what the run folder holds, export,
the chat and the GUI forms — reads it here instead of spelling out its own
list of names.

Adding a method: add a :class:`Method` row below, then teach
``backend.training.apply_method`` to build it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Family = Literal["lora", "ia3", "prompt", "bitfit", "full"]
Saves = Literal["adapter", "model"]
Objective = Literal["sft", "dpo", "orpo"]


@dataclass(frozen=True)
class Method:
    """What one fine-tuning method is and what a run of it produces.

    Attributes
    ----------
    name
        The ``method.method`` value in a run config.
    family
        ``lora`` (low-rank updates: lora, dora, rslora), ``ia3`` (learned
        scaling vectors), ``prompt`` (prompt learning: virtual tokens),
        ``bitfit`` (bias terms only) or ``full`` (every weight).
    saves
        ``adapter`` (a PEFT adapter folder, loaded on top of the base model)
        or ``model`` (a whole model folder).
    mergeable
        Whether the adapter can be merged into the base weights (export as a
        plain model); methods that save a whole model are already merged.
    gguf
        Whether a GGUF export can be made from it (needs plain weights).
    chat
        Whether the chat can load a finished run of it.
    fastpath
        Whether :mod:`backend.fastpath`'s fused LoRA kernels apply.
    packing
        Whether padding-free packing can be used (prompt learning prepends
        virtual tokens per row, which packing cannot express).
    quantized
        Whether 4-bit (QLoRA) loading of the base works with it.
    fields
        The ``method.*`` config fields that matter for it (GUI forms hide the others).
    label
        A short description for people.
    objective
        What it trains on: ``sft`` (the rows' answers: next-token loss) or a preference objective,
        ``dpo`` / ``orpo``, on pairs of a chosen and a rejected answer (the expert's corrections;
        ``backend/training/preference.py``). Preference methods never pack (a pair is padded).
    """

    name: str
    family: Family
    saves: Saves
    mergeable: bool
    gguf: bool
    chat: bool
    fastpath: bool
    packing: bool
    quantized: bool
    fields: tuple[str, ...]
    label: str
    objective: Objective = "sft"

    @property
    def is_adapter(self) -> bool:
        """True when a run of it saves a PEFT adapter (``adapter/``)."""
        return self.saves == "adapter"

    @property
    def is_preference(self) -> bool:
        """True for methods that train on chosen / rejected pairs (DPO, ORPO)."""
        return self.objective != "sft"

    @property
    def is_prompt_learning(self) -> bool:
        """True for virtual-token methods (prompt / prefix tuning)."""
        return self.family == "prompt"


_LORA_FIELDS = ("method.lora_r", "method.lora_alpha", "method.lora_dropout", "method.target_modules")
_PROMPT_FIELDS = ("method.num_virtual_tokens",)
_PREFERENCE_FIELDS = _LORA_FIELDS + ("method.pref_beta",)

METHODS: dict[str, Method] = {m.name: m for m in (
    Method("lora", "lora", "adapter", True, True, True, True, True, True, _LORA_FIELDS,
           "LoRA: low-rank updates to the linear layers"),
    Method("dora", "lora", "adapter", True, True, True, True, True, True, _LORA_FIELDS,
           "DoRA: LoRA with a learned magnitude per output"),
    Method("rslora", "lora", "adapter", True, True, True, True, True, True, _LORA_FIELDS,
           "rsLoRA: LoRA scaled by alpha / sqrt(r)"),
    Method("ia3", "ia3", "adapter", True, True, True, False, True, False, ("method.target_modules",),
           "IA3: learned scaling vectors (a tiny adapter)"),
    Method("prompt_tuning", "prompt", "adapter", False, False, True, False, False, False, _PROMPT_FIELDS,
           "Prompt tuning: learned virtual tokens before the input"),
    Method("prefix_tuning", "prompt", "adapter", False, False, True, False, False, False, _PROMPT_FIELDS,
           "Prefix tuning: learned keys and values in every layer"),
    Method("bitfit", "bitfit", "model", True, True, True, False, True, False, (),
           "BitFit: only the bias terms (saves a whole model)"),
    Method("full", "full", "model", True, True, True, False, True, False, (),
           "Full fine-tuning: every weight (saves a whole model)"),
    Method("dpo", "lora", "adapter", True, True, True, False, False, True, _PREFERENCE_FIELDS,
           "DPO on LoRA: prefer the expert's corrected answers to the model's wrong ones", objective="dpo"),
    Method("orpo", "lora", "adapter", True, True, True, False, False, True, _PREFERENCE_FIELDS,
           "ORPO on LoRA: learn the corrected answers and prefer them, no reference model", objective="orpo"),
)}

NAMES: tuple[str, ...] = tuple(METHODS)
"""Every method name, in the order forms list them (``lora`` first: the default)."""


def get(name: str) -> Method:
    """The registry row of ``name``.

    Raises
    ------
    KeyError
        For a name that is not a method (config validation names the choices first).
    """
    try:
        return METHODS[name]
    except KeyError:
        raise KeyError(f"unknown method {name!r}; choose one of {', '.join(NAMES)}") from None


def names(**where: object) -> tuple[str, ...]:
    """Method names whose attributes equal ``where`` (e.g. ``names(family="prompt")``)."""
    return tuple(m.name for m in METHODS.values() if all(getattr(m, k) == v for k, v in where.items()))


def fields_for() -> dict[str, tuple[str, ...]]:
    """``{config field: methods it matters for}`` for the method-specific fields (GUI forms)."""
    out: dict[str, list[str]] = {}
    for m in METHODS.values():
        for f in m.fields:
            out.setdefault(f, []).append(m.name)
    return {k: tuple(v) for k, v in out.items()}

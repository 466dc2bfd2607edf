"""Wrap a loaded model for its fine-tuning method (the registry in :mod:`backend.methods` says which family)."""

from __future__ import annotations

from typing import Any

from backend import methods
from backend.config import RunConfig
from backend.errors import ConfigError


def apply_method(model, cfg: RunConfig):
    """Wrap ``model`` for the configured method; return ``(model, trainable, total)``.

    Raises
    ------
    ConfigError
        When the method cannot apply to this model (e.g. BitFit on a model without biases,
        target modules that do not exist).
    """
    import peft

    m = cfg.method
    kind = m.method
    family = methods.get(kind).family  # the registry says which branch below builds it
    task = peft.TaskType.CAUSAL_LM
    if family == "lora":
        targets: Any = list(m.target_modules) if m.target_modules else "all-linear"
        if isinstance(targets, list):
            names = {n.split(".")[-1] for n, _ in model.named_modules()}
            missing = [t for t in targets if t not in names]
            if missing:
                raise ConfigError(f"target modules {missing} not found in the base model",
                                  field="method.target_modules",
                                  hint="leave it empty for all linear layers, or pick from: "
                                       + ", ".join(sorted(n for n in names if n.endswith("proj"))))
        pc = peft.LoraConfig(r=m.lora_r, lora_alpha=m.lora_alpha, lora_dropout=m.lora_dropout,
                             target_modules=targets, task_type=task, use_dora=kind == "dora",
                             use_rslora=kind == "rslora")
        model = peft.get_peft_model(model, pc)
    elif family == "ia3":
        kwargs = {}
        if m.target_modules:
            kwargs = {"target_modules": list(m.target_modules), "feedforward_modules": []}
        model = peft.get_peft_model(model, peft.IA3Config(task_type=task, **kwargs))
    elif family == "prompt":
        config_cls = peft.PrefixTuningConfig if kind == "prefix_tuning" else peft.PromptTuningConfig
        model = peft.get_peft_model(model, config_cls(task_type=task, num_virtual_tokens=m.num_virtual_tokens))
    elif family == "bitfit":
        n_bias = 0
        for name, p in model.named_parameters():
            p.requires_grad = name.endswith(".bias")
            n_bias += p.numel() if p.requires_grad else 0
        if n_bias == 0:
            raise ConfigError("BitFit trains only bias terms, and this model has none",
                              field="method.method", hint="choose 'lora' (or 'ia3' for a similarly tiny adapter)")
    elif family == "full":
        for p in model.parameters():
            p.requires_grad = True
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return model, trainable, total


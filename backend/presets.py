"""Configuration presets: named dotted-key overrides over a RunConfig.

Shown on the Configure page and applied by ``tune train --preset``; both go
through :func:`backend.planning.resolve_run_config` so they agree.

Most presets are fixed values.  "Learn the facts" is derived from the data: it
shapes the rows (:func:`backend.recipes.facts_data_options`), and its epochs,
learning rate and batch come from the rows so shaped
(:func:`backend.recipes.facts_recipe`, fitted to a :class:`~backend.recipes.FactSet`:
the Data page's check, or :func:`backend.planning.fact_set` for the CLI), after
every option that changes them (:func:`fit_preset`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Mapping

from backend.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from backend.config import RunConfig
    from backend.recipes import FactSet


@dataclass(frozen=True)
class Preset:
    """A named set of overrides."""

    key: str
    label: str
    description: str
    overrides: dict[str, Any]
    derived: bool = False  # the overrides come from the data (rows, mean tokens): see preset_overrides


# The fixed presets train the rows as written: the knowledge recipe's extra rows (backend/recipes.py) are off.
_ROWS_AS_WRITTEN = {"data.rewordings": 0, "data.raft_closed_book": False, "data.raft_abstain_share": 0.0,
                    "data.raft_counterfactual_share": 0.0,
                    "data.heldout_rewordings": 0, "training.keep_best": False}

PRESETS: tuple[Preset, ...] = (
    Preset("quick", "Quick CPU test",
           "Minutes on a laptop CPU: 30 optimizer steps on short rows (without passages from your documents) "
           "with a small LoRA. Checks the whole path; do not expect a good model.",
           {"method.method": "lora", "method.lora_r": 8, "method.lora_alpha": 16, "method.lora_dropout": 0.05,
            "method.target_modules": [], "training.max_steps": 30, "training.epochs": 1.0,
            "training.batch_size": 2, "training.gradient_accumulation": 2, "training.learning_rate": 5e-4,
            "training.lr_scheduler": "cosine", "training.warmup_ratio": 0.05, "training.eval_steps": 10,
            "training.save_steps": 10, "training.logging_steps": 1, "training.gradient_checkpointing": False,
            "training.early_stopping_patience": 0, "data.max_length": 256, "data.packing": True,
            "data.raft": False, "data.validation_split": 0.1, **_ROWS_AS_WRITTEN}),
    Preset("balanced", "Balanced LoRA",
           "The recommended start: LoRA rank 16 on all linear layers, 3 epochs, cosine schedule.",
           {"method.method": "lora", "method.lora_r": 16, "method.lora_alpha": 32, "method.lora_dropout": 0.05,
            "method.target_modules": [], "training.max_steps": 0, "training.epochs": 3.0,
            "training.batch_size": 4, "training.gradient_accumulation": 4, "training.learning_rate": 2e-4,
            "training.lr_scheduler": "cosine", "training.warmup_ratio": 0.03, "training.eval_steps": 50,
            "training.save_steps": 50, "training.logging_steps": 1, "training.gradient_checkpointing": False,
            "training.early_stopping_patience": 0, "data.max_length": 1024, "data.packing": True,
            "data.validation_split": 0.1, **_ROWS_AS_WRITTEN}),
    Preset("quality", "Quality",
           "More capacity and more careful training: rank-32 rsLoRA, 5 epochs at a lower learning rate, "
           "longer rows, early stopping. Slower; meant for a GPU.",
           {"method.method": "rslora", "method.lora_r": 32, "method.lora_alpha": 64, "method.lora_dropout": 0.05,
            "method.target_modules": [], "training.max_steps": 0, "training.epochs": 5.0,
            "training.batch_size": 4, "training.gradient_accumulation": 8, "training.learning_rate": 1e-4,
            "training.lr_scheduler": "cosine", "training.warmup_ratio": 0.05, "training.eval_steps": 25,
            "training.save_steps": 25, "training.logging_steps": 1, "training.gradient_checkpointing": True,
            "training.early_stopping_patience": 3, "data.max_length": 2048, "data.packing": True,
            "data.validation_split": 0.1, **_ROWS_AS_WRITTEN}),
    Preset("facts", "Learn the facts",
           "For small question-answer sets (up to 400 rows): every question is also trained in reworded "
           "forms, and with documents shown with its passages, without them, and beside questions the "
           "documents can't answer; epochs, learning rate and batch are fitted to those rows so that every "
           "fact is seen often enough, within about 10 minutes on a CPU, and the checkpoint that answers "
           "held-out rewordings best is kept. The default for a dataset this small.",
           {}, derived=True),
)


PRESET_KEYS: tuple[str, ...] = tuple(p.key for p in PRESETS)


def preset(key: str) -> Preset:
    """The preset called ``key``.

    Raises
    ------
    ConfigError
        When no preset has that name.
    """
    for p in PRESETS:
        if p.key == key:
            return p
    raise ConfigError(f"unknown preset '{key}'", field="preset", hint=f"use one of {', '.join(PRESET_KEYS)}")


def preset_overrides(key: str, cfg: "RunConfig | None" = None, *, rows: int | None = None,
                     mean_tokens: float | None = None, facts: "FactSet | None" = None) -> dict[str, Any]:
    """The dotted-key values preset ``key`` sets.

    A derived preset needs the rows it is fitted to: ``facts`` (a
    :class:`~backend.recipes.FactSet`, counted under ``cfg``'s row options) or
    ``rows`` and ``mean_tokens``; it takes ``cfg.data.raft`` into account.

    Raises
    ------
    ConfigError
        Unknown preset, or a derived one without rows.
    """
    p = preset(key)
    if not p.derived:
        return dict(p.overrides)
    from backend.recipes import FactSet, facts_recipe

    facts = facts or FactSet(int(rows or 0), mean_tokens)
    if not facts.rows:
        raise ConfigError(f"the '{p.label}' preset is fitted to your training rows, which have not been counted yet",
                          field="preset", hint="check the data first (the Data page), then choose the preset again")
    raft = bool(cfg.data.raft) if cfg is not None else False
    return facts_recipe(facts.rows, mean_tokens=float(facts.mean_tokens or 64.0), raft=raft,
                        rows_per_fact=facts.rows_per_fact, max_tokens=facts.max_tokens)


def shaping_overrides(key: str, cfg: "RunConfig") -> dict[str, Any]:
    """The row-shaping options preset ``key`` sets before its rows are counted (``{}`` for a fixed preset)."""
    if not preset(key).derived:
        return {}
    from backend.recipes import facts_data_options

    return facts_data_options(bool(cfg.data.raft))


def fit_preset(cfg: "RunConfig", key: str, count: "Callable[[RunConfig], FactSet]", *,
               after: Mapping[str, Any] | None = None) -> "RunConfig":
    """``cfg`` with preset ``key``, fitted after every option that changes the rows.

    The order: the user's options (``after``) over ``cfg``; the preset's row-shaping
    options (:func:`shaping_overrides`, for the ``data.raft`` that results); the user's
    options again (theirs win); the rows counted under that configuration (``count``);
    the fitted values; the user's options last.  So ``--preset facts --set data.raft=true``
    fits the preset to rows with passages, as the GUI does when the box is ticked.
    """
    after = dict(after or {})
    if not preset(key).derived:
        return cfg.with_overrides(preset_overrides(key, cfg)).with_overrides(after)
    shaped = cfg.with_overrides(after)
    shaped = shaped.with_overrides(shaping_overrides(key, shaped)).with_overrides(after)
    fitted = shaped.with_overrides(preset_overrides(key, shaped, facts=count(shaped)))
    return fitted.with_overrides(after)


def apply_preset(cfg: "RunConfig", key: str, *, rows: int | None = None,
                 mean_tokens: float | None = None, facts: "FactSet | None" = None) -> "RunConfig":
    """A copy of ``cfg`` with the preset's values (``rows``/``mean_tokens``/``facts``: see :func:`preset_overrides`).

    A derived preset's row-shaping options are applied too; the counts given are used as
    they are (the Configure page re-fits when the Data page's next check comes back).
    """
    cfg = cfg.with_overrides(shaping_overrides(key, cfg))
    return cfg.with_overrides(preset_overrides(key, cfg, rows=rows, mean_tokens=mean_tokens, facts=facts))


def matching_preset(cfg: "RunConfig", *, rows: int | None = None, mean_tokens: float | None = None,
                    facts: "FactSet | None" = None) -> str | None:
    """The preset whose values ``cfg`` has, if any (a derived one only when its rows are known)."""
    d = cfg.to_dict()
    for p in PRESETS:
        if p.derived and not (rows or (facts and facts.rows)):
            continue
        values = {**shaping_overrides(p.key, cfg),
                  **preset_overrides(p.key, cfg, rows=rows, mean_tokens=mean_tokens, facts=facts)}
        if all(d[k.split(".")[0]][k.split(".")[1]] == v for k, v in values.items()):
            return p.key
    return None


def preset_keys(key: str, cfg: "RunConfig") -> set[str]:
    """The dotted keys preset ``key`` sets (a derived one's fitted keys included)."""
    from backend.recipes import FactSet

    p = preset(key)
    return set(shaping_overrides(key, cfg)) | set(preset_overrides(key, cfg, facts=FactSet(1) if p.derived else None))


def recommended_preset(rows: int | None) -> str | None:
    """The preset a dataset of ``rows`` rows (as written) should start from ("facts" for a small fact set)."""
    from backend.recipes import is_small

    return "facts" if rows and is_small(rows) else None

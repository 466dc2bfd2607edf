"""Training recipes derived from the data: a small fact set needs many passes, not many rows.

A dataset of tens to a few hundred question-answer rows is a set of facts the
model should learn.  The generic presets give such a set a few dozen optimizer
steps, which teaches the answer *style* but not the facts.  The recipe here
derives epochs, learning rate, rank and effective batch from the row count
(and the row length) so that every row is seen often enough inside a CPU time
budget; the numbers were chosen by measurement on the sample project
(``bench/quality.md``, ``docs/architecture.md``).
"""

from __future__ import annotations

import math
from typing import Any

SMALL_MAX_ROWS = 400         # up to here a dataset counts as a small fact set
CPU_TOKENS_PER_S = 140.0     # measured LoRA training speed of the default 135M model, idle 2-core CPU (bench/results.json)
CPU_BUDGET_S = 600.0         # the recipe's target: learned within 10 minutes on such a CPU
MIN_EPOCHS, MAX_EPOCHS = 2.0, 12.0


def is_small(rows: int) -> bool:
    """Whether ``rows`` usable rows are a small fact set (the facts recipe is the default then)."""
    return 0 < rows <= SMALL_MAX_ROWS


def facts_recipe(rows: int, *, mean_tokens: float = 64.0, raft: bool = False,
                 tokens_per_s: float = CPU_TOKENS_PER_S, budget_s: float = CPU_BUDGET_S) -> dict[str, Any]:
    """Overrides (dotted keys) that teach a small fact set.

    Parameters
    ----------
    rows
        Usable training rows.
    mean_tokens
        Mean tokens per row as the run trains them: with ``data.raft`` the
        rows carry retrieved passages (~330 tokens on the sample instead of
        ~70), so fewer passes fit the budget, and copying from context also
        needs fewer passes than recalling.
    raft
        Rows carry retrieved passages (``data.raft``): a longer ``max_length``.
    tokens_per_s, budget_s
        Training speed and time budget the epochs are fitted to.

    Returns
    -------
    dict
        ``method.*``, ``training.*`` and ``data.*`` overrides.

    Examples
    --------
    >>> r = facts_recipe(130)
    >>> r["training.epochs"], r["training.batch_size"] * r["training.gradient_accumulation"]
    (10.0, 8)
    """
    rows = max(1, int(rows))
    # every epoch should give at least ~8 optimizer steps: a smaller effective batch for fewer rows
    eff = 8 if rows >= 64 else 4 if rows >= 24 else 2
    batch = min(eff, 4)
    accum = max(1, eff // batch)
    fit = budget_s * tokens_per_s / max(1.0, rows * float(mean_tokens))
    epochs = max(MIN_EPOCHS, min(MAX_EPOCHS, math.floor(fit)))
    steps = math.ceil(rows / eff) * epochs
    # a short run needs a higher peak rate to move the facts in; LoRA on a 135M model is stable up to ~1e-3
    lr = 1e-3 if steps <= 200 else 5e-4
    return {
        "method.method": "lora", "method.lora_r": 16, "method.lora_alpha": 32, "method.lora_dropout": 0.0,
        "method.target_modules": [],
        "training.max_steps": 0, "training.epochs": float(epochs), "training.batch_size": batch,
        "training.gradient_accumulation": accum, "training.learning_rate": lr,
        "training.lr_scheduler": "cosine", "training.warmup_ratio": 0.05,
        "training.eval_steps": 0, "training.save_steps": max(10, steps // 4), "training.logging_steps": 1,
        "training.gradient_checkpointing": False, "training.early_stopping_patience": 0,
        # every fact is trained: paraphrase pairs split across train/validation would leave facts unlearned
        "data.validation_split": 0.0,
        "data.max_length": 512 if raft else 256, "data.packing": True,
    }


__all__ = ["CPU_BUDGET_S", "SMALL_MAX_ROWS", "facts_recipe", "is_small"]

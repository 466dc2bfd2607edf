"""Training recipes derived from the data: a small fact set needs many passes, not many rows.

A dataset of tens to a few hundred question-answer rows is a set of facts the
model should learn.  The generic presets give such a set a few dozen optimizer
steps, which teaches the answer *style* but not the facts.  The recipe here
derives epochs, learning rate, rank and effective batch from the row count
(and the row length) so that every row is seen often enough inside a CPU time
budget; the numbers were chosen by measurement on the sample project
(``bench/quality.md``, ``docs/architecture.md``).

With documents the recipe shapes the rows too (:func:`facts_data_options`): rows
with the retrieved passages (RAFT), the same questions without passages and in
several rewordings, rows that teach abstaining, and held-out rewordings that pick
the checkpoint kept.  The preset is fitted to the rows so shaped, after every
option that changes them (:func:`backend.planning.resolve_run_config`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

SMALL_MAX_ROWS = 400         # up to here a dataset counts as a small fact set
# LoRA training speed of the default 135M model on an idle 2-core CPU: 274 tokens/s (bench/quality.md,
# 2026-11-30 19:10) and ~320 (22:36); 250 leaves a margin.  (140, the first measurement, predates the fast path.)
CPU_TOKENS_PER_S = 250.0
CPU_BUDGET_S = 600.0         # the recipe's target: learned within 10 minutes on such a CPU
MIN_EPOCHS, MAX_EPOCHS = 1.0, 12.0

# The knowledge recipe (docs/architecture.md, "The knowledge recipe"), fixed on 2026-12-07 before any
# project of the development suite (bench/projects/) was trained or evaluated; see bench/quality.md.
TARGET_EXPOSURES = 16        # training rows per fact over the run (all phrasings, with and without passages)
REWORDINGS = 3               # template rewordings per question: 4 phrasings per fact (Allen-Zhu & Li 2024: 5 ~ 96 %)
ABSTAIN_SHARE = 0.15         # abstention rows per question-answer row
HELDOUT_REWORDINGS = 12      # facts whose untrained rewording (with passages) is the validation set
EVALS_PER_RUN = 6            # validation passes (and checkpoints) over a run: the best is kept


@dataclass(frozen=True)
class FactSet:
    """What the "Learn the facts" preset is fitted to: the training rows as the run will shape them.

    Attributes
    ----------
    rows
        Rows that train (with the recipe's rewordings, passages and abstention rows).
    mean_tokens, max_tokens
        Their untruncated length.
    rows_per_fact
        Median rows per fact per epoch (a fact = an answer), ``None`` when unknown.
    written
        Rows as the files hold them (before the recipe adds any): what "small" is judged on.
    """

    rows: int
    mean_tokens: float | None = None
    max_tokens: int | None = None
    rows_per_fact: float | None = None
    written: int | None = None

    @classmethod
    def from_summary(cls, summary: Mapping[str, Any]) -> "FactSet":
        """From a data check's summary (``backend.data.check_files(...).summary``): the same numbers in GUI and CLI."""
        fit = summary.get("fit") or {}
        tokens = fit.get("tokens") or {}
        know = summary.get("knowledge") or {}
        rpf = (know.get("rows_per_fact") or {}).get("median")
        origins = know.get("rows_by_origin") or {}
        written = origins.get("row", 0) + origins.get("raft", 0) if origins else None
        return cls(int(fit.get("rows") or 0), tokens.get("mean"), tokens.get("max"), rpf, written)


def is_small(rows: int) -> bool:
    """Whether ``rows`` usable rows are a small fact set (the facts recipe is the default then)."""
    return 0 < rows <= SMALL_MAX_ROWS


def facts_data_options(raft: bool) -> dict[str, Any]:
    """The row-shaping options of the facts recipe (they do not depend on the counts; the counts depend on them).

    With passages (``raft``): each question-answer row is shown with its retrieved passages
    (RAFT, the right one in ~80 %), asked without passages as written and in ``REWORDINGS``
    rewordings, and ``ABSTAIN_SHARE`` abstention rows per row are added; ``HELDOUT_REWORDINGS``
    untrained rewordings with passages are the validation set.  Without: the rows and their
    rewordings, every row trained.
    """
    return {"data.rewordings": REWORDINGS, "data.raft_closed_book": bool(raft),
            "data.raft_abstain_share": ABSTAIN_SHARE if raft else 0.0,
            "data.heldout_rewordings": HELDOUT_REWORDINGS if raft else 0,
            # every fact is trained: paraphrase pairs split across train/validation would leave facts unlearned
            "data.validation_split": 0.0, "data.packing": True}


def facts_recipe(rows: int, *, mean_tokens: float = 64.0, raft: bool = False,
                 tokens_per_s: float = CPU_TOKENS_PER_S, budget_s: float = CPU_BUDGET_S,
                 rows_per_fact: float | None = None, max_tokens: int | None = None) -> dict[str, Any]:
    """Overrides (dotted keys) that teach a small fact set.

    Parameters
    ----------
    rows
        Training rows as the run shapes them (:class:`FactSet`).
    mean_tokens, max_tokens
        Mean and longest row in tokens (untruncated): with ``data.raft`` the rows carry
        retrieved passages (~330 tokens on the sample instead of ~70).
    raft
        Rows carry retrieved passages (``data.raft``): held-out rewordings and the best checkpoint.
    rows_per_fact
        Rows per fact per epoch; the epochs give each fact ``TARGET_EXPOSURES`` rows over the run.
    tokens_per_s, budget_s
        Training speed and time budget: the epochs never exceed it.

    Returns
    -------
    dict
        ``method.*``, ``training.*`` and ``data.*`` overrides (with :func:`facts_data_options`).

    Examples
    --------
    >>> r = facts_recipe(520, mean_tokens=70, rows_per_fact=4)
    >>> r["training.epochs"], r["training.batch_size"] * r["training.gradient_accumulation"]
    (4.0, 8)
    """
    rows = max(1, int(rows))
    # every epoch should give at least ~8 optimizer steps: a smaller effective batch for fewer rows
    eff = 8 if rows >= 64 else 4 if rows >= 24 else 2
    batch = min(eff, 4)
    accum = max(1, eff // batch)
    fit = budget_s * tokens_per_s / max(1.0, rows * float(mean_tokens))
    want = TARGET_EXPOSURES / max(1.0, float(rows_per_fact or 1.0))
    epochs = max(MIN_EPOCHS, min(MAX_EPOCHS, want, fit))
    epochs = max(MIN_EPOCHS, math.floor(epochs * 2) / 2)  # half epochs: a 600-row set gets 1.5, not 1
    steps = math.ceil(math.ceil(rows / eff) * epochs)
    # a short run needs a higher peak rate to move the facts in; LoRA on a 135M model is stable up to ~1e-3
    lr = 1e-3 if steps <= 200 else 5e-4
    longest = int(max_tokens or (512 if raft else 256))
    max_length = min(2048, max(256, -(-longest // 64) * 64))
    every = max(5, steps // EVALS_PER_RUN)
    return {
        "method.method": "lora", "method.lora_r": 16, "method.lora_alpha": 32, "method.lora_dropout": 0.0,
        "method.target_modules": [],
        "training.max_steps": 0, "training.epochs": float(epochs), "training.batch_size": batch,
        "training.gradient_accumulation": accum, "training.learning_rate": lr,
        "training.lr_scheduler": "cosine", "training.warmup_ratio": 0.05,
        "training.eval_steps": every if raft else 0, "training.keep_best": bool(raft),
        "training.save_steps": every if raft else max(10, steps // 4), "training.logging_steps": 1,
        "training.gradient_checkpointing": False, "training.early_stopping_patience": 0,
        "data.max_length": max_length, **facts_data_options(raft),
    }


__all__ = ["CPU_BUDGET_S", "FactSet", "SMALL_MAX_ROWS", "facts_data_options", "facts_recipe", "is_small"]

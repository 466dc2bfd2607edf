"""Preference tuning (DPO, ORPO) on top of LoRA, fed by the expert's corrections (docs/architecture.md, "Training").

The loss is computed here, in a :class:`transformers.Trainer` subclass, rather
than with TRL's ``DPOTrainer``: the engine's Trainer already carries our event
callback (metrics.jsonl, the live plots), checkpoints with completion markers,
resume, stop/pause, OOM recovery and TensorBoard reporting, and TRL's trainers
bring their own data pipeline, collator and arguments class.  The maths is a few
lines over per-sequence log-probabilities:

* **DPO** (Rafailov et al. 2023): ``-log σ(β·[(π_c − ref_c) − (π_r − ref_r)])``,
  where π and ref are the summed log-probabilities of the chosen (c) and rejected
  (r) answers under the tuned model and the reference; with LoRA the reference
  is the same model with its adapter switched off (no second copy in memory).
* **ORPO** (Hong et al. 2024): the SFT loss on the chosen answer minus
  ``λ·log σ(log odds(c) − log odds(r))`` on mean per-token log-probabilities;
  no reference model (``λ`` is ``method.pref_beta``).

Each step also logs ``rewards/chosen``, ``rewards/rejected``, ``rewards/margins``,
``rewards/accuracies``, ``logps/chosen`` and ``logps/rejected`` (TRL's names), which
reach metrics.jsonl (the ``train`` event's preference fields) and TensorBoard.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from backend import events as ev
from backend import records
from backend.config import RunConfig
from backend.data.encode import IGNORE_INDEX
from backend.errors import DataError

OBJECTIVES = ("dpo", "orpo")
METRICS = ("rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies", "logps/chosen",
           "logps/rejected")


# -- the pairs --------------------------------------------------------------------------------
def read_pairs(files: Sequence[str | Path], skipped: list[records.Skipped] | None = None) -> list[dict[str, Any]]:
    """Preference pairs from training files: corrections with the model's answer kept, and ``prompt/chosen/rejected`` rows.

    A corrections line (``datasets/feedback.jsonl``, :mod:`backend.corrections`) gives a pair
    when it kept the model's answer and it differs from the expert's; a line
    ``{"prompt": text or messages, "chosen": text, "rejected": text}`` (TRL's format) gives
    one too. Every other line (plain SFT rows, bad lines) is not a pair and is left out;
    ``skipped`` gets the lines that look like pairs but are not usable.

    Returns
    -------
    list of dict
        ``{"prompt": [messages], "chosen": text, "rejected": text, "source": "file:line"}``.
    """
    from backend import corrections

    notes: list[records.Skipped] = [] if skipped is None else skipped
    out: list[dict[str, Any]] = []
    for f in files:
        for n, rec in records.read_jsonl(f, notes):
            where = f"{Path(f).name}:{n}"
            if "correction" in rec:
                try:
                    c = corrections.from_row(rec, n)
                except ValueError as e:
                    notes.append(records.Skipped(str(f), n, str(e)))
                    continue
                if c.is_pair:
                    out.append({"prompt": c.messages()[:-1], "chosen": c.chosen, "rejected": c.rejected,
                                "source": where})
            elif {"chosen", "rejected"} <= set(rec):
                prompt, chosen, rejected = rec.get("prompt"), rec.get("chosen"), rec.get("rejected")
                if isinstance(prompt, str):
                    prompt = [{"role": "user", "content": prompt}]
                ok = (isinstance(prompt, list) and prompt and all(
                    isinstance(m, dict) and isinstance(m.get("content"), str)
                    and m.get("role") in ("system", "user", "assistant") for m in prompt)
                    and isinstance(chosen, str) and isinstance(rejected, str) and chosen.strip()
                    and rejected.strip() and prompt[-1]["role"] == "user")
                if not ok:
                    notes.append(records.Skipped(str(f), n, "a preference row needs 'prompt' (text, or messages "
                                                            "ending with the user's), 'chosen' and 'rejected' text"))
                    continue
                if chosen.strip() != rejected.strip():
                    out.append({"prompt": [{"role": m["role"], "content": m["content"]} for m in prompt],
                                "chosen": chosen.strip(), "rejected": rejected.strip(), "source": where})
    return out


def encode_pairs(pairs: Sequence[dict[str, Any]], tokenizer, max_length: int) -> tuple[list[dict], dict[str, int]]:
    """Token rows for the pair collator: the chosen and the rejected conversation, each with its label mask.

    The conversations go through the chat template as SFT rows do (:class:`backend.data.encode.Renderer`):
    only the answer (and the end-of-turn the template writes after it) carries labels. A pair longer than
    ``max_length`` keeps its prompt's end and the answers' start (the prompt is cut from the left).

    Returns
    -------
    (rows, counts)
        ``{"chosen_input_ids", "chosen_labels", "rejected_input_ids", "rejected_labels"}`` rows, and
        ``{"pairs", "truncated", "dropped"}``.
    """
    from backend.data.encode import Renderer, TemplateError
    from backend.data.formats import Example

    renderer = Renderer(tokenizer)
    examples = []
    for p in pairs:
        for answer in (p["chosen"], p["rejected"]):
            examples.append(Example(p.get("source", ""), 0, "messages",
                                    messages=list(p["prompt"]) + [{"role": "assistant", "content": answer}]))
    rendered = renderer.render(examples)
    ok = [r for r in rendered if not isinstance(r, TemplateError)]
    encoded = iter(renderer.encode(ok))
    encs = [None if isinstance(r, TemplateError) else next(encoded) for r in rendered]
    rows, truncated, dropped = [], 0, 0
    for i in range(0, len(encs), 2):
        c, r = encs[i], encs[i + 1]
        if c is None or r is None or not c.trained or not r.trained:
            dropped += 1
            continue
        pair = {}
        for name, e in (("chosen", c), ("rejected", r)):
            ids, labels = list(e.input_ids), list(e.labels)
            if len(ids) > max_length:
                truncated += 1
                first = next(j for j, x in enumerate(labels) if x != IGNORE_INDEX)
                cut = min(len(ids) - max_length, first)  # the prompt's start goes first
                ids, labels = ids[cut:][:max_length], labels[cut:][:max_length]
            pair[f"{name}_input_ids"], pair[f"{name}_labels"] = ids, labels
        if any(all(x == IGNORE_INDEX for x in pair[f"{n}_labels"]) for n in ("chosen", "rejected")):
            dropped += 1
            continue
        rows.append(pair)
    return rows, {"pairs": len(pairs), "truncated": truncated, "dropped": dropped}


def prepare_pairs(cfg: RunConfig, tokenizer, *, on_event: ev.OnEvent = ev.no_event):
    """The training rows of a preference run: the pairs in ``data.train_files``, encoded.

    Returns
    -------
    backend.data.pipeline.PreparedData
        ``train`` = pair rows, ``eval`` = ``None``, ``report`` = what was found and kept.

    Raises
    ------
    DataError
        No file holds a usable pair; the message says how to make some.
    """
    from backend.data.pipeline import PreparedData

    files = [str(f) for f in cfg.data.train_files]
    skipped: list[records.Skipped] = []
    pairs = read_pairs(files, skipped)
    for s in skipped[:20]:
        on_event(ev.log(f"Not a preference pair: {s}", level="warning"))
    if not pairs:
        raise DataError(f"{cfg.method.method} trains on preference pairs, and the training files hold none",
                        field="data.train_files",
                        hint="correct a wrong answer on the Chat or Evaluate page (\"Wrong? Correct it\": the "
                             "model's answer and yours make a pair, in datasets/feedback.jsonl), or give a file "
                             "of {\"prompt\", \"chosen\", \"rejected\"} rows")
    rows, counts = encode_pairs(pairs, tokenizer, cfg.data.max_length)
    if not rows:
        raise DataError(f"none of the {len(pairs)} preference pair(s) could be encoded", field="data.max_length",
                        hint="raise data.max_length so that each answer fits after its question")
    on_event(ev.log(f"{cfg.method.method.upper()}: {len(rows)} preference pair(s) from "
                    f"{len({p['source'].rsplit(':', 1)[0] for p in pairs})} file(s)"
                    + (f", {counts['truncated']} answer(s) cut to {cfg.data.max_length} tokens"
                       if counts["truncated"] else "")
                    + (f", {counts['dropped']} pair(s) dropped" if counts["dropped"] else "")
                    + "; rows that are not pairs are not used by this method"))
    report = {"objective": cfg.method.method, "files": files, "pairs": counts["pairs"], "rows": len(rows),
              "truncated": counts["truncated"], "dropped": counts["dropped"],
              "skipped": [s.to_dict() for s in skipped[:100]],
              "sources": [p["source"] for p in pairs][:1000]}
    return PreparedData(rows, None, report)


# -- the collator and the trainer -------------------------------------------------------------
class PairCollator:
    """Pads a batch of pairs into one batch: rows ``[0, B)`` the chosen answers, ``[B, 2B)`` the rejected ones."""

    def __init__(self, pad_id: int):
        self.pad_id = pad_id

    def __call__(self, features: list[dict]) -> dict:
        import torch

        seqs = [(f["chosen_input_ids"], f["chosen_labels"]) for f in features]
        seqs += [(f["rejected_input_ids"], f["rejected_labels"]) for f in features]
        width = max(len(ids) for ids, _ in seqs)
        ids = torch.full((len(seqs), width), self.pad_id, dtype=torch.long)
        labels = torch.full((len(seqs), width), IGNORE_INDEX, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for i, (x, y) in enumerate(seqs):
            ids[i, :len(x)] = torch.tensor(x, dtype=torch.long)
            labels[i, :len(y)] = torch.tensor(y, dtype=torch.long)
            mask[i, :len(x)] = 1
        return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def sequence_logps(model, batch: dict) -> tuple[Any, Any]:
    """Summed log-probabilities of the labelled tokens of each row, and how many tokens each has."""
    import torch

    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False)
    logits = out.logits[:, :-1, :].float()
    labels = batch["labels"][:, 1:]
    keep = labels != IGNORE_INDEX
    safe = torch.where(keep, labels, torch.zeros_like(labels))
    logp = torch.gather(torch.log_softmax(logits, dim=-1), 2, safe.unsqueeze(-1)).squeeze(-1)
    return (logp * keep).sum(-1), keep.sum(-1)


def preference_loss(objective: str, beta: float, policy: Any, counts: Any, reference: Any | None = None
                    ) -> tuple[Any, dict[str, float]]:
    """The DPO or ORPO loss of a batch (rows ``[0, B)`` chosen, ``[B, 2B)`` rejected) and its metrics.

    Parameters
    ----------
    objective
        ``dpo`` or ``orpo``.
    beta
        DPO's β, or ORPO's λ.
    policy, counts
        Summed log-probabilities of each row under the tuned model, and each row's answer tokens.
    reference
        DPO only: the same under the reference model (adapter off).
    """
    import torch
    import torch.nn.functional as F

    b = policy.shape[0] // 2
    pc, pr = policy[:b], policy[b:]
    if objective == "dpo":
        if reference is None:
            raise ValueError("DPO needs the reference log-probabilities")
        rc, rr = reference[:b], reference[b:]
        chosen, rejected = beta * (pc - rc), beta * (pr - rr)
        loss = -F.logsigmoid(chosen - rejected).mean()
    elif objective == "orpo":
        n = counts.clamp(min=1).to(policy.dtype)
        mc, mr = pc / n[:b], pr / n[b:]  # mean per-token log-probabilities

        def log_odds(m):  # log(p / (1 - p)) with p = exp(m) < 1
            return m - torch.log1p(-torch.exp(m.clamp(max=-1e-6)))

        ratio = F.logsigmoid(log_odds(mc) - log_odds(mr))
        loss = -mc.mean() - beta * ratio.mean()
        chosen, rejected = beta * mc, beta * mr
    else:
        raise ValueError(f"unknown preference objective {objective!r}; one of {', '.join(OBJECTIVES)}")
    with torch.no_grad():
        metrics = {"rewards/chosen": chosen.mean().item(), "rewards/rejected": rejected.mean().item(),
                   "rewards/margins": (chosen - rejected).mean().item(),
                   "rewards/accuracies": (chosen > rejected).float().mean().item(),
                   "logps/chosen": pc.mean().item(), "logps/rejected": pr.mean().item()}
    return loss, metrics


def make_trainer_class(objective: str, beta: float):
    """A :class:`transformers.Trainer` whose loss is ``objective`` over pair batches (see :class:`PairCollator`)."""
    import contextlib

    import torch
    from transformers import Trainer

    class PreferenceTrainer(Trainer):
        """The engine's Trainer with the DPO / ORPO loss; logs the preference metrics beside the loss."""

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self._pref: dict[str, list[float]] = {}
            # the loss is a mean over pairs, not a sum over label tokens: the Trainer divides it by the
            # gradient accumulation steps itself
            self.model_accepts_loss_kwargs = False

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            policy, counts = sequence_logps(model, inputs)
            reference = None
            if objective == "dpo":
                base = self.accelerator.unwrap_model(model)
                off = base.disable_adapter() if hasattr(base, "disable_adapter") else contextlib.nullcontext()
                with torch.no_grad(), off:
                    reference, _ = sequence_logps(model, inputs)
            loss, metrics = preference_loss(objective, beta, policy, counts, reference)
            if model.training:
                for k, v in metrics.items():
                    self._pref.setdefault(k, []).append(v)
            return (loss, {"policy_logps": policy}) if return_outputs else loss

        def log(self, logs, start_time=None):
            if "loss" in logs and self._pref:  # a training log: the steps' averages since the last one
                logs = {**logs, **{k: sum(v) / len(v) for k, v in self._pref.items()}}
                self._pref = {}
            return super().log(logs, start_time)

    return PreferenceTrainer

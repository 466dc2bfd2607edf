"""train() and resume(): one run from config to final adapter, through the HF Trainer.

The pieces it uses live next to it: :mod:`.ranks` (who writes), :mod:`.method`
(PEFT wrapping), :mod:`.callbacks` (events, stop, pause), :mod:`.oom`
(out-of-memory recovery).  The run folder belongs to :mod:`backend.runs`.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import shutil
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable

from backend import events as ev
from backend import methods, runs
from backend.config import RunConfig
from backend.errors import ConfigError, RunError, TrainingError, TuneError
from backend.fsutil import atomic_write_json
from backend.training.callbacks import make_callback, ppl
from backend.training.method import apply_method
from backend.training import profile
from backend.training.eventlog import StepMetricsLog
from backend.training.oom import free_memory, train_with_oom_retry
from backend.training.profile import StepProfiler
from backend.training.ranks import barrier, is_main_process, local_main_first, world_size, write_status
from backend.runs import RunResult
from backend.trust import restrict
from backend.workspace import new_run_dir

log = logging.getLogger("backend.training")


class _RunLogHandler(logging.Handler):
    """Mirror log records into run.log."""

    def __init__(self, path: Path):
        super().__init__(logging.INFO)
        self._fh = open(path, "a", encoding="utf-8")
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._fh.write(self.format(record) + "\n")
            self._fh.flush()
        except Exception:  # logging must never break training
            pass

    def close(self) -> None:
        self._fh.close()
        super().close()



# ---------------------------------------------------------------------------
# public API

def train(cfg: RunConfig, *, project_dir: str | Path | None = None,
          on_event: ev.OnEvent = ev.no_event, should_stop: ev.ShouldStop = ev.never_stop,
          should_pause: Callable[[], bool] | None = None, profiler: StepProfiler | None = None) -> RunResult:
    """Fine-tune a base model as configured; write everything into the run folder.

    Parameters
    ----------
    cfg
        The full run configuration.  ``cfg.output_dir`` is the run folder; when
        empty, a new ``<project>/runs/<timestamp>`` (or ``./runs/<timestamp>``).
    project_dir
        Project folder, used for the default run folder.
    on_event
        Receives every event record (also appended to ``metrics.jsonl``).
    should_stop
        Polled after every optimizer step; when true, a checkpoint is saved and
        the run ends with status ``cancelled``.
    should_pause
        Polled after every step; training waits while it returns true.
    profiler
        A :class:`~backend.training.profile.StepProfiler` to time the loop's phases with
        (``None``: one only when the ``TUNE_STEP_PROFILE`` environment variable names a file for it).

    Returns
    -------
    RunResult
        The run folder, final status and adapter folder.

    Raises
    ------
    TuneError
        For user mistakes (bad config, data or model); the run is marked failed.
    """
    if cfg.output_dir:
        run_dir = Path(cfg.output_dir).expanduser().resolve()
        # Only rank 0 checks: under torchrun it may already have written config.json for this very run.
        if is_main_process() and runs.is_run_dir(run_dir) and any(run_dir.iterdir()):
            raise RunError("this run folder already holds a run", file=run_dir,
                           hint="resume it with `tune resume`, or choose a new output folder")
    elif world_size() > 1:
        raise ConfigError("a distributed run needs its run folder named: each process would pick its own",
                          field="output_dir", hint="pass --output DIR (the same folder on every node)")
    else:
        parent = runs.runs_dir(project_dir) if project_dir else runs.runs_dir(".")
        run_dir = new_run_dir(parent, cfg.name).resolve()
    cfg = cfg.replace(output_dir=str(run_dir))
    if is_main_process():
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(runs.config_path(run_dir), cfg.to_dict())
        write_status(run_dir, "queued", created=time.time())
    return _execute(run_dir, cfg, None, on_event, should_stop, should_pause, resuming=False, profiler=profiler)


def resume(run_dir: str | Path, *, on_event: ev.OnEvent = ev.no_event,
           should_stop: ev.ShouldStop = ev.never_stop,
           should_pause: Callable[[], bool] | None = None,
           overrides: dict[str, Any] | None = None, trust_remote_code: bool = False,
           allow_pickle_weights: bool = False, allow_hub: bool | None = None) -> RunResult:
    """Continue a run from its latest checkpoint (optimizer, scheduler and data order included).

    ``metrics.jsonl`` stays continuous: records of steps after the checkpoint
    (which will be replayed) are removed first, so each step appears once.
    ``trust_remote_code`` / ``allow_pickle_weights`` / ``allow_hub`` are this
    machine's answer (``allow_hub=None``: ``TUNE_ALLOW_HUB=1``); the run folder's
    own values are never used (see :mod:`backend.trust`).

    Raises
    ------
    RunError
        When the folder is not a run, or the run already completed.
    """
    run_dir = runs.require_run_dir(run_dir).resolve()
    cfg = runs.load_config(run_dir)
    if overrides:
        cfg = cfg.with_overrides(overrides)
    cfg, refused = restrict(cfg, trust_remote_code=trust_remote_code, allow_pickle_weights=allow_pickle_weights,
                            allow_hub=allow_hub, source=f"The run folder {run_dir.name}")
    for message in refused:
        on_event(ev.log(message, level="warning"))
    if runs.is_finished(run_dir):
        raise RunError("this run has already completed", file=run_dir,
                       hint="start a new run to train further")
    ck = runs.latest_checkpoint(run_dir)
    return _execute(run_dir, cfg, ck, on_event, should_stop, should_pause, resuming=True)


def _execute(run_dir: Path, cfg: RunConfig, checkpoint: Path | None, on_event: ev.OnEvent,
             should_stop: ev.ShouldStop, should_pause, *, resuming: bool,
             profiler: StepProfiler | None = None) -> RunResult:
    main = is_main_process()
    profile_path = None
    if profiler is None and main and (asked := profile.from_env()) is not None:
        profiler, profile_path = asked
    metrics = StepMetricsLog(runs.metrics_path(run_dir)) if main else None
    handler = _RunLogHandler(runs.log_path(run_dir)) if main else None
    if handler:
        for name in ("backend", "transformers", "peft"):
            logging.getLogger(name).addHandler(handler)

    def emit(rec: dict) -> None:
        if metrics is not None:
            if profiler is not None:
                with profiler.phase("event_writes"):
                    metrics.write(rec)
            else:
                metrics.write(rec)
        if rec.get("type") == ev.LOG:
            log.info(rec.get("message"))
        try:
            on_event(rec)
        except Exception:  # a broken listener must not kill the run
            log.exception("on_event listener failed")

    try:
        if resuming and metrics is not None:
            # steps after the checkpoint (or all, without one) are replayed: keep each once
            metrics.trim_after(_step_of(checkpoint) if checkpoint else 0)
        write_status(run_dir, "running", started=time.time())
        emit(ev.event(ev.STARTED, run_dir=str(run_dir), resumed_from=str(checkpoint) if checkpoint else None,
                      config=cfg.to_dict()))
        if checkpoint is not None:
            emit(ev.log(f"Resuming from {checkpoint.name}"))
        elif resuming:  # runs.is_resumable said no: nothing complete to continue from
            emit(ev.log("No complete checkpoint to resume from: training again from step 0", level="warning"))
        result = train_with_oom_retry(functools.partial(_train_once, profiler=profiler), run_dir, cfg, checkpoint,
                                      emit, should_stop, should_pause, metrics)
    except TuneError as e:
        log.error("run failed: %s", e)
        write_status(run_dir, "failed", reason=str(e), error=e.to_dict())
        emit(ev.event(ev.FINISHED, status="failed", reason=str(e), run_dir=str(run_dir), adapter_dir=None,
                      error=e.to_dict()))
        raise
    except BaseException as e:
        tb = traceback.format_exc()
        problem = _environment_problem(e, run_dir, checkpoint)
        if problem is not None:  # a message in words, as for a TuneError; the traceback only in run.log
            log.error("run failed: %s", problem)
            if handler:
                handler.handle(log.makeRecord(log.name, logging.ERROR, __file__, 0, "run failed:\n%s", (tb,), None))
            _drop_half_written(run_dir)
            try:
                write_status(run_dir, "failed", reason=str(problem), error=problem.to_dict())
                emit(ev.event(ev.FINISHED, status="failed", reason=str(problem), run_dir=str(run_dir),
                              adapter_dir=None, error=problem.to_dict()))
            except OSError:  # the disk is still full: the message matters more than the record
                pass
            raise problem from e
        log.error("run failed:\n%s", tb)
        reason = f"{type(e).__name__}: {e}" if not isinstance(e, KeyboardInterrupt) else "interrupted"
        status = "cancelled" if isinstance(e, KeyboardInterrupt) else "failed"
        write_status(run_dir, status, reason=reason)
        emit(ev.event(ev.FINISHED, status=status, reason=reason, run_dir=str(run_dir), adapter_dir=None))
        raise
    finally:
        if handler:
            for name in ("backend", "transformers", "peft"):
                logging.getLogger(name).removeHandler(handler)
            handler.close()
        if metrics is not None and sys.exc_info()[0] is not None:
            metrics.close()  # failed: its last record is written; stop the fsync thread
    write_status(run_dir, result.status, reason=result.reason,
                 adapter_dir=str(result.adapter_dir) if result.adapter_dir else None,
                 finished=time.time(), metrics=result.metrics)
    emit(ev.event(ev.FINISHED, status=result.status, reason=result.reason, run_dir=str(run_dir),
                  adapter_dir=str(result.adapter_dir) if result.adapter_dir else None,
                  metrics=result.metrics))
    if metrics is not None:
        metrics.close()
    if profile_path and profiler is not None:
        profiler.write(profile_path)
    free_memory()  # the run's model and Trainer, after `finished`: the adapter is on disk, nobody waits for it
    return result



def _step_of(checkpoint: Path) -> int:
    return runs.checkpoint_step(checkpoint)



def build_collator(cfg: RunConfig, tokenizer):
    """Padding-free flattening (packing) or dynamic padding with -100 labels."""
    from transformers import DataCollatorForSeq2Seq, DataCollatorWithFlattening

    if cfg.data.packing:
        return DataCollatorWithFlattening(return_position_ids=True, separator_id=-100)
    return DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=-100, pad_to_multiple_of=None)


def _tensorboard_available() -> bool:
    from transformers.integrations import is_tensorboard_available

    return bool(is_tensorboard_available())


def log_to_tensorboard(trainer, run_dir: Path) -> Path | None:
    """Point the Trainer's own TensorBoard reporting (``report_to=["tensorboard"]``) at ``runs/<id>/tensorboard/``.

    Without it the callback writes to ``checkpoints/runs/<date>_<host>/`` (or ``$TENSORBOARD_LOGGING_DIR``):
    transformers 5 dropped ``TrainingArguments.logging_dir``. Returns the folder, or ``None`` when the
    Trainer has no TensorBoard reporting (tensorboard not installed).
    """
    from transformers.integrations import TensorBoardCallback

    folder = None
    for cb in trainer.callback_handler.callbacks:
        if isinstance(cb, TensorBoardCallback):
            folder = runs.tensorboard_dir(run_dir)
            cb.logging_dir = str(folder)
    return folder


def training_arguments(cfg: RunConfig, run_dir: Path, device, has_eval: bool):
    """Build ``TrainingArguments`` from the run config."""
    from transformers import TrainingArguments

    t = cfg.training
    bf16 = fp16 = False
    if t.precision == "bf16" or (t.precision == "auto" and device.kind == "cuda" and device.bf16):
        bf16 = True
    elif t.precision == "fp16" or (t.precision == "auto" and device.kind == "cuda" and not device.bf16):
        fp16 = True
    eval_strategy = "steps" if has_eval and t.eval_steps > 0 else "no"
    early = t.early_stopping_patience > 0 and eval_strategy == "steps"
    # keep_best: the best checkpoint by validation loss becomes the adapter; transformers keeps it among
    # the saved ones only when every evaluation is also a save (docs/architecture.md, "The knowledge recipe")
    best = (early or t.keep_best) and eval_strategy == "steps"
    kwargs: dict[str, Any] = dict(
        output_dir=str(runs.checkpoints_dir(run_dir)),
        per_device_train_batch_size=t.batch_size,
        per_device_eval_batch_size=t.batch_size,
        gradient_accumulation_steps=t.gradient_accumulation,
        learning_rate=t.learning_rate,
        lr_scheduler_type=t.lr_scheduler,
        warmup_steps=t.warmup_ratio,  # a float < 1 is a ratio in transformers 5
        num_train_epochs=t.epochs,
        max_steps=t.max_steps if t.max_steps > 0 else -1,
        weight_decay=t.weight_decay,
        max_grad_norm=t.max_grad_norm if t.max_grad_norm > 0 else 0.0,
        logging_strategy="steps",
        logging_steps=t.logging_steps,
        eval_strategy=eval_strategy,
        eval_steps=t.eval_steps if eval_strategy == "steps" else None,
        save_strategy="steps",
        save_steps=t.eval_steps if t.keep_best and best else t.save_steps,
        save_total_limit=t.save_total_limit,
        load_best_model_at_end=best,
        metric_for_best_model="eval_loss" if best else None,
        greater_is_better=False if best else None,
        seed=t.seed,
        data_seed=t.seed,
        bf16=bf16,
        fp16=fp16,
        activation_checkpointing=t.gradient_checkpointing,
        activation_checkpointing_kwargs={"use_reentrant": False} if t.gradient_checkpointing else None,
        train_sampling_strategy="group_by_length" if t.group_by_length else "random",
        torch_compile=t.torch_compile,
        # the Trainer's own TensorBoard reporting (its TensorBoardCallback); the folder is set on it in _train_once,
        # since transformers 5 has no logging_dir (docs/architecture.md, "Training")
        report_to=["tensorboard"] if _tensorboard_available() else "none",
        disable_tqdm=True,
        remove_unused_columns=False,
        include_num_input_tokens_seen="non_padding",
        use_cpu=device.kind == "cpu",
        ddp_find_unused_parameters=False,  # every trainable (adapter) parameter is used in each forward
        dataloader_num_workers=0,
        save_only_model=False,
    )
    return TrainingArguments(**kwargs)


_CHECKPOINT_BYTES: dict[str, int] = {}


def _checkpoint_bytes(run_dir: Path) -> int | None:
    """About how much one more checkpoint of this run writes: the newest one's size, else the estimate."""
    done = runs.latest_checkpoint(run_dir)
    if done is not None:
        try:
            return sum(f.stat().st_size for f in done.rglob("*") if f.is_file())
        except OSError:
            pass
    return _CHECKPOINT_BYTES.get(str(run_dir))


def _drop_half_written(run_dir: Path) -> None:
    """Remove what a failed write left: checkpoints without their completion marker, the final folder's temp."""
    if not is_main_process():
        return
    for ck in runs.checkpoints(run_dir):
        if not runs.is_complete_checkpoint(ck):
            shutil.rmtree(ck, ignore_errors=True)
    for final in (runs.adapter_dir(run_dir), runs.model_dir(run_dir)):
        shutil.rmtree(final.with_name(f".{final.name}.tmp"), ignore_errors=True)


def _environment_problem(e: BaseException, run_dir: Path, checkpoint: Path | None) -> TuneError | None:
    """A full disk, or a checkpoint file torch refused to unpickle, in words (``None``: neither)."""
    from backend.errors import disk_problem, unsafe_pickle_problem

    problem = disk_problem(e, run_dir, doing="training (saving a checkpoint or the adapter)",
                           needed=_checkpoint_bytes(run_dir),
                           then=f"then `tune resume {run_dir}` continues from the latest checkpoint")
    if problem is None and checkpoint is not None:
        problem = unsafe_pickle_problem(e, checkpoint)
    return problem


def _train_once(run_dir: Path, cfg: RunConfig, checkpoint: Path | None, emit, should_stop,
                should_pause, profiler: StepProfiler | None = None) -> RunResult:
    import torch
    from transformers import EarlyStoppingCallback, Trainer

    from backend.data.pipeline import prepare
    from backend.models import load_model, load_tokenizer, resolve_model
    from backend.runtime import detect_device

    t0 = time.time()
    device = detect_device(cfg.model.device)
    if world_size() > 1 and device.kind == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))  # load_model moves to the current GPU
    emit(ev.log(f"Device: {device.describe()}"))
    emit(ev.progress("load_model", 0, 3, "Resolving the base model…"))
    with local_main_first(device.kind):
        model_path = resolve_model(cfg.model.name_or_path, allow_hub=cfg.model.allow_hub,
                                   allow_pickle_weights=cfg.model.allow_pickle_weights, on_event=emit)
    tokenizer = load_tokenizer(model_path, trust_remote_code=cfg.model.trust_remote_code)
    emit(ev.progress("load_data", 1, 3, "Preparing the data…"))
    registry_row = methods.get(cfg.method.method)
    if registry_row.is_preference:  # DPO / ORPO: the corrections' chosen / rejected pairs
        from backend.training import preference
        prepared = preference.prepare_pairs(cfg, tokenizer, on_event=emit)
    else:
        prepared = prepare(cfg, tokenizer, on_event=emit, should_stop=should_stop)
    if not prepared.train:
        raise TrainingError("no training rows left after preparation", field="data.train_files",
                            hint="check the data report: rows may all be too long, empty or duplicates")
    if is_main_process():
        atomic_write_json(runs.data_report_path(run_dir), prepared.report)
    emit(ev.log(f"Data: {len(prepared.train)} training rows, "
                f"{len(prepared.eval) if prepared.eval else 0} validation rows"))
    emit(ev.progress("load_model", 2, 3, "Loading the model…"))
    torch.manual_seed(cfg.training.seed)
    model = load_model(model_path, device=device, dtype=cfg.model.dtype,
                       attn_implementation=cfg.model.attn_implementation,
                       trust_remote_code=cfg.model.trust_remote_code, load_in_4bit=cfg.model.load_in_4bit,
                       allow_pickle_weights=cfg.model.allow_pickle_weights)
    model.config.use_cache = False
    if cfg.model.load_in_4bit:
        import peft
        model = peft.prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=cfg.training.gradient_checkpointing)
    model, trainable, total = apply_method(model, cfg)
    # a checkpoint holds the trainable weights and AdamW's two moments, all float32 (for a full-disk message)
    _CHECKPOINT_BYTES[str(run_dir)] = 12 * trainable + (1 << 20)
    emit(ev.log(f"Method {cfg.method.method}: {trainable:,} trainable of {total:,} parameters "
                f"({100 * trainable / max(total, 1):.3f}%)"))
    emit(ev.progress("load_model", 3, 3, f"Ready in {time.time() - t0:.1f} s"))

    import datasets
    train_ds = datasets.Dataset.from_list(prepared.train)
    eval_ds = datasets.Dataset.from_list(prepared.eval) if prepared.eval else None
    if cfg.training.group_by_length:
        train_ds = train_ds.add_column("length", [len(r["input_ids"]) if "input_ids" in r else
                                                   len(r["chosen_input_ids"]) + len(r["rejected_input_ids"])
                                                   for r in prepared.train])
    args = training_arguments(cfg, run_dir, device, eval_ds is not None)
    callback = make_callback(emit, should_stop, should_pause, run_dir, device.kind,
                              _step_of(checkpoint) if checkpoint else 0)
    callbacks = [callback]
    if args.load_best_model_at_end and cfg.training.early_stopping_patience > 0:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=cfg.training.early_stopping_patience))
    collator = build_collator(cfg, tokenizer)
    # Exact fast path (bench/train_cpu.py measures it, tests/test_bench.py checks the maths):
    # LoRA linears in fewer passes over the activations; with packing, attention per packed
    # row instead of a dense block mask, lm_head + loss only where there is a target (chunked,
    # never the whole tokens x vocab logits), cheaper LoRA dropout masks on CPU.
    from backend import fastpath
    lora_kernels = methods.get(cfg.method.method).fastpath  # the registry: fused LoRA linears apply
    if lora_kernels:
        fastpath.fuse_lora(model)
    loss_func = None
    fast = (cfg.data.packing and not registry_row.is_preference and cfg.model.attn_implementation == "sdpa"
            and fastpath.enable(model))
    if fast:
        if lora_kernels:
            fastpath.fast_lora_dropout(model)
        collator = fastpath.FastPackingCollator()
        loss_func = fastpath.enable_fused_ce(model)
    trainer_class = Trainer
    if registry_row.is_preference:  # its own loss over padded pairs: no packing, no fused SFT loss
        from backend.training import preference
        trainer_class = preference.make_trainer_class(registry_row.objective, cfg.method.pref_beta)
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        collator, loss_func = preference.PairCollator(pad), None
    trainer = trainer_class(model=model, args=args, train_dataset=train_ds, eval_dataset=eval_ds,
                            data_collator=collator, processing_class=tokenizer,
                            callbacks=callbacks, compute_loss_func=loss_func)
    from transformers.trainer_callback import PrinterCallback, ProgressCallback
    trainer.remove_callback(PrinterCallback)  # our events replace its prints on stdout
    trainer.remove_callback(ProgressCallback)
    if profiler is not None:
        if device.kind == "cuda" and profiler.sync is None:
            profiler.sync = torch.cuda.synchronize  # kernels are asynchronous: charge each phase its own
        profiler.attach(trainer)
    if log_to_tensorboard(trainer, run_dir) is None:
        emit(ev.log("TensorBoard is not installed: this run writes no TensorBoard files (metrics.jsonl has "
                    "every value; pip install tensorboard to have them)", level="warning"))
    if args.world_size > 1:
        import torch.distributed as dist
        t = cfg.training
        emit(ev.log(f"Distributed: {args.world_size} processes ({trainer.accelerator.distributed_type.value}, "
                    f"{dist.get_backend()}); each trains on its own shard, effective batch "
                    f"{t.batch_size} x {t.gradient_accumulation} x {args.world_size} = "
                    f"{t.batch_size * t.gradient_accumulation * args.world_size}"))
    out = trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    summary: dict[str, Any] = {"train_loss": out.training_loss, "global_step": out.global_step,
                               "train_runtime_s": out.metrics.get("train_runtime"),
                               "tokens_seen": int(trainer.state.num_input_tokens_seen),
                               "trainable_params": trainable, "total_params": total}
    if callback.cancelled:
        emit(ev.log(f"Stopped at step {trainer.state.global_step}; checkpoint saved, resume any time"))
        return RunResult(run_dir, "cancelled", None, "stopped by the user", summary)
    if eval_ds is not None:
        last = callback.last_eval
        if last is not None and last["step"] == trainer.state.global_step and not args.load_best_model_at_end:
            # the last step was just evaluated (eval_steps divides the run): the same weights, the same loss
            eval_loss = last["eval_loss"]
        else:
            emit(ev.progress("evaluate", 0, 1, "Final evaluation…"))
            eval_loss = trainer.evaluate().get("eval_loss")
        summary["eval_loss"] = eval_loss
        summary["perplexity"] = ppl(eval_loss)
        best_ck = trainer.state.best_model_checkpoint if args.load_best_model_at_end else None
        if best_ck:
            summary["best_checkpoint"] = Path(best_ck).name
            emit(ev.log(f"Kept the checkpoint with the lowest validation loss: {Path(best_ck).name} "
                        f"(eval loss {trainer.state.best_metric:.4f})"))
    fastpath.unfuse_lora(model)
    if fast:
        fastpath.disable(model)  # saved files name stock sdpa
    adapter_dir = _save_final(trainer, tokenizer, cfg, run_dir, model_path)
    if is_main_process():
        with open(runs.log_path(run_dir), "a", encoding="utf-8") as fh:
            fh.write(f"completed: {json.dumps(summary, default=str)}\n")
    if cfg.training.answer_check and is_main_process() and world_size() == 1:
        answer_check(model, tokenizer, cfg, run_dir, model_path, device, len(prepared.train), emit, should_stop)
    del trainer, model  # the garbage collection runs after the `finished` event (_execute)
    return RunResult(run_dir, "completed", adapter_dir, "", summary)


def answer_check(model, tokenizer, cfg: RunConfig, run_dir: Path, model_path: str, device, train_rows: int,
                 emit, should_stop) -> dict | None:
    """The check after training with the model still in memory (backend/rag/check.py).

    Emits the ``answer_check`` event and writes it to the run folder (``runs.write_check``).
    The run is complete whatever happens here: a failure is reported in the event, never raised.
    """
    from backend.rag.check import find_project, run_check

    t0 = time.time()
    try:
        project = find_project(run_dir, cfg.data.raft_project)
        chat = None  # no project: skipped (run_check says why) without importing the chat stack (~1 s)
        if project is not None:
            from backend.rag.chat_model import HFChatModel

            model.eval()
            model.config.use_cache = True
            final = runs.final_dir_for(run_dir, cfg.method.method)
            if methods.get(cfg.method.method).is_adapter:
                chat = HFChatModel(hf_model=model, tokenizer=tokenizer, base_model_path=model_path,
                                   adapter_dir=str(final))
            else:  # a whole model: its base is loaded as a second model for the untuned answers
                from backend.models import load_model

                def base():
                    return load_model(model_path, device=device, dtype=cfg.model.dtype,
                                      trust_remote_code=cfg.model.trust_remote_code,
                                      allow_pickle_weights=cfg.model.allow_pickle_weights).eval()
                chat = HFChatModel(hf_model=model, tokenizer=tokenizer, base_model_path=model_path,
                                   tuned_model_dir=str(final), base_loader=base)
        last = runs.last_record(run_dir, ev.TRAIN)
        final_loss = last.get("loss") if last else None
        rec = run_check(chat, project, run_dir, final_loss=final_loss, train_rows=train_rows, raft=cfg.data.raft,
                        on_event=emit, should_stop=should_stop)
    except Exception as e:  # noqa: BLE001 - the run is saved; the check only reports
        log.exception("the check after training failed")
        rec = ev.event(ev.ANSWER_CHECK, status="failed", reason=f"{type(e).__name__}: {e}",
                       seconds=round(time.time() - t0, 1))
    try:
        runs.write_check(run_dir, rec)
    except OSError as e:
        emit(ev.log(f"the check's result was not written ({e})", level="warning"))
    emit(rec)
    return rec


def _save_final(trainer, tokenizer, cfg: RunConfig, run_dir: Path, model_path: str) -> Path | None:
    """Write ``adapter/`` (PEFT methods) or ``model/`` (full / BitFit) atomically (rank 0)."""
    main = is_main_process()
    final = runs.final_dir_for(run_dir, cfg.method.method)
    is_adapter = methods.get(cfg.method.method).is_adapter
    tmp = final.with_name(f".{final.name}.tmp")
    if main:
        shutil.rmtree(tmp, ignore_errors=True)
    model = trainer.model
    if is_adapter:
        # Record where the base came from so plain AutoPeftModel can load it offline.
        model.peft_config["default"].base_model_name_or_path = model_path
    if getattr(trainer, "is_fsdp_enabled", False):
        # FSDP: every rank joins the gather of the full weights; rank 0 writes them.
        trainer.accelerator.state.fsdp_plugin.set_state_dict_type("FULL_STATE_DICT")
        trainer.save_model(str(tmp))
    elif main:
        model.save_pretrained(tmp, safe_serialization=True)
    barrier()  # all writes into tmp are done before rank 0 renames it
    if not main:
        return None
    (tmp / "training_args.bin").unlink(missing_ok=True)  # written by Trainer.save_model; pickle, not needed
    tokenizer.save_pretrained(tmp)
    atomic_write_json(runs.provenance_path(tmp), {"base_model": cfg.model.name_or_path,
                                                 "base_model_path": model_path,
                                                 "method": cfg.method.method})
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    return final


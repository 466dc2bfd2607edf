"""The fine-tuning engine: HF Trainer + PEFT, one run folder per run.

``train(cfg)`` and ``resume(run_dir)`` are plain functions: they report through
``on_event`` (see :mod:`backend.events`) and stop when ``should_stop()`` turns
true.  The GUI runs them in a worker, the CLI in the foreground.

The package's parts (docs/architecture.md, "Training"):

``engine``     train / resume, the Trainer set-up, the final save
``method``     wrapping the model for its method (the registry in :mod:`backend.methods`)
``callbacks``  the Trainer callback that emits events, obeys stop and pause, marks checkpoints
``oom``        out-of-memory recovery (smaller micro-batch, same effective batch)
``ranks``      which process writes under ``torchrun`` / ``accelerate launch``

The run folder's layout and rules belong to :mod:`backend.runs`.
"""

from backend.runs import RunResult, latest_checkpoint, read_status
from backend.training.engine import build_collator, resume, train, training_arguments
from backend.training.method import apply_method
from backend.training.ranks import is_main_process, world_size, write_status

__all__ = ["RunResult", "apply_method", "build_collator", "is_main_process", "latest_checkpoint", "read_status",
           "resume", "train", "training_arguments", "world_size", "write_status"]

"""What every ``tune`` subcommand module shares: Ctrl-C handling and quiet libraries.

Its own module so that :mod:`backend.cli` and the extension modules that add
subcommands (:mod:`backend.data.cli`, :mod:`backend.rag.cli`,
:mod:`backend.launch_export`) import it rather than each other (see
docs/architecture.md, "Layers").
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading

TRAINING_STOP_MESSAGE = "Stopping after this step (a checkpoint will be saved); Ctrl-C again to abort."


class StopFlag:
    """Ctrl-C (or SIGTERM) once: ask the job to stop at its next safe point.  Twice: abort.

    Parameters
    ----------
    message
        What the first Ctrl-C prints (training's default mentions the checkpoint;
        an ingest or an evaluation says what it keeps instead).
    """

    def __init__(self, message: str = TRAINING_STOP_MESSAGE):
        self.event = threading.Event()
        self.message = message

    def install(self) -> None:
        """Take over SIGINT and SIGTERM (main thread only; elsewhere this does nothing)."""
        if threading.current_thread() is not threading.main_thread():
            return

        def handler(signum, frame):
            if self.event.is_set():
                raise KeyboardInterrupt
            print(f"\n{self.message}", file=sys.stderr, flush=True)
            self.event.set()

        signal.signal(signal.SIGINT, handler)
        signal.signal(signal.SIGTERM, handler)

    def __call__(self) -> bool:
        return self.event.is_set()


def quiet_libraries() -> None:
    """Keep transformers' progress bars and info logs out of the terminal (``-v`` keeps them)."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    logging.getLogger("transformers").setLevel(logging.ERROR)
    try:
        from transformers.utils import logging as hf_logging
        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    except ImportError:
        pass


def trust_flags(parser, *, remote_code: bool = True, pickle: bool = True) -> None:
    """``--trust-remote-code`` / ``--allow-pickle-weights`` / ``--allow-hub``: the person's answer, never a file's.

    A config file, a run folder or a project that asks for any of them is told no
    with the flag that would allow it (docs/architecture.md, "Trust").
    """
    if remote_code:
        parser.add_argument("--trust-remote-code", action="store_true", dest="trust_remote_code",
                            help="run the model's own Python code (only for a model whose source you trust)")
    if pickle:
        parser.add_argument("--allow-pickle-weights", action="store_true", dest="allow_pickle_weights",
                            help="load .bin (pickle) weights, which can run code (only from a source you trust)")
    parser.add_argument("--allow-hub", action="store_true", dest="allow_hub",
                        help="allow downloading a model from the Hugging Face hub (also TUNE_ALLOW_HUB=1); "
                             "off by default: Tune Studio works offline")


def print_notices(messages, *, as_json: bool = False) -> None:
    """Print what a file asked for and did not get (``warning: …`` on stderr, or a JSON ``log`` event)."""
    for message in messages:
        if as_json:
            from backend import events as ev

            print(ev.encode(ev.log(message, level="warning")), flush=True)
        else:
            print(f"warning: {message}", file=sys.stderr, flush=True)

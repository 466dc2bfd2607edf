"""Process-wide runtime facts: offline mode, user folders, device detection."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


def set_offline(allow_hub: bool = False) -> None:
    """Keep Hugging Face libraries and Chroma off the network unless hub access is on."""
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # LangChain's tracing client (langsmith) would post runs to its server when these are on
    os.environ["LANGCHAIN_TRACING_V2"] = "false"
    os.environ["LANGSMITH_TRACING"] = "false"
    os.environ.setdefault("DO_NOT_TRACK", "1")
    if allow_hub:
        os.environ.pop("HF_HUB_OFFLINE", None)
        os.environ.pop("TRANSFORMERS_OFFLINE", None)
    else:
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["TRANSFORMERS_OFFLINE"] = "1"
    # huggingface_hub reads the variable once, at import: keep an imported copy in step.
    import sys
    hub = sys.modules.get("huggingface_hub.constants")
    if hub is not None:
        hub.HF_HUB_OFFLINE = not allow_hub


#: Library warnings that say nothing a user can act on (``(message start, category)``): a
#: deprecation inside peft's own call into transformers, printed at every adapter load.
QUIET_WARNINGS = (("`is_gradient_checkpointing` is deprecated", "FutureWarning"),)


def quiet_library_output() -> None:
    """Keep progress bars and known library warnings out of the terminal in GUI-started work.

    The window's jobs (data check, indexing, chat) and its training child log
    through the app; tqdm bars and a transformers ``FutureWarning`` printed to
    the terminal only look like errors.  Environment variables reach the
    libraries before they are imported (nothing heavy is imported here) and are
    inherited by the training child; libraries already imported are told too.
    """
    import sys
    import warnings

    for key, value in (("TQDM_DISABLE", "1"), ("HF_HUB_DISABLE_PROGRESS_BARS", "1"),
                       ("HF_DATASETS_DISABLE_PROGRESS_BARS", "1"), ("TRANSFORMERS_VERBOSITY", "error")):
        os.environ.setdefault(key, value)
    specs = []
    for message, category in QUIET_WARNINGS:
        warnings.filterwarnings("ignore", message=_re_escape(message), category=FutureWarning
                                if category == "FutureWarning" else Warning)
        specs.append(f"ignore:{message}:{category}")
    # Child processes (the training child) read their filters from PYTHONWARNINGS at start-up.
    have = [w for w in os.environ.get("PYTHONWARNINGS", "").split(",") if w]
    os.environ["PYTHONWARNINGS"] = ",".join(have + [s for s in specs if s not in have])
    if "transformers" in sys.modules:
        from transformers.utils import logging as hf_logging
        hf_logging.disable_progress_bar()
    if "datasets" in sys.modules:
        import datasets
        datasets.disable_progress_bars()


def _re_escape(text: str) -> str:
    import re
    return re.escape(text)


def cache_dir() -> Path:
    """User cache folder (converted models).  ``TUNE_STUDIO_CACHE`` overrides it."""
    env = os.environ.get("TUNE_STUDIO_CACHE")
    if env:
        return Path(env)
    import platformdirs
    return Path(platformdirs.user_cache_dir("tune-studio", appauthor=False))


def data_dir() -> Path:
    """User data folder (projects, logs).  ``TUNE_STUDIO_HOME`` overrides it."""
    env = os.environ.get("TUNE_STUDIO_HOME")
    if env:
        return Path(env)
    import platformdirs
    return Path(platformdirs.user_data_dir("tune-studio", appauthor=False))


@dataclass
class DeviceInfo:
    """The device training will use, in words and numbers."""

    kind: str            # "cuda" | "mps" | "cpu"
    name: str            # e.g. "NVIDIA H100 80GB HBM3" or "CPU (2 cores)"
    memory_gb: float     # device memory (GPU) or system RAM (CPU / MPS)
    bf16: bool           # bf16 mixed precision supported
    count: int = 1

    def describe(self) -> str:
        """One line for people."""
        extra = ", bf16" if self.bf16 else ""
        n = f"{self.count} x " if self.count > 1 else ""
        return f"{self.kind.upper()}: {n}{self.name} ({self.memory_gb:.1f} GB{extra})"


def detect_device(preference: str = "auto") -> DeviceInfo:
    """Detect CUDA, then Apple MPS, then CPU (or honour ``preference``)."""
    import torch
    import psutil

    ram_gb = psutil.virtual_memory().total / 2**30
    if preference in ("auto", "cuda") and torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        return DeviceInfo("cuda", props.name, props.total_memory / 2**30,
                          torch.cuda.is_bf16_supported(), torch.cuda.device_count())
    if preference == "cuda":
        from backend.errors import ConfigError
        raise ConfigError("no CUDA GPU is available", field="model.device",
                          hint="set model.device to 'auto' or 'cpu'")
    mps = getattr(torch.backends, "mps", None)
    if preference in ("auto", "mps") and mps is not None and mps.is_available():
        return DeviceInfo("mps", "Apple GPU (MPS)", ram_gb, False)
    if preference == "mps":
        from backend.errors import ConfigError
        raise ConfigError("Apple MPS is not available", field="model.device",
                          hint="set model.device to 'auto' or 'cpu'")
    return DeviceInfo("cpu", f"CPU ({os.cpu_count()} cores)", ram_gb, False)

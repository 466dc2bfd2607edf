"""Shared helpers for the benchmarks: machine facts, timing, RSS sampling, workload data.

Nothing here is timed itself.  The workload generator is deterministic (seeded), so
every contender of a benchmark sees exactly the same rows and the same real tokens.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import platform
import random
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent


def setup_env() -> None:
    """Offline, quiet libraries (same as the app)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


# ---------------------------------------------------------------------------
# machine

def cpu_model() -> str:
    """The CPU model name (Linux /proc/cpuinfo, else platform)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict:
    """Where the benchmark ran: CPU, cores, load, library versions, date."""
    info: dict[str, Any] = {
        "cpu_model": cpu_model(),
        "cpu_cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
    }
    try:
        info["load_avg_1m"] = round(os.getloadavg()[0], 2)
    except OSError:
        pass
    try:
        import psutil
        info["ram_gb"] = round(psutil.virtual_memory().total / 2**30, 1)
    except Exception:
        pass
    for mod in ("torch", "transformers", "peft", "chromadb", "PySide6", "pyqtgraph"):
        try:
            m = __import__(mod)
            info[f"{mod}_version"] = getattr(m, "__version__", "?")
        except Exception:
            info[f"{mod}_version"] = None
    try:
        import torch
        info["torch_threads"] = torch.get_num_threads()
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    except Exception:
        pass
    return info


# ---------------------------------------------------------------------------
# statistics and timing

def median(xs: list[float]) -> float | None:
    """Median, or None for an empty list."""
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def percentile(xs: list[float], q: float) -> float | None:
    """Linear-interpolated percentile ``q`` in [0, 100]."""
    xs = sorted(xs)
    if not xs:
        return None
    k = (len(xs) - 1) * q / 100.0
    lo, hi = math.floor(k), math.ceil(k)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def ratio(a: float | None, b: float | None, digits: int = 3) -> float | None:
    """``a / b`` rounded, or None when either is missing."""
    if a is None or b in (None, 0):
        return None
    return round(a / b, digits)


class RssSampler:
    """Samples this process's RSS in a background thread; ``peak_mb`` is the max seen.

    ``ru_maxrss`` is monotonic over the process life; sampling gives the peak of
    one phase.  Every contender runs in its own process anyway.
    """

    def __init__(self, interval_s: float = 0.02):
        import psutil
        self._proc = psutil.Process()
        self.interval = interval_s
        self.peak = self._proc.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.peak = max(self.peak, self._proc.memory_info().rss)
            except Exception:
                return

    def __enter__(self) -> "RssSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._proc.memory_info().rss)

    @property
    def peak_mb(self) -> float:
        return round(self.peak / 2**20, 1)


def run_json_subprocess(module: str, args: list[str], timeout: float = 1800) -> dict:
    """Run ``python -m module args...`` (a worker that prints one JSON line last) and parse it."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run([sys.executable, "-m", module, *args], cwd=str(REPO), env=env,
                          capture_output=True, text=True, timeout=timeout)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout)[-3000:]
        raise RuntimeError(f"{module} {' '.join(args)} failed (rc={proc.returncode}):\n{tail}")
    return json.loads(lines[-1])


def log(msg: str) -> None:
    """Progress line on stderr (stdout carries JSON for workers)."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    """``(fn(), seconds)``."""
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


# ---------------------------------------------------------------------------
# workload: mixed-length chat-style instruction data

_WORDS = (
    "the a model data training token learning rate batch layer network gradient loss value "
    "system user answer question river mountain city garden window paper music engine signal "
    "memory process thread window light water stone forest market school doctor teacher "
    "student language history science number table chair street winter summer morning evening "
    "small large quick slow bright dark green blue red careful simple complex useful important "
    "new old early late open closed strong weak happy calm busy quiet warm cold heavy light "
    "explain describe compare write list summarise translate compute check build measure "
    "read move find keep give take make show tell ask use try help start stop run walk "
    "and or but because so when while if then also often never always usually sometimes "
    "is are was were has have had will can should could would may might must does did "
    "in on at by for with from into over under between through after before during about "
    "it they we you he she this that these those each every some many few most all none"
).split()
_TOPICS = ("gardening", "databases", "the weather", "cooking pasta", "learning rates", "river ecology",
           "train timetables", "budget planning", "python threads", "bird migration", "tax forms",
           "the solar system", "chess openings", "bread baking", "network latency", "poetry")


def _sentence(rng: random.Random, n: int) -> str:
    words = [rng.choice(_WORDS) for _ in range(n)]
    words[0] = words[0].capitalize()
    return " ".join(words) + rng.choice(".!?.")


def _text(rng: random.Random, n_words: int) -> str:
    out, left = [], n_words
    while left > 0:
        k = min(left, rng.randint(5, 18))
        out.append(_sentence(rng, k))
        left -= k
        if rng.random() < 0.15:
            out.append("\n\n")
    return " ".join(out).replace(" \n\n ", "\n\n")


def chat_lengths(n: int, seed: int, lo: int = 20, hi: int = 1000, median_len: float = 170.0,
                 sigma: float = 0.9) -> list[int]:
    """Target token lengths, log-normal like chat data (many short rows, a long tail)."""
    rng = random.Random(seed)
    mu = math.log(median_len)
    return [int(min(hi, max(lo, rng.lognormvariate(mu, sigma)))) for _ in range(n)]


def chat_records(n: int, *, seed: int = 0, lo: int = 20, hi: int = 1000, median_len: float = 170.0) -> list[dict]:
    """``n`` chat rows ``{"messages": [user, assistant]}`` as a dataset file holds them.

    Target lengths are log-normal in ``[lo, hi]`` tokens (~1.3 tokens per word,
    ~25 for the template); the prompt takes 15–60 % of a row.
    """
    rng = random.Random(seed + 1)
    out = []
    for target in chat_lengths(n, seed, lo, hi, median_len):
        prompt_share = rng.uniform(0.15, 0.6)
        body = max(target - 25, 4)
        pw = max(2, int(body * prompt_share / 1.3))
        aw = max(2, int(body * (1 - prompt_share) / 1.3))
        topic = rng.choice(_TOPICS)
        user = f"{rng.choice(['Explain', 'Describe', 'Summarise', 'Write about'])} {topic}. " + _text(rng, pw)
        answer = f"About {topic}: " + _text(rng, aw)
        out.append({"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]})
    return out


def tokenize_chat(tokenizer, record: dict, max_length: int) -> dict:
    """One chat row as ``{input_ids, labels}`` through the model's chat template (loss on the answer only),
    the way a plain HF fine-tuning script does it."""
    msgs = record["messages"]
    prompt = tokenizer.apply_chat_template(msgs[:-1], tokenize=False, add_generation_prompt=True)
    full = tokenizer.apply_chat_template(msgs, tokenize=False)
    p_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    ids = tokenizer(full, add_special_tokens=False)["input_ids"][:max_length]
    n_prompt = min(len(p_ids), len(ids) - 1)
    return {"input_ids": ids, "labels": [-100] * n_prompt + ids[n_prompt:]}


def make_rows(tokenizer, n: int, *, seed: int = 0, max_length: int = 1024, lo: int = 20, hi: int = 1000,
              median_len: float = 170.0) -> list[dict]:
    """``n`` tokenized chat rows ``{input_ids, labels}`` (:func:`chat_records` through :func:`tokenize_chat`)."""
    return [tokenize_chat(tokenizer, r, max_length)
            for r in chat_records(n, seed=seed, lo=lo, hi=hi, median_len=median_len)]


def row_stats(rows: list[dict]) -> dict:
    """Token counts of a row set."""
    lens = [len(r["input_ids"]) for r in rows]
    trained = sum(sum(1 for x in r["labels"] if x != -100) for r in rows)
    return {"rows": len(rows), "tokens": sum(lens), "trained_tokens": trained,
            "min_len": min(lens), "median_len": int(statistics.median(lens)), "max_len": max(lens),
            "mean_len": round(sum(lens) / len(lens), 1)}


def emit(block: dict, out: str | None) -> int:
    """Print a bench block as JSON (and write it to ``out`` too); the exit code of a bench's ``main``."""
    text = json.dumps(block, indent=2, default=str)
    if out:
        Path(out).write_text(text + "\n")
    print(text)
    return 0


def write_json(path: Path, data: dict) -> None:
    """Atomic JSON write."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")
    os.replace(tmp, path)

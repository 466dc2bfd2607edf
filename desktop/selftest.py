"""``TuneStudio --self-test``: check, without a screen, that an install works.

Run by the packaged app (``dist/TuneStudio/TuneStudio --self-test``) and by the
test suite in-process.  Each step is timed and printed; everything is written
into one temporary folder (the model cache and the user data folder are
redirected there too), which is removed at the end.  Nothing touches the
network: the Hugging Face hub and Chroma telemetry are switched off first.

Steps
-----
``environment``  offline switches, bundled model folders, user folders outside the bundle
``imports``      every module of ``backend`` and ``desktop`` imports
``qt``           an offscreen QApplication draws a pyqtgraph plot
``model``        the default base model resolves, loads and generates a few tokens
``training``     a 3-step LoRA run on a tiny generated dataset completes
``embeddings``   the bundled embedding model embeds text (with the app's embedder and backend)
``chroma``       a persistent Chroma collection is written, reopened and queried

Exit code 0 when every step passed, 1 otherwise (the failing steps are named).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import math
import os
import pkgutil
import platform
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Callable

from backend import events as ev

Out = Callable[[str], Any]

STEPS = ("environment", "imports", "qt", "model", "training", "embeddings", "chroma")

_OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "ANONYMIZED_TELEMETRY": "False",
    "TOKENIZERS_PARALLELISM": "false",
    # keep the report readable: no tqdm bars from conversion, loading and training
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "TQDM_DISABLE": "1",
}

# Modules never imported by the check (entry points that run on import, or this file).
_SKIP_MODULES = ("__main__", "desktop.selftest")

_DOCS = [
    ("Tune Studio trains LoRA adapters on a workstation without any network access.", "about.txt"),
    ("The capital of France is Paris, a city on the river Seine.", "geo.txt"),
    ("Photosynthesis turns sunlight, water and carbon dioxide into sugar in plant leaves.", "bio.txt"),
]


class StepFailed(Exception):
    """A check inside a step did not hold."""


def bundle_dir() -> Path | None:
    """The folder of the PyInstaller bundle (``sys._MEIPASS``), or ``None`` when not frozen."""
    base = getattr(sys, "_MEIPASS", None)
    return Path(base) if getattr(sys, "frozen", False) and base else None


def _is_inside(child: Path, parent: Path) -> bool:
    try:
        child.resolve().relative_to(parent.resolve())
        return True
    except ValueError:
        return False


@contextlib.contextmanager
def _environ(values: dict[str, str]):
    """Set environment variables for the duration of the block, then restore them."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# ---------------------------------------------------------------------------
# the steps; each returns a short description of what it checked

def step_environment(ctx: dict) -> str:
    """Offline switches on; bundled models found; user folders outside the bundle."""
    from backend import models, runtime

    runtime.set_offline(False)
    bad = {k: os.environ.get(k) for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
           if os.environ.get(k) != "1"}
    if os.environ.get("ANONYMIZED_TELEMETRY", "").lower() != "false":
        bad["ANONYMIZED_TELEMETRY"] = os.environ.get("ANONYMIZED_TELEMETRY")
    if bad:
        raise StepFailed(f"network switches not off: {bad}")
    gguf = models.default_gguf_path()
    emb = models.embedding_model_path()
    user = ctx["user_dirs"]
    lines = [f"default model {gguf} ({gguf.stat().st_size / 2**20:.0f} MiB)",
             f"embedding model {emb}",
             f"user data {user['data']}", f"user cache {user['cache']}"]
    bundle = bundle_dir()
    if bundle is not None:
        lines.insert(0, f"bundle {bundle}")
        env = os.environ.get("TUNE_STUDIO_BUNDLE")
        if not env:
            raise StepFailed("TUNE_STUDIO_BUNDLE is not set (the runtime hook did not run)")
        for p in (gguf, emb):
            if not _is_inside(p, bundle):
                raise StepFailed(f"{p} comes from outside the bundle {bundle}")
        sample = bundle / "resources" / "sample_project"
        if not sample.is_dir():
            raise StepFailed(f"the sample project is missing from the bundle ({sample})")
        lines.insert(1, f"resources {sample.parent}")
        for name, p in user.items():
            if _is_inside(Path(p), bundle):
                raise StepFailed(f"the user {name} folder {p} is inside the bundle")
    return "\n".join(lines)


def _walk(package: str) -> list[str]:
    mod = importlib.import_module(package)
    names = [package]
    for info in pkgutil.walk_packages(getattr(mod, "__path__", []), prefix=package + "."):
        names.append(info.name)
    return names


def step_imports(ctx: dict) -> str:
    """Every module of the app imports (in a bundle: every module was collected)."""
    done, failed = [], []
    for package in ("backend", "desktop"):
        try:
            names = _walk(package)
        except Exception as e:
            failed.append(f"{package}: {type(e).__name__}: {e}")
            continue
        for name in names:
            if name.rsplit(".", 1)[-1] in _SKIP_MODULES or name in _SKIP_MODULES:
                continue
            try:
                importlib.import_module(name)
                done.append(name)
            except Exception as e:
                failed.append(f"{name}: {type(e).__name__}: {e}")
    versions = []
    for dist in ("torch", "transformers", "peft", "langchain_core", "chromadb", "PySide6", "pyqtgraph"):
        try:
            versions.append(f"{dist} {importlib.import_module(dist).__version__}")
        except Exception as e:
            failed.append(f"{dist}: {type(e).__name__}: {e}")
    if failed:
        raise StepFailed("could not import:\n  " + "\n  ".join(failed))
    return f"{len(done)} app modules; " + ", ".join(versions)


def step_qt(ctx: dict) -> str:
    """A QApplication starts (offscreen unless a platform is set) and pyqtgraph draws."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtWidgets import QApplication
    import pyqtgraph as pg

    app = QApplication.instance() or QApplication([sys.argv[0] if sys.argv else "TuneStudio"])
    plot = pg.PlotWidget()
    plot.resize(320, 200)
    plot.plot([0, 1, 2, 3], [3.0, 2.1, 1.7, 1.5], pen="b")
    image = plot.grab().toImage()
    plot.close()
    plot.deleteLater()
    if image.isNull() or image.width() < 10:
        raise StepFailed("pyqtgraph drew nothing")
    return f"platform {app.platformName()}, pyqtgraph plot {image.width()}x{image.height()}"


def step_model(ctx: dict) -> str:
    """The default model resolves (GGUF -> safetensors), loads and generates."""
    import torch

    from backend.models import load_model, load_tokenizer, resolve_model

    t0 = time.perf_counter()
    path = resolve_model("default")
    t_resolve = time.perf_counter() - t0
    tok = load_tokenizer(path)
    model = load_model(path)
    model.eval()
    prompt = tok.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}],
                                     tokenize=False, add_generation_prompt=True)
    enc = tok(prompt, return_tensors="pt").to(model.device)
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=8, do_sample=False, pad_token_id=tok.pad_token_id)
    new = out[0, enc["input_ids"].shape[1]:]
    text = tok.decode(new, skip_special_tokens=True)
    if len(new) == 0:
        raise StepFailed("the model generated no tokens")
    params = sum(p.numel() for p in model.parameters())
    del model
    return (f"{path} ({params / 1e6:.1f}M parameters, resolved in {t_resolve:.1f} s); "
            f"generated {len(new)} tokens: {text!r}")


def step_training(ctx: dict) -> str:
    """A 3-step LoRA run on a tiny generated dataset completes and writes an adapter."""
    from backend.config import DataConfig, MethodConfig, ModelConfig, RunConfig, TrainingConfig
    from backend.training import train

    tmp: Path = ctx["tmp"]
    data = tmp / "selftest-data.jsonl"
    rows = [{"messages": [{"role": "user", "content": f"What is {i} plus {i}?"},
                          {"role": "assistant", "content": f"{i} plus {i} is {2 * i}."}]}
            for i in range(12)]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    cfg = RunConfig(
        name="self-test",
        output_dir=str(tmp / "run"),
        model=ModelConfig(name_or_path="default", device="cpu"),
        data=DataConfig(train_files=[str(data)], validation_split=0.0, max_length=64),
        method=MethodConfig(method="lora", lora_r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]),
        training=TrainingConfig(max_steps=3, batch_size=1, gradient_accumulation=1, warmup_ratio=0.0,
                                eval_steps=0, save_steps=3, logging_steps=1, seed=0),
    )
    events: list[dict] = []
    result = train(cfg, project_dir=None, on_event=events.append, should_stop=lambda: False)
    if result.status != "completed":
        raise StepFailed(f"training ended {result.status}: {result.reason}")
    adapter = Path(result.adapter_dir) if result.adapter_dir else None
    if adapter is None or not (adapter / "adapter_config.json").exists():
        raise StepFailed(f"no adapter written (adapter_dir={result.adapter_dir})")
    if not any(adapter.glob("*.safetensors")):
        raise StepFailed(f"the adapter folder {adapter} has no safetensors weights")
    losses = [e["loss"] for e in events if e.get("type") == ev.TRAIN and e.get("loss") is not None]
    steps = max((e.get("step", 0) for e in events if e.get("type") == ev.TRAIN), default=0)
    if steps < 3:
        raise StepFailed(f"only {steps} optimizer steps reported, expected 3")
    if losses and not all(math.isfinite(x) for x in losses):
        raise StepFailed(f"non-finite training loss: {losses}")
    shown = ", ".join(f"{x:.3f}" for x in losses)
    return f"{steps} steps, loss [{shown}], adapter {adapter.name}/ written"


def _embeddings():
    # the app's own embedder: ONNX Runtime on the CPU when it works here (exported into the
    # redirected cache, parity-checked against torch), torch otherwise; the step says which
    from backend.rag.embeddings import load_embeddings

    return load_embeddings(device="cpu")


def step_embeddings(ctx: dict) -> str:
    """The bundled all-MiniLM-L6-v2 embeds; similar sentences land closer."""
    emb = ctx.get("embeddings") or _embeddings()
    ctx["embeddings"] = emb
    a, b, c = emb.embed_documents(["A cat sits on the mat.", "A kitten is sitting on a rug.",
                                   "Quarterly revenue grew by four percent."])
    q = emb.embed_query("Where is the cat?")
    if len(a) != 384 or not all(math.isfinite(x) for x in a + q):
        raise StepFailed(f"unexpected embedding (dimension {len(a)})")

    def cos(u, v):
        return sum(x * y for x, y in zip(u, v))

    if not cos(a, b) > cos(a, c):
        raise StepFailed(f"similar sentences are not closer ({cos(a, b):.3f} <= {cos(a, c):.3f})")
    return (f"dimension {len(a)}, cos(similar)={cos(a, b):.2f} > cos(unrelated)={cos(a, c):.2f}, "
            f"{emb.describe_backend()}")


def step_chroma(ctx: dict) -> str:
    """A persistent Chroma collection is written, reopened from disk and queried."""
    import chromadb
    from chromadb.config import Settings
    from langchain_chroma import Chroma

    emb = ctx.get("embeddings") or _embeddings()
    ctx["embeddings"] = emb
    where = ctx["tmp"] / "index"

    def settings() -> Settings:
        return Settings(anonymized_telemetry=False, is_persistent=True, persist_directory=str(where))

    store = Chroma(collection_name="selftest", embedding_function=emb, persist_directory=str(where),
                   client_settings=settings())
    store.add_texts([t for t, _ in _DOCS], metadatas=[{"source": s} for _, s in _DOCS],
                    ids=[s for _, s in _DOCS])
    # Reopen from disk with a separate client to prove the write persisted.
    client = chromadb.PersistentClient(path=str(where), settings=settings())
    count = client.get_collection("selftest").count()
    if count != len(_DOCS):
        raise StepFailed(f"the collection holds {count} chunks on disk, expected {len(_DOCS)}")
    again = Chroma(collection_name="selftest", embedding_function=emb, client=client)
    hits = again.similarity_search_with_score("Which city is the capital of France?", k=2)
    if not hits or hits[0][0].metadata.get("source") != "geo.txt":
        raise StepFailed(f"wrong top hit: {[(d.metadata, s) for d, s in hits]}")
    with contextlib.suppress(Exception):
        chromadb.api.client.SharedSystemClient.clear_system_cache()
    return f"{count} chunks written to {where.name}/, top hit {hits[0][0].metadata['source']} ({hits[0][1]:.3f})"


_FUNCS = {"environment": step_environment, "imports": step_imports, "qt": step_qt,
          "model": step_model, "training": step_training, "embeddings": step_embeddings,
          "chroma": step_chroma}


# ---------------------------------------------------------------------------

def run_self_test(out: Out = print, *, steps: tuple[str, ...] | list[str] | None = None,
                  keep: bool = False) -> int:
    """Run the checks and print each one with its timing.

    Parameters
    ----------
    out
        Receives each line of the report (``print`` by default).
    steps
        Run only these steps (names from ``STEPS``); all by default.
    keep
        Keep the temporary folder (its path is printed) for inspection.

    Returns
    -------
    int
        0 when every step passed, else 1.
    """
    if out is print and sys.stdout is None:  # windowed build started without a console
        out = _file_out()
    chosen = list(steps) if steps else list(STEPS)
    unknown = [s for s in chosen if s not in _FUNCS]
    if unknown:
        out(f"unknown self-test step(s): {', '.join(unknown)}; known: {', '.join(STEPS)}")
        return 2
    t_all = time.perf_counter()
    bundle = bundle_dir()
    out(f"Tune Studio self-test — Python {platform.python_version()} on {platform.system()} "
        f"{platform.machine()}, {'bundle ' + str(bundle) if bundle else 'from source'}")
    tmp = Path(tempfile.mkdtemp(prefix="tune-studio-selftest-"))
    from backend import runtime  # cheap; needed before redirecting the user folders

    user_dirs = {"data": str(runtime.data_dir()), "cache": str(runtime.cache_dir())}
    env = dict(_OFFLINE_ENV)
    env.update(TUNE_STUDIO_CACHE=str(tmp / "cache"), TUNE_STUDIO_HOME=str(tmp / "home"),
               HF_HOME=str(tmp / "hf-home"))
    ctx: dict[str, Any] = {"tmp": tmp, "user_dirs": user_dirs}
    passed: list[str] = []
    failed: list[str] = []
    try:
        with _environ(env):
            for name in chosen:
                t0 = time.perf_counter()
                try:
                    what = _FUNCS[name](ctx)
                except BaseException as e:  # noqa: BLE001 - report every failure, then go on
                    if isinstance(e, KeyboardInterrupt):
                        raise
                    dt = time.perf_counter() - t0
                    failed.append(name)
                    out(f"[FAIL] {name:<11} {dt:6.1f} s  {type(e).__name__}: {e}")
                    if not isinstance(e, StepFailed):
                        out("       " + traceback.format_exc().rstrip().replace("\n", "\n       "))
                    continue
                dt = time.perf_counter() - t0
                passed.append(name)
                lines = str(what).splitlines() or [""]
                out(f"[ ok ] {name:<11} {dt:6.1f} s  {lines[0]}")
                for line in lines[1:]:
                    out(f"{'':<26}{line}")
    finally:
        ctx.pop("embeddings", None)
        if keep:
            out(f"temporary files kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    total = time.perf_counter() - t_all
    if failed:
        out(f"SELF-TEST FAILED in {total:.1f} s: {', '.join(failed)} "
            f"({len(passed)} of {len(chosen)} steps passed)")
        return 1
    out(f"SELF-TEST PASSED in {total:.1f} s: {', '.join(passed)}")
    return 0


def _file_out() -> Out:
    """Where the report goes when there is no console: a log file in the user data folder."""
    from backend.runtime import data_dir

    path = data_dir() / "logs" / "self-test.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    fh = open(path, "w", encoding="utf-8")  # noqa: SIM115 - lives as long as the process

    def write(line: str) -> None:
        fh.write(line + "\n")
        fh.flush()

    return write


def main(argv: list[str] | None = None) -> int:
    """``python -m desktop.selftest [--keep] [step ...]``."""
    args = list(sys.argv[1:] if argv is None else argv)
    keep = "--keep" in args
    steps = [a for a in args if not a.startswith("-")]
    return run_self_test(steps=steps or None, keep=keep)


if __name__ == "__main__":
    raise SystemExit(main())

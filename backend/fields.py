"""Typed settings dataclasses: the one set of field helpers for every settings object.

:class:`backend.config.RunConfig` (a training run) and
:class:`backend.rag.settings.AnswerSettings` (an answer: retrieval and
generation) are built the same way, with these helpers:

- every field has a default and a help text (``metadata["help"]``), a GUI
  label (``["label"]``) and, for numbers, a range (``["min"]`` / ``["max"]``);
  choices are ``Literal`` types;
- :func:`build` turns a dict into the dataclass, section by section, rejecting
  unknown keys with a "did you mean" and converting values (``"1e-4"`` → float);
- :func:`set_dotted` sets ``section.field=value`` (``--set`` on the command line);
- :func:`load_file` reads a JSON file into the dataclass (``RunConfig.load``,
  ``AnswerSettings.load``), every problem a ``ConfigError`` naming the file;
- :func:`leaf_fields` lists every field with its dotted key (the GUI form
  builder, :mod:`desktop.form`, and the CLI's ``--set`` help read it).

Errors are :class:`~backend.errors.ConfigError` (a ``ValueError``) naming the
field and the fix.  No heavy imports: the GUI reads these before any model.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import typing
from dataclasses import field
from pathlib import Path
from typing import Any, Callable, Iterator, Literal, TypeVar, get_args, get_origin

from backend.errors import ConfigError

T = TypeVar("T")


def setting(default: Any, help: str, **meta: Any) -> Any:
    """A dataclass field with a default, a help text and optional GUI metadata (``label``, ``min``, ``max``)."""
    meta["help"] = help
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda d=default: type(d)(d), metadata=meta)
    return field(default=default, metadata=meta)


def field_info(cls: type, name: str) -> dataclasses.Field:
    """The dataclass field ``name`` of ``cls``."""
    return {f.name: f for f in dataclasses.fields(cls)}[name]


def field_choices(cls: type, name: str) -> tuple | None:
    """The ``Literal`` choices of a field, or ``None``."""
    tp = typing.get_type_hints(cls)[name]
    if get_origin(tp) is Literal:
        return get_args(tp)
    return None


def sections(cls: type) -> dict[str, type]:
    """The fields of ``cls`` that are themselves settings dataclasses: ``{name: class}``."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls) if dataclasses.is_dataclass(hints[f.name])}


def leaf_fields(cls: type, prefix: str = "") -> Iterator[tuple[str, type, dataclasses.Field, Any]]:
    """Yield ``(dotted_key, owner_class, field, type)`` for every leaf field of ``cls``, sections included."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            yield from leaf_fields(tp, f"{prefix}{f.name}.")
        else:
            yield f"{prefix}{f.name}", cls, f, tp


def coerce(value: Any, tp: Any, key: str) -> Any:
    """Check and convert ``value`` to the field type ``tp`` (``key`` names the field in errors)."""
    origin = get_origin(tp)
    if origin is Literal:
        choices = get_args(tp)
        if value not in choices:
            close = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"choose one of {', '.join(map(str, choices))}"
            raise ConfigError(f"'{value}' is not a valid choice", field=key, hint=hint)
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "on", "false", "0", "no", "off"):
            return value.lower() in ("true", "1", "yes", "on")
        raise ConfigError(f"expected true or false, got {value!r}", field=key)
    if tp is int:
        if isinstance(value, bool):
            raise ConfigError(f"expected a whole number, got {value!r}", field=key)
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, int):
            return value
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
        raise ConfigError(f"expected a whole number, got {value!r}", field=key)
    if tp is float:
        if isinstance(value, bool):
            raise ConfigError(f"expected a number, got {value!r}", field=key)
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"expected a number, got {value!r}", field=key) from None
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"expected text, got {value!r}", field=key)
        return value
    if origin is list:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()] if value.strip() else []
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"expected a list of strings, got {value!r}", field=key)
        return list(value)
    if origin is dict:
        if isinstance(value, str):
            try:
                value = json.loads(value) if value.strip() else {}
            except json.JSONDecodeError:
                raise ConfigError(f"expected a JSON object, got {value!r}", field=key) from None
        if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
            raise ConfigError(f"expected an object of string to string, got {value!r}", field=key)
        return dict(value)
    return value


def unknown_key(key: str, known: list[str], prefix: str) -> ConfigError:
    """The error for a key no field has, with the closest known key."""
    close = difflib.get_close_matches(key, known, n=1)
    full = f"{prefix}{key}"
    hint = f"did you mean '{prefix}{close[0]}'?" if close else f"known keys: {', '.join(sorted(known))}"
    return ConfigError(f"unknown key '{full}'", field=full, hint=hint)


def build(cls: type, d: Any, prefix: str = "") -> Any:
    """``cls`` from a dict: sections recursively, unknown keys rejected, values converted and range-checked.

    Raises
    ------
    ConfigError
        Naming the field (``prefix`` + key) and the fix.
    """
    if not isinstance(d, dict):
        raise ConfigError(f"expected an object, got {type(d).__name__}", field=prefix.rstrip(".") or None)
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    for key in d:
        if key not in names:
            raise unknown_key(key, names, prefix)
    kwargs = {}
    for name in names:
        if name not in d:
            continue
        tp = hints[name]
        if dataclasses.is_dataclass(tp):
            kwargs[name] = build(tp, d[name], f"{prefix}{name}.")
        else:
            kwargs[name] = coerce(d[name], tp, f"{prefix}{name}")
    obj = cls(**kwargs)
    check_ranges(obj, prefix)
    return obj


def check_ranges(obj: Any, prefix: str = "") -> None:
    """Range checks from the fields' ``min`` / ``max``; raise ``ConfigError`` naming the field."""
    for f in dataclasses.fields(obj):
        v = getattr(obj, f.name)
        lo, hi = f.metadata.get("min"), f.metadata.get("max")
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            # NaN fails every comparison, so it would pass both range checks below
            if not math.isfinite(v):
                raise ConfigError(f"{v} is not a number", field=f"{prefix}{f.name}",
                                  hint="use a finite value" + (f" between {lo} and {hi}" if lo is not None or hi is not None else ""))
            if lo is not None and v < lo:
                raise ConfigError(f"{v} is below the minimum {lo}", field=f"{prefix}{f.name}",
                                  hint=f"use a value between {lo} and {hi}")
            if hi is not None and v > hi:
                raise ConfigError(f"{v} is above the maximum {hi}", field=f"{prefix}{f.name}",
                                  hint=f"use a value between {lo} and {hi}")


def set_dotted(cls: type, d: dict, key: str, value: Any) -> None:
    """Set ``d['a']['b'] = value`` for ``key='a.b'`` in a dict of ``cls``, rejecting unknown keys.

    A bare field name (``max_steps``) is accepted when exactly one section of
    ``cls`` has it.  The value is converted to the field's type.
    """
    secs = sections(cls)
    top = [f.name for f in dataclasses.fields(cls) if f.name not in secs]
    parts = key.split(".")
    if len(parts) == 1 and parts[0] not in top:
        # bare leaf name: find the section that owns it
        owners = [s for s, c in secs.items() if parts[0] in {f.name for f in dataclasses.fields(c)}]
        if len(owners) == 1:
            parts = [owners[0], parts[0]]
    if len(parts) == 2 and parts[0] in secs:
        sec = secs[parts[0]]
        names = [f.name for f in dataclasses.fields(sec)]
        if parts[1] not in names:
            raise unknown_key(parts[1], names, f"{parts[0]}.")
        d.setdefault(parts[0], {})[parts[1]] = coerce(value, typing.get_type_hints(sec)[parts[1]], key)
        return
    if len(parts) == 1 and parts[0] in top:
        d[parts[0]] = coerce(value, typing.get_type_hints(cls)[parts[0]], key)
        return
    raise unknown_key(key, [k for k, *_ in leaf_fields(cls)], "")


def parse_set(items: list[str], example: str = "training.learning_rate=1e-4") -> dict[str, str]:
    """Parse ``["a.b=1", ...]`` from ``--set`` into a dict."""
    out = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"'--set {item}' is not key=value", hint=f"write e.g. --set {example}")
        k, v = item.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def set_help(cls: type, example: str) -> str:
    """The ``--set`` help text: an example and every key of ``cls``, generated from its fields."""
    keys = ", ".join(k for k, *_ in leaf_fields(cls))
    return f"set a field, e.g. --set {example} (repeatable); keys: {keys}"


def load_file(path: str | Path, from_dict: Callable[[dict], T], what: str) -> T:
    """A settings object from a JSON file: ``from_dict`` of the object it holds.

    Parameters
    ----------
    path
        The file.
    from_dict
        Builds the object (``RunConfig.from_dict``, ``AnswerSettings.from_dict``).
    what
        The file's name in messages (``"config file"``, ``"settings file"``).

    Raises
    ------
    ConfigError
        Naming the file: unreadable, not UTF-8, not JSON, not a JSON object, or
        an unknown / invalid key (``from_dict``'s error, with the file added).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"the {what} is not UTF-8 text", file=path, hint="save it as UTF-8") from None
    except OSError as e:
        raise ConfigError(f"cannot read the {what} ({e.strerror})", file=path, hint="check the path") from None
    try:
        d = json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError(f"not valid JSON: {e.msg} (column {e.colno})", file=path,
                          line=e.lineno, hint="fix the JSON syntax") from None
    except (RecursionError, ValueError):  # nested thousands deep; an integer too long to convert
        raise ConfigError("not valid JSON (nested too deep, or a number too long)", file=path,
                          hint="fix the JSON") from None
    if not isinstance(d, dict):
        raise ConfigError(f"a {what} must hold a JSON object", file=path)
    try:
        return from_dict(d)
    except ConfigError as e:
        e.file = str(path)
        e.args = (str(e),)
        raise

"""A tiny callback list, so the app's models stay free of Qt (napari habit)."""

from __future__ import annotations

from typing import Any, Callable


class Emitter:
    """Call every connected callback with the emitted arguments, in order."""

    def __init__(self) -> None:
        self._callbacks: list[Callable[..., Any]] = []

    def connect(self, callback: Callable[..., Any]) -> None:
        """Add ``callback`` (once)."""
        if callback not in self._callbacks:
            self._callbacks.append(callback)

    def disconnect(self, callback: Callable[..., Any]) -> None:
        """Remove ``callback`` if connected."""
        if callback in self._callbacks:
            self._callbacks.remove(callback)

    def emit(self, *args: Any) -> None:
        """Call the callbacks."""
        for cb in list(self._callbacks):
            cb(*args)

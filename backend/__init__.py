"""Tune Studio backend: config, models, data, training, RAG and the CLI.  No Qt, ever."""

__version__ = "0.1.0"

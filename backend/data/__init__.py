"""Datasets: read any supported file, check it, preview it, turn it into training rows.

The training engine calls :func:`prepare`; ``tune data check`` and the GUI's
Data page call :func:`check_files` and :func:`preview`; :func:`distill` writes
teacher-generated question/answer datasets.  Progress events use the stages
``data`` (reading files), ``tokenize`` and ``distill``.
"""

from backend.data.distill import DistillResult, distill, parse_pairs
from backend.data.encode import IGNORE_INDEX, Renderer, segments
from backend.data.formats import FORMATS, Example, normalise_file
from backend.data.pipeline import (CheckReport, PreparedData, PreviewRow, check_files, histogram, prepare, preview,
                                   split_rows, token_stats, validation_count)
from backend.data.readers import Problem, decode_text, read_file
from backend.errors import DataCancelled

__all__ = [
    "CheckReport", "DataCancelled", "DistillResult", "Example", "FORMATS", "IGNORE_INDEX", "PreparedData",
    "PreviewRow", "Problem", "Renderer", "check_files", "decode_text", "distill", "histogram", "normalise_file",
    "parse_pairs", "prepare", "preview", "read_file", "segments", "split_rows", "token_stats", "validation_count",
]

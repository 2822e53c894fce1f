"""Readers that turn dialog files into validated conversation records.

Formats: canonical JSONL, CSV (one message per row), Schema-Guided Dialogue files and
CrossWOZ files; docs/formats.md describes each. ``storage.dialog_import`` writes the
records to the database.
"""

from storage.importers.loader import (
    FORMATS,
    InputFile,
    detect_format,
    read_dialogs,
    resolve_inputs,
)
from storage.importers.records import (
    DialogFormatError,
    DialogRecord,
    InvalidRecord,
    ProblemKind,
    TurnRecord,
)

__all__ = [
    "FORMATS",
    "DialogFormatError",
    "DialogRecord",
    "InputFile",
    "InvalidRecord",
    "ProblemKind",
    "TurnRecord",
    "detect_format",
    "read_dialogs",
    "resolve_inputs",
]

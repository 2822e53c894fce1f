"""Format detection, folder expansion and the single entry point to the readers."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import ijson

from storage.importers.crosswoz import read_crosswoz_dialogs
from storage.importers.csv_format import read_csv_dialogs
from storage.importers.files import (
    READ_ERRORS,
    describe_read_error,
    open_binary,
    read_first_byte,
)
from storage.importers.jsonl import read_jsonl_dialogs
from storage.importers.records import DialogRecord, InvalidRecord, ProblemKind
from storage.importers.sgd import read_sgd_dialogs

logger = logging.getLogger(__name__)

Reader = Callable[[Path], Iterator[DialogRecord | InvalidRecord]]

READERS: dict[str, Reader] = {
    "jsonl": read_jsonl_dialogs,
    "csv": read_csv_dialogs,
    "sgd": read_sgd_dialogs,
    "crosswoz": read_crosswoz_dialogs,
}
FORMATS = tuple(READERS)

# File name endings that folder expansion picks up for each format.
FORMAT_SUFFIXES: dict[str, tuple[str, ...]] = {
    "jsonl": (".jsonl", ".jsonl.gz", ".ndjson", ".ndjson.gz"),
    "csv": (".csv",),
    "sgd": (".json", ".json.gz"),
    "crosswoz": (".zip", ".json", ".json.gz"),
}
# SGD service schemas sit beside the dialogue files but contain no dialogues.
SGD_SCHEMA_NAMES = ("schema.json", "schema.json.gz")
_MAX_SNIFF_LINE_BYTES = 1 << 20


@dataclass(frozen=True)
class InputFile:
    """A file to import and its format; ``format`` is None when detection failed."""

    path: Path
    format: str | None


def check_format(format: str | None) -> None:
    """Raise ValueError naming the accepted formats unless ``format`` is None or one of them."""
    if format is not None and format not in READERS:
        raise ValueError(
            f"unknown dialog format {format!r}: use one of {', '.join(FORMATS)}, or None to "
            "detect the format from each file's name and content"
        )


def resolve_inputs(paths: Iterable[Path | str], format: str | None = None) -> list[InputFile]:
    """List the files to import, expanding folders and detecting formats.

    Folders are searched recursively in name order for files with an ending that
    FORMAT_SUFFIXES lists. Hidden files and SGD ``schema.json`` files are left out. Files
    found in folders whose format cannot be detected are left out with a warning. A file
    named directly is always kept, and if its format cannot be detected, reading it
    returns an invalid record that names the problem.

    Raises:
        FileNotFoundError: If a path does not exist.
        ValueError: If ``format`` is unknown or a folder contains no dialog files.
    """
    check_format(format)
    inputs: list[InputFile] = []
    for path in map(Path, paths):
        if not path.exists():
            raise FileNotFoundError(f"dialog file or folder not found: {path}")
        if path.is_dir():
            inputs.extend(_expand_folder(path, format))
        elif path.name in SGD_SCHEMA_NAMES and format in (None, "sgd"):
            logger.info("Skipping SGD schema file path=%s", path)
        else:
            inputs.append(InputFile(path, format or detect_format(path)))
    return inputs


def _expand_folder(folder: Path, format: str | None) -> list[InputFile]:
    suffixes = FORMAT_SUFFIXES[format] if format else tuple(set().union(*FORMAT_SUFFIXES.values()))
    candidates = sorted(
        path
        for path in folder.rglob("*")
        if path.is_file()
        and not path.name.startswith(".")
        and path.name.lower().endswith(suffixes)
        and path.name not in SGD_SCHEMA_NAMES
    )
    inputs = []
    for path in candidates:
        detected = format or detect_format(path)
        if detected is None:
            logger.warning(
                "Skipping file of unknown format path=%s; name it directly with an explicit "
                "format to import it",
                path,
            )
            continue
        inputs.append(InputFile(path, detected))
    if not inputs:
        raise ValueError(
            f"no dialog files found in folder {folder}: expected names ending in "
            f"{', '.join(sorted(suffixes))}"
        )
    return inputs


def detect_format(path: Path) -> str | None:
    """Return the format of ``path`` from its name, and for ``.json`` from its content.

    ``.json`` and ``.json.gz`` files are SGD when they contain a list of objects with
    ``dialogue_id``, CrossWOZ when they contain an object of objects with ``messages``,
    and JSONL when their first line is a conversation object with ``turns``.

    Returns:
        One of FORMATS, or None if the format cannot be detected.
    """
    name = path.name.lower()
    for format in ("jsonl", "csv"):
        if name.endswith(FORMAT_SUFFIXES[format]):
            return format
    if name.endswith(".zip"):
        return "crosswoz"
    if name.endswith((".json", ".json.gz")):
        try:
            return _sniff_json(path)
        except (*READ_ERRORS, ijson.JSONError, ValueError):
            return None
    return None


def _sniff_json(path: Path) -> str | None:
    with open_binary(path) as stream:
        first = read_first_byte(stream)
    if first == b"[":
        with open_binary(path) as stream:
            item = next(ijson.items(stream, "item"), None)
        return "sgd" if isinstance(item, dict) and "dialogue_id" in item else None
    if first != b"{":
        return None

    with open_binary(path) as stream:
        pair = next(ijson.kvitems(stream, ""), None)
    if pair and isinstance(pair[1], dict) and "messages" in pair[1]:
        return "crosswoz"

    # A JSONL file named .json: its first line alone is a conversation object.
    with open_binary(path) as stream:
        first_line = stream.readline(_MAX_SNIFF_LINE_BYTES)
    try:
        line_object = json.loads(first_line)
    except ValueError:
        return None
    return "jsonl" if isinstance(line_object, dict) and "turns" in line_object else None


def read_dialogs(source: InputFile) -> Iterator[DialogRecord | InvalidRecord]:
    """Yield the records of one input file with the reader of its format.

    A file of unknown format, and a file that yields nothing, produce one
    :class:`InvalidRecord` for the whole file.
    """
    if source.format is None:
        yield _describe_undetected(source.path)
        return

    is_empty = True
    for record in READERS[source.format](source.path):
        is_empty = False
        yield record
    if is_empty:
        yield InvalidRecord(
            source.path, "file", ProblemKind.EMPTY_FILE, "file contains no conversations"
        )


def _describe_undetected(path: Path) -> InvalidRecord:
    try:
        with open_binary(path) as stream:
            is_empty = read_first_byte(stream) == b""
    except READ_ERRORS as error:
        return describe_read_error(path, "file", error)
    if is_empty:
        return InvalidRecord(path, "file", ProblemKind.EMPTY_FILE, "file is empty")
    return InvalidRecord(
        path,
        "file",
        ProblemKind.UNKNOWN_FORMAT,
        "cannot detect the dialog format from the file name and content: pass format as "
        f"one of {', '.join(FORMATS)}",
    )

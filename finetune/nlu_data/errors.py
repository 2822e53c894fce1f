"""Exceptions of the NLU training-data readers, and the UTF-8 line readers that raise them."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

logger = logging.getLogger(__name__)


class NluDataError(Exception):
    """Base class of every error raised while reading NLU training data."""


class DataFormatError(NluDataError, ValueError):
    """A training-data file is empty, malformed or disagrees with other files.

    ``str()`` reads ``FILE:LINE: what is wrong. What to do.``, or ``FILE: ...`` when the
    problem has no single line.

    Attributes:
        path: The file (or folder) that contains the problem.
        line: 1-based line number, or ``None`` when the problem is not on one line.
        message: What is wrong and what to do, without the location.
    """

    def __init__(self, path: str | Path, line: int | None, message: str) -> None:
        self.path = str(path)
        self.line = line
        self.message = message
        super().__init__(self.path, line, message)

    def __str__(self) -> str:
        location = self.path if self.line is None else f"{self.path}:{self.line}"
        return f"{location}: {self.message}"


class DataNotFoundError(NluDataError, FileNotFoundError):
    """A training-data file or a public dataset's folder does not exist."""

    def __init__(self, path: str | Path, message: str) -> None:
        self.path = str(path)
        self.message = message
        super().__init__(message)

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


def iter_text_lines(path: Path) -> Iterator[tuple[int, str]]:
    """Yield ``(line number, line)`` of a UTF-8 text file, 1-based, without line endings.

    A UTF-8 byte order mark at the start is dropped. The file is read line by line, so
    memory stays constant for files of any size.

    Raises:
        DataNotFoundError: If ``path`` does not exist or is a folder.
        DataFormatError: If a line is not valid UTF-8, naming the line and the byte.
    """
    if not path.is_file():
        problem = "is a folder, not a file" if path.is_dir() else "does not exist"
        raise DataNotFoundError(path, f"the file {problem}; check the path")

    with path.open("rb") as stream:
        for line_number, raw in enumerate(stream, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as error:
                raise DataFormatError(
                    path,
                    line_number,
                    f"the file is not valid UTF-8 (byte 0x{raw[error.start]:02x} at column "
                    f"{error.start + 1}). Re-save the file as UTF-8, for example with "
                    "'iconv -f GB18030 -t UTF-8' for Chinese text or '-f CP1252' for Western "
                    "European text",
                ) from error
            if line_number == 1:
                text = text.removeprefix("\ufeff")
            yield line_number, text.rstrip("\r\n")


def iter_aligned_lines(first: Path, second: Path) -> Iterator[tuple[int, str, str]]:
    """Yield ``(line number, line of first, line of second)`` of two line-aligned files.

    Used for ``seq.in`` with ``seq.out`` or ``label``. Blank lines at the end of either
    file are ignored.

    Raises:
        DataNotFoundError: If a file does not exist.
        DataFormatError: If a line is not UTF-8, or one file has more non-blank lines than
            the other (naming the first line without a partner).
    """
    second_lines = iter_text_lines(second)
    last_number = 0

    for number, first_line in iter_text_lines(first):
        last_number = number
        partner = next(second_lines, None)
        if partner is None:
            if first_line.strip():
                raise DataFormatError(
                    first,
                    number,
                    f"no matching line in {second} (it ends after line {number - 1}). "
                    "Both files need one line per utterance",
                )
            continue
        yield number, first_line, partner[1]

    for number, second_line in second_lines:
        if second_line.strip():
            raise DataFormatError(
                second,
                number,
                f"no matching line in {first} (it ends after line {last_number}). "
                "Both files need one line per utterance",
            )

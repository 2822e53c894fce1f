"""Opening input files, transparently decompressing ``.gz``, and short error reasons."""

from __future__ import annotations

import gzip
import logging
import zipfile
import zlib
from pathlib import Path
from typing import BinaryIO

from storage.importers.records import InvalidRecord, ProblemKind

logger = logging.getLogger(__name__)

UTF8_BOM = b"\xef\xbb\xbf"
_JSON_WHITESPACE = b" \t\r\n"

# Errors of reading a damaged file: a truncated or corrupt gzip or zip stream, or an
# operating-system error such as a missing permission.
READ_ERRORS = (OSError, EOFError, zlib.error, zipfile.BadZipFile)


def open_binary(path: Path) -> BinaryIO:
    """Open ``path`` for reading bytes, decompressing it on the fly if it ends in ``.gz``."""
    if path.suffix == ".gz":
        return gzip.open(path, "rb")
    return path.open("rb")


def read_first_byte(stream: BinaryIO, *, max_bytes: int = 4096) -> bytes:
    """Return the first byte of ``stream`` that is not JSON whitespace or a UTF-8 BOM.

    Reads at most ``max_bytes`` bytes and returns ``b""`` if they are all whitespace.
    The stream position is not restored, so open a fresh stream for parsing.
    """
    head = stream.read(max_bytes).removeprefix(UTF8_BOM).lstrip(_JSON_WHITESPACE)
    return head[:1]


def summarize_parse_error(error: Exception) -> str:
    """Return the first line of a JSON parser message.

    The C parser behind ijson appends the raw bytes around the error position, which
    may contain customer text, so only the first line is kept for reports and logs.
    """
    message = str(error).strip()
    if message.startswith("b'") or message.startswith('b"'):
        message = message[2:]
    first_line = message.replace("\\n", "\n").splitlines()[0] if message else ""
    return first_line.strip() or type(error).__name__


def describe_read_error(path: Path, location: str, error: Exception) -> InvalidRecord:
    """Return the invalid record for a file that failed to read at ``location``."""
    return InvalidRecord(
        path,
        location,
        ProblemKind.UNREADABLE_FILE,
        f"cannot read the file ({type(error).__name__}: {error}); the rest of the file was "
        "not read",
    )

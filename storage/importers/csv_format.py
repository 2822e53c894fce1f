"""Reader of CSV exports with one message per row.

Required header columns: ``conversation_id``, ``timestamp``, ``role``, ``text``.
Optional: ``channel``, ``language`` (the first non-empty value of a conversation wins).
Other columns are ignored. Rows of different conversations may be interleaved; a
conversation's turns are ordered by timestamp, then by file order.

Because a conversation is complete only at the end of the file, this reader keeps every
row of the file in memory (about the file's size) before it yields anything. Split very
large exports, or convert them to JSONL, which streams.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from storage.importers.files import describe_read_error
from storage.importers.records import (
    MAX_CHANNEL_CHARS,
    MAX_EXTERNAL_ID_CHARS,
    MAX_LANGUAGE_CHARS,
    DialogRecord,
    InvalidRecord,
    ProblemKind,
    RecordValidationError,
    TurnRecord,
    check_identifier,
    check_text,
    parse_role,
    parse_timestamp,
)

logger = logging.getLogger(__name__)

REQUIRED_COLUMNS = ("conversation_id", "timestamp", "role", "text")
OPTIONAL_COLUMNS = ("channel", "language")


@dataclass
class _PendingConversation:
    turns: list[tuple[datetime, int, TurnRecord]] = field(default_factory=list)
    channel: str | None = None
    language: str | None = None
    problem: InvalidRecord | None = None


def read_csv_dialogs(path: Path) -> Iterator[DialogRecord | InvalidRecord]:
    """Yield the conversations of a CSV file in the order of their first row.

    A conversation with one invalid row is yielded as a single :class:`InvalidRecord`
    that names the first bad row, and none of its rows are imported.

    Yields:
        A :class:`DialogRecord` per valid conversation and an :class:`InvalidRecord` per
        invalid conversation, or one :class:`InvalidRecord` for the whole file when its
        header is missing or unreadable.
    """
    try:
        conversations, file_problem = _read_file(path)
    except OSError as error:
        yield describe_read_error(path, "file", error)
        return

    for external_id, pending in conversations.items():
        if pending.problem is not None:
            yield pending.problem
            continue
        pending.turns.sort(key=lambda item: (item[0], item[1]))
        yield DialogRecord(
            external_id=external_id,
            turns=tuple(turn for _, _, turn in pending.turns),
            channel=pending.channel or "chat",
            language=pending.language,
            source=f"csv:{path.name}",
            created_at=pending.turns[0][0],
        )
    if file_problem is not None:
        yield file_problem


def _read_file(path: Path) -> tuple[dict[str, _PendingConversation], InvalidRecord | None]:
    # surrogateescape keeps non-UTF-8 bytes as lone surrogates, so that the row that
    # contains them is reported instead of the whole file failing to decode.
    with path.open(encoding="utf-8-sig", errors="surrogateescape", newline="") as stream:
        reader = csv.DictReader(stream)
        header_problem = _check_header(path, reader)
        if header_problem is not None:
            return {}, header_problem
        return _collect_rows(path, reader)


def _check_header(path: Path, reader: csv.DictReader) -> InvalidRecord | None:
    try:
        header = reader.fieldnames
    except (csv.Error, UnicodeError) as error:
        return InvalidRecord(path, "line 1", ProblemKind.INVALID_CSV, f"unreadable header: {error}")
    if not header:
        return InvalidRecord(path, "file", ProblemKind.EMPTY_FILE, "file is empty")
    columns = {name.strip().lower() for name in header if name}
    missing = [name for name in REQUIRED_COLUMNS if name not in columns]
    if missing:
        return InvalidRecord(
            path,
            "line 1",
            ProblemKind.MISSING_FIELD,
            f"header lacks column(s) {', '.join(missing)}: the header must contain "
            f"{', '.join(REQUIRED_COLUMNS)} (optional: {', '.join(OPTIONAL_COLUMNS)})",
        )
    # Match columns case-insensitively and ignore surrounding spaces.
    reader.fieldnames = [name.strip().lower() if name else name for name in header]
    return None


def _collect_rows(
    path: Path, reader: csv.DictReader
) -> tuple[dict[str, _PendingConversation], InvalidRecord | None]:
    """Group rows by conversation; a CSV syntax error ends reading with a file problem."""
    conversations: dict[str, _PendingConversation] = {}
    row_index = 0
    start_line = 2
    try:
        for row in reader:
            row_index += 1
            _add_row(path, conversations, row, row_index, start_line)
            start_line = reader.line_num + 1
    except csv.Error as error:
        return conversations, InvalidRecord(
            path,
            f"line {reader.line_num}",
            ProblemKind.INVALID_CSV,
            f"invalid CSV: {error}; the rest of the file was not read",
        )
    return conversations, None


def _add_row(
    path: Path,
    conversations: dict[str, _PendingConversation],
    row: dict[str, str | None],
    row_index: int,
    line: int,
) -> None:
    try:
        external_id = check_identifier(
            row.get("conversation_id"),
            field_name="conversation_id",
            max_chars=MAX_EXTERNAL_ID_CHARS,
        )
    except RecordValidationError as error:
        # Without an id the row belongs to no conversation, so it is reported on its own.
        conversations[f"\x00row-{row_index}"] = _PendingConversation(
            problem=InvalidRecord(path, f"line {line}", error.kind, error.reason)
        )
        return

    pending = conversations.setdefault(external_id, _PendingConversation())
    if pending.problem is not None:
        return
    try:
        timestamp = parse_timestamp(row.get("timestamp"), field_name="timestamp")
        turn = TurnRecord(
            role=parse_role(row.get("role")),
            text=check_text(row.get("text")),
            created_at=timestamp,
        )
        pending.channel = pending.channel or _optional(row, "channel", MAX_CHANNEL_CHARS)
        pending.language = pending.language or _optional(row, "language", MAX_LANGUAGE_CHARS)
    except RecordValidationError as error:
        pending.problem = InvalidRecord(
            path, f"line {line} (conversation {external_id})", error.kind, error.reason
        )
        return
    pending.turns.append((timestamp, row_index, turn))


def _optional(row: dict[str, str | None], column: str, max_chars: int) -> str | None:
    value = row.get(column)
    if value is None or not value.strip():
        return None
    return check_identifier(value, field_name=column, max_chars=max_chars)

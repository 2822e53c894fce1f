"""Reader of the canonical JSONL dialog format: one conversation per line.

The format is specified in docs/formats.md. Each line is read, decoded and checked on
its own, so a file of any size streams in constant memory and one bad line does not
hide the lines after it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from storage.importers.files import READ_ERRORS, UTF8_BOM, describe_read_error, open_binary
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


def read_jsonl_dialogs(path: Path) -> Iterator[DialogRecord | InvalidRecord]:
    """Yield the conversations of a JSONL file (``.jsonl``, ``.ndjson``, or gzipped).

    Blank lines are ignored. Keys that the format does not define are ignored too.

    Yields:
        A :class:`DialogRecord` per valid line and an :class:`InvalidRecord` per invalid
        one, in file order.
    """
    line_number = 0
    try:
        with open_binary(path) as stream:
            for line_number, raw_line in enumerate(stream, start=1):
                if line_number == 1:
                    raw_line = raw_line.removeprefix(UTF8_BOM)
                if not raw_line.strip():
                    continue
                try:
                    yield _parse_line(raw_line, source=f"jsonl:{path.name}")
                except RecordValidationError as error:
                    yield InvalidRecord(path, f"line {line_number}", error.kind, error.reason)
    except READ_ERRORS as error:
        yield describe_read_error(path, f"line {line_number + 1}", error)


def _parse_line(raw_line: bytes, *, source: str) -> DialogRecord:
    try:
        text = raw_line.decode("utf-8")
    except UnicodeDecodeError as error:
        raise RecordValidationError(
            ProblemKind.INVALID_ENCODING, f"line is not valid UTF-8 (byte {error.start})"
        ) from error
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        # The decoder's own "line N column M" counts within this record, so only the
        # character position is reported next to the file's line number.
        raise RecordValidationError(
            ProblemKind.INVALID_JSON, f"invalid JSON at character {error.pos + 1}: {error.msg}"
        ) from error
    if not isinstance(data, dict):
        raise RecordValidationError(
            ProblemKind.INVALID_VALUE, f"line must be a JSON object, got {type(data).__name__}"
        )
    return parse_conversation(data, source=source)


def parse_conversation(data: dict[str, Any], *, source: str | None) -> DialogRecord:
    """Check one conversation object of the canonical format and convert it.

    Raises:
        RecordValidationError: If a required field is missing or a value is invalid.
    """
    external_id = check_identifier(data.get("id"), field_name="id", max_chars=MAX_EXTERNAL_ID_CHARS)
    turns = data.get("turns")
    if turns is None:
        raise RecordValidationError(ProblemKind.MISSING_FIELD, "missing turns")
    if not isinstance(turns, list) or not turns:
        raise RecordValidationError(ProblemKind.INVALID_VALUE, "turns must be a non-empty list")

    channel = data.get("channel")
    language = data.get("language")
    created_at = data.get("created_at")
    rating = data.get("rating")
    return DialogRecord(
        external_id=external_id,
        turns=tuple(_parse_turn(turn, index) for index, turn in enumerate(turns, start=1)),
        channel=(
            "chat"
            if channel is None
            else check_identifier(channel, field_name="channel", max_chars=MAX_CHANNEL_CHARS)
        ),
        language=(
            None
            if language is None
            else check_identifier(language, field_name="language", max_chars=MAX_LANGUAGE_CHARS)
        ),
        source=source,
        created_at=None
        if created_at is None
        else parse_timestamp(created_at, field_name="created_at"),
        rating=None if rating is None else _check_rating(rating),
    )


def _check_rating(value: object) -> int:
    # bool is a subclass of int, and true/false is no rating.
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 5:
        raise RecordValidationError(
            ProblemKind.INVALID_VALUE, f"rating must be a whole number from 1 to 5, got {value!r}"
        )
    return value


def _parse_turn(turn: object, index: int) -> TurnRecord:
    name = f"turns[{index}]"
    if not isinstance(turn, dict):
        raise RecordValidationError(
            ProblemKind.INVALID_VALUE, f"{name} must be an object, got {type(turn).__name__}"
        )
    if "role" not in turn:
        raise RecordValidationError(ProblemKind.MISSING_FIELD, f"missing {name}.role")
    metadata = turn.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise RecordValidationError(
            ProblemKind.INVALID_VALUE,
            f"{name}.metadata must be an object, got {type(metadata).__name__}",
        )
    created_at = turn.get("created_at")
    return TurnRecord(
        role=parse_role(turn["role"], field_name=f"{name}.role"),
        text=check_text(turn.get("text"), field_name=f"{name}.text"),
        created_at=(
            None
            if created_at is None
            else parse_timestamp(created_at, field_name=f"{name}.created_at")
        ),
        meta=metadata or {},
    )

"""Records that the dialog readers produce, and the checks every reader applies.

A reader turns one input file into a stream of :class:`DialogRecord` (a valid
conversation) and :class:`InvalidRecord` (a conversation or file that failed a check).
Readers do not write to the database. They report bad data and unreadable files as
invalid records instead of raising, and the importer decides whether an invalid record
stops the import.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from storage.errors import StorageError
from storage.models import Role

# Column sizes of storage.models.Conversation. SQLite does not enforce them but
# PostgreSQL rejects longer values, so the readers check them up front.
MAX_EXTERNAL_ID_CHARS = 255
MAX_CHANNEL_CHARS = 64
MAX_LANGUAGE_CHARS = 16


class ProblemKind(enum.StrEnum):
    """Category of an invalid record, used to count skipped records by cause."""

    INVALID_JSON = "invalid_json"
    INVALID_CSV = "invalid_csv"
    INVALID_ENCODING = "invalid_encoding"
    MISSING_FIELD = "missing_field"
    INVALID_VALUE = "invalid_value"
    UNKNOWN_ROLE = "unknown_role"
    EMPTY_TEXT = "empty_text"
    EMPTY_FILE = "empty_file"
    UNKNOWN_FORMAT = "unknown_format"
    UNREADABLE_FILE = "unreadable_file"


@dataclass(frozen=True)
class TurnRecord:
    """One message of a conversation read from a file."""

    role: Role
    text: str
    created_at: datetime | None = None
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DialogRecord:
    """One valid conversation read from a file, in turn order."""

    external_id: str
    turns: tuple[TurnRecord, ...]
    channel: str = "chat"
    language: str | None = None
    source: str | None = None
    created_at: datetime | None = None
    rating: int | None = None


@dataclass(frozen=True)
class InvalidRecord:
    """A conversation or a whole file that failed a check.

    Attributes:
        path: File the record came from.
        location: Where in the file, for example ``"line 7"``, ``"dialogue 12 (id 1_00011)"``
            or ``"file"`` when the whole file is unusable.
        kind: Category of the problem.
        reason: What is wrong, without quoting customer text.
    """

    path: Path
    location: str
    kind: ProblemKind
    reason: str

    def __str__(self) -> str:
        return f"{self.path}, {self.location}: {self.reason}"


class DialogFormatError(StorageError):
    """An input file of a dialog import contains a malformed record."""

    def __init__(self, problem: InvalidRecord) -> None:
        super().__init__(
            f"{problem}. Fix the record, or import with skip_invalid=True to skip invalid "
            "records and count them in the report"
        )
        self.problem = problem


class RecordValidationError(ValueError):
    """A field failed a check; readers turn it into an :class:`InvalidRecord`."""

    def __init__(self, kind: ProblemKind, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


def parse_role(value: object, *, field_name: str = "role") -> Role:
    """Return the :class:`Role` named by ``value`` (customer, agent, bot or system).

    Raises:
        RecordValidationError: If ``value`` is not one of the four role names.
    """
    if not isinstance(value, str):
        raise RecordValidationError(
            ProblemKind.UNKNOWN_ROLE, f"{field_name} must be a string, got {type(value).__name__}"
        )
    try:
        return Role(value.strip().lower())
    except ValueError as error:
        accepted = ", ".join(role.value for role in Role)
        raise RecordValidationError(
            ProblemKind.UNKNOWN_ROLE, f"unknown {field_name} {value!r}: expected one of {accepted}"
        ) from error


def parse_timestamp(value: object, *, field_name: str) -> datetime:
    """Parse an ISO-8601 timestamp and convert it to UTC.

    A value without a UTC offset is taken as UTC. The result is always in UTC because
    SQLite stores timestamps without their offset.

    Raises:
        RecordValidationError: If ``value`` is not an ISO-8601 string.
    """
    if not isinstance(value, str) or not value.strip():
        raise RecordValidationError(
            ProblemKind.INVALID_VALUE, f"{field_name} must be an ISO-8601 string, got {value!r}"
        )
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError as error:
        raise RecordValidationError(
            ProblemKind.INVALID_VALUE,
            f"{field_name} {value!r} is not an ISO-8601 timestamp such as 2024-05-01T09:30:00Z",
        ) from error
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def check_text(value: object, *, field_name: str = "text") -> str:
    """Return ``value`` if it is non-blank text that both SQLite and PostgreSQL can store.

    Raises:
        RecordValidationError: If ``value`` is missing, not a string, blank, contains a
            NUL character (PostgreSQL text columns reject it) or an unpaired surrogate.
    """
    if value is None:
        raise RecordValidationError(ProblemKind.MISSING_FIELD, f"missing {field_name}")
    if not isinstance(value, str):
        raise RecordValidationError(
            ProblemKind.INVALID_VALUE, f"{field_name} must be a string, got {type(value).__name__}"
        )
    if not value.strip():
        raise RecordValidationError(ProblemKind.EMPTY_TEXT, f"{field_name} is empty")
    _check_storable(value, field_name=field_name)
    return value


def check_identifier(value: object, *, field_name: str, max_chars: int) -> str:
    """Return ``value`` as a stripped string of at most ``max_chars`` characters.

    Integers are accepted and converted, because exported ids are often numeric.

    Raises:
        RecordValidationError: If ``value`` is missing, blank, too long or not a string
            or integer.
    """
    if value is None:
        raise RecordValidationError(ProblemKind.MISSING_FIELD, f"missing {field_name}")
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise RecordValidationError(
            ProblemKind.INVALID_VALUE, f"{field_name} must be a string, got {type(value).__name__}"
        )
    value = value.strip()
    if not value:
        raise RecordValidationError(ProblemKind.MISSING_FIELD, f"{field_name} is empty")
    if len(value) > max_chars:
        raise RecordValidationError(
            ProblemKind.INVALID_VALUE,
            f"{field_name} has {len(value)} characters; the maximum is {max_chars}",
        )
    _check_storable(value, field_name=field_name)
    return value


def _check_storable(value: str, *, field_name: str) -> None:
    if "\x00" in value:
        raise RecordValidationError(
            ProblemKind.INVALID_VALUE, f"{field_name} contains a NUL character"
        )
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as error:
        # Lone surrogates come from "\ud800"-style JSON escapes or from bytes that
        # were decoded with errors="surrogateescape" because they are not UTF-8.
        raise RecordValidationError(
            ProblemKind.INVALID_ENCODING,
            f"{field_name} is not valid UTF-8 (character {error.start})",
        ) from error

"""Import of historical support dialogs from files into the conversations tables.

Example:
    >>> report = import_dialogs(SessionLocal, ["exports/2024.jsonl"], skip_invalid=True)
    >>> report.conversations_added, report.skipped_count
    (1200, 3)
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Iterable
from contextlib import closing
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import insert
from sqlalchemy.orm import Session, sessionmaker
from tqdm import tqdm

from storage import repository
from storage.importers import (
    DialogFormatError,
    DialogRecord,
    InvalidRecord,
    read_dialogs,
    resolve_inputs,
)
from storage.models import Conversation, ConversationStatus, Message, utc_now

logger = logging.getLogger(__name__)

# The report keeps the details of this many skipped records; counts cover all of them.
MAX_REPORTED_PROBLEMS = 1000
# Skipped records logged one by one before the importer only counts them.
MAX_LOGGED_PROBLEMS = 20

__all__ = ["DialogFormatError", "ImportReport", "import_dialogs"]


@dataclass
class ImportReport:
    """Outcome of one :func:`import_dialogs` call.

    Attributes:
        conversations_added: Conversations written by this call.
        messages_added: Messages written by this call.
        conversations_present: Valid conversations not written because their external id
            was already stored (or appeared earlier in the same input).
        skipped_count: Invalid records skipped (only with ``skip_invalid=True``).
        skipped: Details of the first ``MAX_REPORTED_PROBLEMS`` skipped records.
        skipped_by_kind: Number of skipped records per :class:`ProblemKind` value.
        files_read: Input files opened.
        seconds: Wall-clock duration of the call.
    """

    conversations_added: int = 0
    messages_added: int = 0
    conversations_present: int = 0
    skipped_count: int = 0
    skipped: list[InvalidRecord] = field(default_factory=list)
    skipped_by_kind: Counter[str] = field(default_factory=Counter)
    files_read: int = 0
    seconds: float = 0.0

    def summary(self) -> str:
        """Return a few human-readable lines for the command line."""
        lines = [
            f"Imported conversations: {self.conversations_added} "
            f"({self.messages_added} messages) in {self.seconds:.1f} s; files read: "
            f"{self.files_read}; already stored: {self.conversations_present}."
        ]
        if self.skipped_count:
            kinds = ", ".join(
                f"{kind}: {count}" for kind, count in self.skipped_by_kind.most_common()
            )
            lines.append(f"Skipped {self.skipped_count} invalid records ({kinds}):")
            lines.extend(f"  {problem}" for problem in self.skipped[:20])
            if self.skipped_count > 20:
                lines.append(f"  ... and {self.skipped_count - 20} more")
        return "\n".join(lines)

    def add_skipped(self, problem: InvalidRecord) -> None:
        """Count a skipped record and keep its details while there is room."""
        self.skipped_count += 1
        self.skipped_by_kind[problem.kind.value] += 1
        if len(self.skipped) < MAX_REPORTED_PROBLEMS:
            self.skipped.append(problem)


def import_dialogs(
    session_factory: sessionmaker[Session],
    paths: Iterable[Path | str],
    *,
    format: str | None = None,
    skip_invalid: bool = False,
    batch_size: int = 200,
    limit: int | None = None,
    show_progress: bool = True,
) -> ImportReport:
    """Import conversations from dialog files, skipping those already stored.

    Files are read one record at a time (CSV files are the exception: each is held in
    memory while its rows are grouped) and written in transactions of ``batch_size``
    conversations, each conversation with all its messages. Conversations are matched
    by external id, so importing the same file again adds nothing. Imported
    conversations get the status ``closed``; messages without a timestamp get the
    conversation's, and conversations without one get the import time.

    An invalid record stops the import with :class:`DialogFormatError` unless
    ``skip_invalid`` is set. No conversation is ever written in part, but the valid
    conversations that precede the invalid record in the input are committed before the
    error is raised. Fix the record and import again: what is stored is skipped as
    already present.

    NOTE: Two imports of overlapping files at the same time can fail with an
    ``IntegrityError`` on the unique external id. Run such imports one after another.

    Args:
        session_factory: Factory of sessions on a migrated database.
        paths: Files, or folders searched recursively for dialog files.
        format: "jsonl", "csv", "sgd" or "crosswoz" for every file, or None to detect
            each file's format from its name and content.
        skip_invalid: Skip invalid records and count them in the report instead of
            raising.
        batch_size: Conversations per transaction (at least 1). Larger batches are
            faster and hold more rows in memory.
        limit: Stop after this many valid conversations (new or already present) in this
            call, across all paths; None reads everything.
        show_progress: Show a tqdm progress bar on stderr.

    Returns:
        The counts of added, already present and skipped conversations.

    Raises:
        FileNotFoundError: If a path does not exist.
        ValueError: If ``format``, ``batch_size`` or ``limit`` is invalid, or a folder
            contains no dialog files.
        DialogFormatError: If a record is invalid and ``skip_invalid`` is False.
    """
    _validate_arguments(batch_size, limit)
    inputs = resolve_inputs(paths, format)
    writer = _BatchWriter(session_factory, batch_size)
    started = time.perf_counter()
    logger.info("Importing dialogs files=%d format=%s limit=%s", len(inputs), format, limit)

    conversations_read = 0
    with tqdm(
        total=limit, unit="conv", desc="Importing dialogs", disable=not show_progress
    ) as progress:
        for source in inputs:
            if limit is not None and conversations_read >= limit:
                break
            writer.report.files_read += 1
            with closing(read_dialogs(source)) as records:
                for record in records:
                    if isinstance(record, InvalidRecord):
                        _handle_invalid(writer, record, skip_invalid)
                        continue
                    writer.add(record)
                    conversations_read += 1
                    progress.update(1)
                    if limit is not None and conversations_read >= limit:
                        break
        writer.flush()

    report = writer.report
    report.seconds = time.perf_counter() - started
    _log_summary(report)
    return report


def _validate_arguments(batch_size: int, limit: int | None) -> None:
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be at least 1 or None for no limit, got {limit}")


def _handle_invalid(writer: _BatchWriter, problem: InvalidRecord, skip_invalid: bool) -> None:
    if not skip_invalid:
        writer.flush()
        raise DialogFormatError(problem)
    writer.report.add_skipped(problem)
    if writer.report.skipped_count <= MAX_LOGGED_PROBLEMS:
        logger.warning("Skipping invalid dialog record: %s", problem)
    if writer.report.skipped_count == MAX_LOGGED_PROBLEMS:
        logger.warning("Further skipped records are counted in the report but not logged")


def _log_summary(report: ImportReport) -> None:
    logger.info(
        "Imported dialogs conversations_added=%d messages_added=%d already_present=%d "
        "skipped=%d files=%d duration_s=%.1f",
        report.conversations_added,
        report.messages_added,
        report.conversations_present,
        report.skipped_count,
        report.files_read,
        report.seconds,
    )


class _BatchWriter:
    """Collects records and writes each batch in one transaction."""

    def __init__(self, session_factory: sessionmaker[Session], batch_size: int) -> None:
        self.session_factory = session_factory
        self.batch_size = batch_size
        self.report = ImportReport()
        self.pending: list[DialogRecord] = []

    def add(self, record: DialogRecord) -> None:
        self.pending.append(record)
        if len(self.pending) >= self.batch_size:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        batch, self.pending = self.pending, []
        now = utc_now()
        with self.session_factory.begin() as session:
            new_records = self._drop_present(session, batch)
            message_count = _insert_conversations(session, new_records, now)
        self.report.conversations_added += len(new_records)
        self.report.messages_added += message_count

    def _drop_present(self, session: Session, batch: list[DialogRecord]) -> list[DialogRecord]:
        seen = repository.get_existing_external_ids(session, (r.external_id for r in batch))
        new_records = []
        for record in batch:
            if record.external_id in seen:
                self.report.conversations_present += 1
                continue
            seen.add(record.external_id)
            new_records.append(record)
        return new_records


def _insert_conversations(session: Session, records: list[DialogRecord], now: datetime) -> int:
    """Bulk-insert conversations and their messages; return the number of messages."""
    if not records:
        return 0
    conversation_rows = [_conversation_row(record, now) for record in records]
    conversation_ids = session.scalars(
        insert(Conversation).returning(Conversation.id, sort_by_parameter_order=True),
        conversation_rows,
    ).all()
    message_rows = [
        message_row
        for conversation_id, conversation_row, record in zip(
            conversation_ids, conversation_rows, records, strict=True
        )
        for message_row in _message_rows(conversation_id, record, conversation_row["created_at"])
    ]
    session.execute(insert(Message), message_rows)
    return len(message_rows)


def _conversation_row(record: DialogRecord, now: datetime) -> dict[str, Any]:
    turn_times = [turn.created_at for turn in record.turns if turn.created_at is not None]
    created_at = record.created_at or (min(turn_times) if turn_times else now)
    return {
        "external_id": record.external_id,
        "channel": record.channel,
        "status": ConversationStatus.CLOSED,
        "language": record.language,
        "source": record.source[:255] if record.source else None,
        "rating": record.rating,
        "created_at": created_at,
        "updated_at": max(turn_times) if turn_times else created_at,
    }


def _message_rows(
    conversation_id: int, record: DialogRecord, fallback_time: datetime
) -> list[dict[str, Any]]:
    return [
        {
            "conversation_id": conversation_id,
            "seq": seq,
            "role": turn.role,
            "text": turn.text,
            "created_at": turn.created_at or fallback_time,
            "meta": turn.meta,
        }
        for seq, turn in enumerate(record.turns, start=1)
    ]

"""Reader of CrossWOZ dialog files (Chinese, Beijing tourism).

Accepted inputs: the released ``train.json.zip``, ``val.json.zip`` and ``test.json.zip``
(every ``.json`` member is read, in name order), or an extracted ``.json`` file, plain or
gzipped. Each contains one JSON object that maps a dialog id to
``{messages: [{role: usr|sys, content, dialog_act, ...}], type, goal, ...}``. The object
is parsed one dialog at a time with ijson, so memory stays at about one dialog.

Mapping: ``usr`` messages become customer messages and ``sys`` messages agent messages,
in Simplified Chinese (language ``zh-CN``). Message metadata keeps the dialog acts as
``[intent, domain, slot, value]`` lists, in that order as the files store them. The
external id is ``crosswoz:<dialog id>``; the ids are unique across the three splits.
"""

from __future__ import annotations

import logging
import zipfile
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import BinaryIO

import ijson

from storage.importers.files import (
    READ_ERRORS,
    describe_read_error,
    open_binary,
    read_first_byte,
    summarize_parse_error,
)
from storage.importers.records import (
    MAX_EXTERNAL_ID_CHARS,
    DialogRecord,
    InvalidRecord,
    ProblemKind,
    RecordValidationError,
    TurnRecord,
    check_identifier,
    check_text,
)
from storage.models import Role

logger = logging.getLogger(__name__)

_ROLES = {"usr": Role.CUSTOMER, "sys": Role.AGENT}


def read_crosswoz_dialogs(path: Path) -> Iterator[DialogRecord | InvalidRecord]:
    """Yield the dialogs of a CrossWOZ ``.json.zip`` or ``.json`` file in file order.

    Yields:
        A :class:`DialogRecord` per valid dialog and an :class:`InvalidRecord` per
        invalid one. Invalid JSON ends the file (or zip member) with one
        :class:`InvalidRecord`, because the parser cannot resynchronise after it.
    """
    try:
        members = _list_members(path)
    except READ_ERRORS as error:
        yield describe_read_error(path, "file", error)
        return
    if not members:
        yield InvalidRecord(path, "file", ProblemKind.EMPTY_FILE, "zip file has no .json member")
        return

    for member in members:
        yield from _read_member(path, member)


def _list_members(path: Path) -> list[str | None]:
    """Return the ``.json`` member names of a zip file, or ``[None]`` for a plain file."""
    if path.suffix != ".zip" and not zipfile.is_zipfile(path):
        return [None]
    with zipfile.ZipFile(path) as archive:
        return sorted(
            name
            for name in archive.namelist()
            if name.endswith(".json") and not name.startswith("__MACOSX/")
        )


def _open_member(stack: ExitStack, path: Path, member: str | None) -> BinaryIO:
    if member is None:
        return stack.enter_context(open_binary(path))
    archive = stack.enter_context(zipfile.ZipFile(path))
    return stack.enter_context(archive.open(member))


def _read_member(path: Path, member: str | None) -> Iterator[DialogRecord | InvalidRecord]:
    prefix = f"{member}: " if member else ""
    try:
        with ExitStack() as stack:
            first = read_first_byte(_open_member(stack, path, member))
    except READ_ERRORS as error:
        yield describe_read_error(path, f"{prefix}file", error)
        return
    if first != b"{":
        kind = ProblemKind.EMPTY_FILE if not first else ProblemKind.INVALID_VALUE
        reason = "file is empty" if not first else "a CrossWOZ file must contain a JSON object"
        yield InvalidRecord(path, f"{prefix}file", kind, reason)
        return

    index = 0
    try:
        with ExitStack() as stack:
            pairs = ijson.kvitems(_open_member(stack, path, member), "", use_float=True)
            for index, (dialog_id, dialog) in enumerate(pairs, start=1):
                location = f"{prefix}dialog {index} (id {dialog_id})"
                yield _read_dialog(path, location, dialog_id, dialog)
    except ijson.JSONError as error:
        reason = f"invalid JSON: {summarize_parse_error(error)}; the rest of the file was not read"
        yield InvalidRecord(path, f"{prefix}dialog {index + 1}", ProblemKind.INVALID_JSON, reason)
    except READ_ERRORS as error:
        yield describe_read_error(path, f"{prefix}dialog {index + 1}", error)


def _read_dialog(
    path: Path, location: str, dialog_id: str, dialog: object
) -> DialogRecord | InvalidRecord:
    try:
        if not isinstance(dialog, dict):
            raise RecordValidationError(ProblemKind.INVALID_VALUE, "dialog must be an object")
        messages = dialog.get("messages")
        if not isinstance(messages, list) or not messages:
            raise RecordValidationError(
                ProblemKind.MISSING_FIELD, "messages must be a non-empty list"
            )
        return DialogRecord(
            external_id=check_identifier(
                f"crosswoz:{dialog_id}", field_name="dialog id", max_chars=MAX_EXTERNAL_ID_CHARS
            ),
            turns=tuple(_read_message(message, n) for n, message in enumerate(messages, start=1)),
            channel="chat",
            language="zh-CN",
            source=f"crosswoz:{path.name}",
        )
    except RecordValidationError as error:
        return InvalidRecord(path, location, error.kind, error.reason)


def _read_message(message: object, number: int) -> TurnRecord:
    name = f"messages[{number}]"
    if not isinstance(message, dict):
        raise RecordValidationError(ProblemKind.INVALID_VALUE, f"{name} must be an object")
    role = message.get("role")
    if role not in _ROLES:
        raise RecordValidationError(
            ProblemKind.UNKNOWN_ROLE, f"unknown {name}.role {role!r}: expected usr or sys"
        )
    acts = message.get("dialog_act") or []
    return TurnRecord(
        role=_ROLES[role],
        text=check_text(message.get("content"), field_name=f"{name}.content"),
        meta={"dialog_acts": [list(act) for act in acts if isinstance(act, list)]},
    )

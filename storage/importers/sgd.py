"""Reader of Schema-Guided Dialogue (SGD, DSTC8) dialogue files.

A file such as ``train/dialogues_001.json`` (or the same file gzipped) contains a JSON list
of ``{dialogue_id, services, turns: [{speaker, utterance, frames}]}``. The list is parsed
one dialogue at a time with ijson, so memory stays at about one dialogue. ``schema.json``
files describe services, not dialogues, and are not read by this module.

Mapping: USER turns become customer messages and SYSTEM turns agent messages. Message
metadata keeps, per frame, the service, the active intent (user turns only), the slot
spans with their text and the dialogue acts. Dialogue ids repeat across the train, dev
and test splits (``1_00000`` exists in each), so the external id contains the split:
``sgd:<split>/<dialogue_id>`` when the file's folder is named train, dev or test, and
``sgd:<dialogue_id>`` otherwise.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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

SPLITS = ("train", "dev", "test")
_SPEAKER_ROLES = {"USER": Role.CUSTOMER, "SYSTEM": Role.AGENT}


def read_sgd_dialogs(path: Path) -> Iterator[DialogRecord | InvalidRecord]:
    """Yield the dialogues of one SGD dialogue file in file order.

    Yields:
        A :class:`DialogRecord` per valid dialogue and an :class:`InvalidRecord` per
        invalid one. Invalid JSON ends the file with one :class:`InvalidRecord`, because
        the parser cannot find the next dialogue after a syntax error.
    """
    try:
        with open_binary(path) as stream:
            first = read_first_byte(stream)
    except READ_ERRORS as error:
        yield describe_read_error(path, "file", error)
        return
    if first != b"[":
        yield _shape_problem(path, first)
        return

    id_prefix = f"sgd:{path.parent.name}/" if path.parent.name in SPLITS else "sgd:"
    index = 0
    try:
        with open_binary(path) as stream:
            dialogues = ijson.items(stream, "item", use_float=True)
            for index, dialogue in enumerate(dialogues, start=1):
                yield _read_dialogue(path, dialogue, index, id_prefix)
    except ijson.JSONError as error:
        yield InvalidRecord(
            path,
            f"dialogue {index + 1}",
            ProblemKind.INVALID_JSON,
            f"invalid JSON: {summarize_parse_error(error)}; the rest of the file was not read",
        )
    except READ_ERRORS as error:
        yield describe_read_error(path, f"dialogue {index + 1}", error)


def _shape_problem(path: Path, first: bytes) -> InvalidRecord:
    if not first:
        return InvalidRecord(path, "file", ProblemKind.EMPTY_FILE, "file is empty")
    return InvalidRecord(
        path,
        "file",
        ProblemKind.INVALID_VALUE,
        "an SGD dialogue file must contain a JSON list of dialogues",
    )


def _read_dialogue(
    path: Path, dialogue: object, index: int, id_prefix: str
) -> DialogRecord | InvalidRecord:
    dialogue_id = dialogue.get("dialogue_id") if isinstance(dialogue, dict) else None
    location = f"dialogue {index}" + (
        f" (id {dialogue_id})" if isinstance(dialogue_id, str) else ""
    )
    try:
        if not isinstance(dialogue, dict):
            raise RecordValidationError(ProblemKind.INVALID_VALUE, "dialogue must be an object")
        external_id = check_identifier(
            None if dialogue_id is None else f"{id_prefix}{dialogue_id}",
            field_name="dialogue_id",
            max_chars=MAX_EXTERNAL_ID_CHARS,
        )
        turns = dialogue.get("turns")
        if not isinstance(turns, list) or not turns:
            raise RecordValidationError(ProblemKind.MISSING_FIELD, "turns must be a non-empty list")
        return DialogRecord(
            external_id=external_id,
            turns=tuple(_read_turn(turn, number) for number, turn in enumerate(turns, start=1)),
            channel="chat",
            language="en",
            source=f"sgd:{path.name}",
        )
    except RecordValidationError as error:
        return InvalidRecord(path, location, error.kind, error.reason)


def _read_turn(turn: object, number: int) -> TurnRecord:
    name = f"turns[{number}]"
    if not isinstance(turn, dict):
        raise RecordValidationError(ProblemKind.INVALID_VALUE, f"{name} must be an object")
    speaker = turn.get("speaker")
    if speaker not in _SPEAKER_ROLES:
        raise RecordValidationError(
            ProblemKind.UNKNOWN_ROLE, f"unknown {name}.speaker {speaker!r}: expected USER or SYSTEM"
        )
    text = check_text(turn.get("utterance"), field_name=f"{name}.utterance")
    frames = turn.get("frames") or []
    return TurnRecord(
        role=_SPEAKER_ROLES[speaker],
        text=text,
        meta={
            "frames": [_summarize_frame(frame, text) for frame in frames if isinstance(frame, dict)]
        },
    )


def _summarize_frame(frame: dict[str, Any], text: str) -> dict[str, Any]:
    """Keep what NLU training needs from a frame; service calls and results are dropped."""
    summary: dict[str, Any] = {"service": frame.get("service")}
    state = frame.get("state")
    if isinstance(state, dict):
        summary["active_intent"] = state.get("active_intent")
    summary["slots"] = [
        {
            "slot": span["slot"],
            "start": span["start"],
            "end": span["exclusive_end"],
            "value": text[span["start"] : span["exclusive_end"]],
        }
        for span in frame.get("slots") or []
        if _is_span(span, len(text))
    ]
    summary["actions"] = [
        {"act": action.get("act"), "slot": action.get("slot"), "values": action.get("values", [])}
        for action in frame.get("actions") or []
        if isinstance(action, dict)
    ]
    return summary


def _is_span(span: object, text_length: int) -> bool:
    if not isinstance(span, dict) or not isinstance(span.get("slot"), str):
        return False
    start, end = span.get("start"), span.get("exclusive_end")
    return isinstance(start, int) and isinstance(end, int) and 0 <= start < end <= text_length

"""Held-out dialogs: stored imported conversations that fine-tuning never trains on.

A conversation is held out when :func:`finetune.splits.conversation_split` puts its
external id in the "test" split, with the same fractions and seed as
``supportbot finetune``. Only closed conversations with at least one customer and one
agent message qualify, which in practice means imported ones.

Example:
    >>> selection = HeldOutSelection(language="en", limit=20)
    >>> dialogs = select_held_out_dialogs(session_factory, selection)
    >>> dialogs[0].turns[0].reference
    'Which city should I search in?'
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload, sessionmaker

from finetune.splits import conversation_split
from storage.models import Conversation, ConversationStatus, Message, Role

logger = logging.getLogger(__name__)

# Conversations loaded with their messages per query.
LOAD_BATCH_SIZE = 200
# SGD marks frames whose service has no intent yet with this value.
_SGD_NO_INTENT = "NONE"
# Dialogue acts with which an SGD user states or accepts an intent. SGD keeps the active
# intent in the dialogue state until the task changes, so only turns with one of these
# acts are about that intent. A slot answer such as "7 pm" or a "thanks" is not.
_SGD_INTENT_ACTS = frozenset({"INFORM_INTENT", "AFFIRM_INTENT"})


@dataclass(frozen=True)
class HeldOutSelection:
    """Selection of the stored conversations that count as held out.

    Attributes:
        validation: Fraction of conversations in the validation split, as in
            ``supportbot finetune``.
        test: Fraction of conversations in the test split; these are replayed.
        seed: Seed of the split, as in ``supportbot finetune``.
        language: Only conversations in this language ("en" or "zh-CN"); None for all.
        source: Only conversations whose import source starts with this text, such as
            "sgd" or "crosswoz"; None for all.
        limit: At most this many dialogs, the lowest conversation ids first; None for all.

    Raises:
        ValueError: If a fraction is invalid (see ``conversation_split``), ``limit`` is
            below 1 or ``language`` is neither English nor Chinese.
    """

    validation: float = 0.1
    test: float = 0.1
    seed: int = 42
    language: str | None = None
    source: str | None = None
    limit: int | None = None

    def __post_init__(self) -> None:
        # Raises ValueError for invalid fractions before any query runs.
        conversation_split("", validation=self.validation, test=self.test, seed=self.seed)
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"limit must be at least 1, got {self.limit}")
        if self.language is not None:
            object.__setattr__(self, "language", _parse_language(self.language))

    def describe(self) -> str:
        """Return the selection in words, for messages."""
        parts = [
            f"test split {self.test} (validation {self.validation}, seed {self.seed})",
            "closed conversations with customer and agent turns",
        ]
        if self.language:
            parts.append(f"language {self.language}")
        if self.source:
            parts.append(f"source starting with {self.source!r}")
        return ", ".join(parts)


@dataclass(frozen=True)
class HeldOutTurn:
    """One customer turn of a held-out dialog and the agent reply that followed it.

    Attributes:
        text: The customer's consecutive messages, joined by newlines.
        reference: The agent's next turn joined the same way, or None when no agent
            message follows before the next customer turn or the end.
        gold_intent: The intent label of the customer turn, or None when it has none.
    """

    text: str
    reference: str | None
    gold_intent: str | None


@dataclass(frozen=True)
class HeldOutDialog:
    """A held-out conversation reduced to what a replay needs."""

    conversation_id: int
    external_id: str
    language: str | None
    source: str | None
    turns: tuple[HeldOutTurn, ...]


def select_held_out_dialogs(
    session_factory: sessionmaker[Session], selection: HeldOutSelection
) -> list[HeldOutDialog]:
    """Return the held-out dialogs of ``selection``, in ascending conversation id.

    Returns:
        The dialogs; empty when none matches.
    """
    with session_factory() as session:
        candidates = _held_out_ids(session, selection)
        dialogs: list[HeldOutDialog] = []
        for conversation in _load_conversations(session, candidates):
            dialog = build_held_out_dialog(conversation)
            if dialog is None:
                continue
            dialogs.append(dialog)
            if selection.limit is not None and len(dialogs) == selection.limit:
                break
    logger.info(
        "Selected held-out dialogs=%d turns=%d from candidates=%d",
        len(dialogs),
        sum(len(dialog.turns) for dialog in dialogs),
        len(candidates),
    )
    return dialogs


def build_held_out_dialog(conversation: Conversation) -> HeldOutDialog | None:
    """Return the customer turns of a conversation with their references.

    Consecutive messages of one speaker form one turn. Bot and system messages are
    left out, so the reference of a customer turn is the agent turn after it.

    Returns:
        The dialog, or None when the conversation lacks a customer or an agent message.
    """
    groups = _speaker_groups(conversation.messages)
    roles = {role for role, _ in groups}
    if Role.CUSTOMER not in roles or Role.AGENT not in roles:
        return None

    turns = []
    for index, (role, messages) in enumerate(groups):
        if role is not Role.CUSTOMER:
            continue
        following = groups[index + 1] if index + 1 < len(groups) else None
        reference = None
        if following is not None and following[0] is Role.AGENT:
            reference = "\n".join(message.text for message in following[1])
        turns.append(
            HeldOutTurn(
                text="\n".join(message.text for message in messages),
                reference=reference,
                gold_intent=_gold_intent(messages),
            )
        )
    return HeldOutDialog(
        conversation_id=conversation.id,
        external_id=conversation.external_id,
        language=conversation.language,
        source=conversation.source,
        turns=tuple(turns),
    )


def _parse_language(language: str) -> str:
    tag = language.strip().replace("_", "-").lower()
    if tag == "zh" or tag.startswith("zh-"):
        return "zh-CN"
    if tag == "en" or tag.startswith("en-"):
        return "en"
    raise ValueError(f"invalid language {language!r}: use en or zh-CN")


def _held_out_ids(session: Session, selection: HeldOutSelection) -> list[int]:
    query = (
        select(Conversation.id, Conversation.external_id)
        .where(Conversation.status == ConversationStatus.CLOSED)
        .order_by(Conversation.id)
    )
    if selection.language is not None:
        query = query.where(Conversation.language == selection.language)
    if selection.source:
        query = query.where(Conversation.source.startswith(selection.source, autoescape=True))
    return [
        conversation_id
        for conversation_id, external_id in session.execute(query)
        if conversation_split(
            external_id, validation=selection.validation, test=selection.test, seed=selection.seed
        )
        == "test"
    ]


def _load_conversations(session: Session, ids: Sequence[int]) -> Iterator[Conversation]:
    for start in range(0, len(ids), LOAD_BATCH_SIZE):
        query = (
            select(Conversation)
            .where(Conversation.id.in_(ids[start : start + LOAD_BATCH_SIZE]))
            .options(selectinload(Conversation.messages))
            .order_by(Conversation.id)
        )
        yield from session.scalars(query)


def _speaker_groups(messages: Sequence[Message]) -> list[tuple[Role, list[Message]]]:
    """Group consecutive customer or agent messages; other roles and blank texts are skipped."""
    groups: list[tuple[Role, list[Message]]] = []
    for message in messages:
        if message.role not in (Role.CUSTOMER, Role.AGENT) or not message.text.strip():
            continue
        if groups and groups[-1][0] is message.role:
            groups[-1][1].append(message)
        else:
            groups.append((message.role, [message]))
    return groups


def _gold_intent(messages: Sequence[Message]) -> str | None:
    """Return the one intent label of a customer turn, or None when it has none or several.

    Labels come from SGD frames whose actions state or accept an intent (their
    ``active_intent``), and from an ``intent`` string in the message metadata of
    canonical JSONL imports.
    """
    labels: set[str] = set()
    for message in messages:
        labels.update(_message_intents(message.meta or {}))
    return labels.pop() if len(labels) == 1 else None


def _message_intents(meta: dict[str, Any]) -> set[str]:
    labels = set()
    if isinstance(meta.get("intent"), str) and meta["intent"]:
        labels.add(meta["intent"])
    for frame in meta.get("frames") or []:
        if not isinstance(frame, dict):
            continue
        intent = frame.get("active_intent")
        acts = {
            action.get("act") for action in frame.get("actions") or [] if isinstance(action, dict)
        }
        if (
            isinstance(intent, str)
            and intent not in ("", _SGD_NO_INTENT)
            and acts & _SGD_INTENT_ACTS
        ):
            labels.add(intent)
    return labels

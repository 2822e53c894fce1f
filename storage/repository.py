"""Queries and writes on the storage tables. Every function takes the session first.

Functions flush but never commit: the caller owns the transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from storage.errors import NotFoundError
from storage.models import (
    Chunk,
    Conversation,
    ConversationStatus,
    KnowledgeDocument,
    Message,
    Role,
)


def create_conversation(
    session: Session,
    *,
    external_id: str | None = None,
    channel: str = "chat",
    language: str | None = None,
    source: str | None = None,
) -> Conversation:
    """Insert a conversation; a random external id is generated when none is given."""
    conversation = Conversation(
        external_id=external_id or uuid.uuid4().hex,
        channel=channel,
        language=language,
        source=source,
        status=ConversationStatus.BOT,
    )
    session.add(conversation)
    session.flush()
    return conversation


def get_conversation(session: Session, conversation_id: int) -> Conversation:
    """Return the conversation with primary key ``conversation_id``.

    Raises:
        NotFoundError: If no such conversation exists.
    """
    conversation = session.get(Conversation, conversation_id)
    if conversation is None:
        raise NotFoundError(f"conversation {conversation_id} not found")
    return conversation


def get_conversation_by_external_id(session: Session, external_id: str) -> Conversation | None:
    """Return the conversation with this external id, or None."""
    return session.scalar(select(Conversation).where(Conversation.external_id == external_id))


def get_existing_external_ids(session: Session, external_ids: Iterable[str]) -> set[str]:
    """Return the subset of ``external_ids`` that are already stored."""
    wanted = list(set(external_ids))
    found: set[str] = set()
    # Chunk the IN list: SQLite allows at most 32,766 bound parameters per statement.
    for start in range(0, len(wanted), 500):
        batch = wanted[start : start + 500]
        found.update(
            session.scalars(
                select(Conversation.external_id).where(Conversation.external_id.in_(batch))
            )
        )
    return found


def add_message(
    session: Session,
    *,
    conversation: Conversation,
    role: Role,
    text: str,
    meta: dict[str, Any] | None = None,
    intent: str | None = None,
    intent_confidence: float | None = None,
    out_of_scope: bool | None = None,
    entities: list[dict[str, Any]] | None = None,
) -> Message:
    """Append a message to ``conversation`` with the next sequence number.

    ``intent``, ``intent_confidence``, ``out_of_scope`` and ``entities`` hold what the NLU
    models understood of a customer turn; they stay empty on other turns.

    The caller must serialise concurrent appends to one conversation, as the bot's turn
    lock does. Without that, the unique (conversation_id, seq) constraint rejects the
    second writer.
    """
    last_seq = session.scalar(
        select(func.max(Message.seq)).where(Message.conversation_id == conversation.id)
    )
    message = Message(
        conversation_id=conversation.id,
        seq=(last_seq or 0) + 1,
        role=role,
        text=text,
        meta=meta or {},
        intent=intent,
        intent_confidence=intent_confidence,
        out_of_scope=out_of_scope,
        entities=entities,
    )
    session.add(message)
    session.flush()
    return message


def list_messages(
    session: Session, *, conversation_id: int, last: int | None = None
) -> list[Message]:
    """Return the messages of a conversation in order, or only the ``last`` ones."""
    query = select(Message).where(Message.conversation_id == conversation_id)
    if last is None:
        return list(session.scalars(query.order_by(Message.seq)))
    newest = list(session.scalars(query.order_by(Message.seq.desc()).limit(last)))
    return newest[::-1]


def count_conversations(session: Session) -> int:
    """Return the number of stored conversations."""
    return session.scalar(select(func.count(Conversation.id))) or 0


def count_messages(session: Session) -> int:
    """Return the number of stored messages."""
    return session.scalar(select(func.count(Message.id))) or 0


def get_document_by_source(session: Session, source: str) -> KnowledgeDocument | None:
    """Return the knowledge document read from ``source``, or None."""
    return session.scalar(select(KnowledgeDocument).where(KnowledgeDocument.source == source))


def list_documents(session: Session) -> list[KnowledgeDocument]:
    """Return every knowledge document ordered by source."""
    return list(session.scalars(select(KnowledgeDocument).order_by(KnowledgeDocument.source)))


def delete_document(session: Session, document: KnowledgeDocument) -> None:
    """Delete a document and, through the foreign key cascade, its chunks."""
    session.execute(delete(Chunk).where(Chunk.document_id == document.id))
    session.delete(document)
    session.flush()


def get_chunks_by_ids(session: Session, chunk_ids: Sequence[int]) -> dict[int, Chunk]:
    """Return the chunks with these ids, keyed by id, with their documents loaded."""
    found: dict[int, Chunk] = {}
    ids = list(set(chunk_ids))
    for start in range(0, len(ids), 500):
        batch = ids[start : start + 500]
        for chunk in session.scalars(select(Chunk).where(Chunk.id.in_(batch))):
            found[chunk.id] = chunk
    return found


def count_chunks(session: Session) -> int:
    """Return the number of stored chunks."""
    return session.scalar(select(func.count(Chunk.id))) or 0

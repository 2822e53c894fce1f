"""Conversation lists for agents: the handoff queue and a filtered, searchable list."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import exists, func, or_, select
from sqlalchemy.orm import Session

from storage.models import Conversation, ConversationStatus, Message

# Maximum length of the search text; longer text is cut.
MAX_QUERY_CHARS = 200


@dataclass(frozen=True)
class ConversationFilter:
    """Filter of the agent's conversation list. Unset fields do not filter.

    Attributes:
        statuses: Only these statuses.
        low_confidence_below: Only conversations with a customer turn whose intent
            confidence is below this value.
        with_fallback: Only conversations where the bot fell back at least once.
        with_negative_feedback: Only conversations with a thumbs down.
        since: Only conversations with activity at or after this time.
        until: Only conversations created before this time.
        text: Only conversations with a message containing this text (case-insensitive).
        channel: Only this channel ("web", "chat", "api"...).
        agent: Only conversations held by this agent.
    """

    statuses: tuple[ConversationStatus, ...] = ()
    low_confidence_below: float | None = None
    with_fallback: bool = False
    with_negative_feedback: bool = False
    since: datetime | None = None
    until: datetime | None = None
    text: str | None = None
    channel: str | None = None
    agent: str | None = None


def list_queue(session: Session, *, limit: int = 100) -> list[Conversation]:
    """Return conversations waiting for an agent, the longest waiting first."""
    query = (
        select(Conversation)
        .where(Conversation.status == ConversationStatus.WAITING)
        .order_by(Conversation.handoff_at.asc().nulls_last(), Conversation.id)
        .limit(limit)
    )
    return list(session.scalars(query))


def search_conversations(
    session: Session, conversation_filter: ConversationFilter, *, limit: int = 100, offset: int = 0
) -> list[Conversation]:
    """Return the conversations matching the filter, most recently active first."""
    query = select(Conversation)
    f = conversation_filter

    if f.statuses:
        query = query.where(Conversation.status.in_(f.statuses))
    if f.low_confidence_below is not None:
        query = query.where(Conversation.min_intent_confidence < f.low_confidence_below)
    if f.with_fallback:
        query = query.where(Conversation.fallback_count > 0)
    if f.with_negative_feedback:
        query = query.where(Conversation.negative_feedback_count > 0)
    if f.since is not None:
        query = query.where(Conversation.updated_at >= f.since)
    if f.until is not None:
        query = query.where(Conversation.created_at < f.until)
    if f.channel:
        query = query.where(Conversation.channel == f.channel)
    if f.agent:
        query = query.where(Conversation.agent == f.agent)

    if f.text and f.text.strip():
        pattern = "%" + _escape_like(f.text.strip()[:MAX_QUERY_CHARS].lower()) + "%"
        has_text = exists().where(
            Message.conversation_id == Conversation.id,
            func.lower(Message.text).like(pattern, escape="\\"),
        )
        query = query.where(
            or_(has_text, func.lower(Conversation.external_id).like(pattern, escape="\\"))
        )

    query = query.order_by(Conversation.updated_at.desc(), Conversation.id.desc())
    return list(session.scalars(query.limit(limit).offset(offset)))


def count_messages_by_conversation(session: Session, conversation_ids: list[int]) -> dict[int, int]:
    """Return the number of messages of each conversation."""
    if not conversation_ids:
        return {}
    rows = session.execute(
        select(Message.conversation_id, func.count(Message.id))
        .where(Message.conversation_id.in_(conversation_ids))
        .group_by(Message.conversation_id)
    )
    return {conversation_id: count for conversation_id, count in rows}


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")

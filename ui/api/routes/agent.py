"""Agent side: the handoff queue, conversation search, take over, reply, hand back, close, correct.

With ``policy.agent_token`` set, every route here needs ``Authorization: Bearer <token>``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status

from bot.runtime import BotRuntime
from storage import conversation_queries
from storage.conversation_queries import ConversationFilter
from storage.models import Conversation, ConversationStatus
from ui.api.deps import AgentDep, RuntimeDep
from ui.api.schemas import (
    AgentAction,
    AgentMessagePublic,
    AgentReplyCreate,
    AgentTranscriptPublic,
    ConversationSummary,
    CorrectionCreate,
    CorrectionPublic,
    MessagePublic,
)

router = APIRouter(prefix="/v1/agent", tags=["agent"])


@router.get("/queue", response_model=list[ConversationSummary])
def read_queue(
    runtime: RuntimeDep,
    _agent: AgentDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[ConversationSummary]:
    """Conversations waiting for an agent, the longest waiting first."""
    with runtime.session_factory() as session:
        conversations = conversation_queries.list_queue(session, limit=limit)
        return _summaries(session, conversations)


@router.get("/conversations", response_model=list[ConversationSummary])
def search_conversations(
    runtime: RuntimeDep,
    _agent: AgentDep,
    status_: Annotated[
        list[ConversationStatus] | None, Query(alias="status", description="Repeat for several.")
    ] = None,
    low_confidence_below: Annotated[
        float | None, Query(ge=0.0, le=1.0, description="A turn's intent confidence below this.")
    ] = None,
    fallback: Annotated[bool, Query(description="Only with a fallback reply.")] = False,
    negative_feedback: Annotated[bool, Query(description="Only with a thumbs down.")] = False,
    since: Annotated[datetime | None, Query(description="Active at or after (ISO 8601).")] = None,
    until: Annotated[datetime | None, Query(description="Created before (ISO 8601).")] = None,
    q: Annotated[str | None, Query(max_length=200, description="Text in any message.")] = None,
    channel: Annotated[str | None, Query(max_length=64)] = None,
    agent: Annotated[str | None, Query(max_length=255)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[ConversationSummary]:
    """Search conversations, most recently active first."""
    conversation_filter = ConversationFilter(
        statuses=tuple(status_ or ()),
        low_confidence_below=low_confidence_below,
        with_fallback=fallback,
        with_negative_feedback=negative_feedback,
        since=since,
        until=until,
        text=q,
        channel=channel,
        agent=agent,
    )
    with runtime.session_factory() as session:
        conversations = conversation_queries.search_conversations(
            session, conversation_filter, limit=limit, offset=offset
        )
        return _summaries(session, conversations)


@router.get("/conversations/{conversation_id}", response_model=AgentTranscriptPublic)
def read_conversation(
    conversation_id: int, runtime: RuntimeDep, _agent: AgentDep
) -> AgentTranscriptPublic:
    """Return a conversation with each reply's explanation, thumbs and corrections."""
    return agent_transcript(runtime, conversation_id)


@router.post("/conversations/{conversation_id}/claim", response_model=ConversationSummary)
def claim(
    conversation_id: int, body: AgentAction, runtime: RuntimeDep, _agent: AgentDep
) -> ConversationSummary:
    """Take over the conversation; 409 when another agent holds it."""
    runtime.handoff.claim(conversation_id, body.agent)
    return agent_transcript(runtime, conversation_id).conversation


@router.post(
    "/conversations/{conversation_id}/messages",
    response_model=MessagePublic,
    status_code=status.HTTP_201_CREATED,
)
def reply(
    conversation_id: int, body: AgentReplyCreate, runtime: RuntimeDep, _agent: AgentDep
) -> MessagePublic:
    """Send a message to the customer; the agent must hold the conversation."""
    stored = runtime.handoff.reply(conversation_id, body.agent, body.text)
    _, messages = runtime.dialog_manager.get_transcript(conversation_id)
    message = next(m for m in messages if m.id == stored.message_id)
    return MessagePublic.model_validate(message)


@router.post("/conversations/{conversation_id}/hand-back", response_model=ConversationSummary)
def hand_back(
    conversation_id: int, body: AgentAction, runtime: RuntimeDep, _agent: AgentDep
) -> ConversationSummary:
    """Return the conversation to the bot."""
    runtime.handoff.hand_back(conversation_id, body.agent)
    return agent_transcript(runtime, conversation_id).conversation


@router.post("/conversations/{conversation_id}/close", response_model=ConversationSummary)
def close(
    conversation_id: int, body: AgentAction, runtime: RuntimeDep, _agent: AgentDep
) -> ConversationSummary:
    """Close the conversation."""
    runtime.handoff.close(conversation_id, body.agent)
    return agent_transcript(runtime, conversation_id).conversation


@router.post(
    "/conversations/{conversation_id}/messages/{message_id}/correction",
    response_model=CorrectionPublic,
    status_code=status.HTTP_201_CREATED,
)
def correct(
    conversation_id: int,
    message_id: int,
    body: CorrectionCreate,
    runtime: RuntimeDep,
    _agent: AgentDep,
) -> CorrectionPublic:
    """Mark a bot reply wrong and save the right answer; fine-tuning prefers it."""
    try:
        correction_id = runtime.feedback.correct(conversation_id, message_id, body.agent, body.text)
    except ValueError as error:
        # InvalidMessageError is a ValueError too, but has its own handler with its code.
        if type(error) is not ValueError:
            raise
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(error)) from error
    texts = runtime.feedback.corrections_of(conversation_id)
    return CorrectionPublic(id=correction_id, message_id=message_id, text=texts[message_id])


def agent_transcript(runtime: BotRuntime, conversation_id: int) -> AgentTranscriptPublic:
    """Return the agent view of one conversation.

    Raises:
        storage.errors.NotFoundError: If the conversation does not exist.
    """
    conversation, messages = runtime.dialog_manager.get_transcript(conversation_id)
    feedback = runtime.feedback.feedback_of(conversation_id)
    corrections = runtime.feedback.corrections_of(conversation_id)
    summary = ConversationSummary.model_validate(conversation).model_copy(
        update={"message_count": len(messages)}
    )
    return AgentTranscriptPublic(
        conversation=summary,
        messages=[
            AgentMessagePublic.model_validate(message).model_copy(
                update={
                    "feedback": feedback.get(message.id),
                    "correction": corrections.get(message.id),
                }
            )
            for message in messages
        ],
    )


def _summaries(session, conversations: list[Conversation]) -> list[ConversationSummary]:
    counts = conversation_queries.count_messages_by_conversation(
        session, [conversation.id for conversation in conversations]
    )
    return [
        ConversationSummary.model_validate(conversation).model_copy(
            update={"message_count": counts.get(conversation.id, 0)}
        )
        for conversation in conversations
    ]

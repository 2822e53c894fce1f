"""Customer side of a conversation: start it, post messages, read it, rate it, close it."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, status
from sqlalchemy.exc import IntegrityError

from bot.runtime import BotRuntime
from ui.api.deps import RuntimeDep, is_agent
from ui.api.schemas import (
    ConversationCreate,
    ConversationPublic,
    FeedbackCreate,
    FeedbackPublic,
    MessageCreate,
    MessagePublic,
    RatingCreate,
    ReplyPublic,
    TranscriptPublic,
)

router = APIRouter(prefix="/v1/conversations", tags=["conversations"])


@router.post("", status_code=status.HTTP_201_CREATED, response_model=ConversationPublic)
def create_conversation(body: ConversationCreate, runtime: RuntimeDep) -> ConversationPublic:
    """Start a conversation."""
    manager = runtime.dialog_manager
    try:
        conversation_id = manager.start_conversation(
            channel=body.channel, language=body.language, external_id=body.external_id
        )
    except IntegrityError as error:
        raise HTTPException(
            status_code=status.HTTP_409_CONFLICT,
            detail=f"a conversation with external_id {body.external_id!r} already exists",
        ) from error
    conversation, _ = manager.get_transcript(conversation_id)
    return ConversationPublic.model_validate(conversation)


@router.post("/{conversation_id}/messages", response_model=ReplyPublic)
def create_message(
    conversation_id: int, body: MessageCreate, request: Request, runtime: RuntimeDep
) -> ReplyPublic:
    """Post a customer message and return the bot's reply with its path and citations.

    While the conversation waits for an agent or is with one, the message is stored for
    the agent and the reply has path ``forwarded``, no message id and no text.
    """
    reply = runtime.dialog_manager.respond(conversation_id, body.text)
    explanation = reply.explanation if _may_explain(request, runtime) else {}
    return ReplyPublic.model_validate(
        {**asdict(reply), "path": reply.path.value, "explanation": explanation}
    )


@router.get("/{conversation_id}", response_model=TranscriptPublic)
def read_conversation(
    conversation_id: int,
    request: Request,
    runtime: RuntimeDep,
    after_seq: Annotated[
        int, Query(ge=0, description="Only messages after this sequence number (for polling).")
    ] = 0,
) -> TranscriptPublic:
    """Read a conversation and its transcript, or only the messages after ``after_seq``."""
    conversation, messages = runtime.dialog_manager.get_transcript(conversation_id)
    explain = _may_explain(request, runtime)
    return TranscriptPublic(
        conversation=ConversationPublic.model_validate(conversation),
        messages=[
            _customer_view(MessagePublic.model_validate(message), explain)
            for message in messages
            if message.seq > after_seq
        ],
    )


@router.post("/{conversation_id}/messages/{message_id}/feedback", response_model=FeedbackPublic)
def rate_reply(
    conversation_id: int, message_id: int, body: FeedbackCreate, runtime: RuntimeDep
) -> FeedbackPublic:
    """Give a bot reply a thumbs up (1) or down (-1); a thumbs down may hand off."""
    try:
        result = runtime.feedback.rate_reply(conversation_id, message_id, body.value, body.comment)
    except ValueError as error:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(error)) from error
    conversation, _ = runtime.dialog_manager.get_transcript(conversation_id)
    return FeedbackPublic(**asdict(result), conversation_status=conversation.status.value)


@router.post("/{conversation_id}/rating", response_model=ConversationPublic)
def rate_conversation(
    conversation_id: int, body: RatingCreate, runtime: RuntimeDep
) -> ConversationPublic:
    """Rate the conversation from 1 (worst) to 5 (best); a later rating replaces it."""
    runtime.feedback.rate_conversation(conversation_id, body.rating)
    conversation, _ = runtime.dialog_manager.get_transcript(conversation_id)
    return ConversationPublic.model_validate(conversation)


@router.post("/{conversation_id}/close", response_model=ConversationPublic)
def close_conversation(conversation_id: int, runtime: RuntimeDep) -> ConversationPublic:
    """End the conversation as the customer; closing it again changes nothing."""
    conversation = runtime.handoff.close(conversation_id)
    return ConversationPublic.model_validate(conversation)


def _may_explain(request: Request, runtime: BotRuntime) -> bool:
    return runtime.settings.policy.show_explanation_to_customers or is_agent(request, runtime)


def _customer_view(message: MessagePublic, explain: bool) -> MessagePublic:
    if explain:
        return message
    metadata: dict[str, Any] = {
        key: value for key, value in message.metadata.items() if key != "explanation"
    }
    return message.model_copy(update={"metadata": metadata})

"""Conversations: create, post a customer message, read a transcript."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter, HTTPException, status
from sqlalchemy.exc import IntegrityError

from ui.api.deps import RuntimeDep
from ui.api.schemas import (
    ConversationCreate,
    ConversationPublic,
    MessageCreate,
    MessagePublic,
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
def create_message(conversation_id: int, body: MessageCreate, runtime: RuntimeDep) -> ReplyPublic:
    """Post a customer message and return the bot's reply with its path and citations."""
    reply = runtime.dialog_manager.respond(conversation_id, body.text)
    return ReplyPublic.model_validate({**asdict(reply), "path": reply.path.value})


@router.get("/{conversation_id}", response_model=TranscriptPublic)
def read_conversation(conversation_id: int, runtime: RuntimeDep) -> TranscriptPublic:
    """Read a conversation and its transcript."""
    conversation, messages = runtime.dialog_manager.get_transcript(conversation_id)
    return TranscriptPublic(
        conversation=ConversationPublic.model_validate(conversation),
        messages=[MessagePublic.model_validate(message) for message in messages],
    )

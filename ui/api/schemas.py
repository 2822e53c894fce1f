"""Request and response bodies of the REST API."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

# Hard cap on a message body before the configured limit is checked, so that a huge
# body is rejected by validation instead of being processed.
MAX_MESSAGE_FIELD_CHARS = 100_000


def _as_utc(value: datetime) -> datetime:
    # Times are stored in UTC, but SQLite returns them without a time zone.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


UtcDatetime = Annotated[datetime, AfterValidator(_as_utc)]


class ConversationCreate(BaseModel):
    """A new conversation."""

    channel: str = Field(default="chat", min_length=1, max_length=64, description="Channel name.")
    language: Literal["en", "zh-CN"] | None = Field(
        default=None, description="Language of bot messages; detected per message when unset."
    )
    external_id: str | None = Field(
        default=None, min_length=1, max_length=255, description="Your own id; must be unique."
    )


class ConversationPublic(BaseModel):
    """A conversation as returned by the API."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    external_id: str
    channel: str
    status: str
    language: str | None
    created_at: UtcDatetime


class MessageCreate(BaseModel):
    """A customer message."""

    text: str = Field(
        max_length=MAX_MESSAGE_FIELD_CHARS,
        description="Message text; the configured limit (default 4,000 characters) applies.",
    )


class MessagePublic(BaseModel):
    """One stored turn."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    seq: int
    role: str
    text: str
    created_at: UtcDatetime
    metadata: dict[str, Any] = Field(validation_alias="meta")
    intent: str | None = Field(default=None, description="Intent of a customer turn.")
    intent_confidence: float | None = None
    out_of_scope: bool | None = None
    entities: list[dict[str, Any]] | None = Field(
        default=None, description="Entities of a customer turn with offsets and sources."
    )


class CitationPublic(BaseModel):
    """A knowledge-base chunk that a reply is based on."""

    chunk_id: int
    document_id: int
    title: str
    source: str
    kind: str
    score: float


class ReplyPublic(BaseModel):
    """The bot's reply to a customer message."""

    conversation_id: int
    customer_message_id: int
    message_id: int
    text: str
    path: Literal["retrieved", "generated", "fallback"]
    language: str
    citations: list[CitationPublic]
    timings_ms: dict[str, float]
    explanation: dict[str, Any]


class TranscriptPublic(BaseModel):
    """A conversation with all its messages."""

    conversation: ConversationPublic
    messages: list[MessagePublic]


class HealthPublic(BaseModel):
    """Service status."""

    status: Literal["ok"]
    version: str
    database: str
    chunks: int
    embedding_model: str
    generator_model: str
    dialog_model_version: str = Field(
        description="Registry version of the dialog model that serves, or 'base'."
    )
    model_error: str | None = Field(
        default=None, description="Why the active version could not be loaded, if it failed."
    )


class ModelVersionPublic(BaseModel):
    """A registered model version."""

    version: str
    kind: str
    status: str
    base_model: str
    path: str | None
    metrics: dict[str, Any]
    is_active: bool
    created_at: UtcDatetime
    finished_at: UtcDatetime | None
    language: str | None = Field(
        default=None, description="Language an intent or entity version serves; null: all."
    )


class ModelsPublic(BaseModel):
    """Registered model versions and the ones this server process serves."""

    serving: str = Field(description="Dialog version this process serves now, or 'base'.")
    active: str = Field(description="Dialog version the registry marks active, or 'base'.")
    model_error: str | None = None
    versions: list[ModelVersionPublic]
    nlu_serving: dict[str, dict[str, str]] = Field(
        default_factory=dict,
        description="Intent and entity versions served: {kind: {language or 'all': version}}.",
    )
    nlu_errors: list[str] = Field(
        default_factory=list, description="Intent or entity versions that failed to load."
    )

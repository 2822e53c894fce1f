"""Request and response bodies of the REST API."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

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
    status: str = Field(description="bot, waiting (for an agent), agent or closed.")
    language: str | None
    created_at: UtcDatetime
    agent: str | None = Field(default=None, description="Agent holding the conversation.")
    rating: int | None = Field(default=None, description="Customer rating, 1 to 5.")
    closed_at: UtcDatetime | None = None


class ConversationSummary(ConversationPublic):
    """A conversation in the agent queue or search list."""

    updated_at: UtcDatetime
    handoff_reason: str | None = None
    handoff_at: UtcDatetime | None = None
    fallback_count: int = 0
    negative_feedback_count: int = 0
    min_intent_confidence: float | None = None
    message_count: int = 0


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
    text: str
    message_id: int | None = Field(
        description="The bot's message; null when the turn went to an agent (path forwarded)."
    )
    path: Literal["template", "retrieved", "generated", "fallback", "handoff", "forwarded"]
    language: str
    citations: list[CitationPublic]
    timings_ms: dict[str, float]
    explanation: dict[str, Any] = Field(
        description="How the reply was made; empty for callers without the agent token when "
        "policy.agent_token is set and policy.show_explanation_to_customers is off."
    )
    conversation_status: str = Field(description="Status after this turn.")


class TranscriptPublic(BaseModel):
    """A conversation with all its messages."""

    conversation: ConversationPublic
    messages: list[MessagePublic]


class AgentMessagePublic(MessagePublic):
    """A message as agents see it, with the customer's thumbs and saved corrections."""

    feedback: int | None = Field(default=None, description="+1 or -1 from the customer.")
    correction: str | None = Field(default=None, description="The agent's right answer.")


class AgentTranscriptPublic(BaseModel):
    """A conversation with every message, explanation, thumbs and correction."""

    conversation: ConversationSummary
    messages: list[AgentMessagePublic]


class AgentAction(BaseModel):
    """An agent acting on a conversation."""

    agent: str = Field(min_length=1, max_length=255, description="Name shown to the customer.")

    @field_validator("agent")
    @classmethod
    def _agent_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("agent name is blank: send the name agents see in the console")
        return value


class AgentReplyCreate(AgentAction):
    """An agent's message to the customer."""

    text: str = Field(max_length=MAX_MESSAGE_FIELD_CHARS, description="Message text.")


class CorrectionCreate(AgentAction):
    """An agent's right answer to a bot reply."""

    text: str = Field(max_length=MAX_MESSAGE_FIELD_CHARS, description="The right answer.")


class CorrectionPublic(BaseModel):
    """A stored correction."""

    id: int
    message_id: int
    text: str


class FeedbackCreate(BaseModel):
    """A customer's thumbs on a bot reply."""

    value: Literal[1, -1] = Field(description="1 for thumbs up, -1 for thumbs down.")
    comment: str | None = Field(default=None, max_length=2000)


class FeedbackPublic(BaseModel):
    """A stored thumbs, and whether it handed the conversation to an agent."""

    message_id: int
    value: int
    handed_off: bool
    handoff_message_id: int | None
    conversation_status: str


class RatingCreate(BaseModel):
    """The customer's rating of a conversation."""

    rating: int = Field(ge=1, le=5, description="1 (worst) to 5 (best).")


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

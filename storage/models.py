"""SQLAlchemy 2.0 tables: the only place ORM models are defined."""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def _enum_column(enum_class: type[enum.Enum]) -> Enum:
    # Store the lowercase values, not the member names, as portable VARCHARs.
    return Enum(
        enum_class,
        native_enum=False,
        length=32,
        values_callable=lambda members: [member.value for member in members],
    )


def utc_now() -> datetime:
    """Return the current time as a timezone-aware UTC datetime."""
    return datetime.now(UTC)


class Base(DeclarativeBase):
    """Declarative base of every table."""


class Role(enum.StrEnum):
    """Author role of a message."""

    CUSTOMER = "customer"
    AGENT = "agent"
    BOT = "bot"
    SYSTEM = "system"


class ConversationStatus(enum.StrEnum):
    """Who answers a conversation now.

    ``BOT``: the bot answers each customer turn. ``WAITING``: handed off, waiting for an
    agent to claim it; the bot stays silent. ``AGENT``: an agent holds it; customer
    turns go to that agent only. ``CLOSED``: no more turns; imported conversations are
    closed.
    """

    BOT = "bot"
    WAITING = "waiting"
    AGENT = "agent"
    CLOSED = "closed"


class DocumentKind(enum.StrEnum):
    """Format a knowledge document was read from."""

    MARKDOWN = "markdown"
    TEXT = "text"
    HTML = "html"
    FAQ = "faq"
    DIALOG = "dialog"


class ModelKind(enum.StrEnum):
    """Job of a trained model; each kind has its own active version."""

    DIALOG = "dialog"
    INTENT = "intent"
    NER = "ner"


class ModelStatus(enum.StrEnum):
    """Outcome of the training run behind a model version.

    Only READY and REJECTED versions have weights that can be served. A REJECTED
    version scored worse than the model it would replace and is activated only by force.
    """

    TRAINING = "training"
    FAILED = "failed"
    INTERRUPTED = "interrupted"
    READY = "ready"
    REJECTED = "rejected"


class Conversation(Base):
    """One support conversation, imported or live."""

    __tablename__ = "conversations"

    id: Mapped[int] = mapped_column(primary_key=True)
    external_id: Mapped[str] = mapped_column(String(255), unique=True)
    channel: Mapped[str] = mapped_column(String(64), default="chat")
    status: Mapped[ConversationStatus] = mapped_column(
        _enum_column(ConversationStatus), default=ConversationStatus.BOT, index=True
    )
    language: Mapped[str | None] = mapped_column(String(16))
    source: Mapped[str | None] = mapped_column(String(255))
    # Customer rating from 1 (worst) to 5 (best); None when the customer gave none.
    rating: Mapped[int | None] = mapped_column(Integer)
    # Agent who holds the conversation while its status is AGENT.
    agent: Mapped[str | None] = mapped_column(String(255))
    # Why the bot handed the conversation to a human, and when.
    handoff_reason: Mapped[str | None] = mapped_column(String(64))
    handoff_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Dialog state kept between turns: filled slot values and the template waiting for
    # a slot, as {"values": {slot: value}, "pending": {"template": id, "slot": name}}.
    dialog_state: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=dict)
    # Counters kept by the bot so that agents can filter conversations without reading
    # every message: fallback replies, thumbs down, and the lowest intent confidence of
    # a customer turn.
    fallback_count: Mapped[int] = mapped_column(Integer, default=0)
    negative_feedback_count: Mapped[int] = mapped_column(Integer, default=0)
    min_intent_confidence: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utc_now, onupdate=utc_now
    )

    messages: Mapped[list[Message]] = relationship(
        back_populates="conversation",
        order_by="Message.seq",
        cascade="all, delete-orphan",
    )


class Message(Base):
    """One turn of a conversation. ``seq`` orders turns and is unique per conversation."""

    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("conversation_id", "seq", name="uq_messages_conversation_seq"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    conversation_id: Mapped[int] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), index=True
    )
    seq: Mapped[int] = mapped_column(Integer)
    role: Mapped[Role] = mapped_column(_enum_column(Role))
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    # What the NLU models understood of a customer turn; empty on other turns.
    intent: Mapped[str | None] = mapped_column(String(255), index=True)
    intent_confidence: Mapped[float | None] = mapped_column(Float)
    out_of_scope: Mapped[bool | None] = mapped_column(Boolean)
    entities: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)

    conversation: Mapped[Conversation] = relationship(back_populates="messages")


class KnowledgeDocument(Base):
    """A help-centre document, FAQ file or set of past answers, identified by its source."""

    __tablename__ = "knowledge_documents"

    id: Mapped[int] = mapped_column(primary_key=True)
    source: Mapped[str] = mapped_column(String(1024), unique=True)
    title: Mapped[str] = mapped_column(String(1024))
    kind: Mapped[DocumentKind] = mapped_column(_enum_column(DocumentKind))
    language: Mapped[str | None] = mapped_column(String(16))
    checksum: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utc_now, onupdate=utc_now
    )

    chunks: Mapped[list[Chunk]] = relationship(
        back_populates="document",
        order_by="Chunk.position",
        cascade="all, delete-orphan",
        passive_deletes=True,
    )


class Chunk(Base):
    """A retrievable unit of a document: a passage, or a question with its answer.

    For passages ``question`` is empty and ``text`` is embedded. For FAQ entries and
    past agent answers ``question`` is embedded and ``text`` contains the answer.
    """

    __tablename__ = "chunks"
    __table_args__ = (Index("ix_chunks_document_position", "document_id", "position"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    document_id: Mapped[int] = mapped_column(
        ForeignKey("knowledge_documents.id", ondelete="CASCADE")
    )
    position: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(String(1024))
    question: Mapped[str | None] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text)
    language: Mapped[str | None] = mapped_column(String(16))
    embedding_model: Mapped[str | None] = mapped_column(String(255))
    # float32 vector, stored so that the FAISS index can be rebuilt without re-embedding.
    embedding: Mapped[bytes | None] = mapped_column(LargeBinary)

    document: Mapped[KnowledgeDocument] = relationship(back_populates="chunks")


class ModelVersion(Base):
    """A trained model: where its files are, how it was trained and how it scored."""

    __tablename__ = "model_versions"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[ModelKind] = mapped_column(_enum_column(ModelKind), index=True)
    version: Mapped[str] = mapped_column(String(128), unique=True)
    status: Mapped[ModelStatus] = mapped_column(_enum_column(ModelStatus))
    base_model: Mapped[str] = mapped_column(String(1024))
    # Language the model serves ("en", "zh-CN"); None serves every language.
    language: Mapped[str | None] = mapped_column(String(16))
    # Folder that from_pretrained loads; empty until training has saved the model.
    path: Mapped[str | None] = mapped_column(String(2048))
    run_dir: Mapped[str | None] = mapped_column(String(2048))
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    data_stats: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    training_config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ModelActivation(Base):
    """One activation of a model version, kept as a stack per kind and language.

    Intent and entity models serve one language each (or every language when
    ``language`` is None), so English and Chinese versions are activated independently.
    The active version of a kind is the one in its newest activation that has not been
    rolled back. A rollback sets ``rolled_back_at`` on that row, which makes the
    activation before it current again; with none left, the configured base model serves.
    """

    __tablename__ = "model_activations"
    __table_args__ = (Index("ix_model_activations_kind_id", "kind", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[ModelKind] = mapped_column(_enum_column(ModelKind))
    language: Mapped[str | None] = mapped_column(String(16))
    model_version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id"))
    forced: Mapped[bool] = mapped_column(Boolean, default=False)
    reason: Mapped[str] = mapped_column(String(255), default="")
    activated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    rolled_back_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    model_version: Mapped[ModelVersion] = relationship()


class Feedback(Base):
    """A customer's thumbs up (+1) or down (-1) on one bot reply; the latest vote counts."""

    __tablename__ = "feedback"
    __table_args__ = (UniqueConstraint("message_id", name="uq_feedback_message"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"))
    value: Mapped[int] = mapped_column(Integer)
    comment: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)


class Correction(Base):
    """An agent's right answer to a reply that was wrong; fine-tuning prefers it."""

    __tablename__ = "corrections"

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[int] = mapped_column(
        ForeignKey("messages.id", ondelete="CASCADE"), index=True
    )
    text: Mapped[str] = mapped_column(Text)
    author: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)

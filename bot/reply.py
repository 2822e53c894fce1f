"""Reply of the dialog manager to one customer turn, with citations and explanation."""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field
from typing import Any


class ReplyPath(enum.StrEnum):
    """How a customer turn was answered.

    ``TEMPLATE``: an answer template of the turn's intent, or its question for a missing
    slot. ``RETRIEVED``: a stored FAQ or past agent answer, or a quoted passage.
    ``GENERATED``: the dialog model, grounded in passages. ``FALLBACK``: no answer
    found, or a fixed reply of the input guard. ``HANDOFF``: the bot notified the customer
    that an agent will reply. ``FORWARDED``: the conversation is with an agent or
    waiting for one, so the bot did not reply.
    """

    TEMPLATE = "template"
    RETRIEVED = "retrieved"
    GENERATED = "generated"
    FALLBACK = "fallback"
    HANDOFF = "handoff"
    FORWARDED = "forwarded"


@dataclass(frozen=True)
class Citation:
    """A knowledge-base chunk that a reply is based on."""

    chunk_id: int
    document_id: int
    title: str
    source: str
    kind: str
    score: float


@dataclass(frozen=True)
class Reply:
    """The bot's answer to one customer message, with how it was produced.

    ``explanation`` is shown to agents: the path, the thresholds compared, the model
    versions and the reason for a fallback. ``timings_ms`` maps step names to
    milliseconds. A FORWARDED turn has no bot message: ``message_id`` is None and
    ``text`` is empty. ``conversation_status`` is the status after the turn.
    """

    conversation_id: int
    customer_message_id: int
    message_id: int | None
    text: str
    path: ReplyPath
    language: str
    citations: list[Citation] = field(default_factory=list)
    timings_ms: dict[str, float] = field(default_factory=dict)
    explanation: dict[str, Any] = field(default_factory=dict)
    conversation_status: str = "bot"

    def to_metadata(self) -> dict[str, Any]:
        """Return the JSON-serialisable fields stored on the bot message."""
        return {
            "path": self.path.value,
            "language": self.language,
            "citations": [asdict(citation) for citation in self.citations],
            "timings_ms": self.timings_ms,
            "explanation": self.explanation,
        }


@dataclass
class Decision:
    """What the policy chose for one turn, before it is stored.

    Attributes:
        text: The reply text; empty for FORWARDED.
        path: How the turn is answered.
        reason: Why, in one word (``template_answer``, ``slot_prompt``,
            ``stored_answer``, ``grounded_generation``, ``no_relevant_passage``,
            ``customer_request``...).
        citations: Knowledge chunks the reply is based on.
        details: Extra explanation fields (retrieved passages, thresholds, template).
        handoff_reason: Set when the conversation goes to an agent with this turn.
    """

    text: str
    path: ReplyPath
    reason: str
    citations: list[Citation] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    handoff_reason: str | None = None

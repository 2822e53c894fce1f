"""Reply of the dialog manager to one customer turn, with citations and explanation."""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field
from typing import Any


class ReplyPath(enum.StrEnum):
    """Source of a reply: a stored answer or quote, generation, or the fallback."""

    RETRIEVED = "retrieved"
    GENERATED = "generated"
    FALLBACK = "fallback"


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
    milliseconds.
    """

    conversation_id: int
    customer_message_id: int
    message_id: int
    text: str
    path: ReplyPath
    language: str
    citations: list[Citation] = field(default_factory=list)
    timings_ms: dict[str, float] = field(default_factory=dict)
    explanation: dict[str, Any] = field(default_factory=dict)

    def to_metadata(self) -> dict[str, Any]:
        """Return the JSON-serialisable fields stored on the bot message."""
        return {
            "path": self.path.value,
            "language": self.language,
            "citations": [asdict(citation) for citation in self.citations],
            "timings_ms": self.timings_ms,
            "explanation": self.explanation,
        }

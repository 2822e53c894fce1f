"""Slot memory of a conversation: values the customer gave and the slot the bot asked for.

The state is stored on the conversation (``Conversation.dialog_state``) as JSON, so it
survives restarts and is shared by every server process::

    {"values": {"order_id": "AB-123456"},
     "pending": {"template": "order_status", "slot": "email"}}

Each customer turn adds the slots its entities fill; a later value of a slot replaces an
earlier one. When the bot has asked for a slot, a short reply that names no entity of
that slot is taken as its value (a name or a product, which no rule recognises).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bot.grounded import count_words
from nlu.merge import FIXED_SHAPE_TYPES

# A stored slot value is cut to this many characters.
MAX_SLOT_VALUE_CHARS = 200


@dataclass
class PendingSlot:
    """The slot the bot asked for, and the template that needs it."""

    template: str
    slot: str


@dataclass
class DialogState:
    """Filled slot values and the slot the bot is waiting for."""

    values: dict[str, str] = field(default_factory=dict)
    pending: PendingSlot | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> DialogState:
        """Read the stored state; missing or malformed parts are left empty."""
        data = data if isinstance(data, dict) else {}
        values = data.get("values")
        pending = data.get("pending")
        state = cls(
            values={str(k): str(v) for k, v in values.items()} if isinstance(values, dict) else {}
        )
        if isinstance(pending, dict) and pending.get("template") and pending.get("slot"):
            state.pending = PendingSlot(str(pending["template"]), str(pending["slot"]))
        return state

    def to_json(self) -> dict[str, Any]:
        """Return the JSON stored on the conversation."""
        pending = None
        if self.pending is not None:
            pending = {"template": self.pending.template, "slot": self.pending.slot}
        return {"values": dict(self.values), "pending": pending}

    def remember(self, slots: dict[str, str]) -> list[str]:
        """Store the slot values of one turn; return the names that changed."""
        changed = []
        for name, value in slots.items():
            value = value.strip()[:MAX_SLOT_VALUE_CHARS]
            if value and self.values.get(name) != value:
                self.values[name] = value
                changed.append(name)
        return changed

    def answer_pending(self, text: str, turn_slots: dict[str, str], max_words: int) -> str | None:
        """Fill the pending slot from a reply to the bot's question.

        The slot is filled from an entity of its name when the turn has one. Otherwise the
        whole reply fills it, if the reply has at most ``max_words`` words and is no
        question. Slots of a fixed
        shape (e-mail, phone, ids, dates, times, money) are filled from entities only, so
        "I don't know" never becomes an e-mail address.

        Returns:
            The slot's name when it was filled, else None.
        """
        if self.pending is None:
            return None
        slot = self.pending.slot
        if turn_slots.get(slot):
            return slot
        if slot in FIXED_SHAPE_TYPES:
            return None
        # A question back ("Is the table booked?") is not the value the bot asked for.
        if text.strip().endswith(("?", "？")):
            return None
        reply = text.strip().rstrip(".!?。！？")
        if max_words and reply and count_words(reply) <= max_words:
            self.values[slot] = reply[:MAX_SLOT_VALUE_CHARS]
            return slot
        return None

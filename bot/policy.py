"""The dialog policy: the order of the steps that produce the reply to one customer turn.

Each turn is tried against these steps in order; the first that produces a reply wins.

1. **Input guard.** Text with only emoji or punctuation, requests aimed at the bot's
   own instructions and insults get a fixed reply (path ``fallback``).
2. **Request for a human.** "Can I talk to a person?" or "转人工" hands the conversation
   to an agent (path ``handoff``).
3. **Handoff intent.** An intent listed in ``policy.handoff_intents`` (complaints, for
   example) recognised with a confidence of at least ``policy.template_min_confidence``
   hands off.
4. **Answer template.** When the bot asked for a slot in the last turn and this turn
   gives it, or the intent is recognised with at least ``policy.template_min_confidence``
   and has a template, the template answers. A required slot that is still empty is asked
   for with the template's prompt (path ``template``). Slot values given earlier in the
   conversation are reused.
5. **Stored answer, passage or generation.** See :mod:`bot.grounded`. When
   ``policy.handoff_below_confidence`` is set and the intent's confidence is below it,
   only stored answers are used: an unsure turn does not reach the dialog model.
6. **Unsure.** With that setting, an unsure turn that no stored answer serves hands off.
7. **Fallback.** The bot says it has no answer and offers an agent. When this would be
   the ``policy.handoff_after_fallbacks``-th fallback in a row, it hands off instead.

Negative feedback on a reply hands off too; that happens outside a turn, in
:mod:`bot.feedback`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from bot.config import Settings
from bot.generation.base import Generator
from bot.grounded import GroundedAnswerer
from bot.handoff_request import asks_for_human
from bot.i18n import translate
from bot.reply import Decision, ReplyPath
from bot.slots import DialogState, PendingSlot
from bot.templates import AnswerTemplate, TemplateSet
from bot.understanding import Understanding
from storage.models import Message

logger = logging.getLogger(__name__)


@dataclass
class TurnContext:
    """Everything the policy reads to decide one turn.

    Attributes:
        text: The customer's turn after the input guard.
        block_reason: The guard's verdict, or None.
        language: Language of the reply.
        understanding: Intent and entities, or None when NLU is off.
        history: Earlier messages of the conversation, oldest first.
        state: Slot memory of the conversation; the policy updates it.
        recent_fallbacks: Fallback replies in a row just before this turn.
        generator: The dialog model of this turn.
        timings: Step timings in milliseconds; steps add theirs.
    """

    text: str
    block_reason: str | None
    language: str
    understanding: Understanding | None
    history: list[Message]
    state: DialogState
    recent_fallbacks: int
    generator: Generator
    timings: dict[str, float]


class Policy:
    """Policy that chooses the reply of each turn (see the module docstring for the order).

    Args:
        answerer: Stored answers, passages and grounded generation.
        templates: Answer templates; None when no template file is configured.
        settings: Runtime settings; the ``policy`` group holds the thresholds.
    """

    def __init__(
        self, answerer: GroundedAnswerer, templates: TemplateSet | None, settings: Settings
    ) -> None:
        self.answerer = answerer
        self.templates = templates
        self.settings = settings

    def decide(self, turn: TurnContext) -> Decision:
        """Return the decision for one turn; ``turn.state`` is updated in place."""
        policy = self.settings.policy
        details: dict[str, Any] = {
            "thresholds": {
                "template_min_confidence": policy.template_min_confidence,
                "handoff_below_confidence": policy.handoff_below_confidence,
                "handoff_after_fallbacks": policy.handoff_after_fallbacks,
            },
            "fallbacks_in_a_row": turn.recent_fallbacks,
        }

        if turn.block_reason is not None:
            reply_text = translate(f"reply.{turn.block_reason}", turn.language)
            return self._fallback_or_handoff(
                Decision(reply_text, ReplyPath.FALLBACK, turn.block_reason, details=details),
                turn,
            )

        if asks_for_human(turn.text):
            return self._handoff("customer_request", turn.language, details)

        intent, confidence = self._confident_intent(turn.understanding)
        if intent is not None and intent in policy.handoff_intents:
            return self._handoff(f"intent:{intent}", turn.language, details)

        turn_slots = _turn_slots(turn.understanding)
        turn.state.remember(turn_slots)
        template_decision = self._template(turn, intent, turn_slots, details)
        if template_decision is not None:
            return template_decision

        unsure = (
            policy.handoff_below_confidence is not None
            and turn.understanding is not None
            and not turn.understanding.intent.out_of_scope
            and confidence < policy.handoff_below_confidence
        )
        grounded = self.answerer.answer(
            turn.text,
            language=turn.language,
            history=turn.history,
            slots=dict(turn.state.values),
            generator=turn.generator,
            timings=turn.timings,
            details=details,
            allow_generation=not unsure,
        )
        if grounded is not None:
            return grounded
        if unsure:
            return self._handoff("low_confidence", turn.language, details)

        reply_text = translate("reply.no_answer", turn.language)
        return self._fallback_or_handoff(
            Decision(reply_text, ReplyPath.FALLBACK, "no_relevant_passage", details=details),
            turn,
        )

    def _confident_intent(self, understanding: Understanding | None) -> tuple[str | None, float]:
        """Return the in-scope intent when it reaches the template threshold, and its confidence."""
        if understanding is None:
            return None, 0.0
        prediction = understanding.intent
        if prediction.out_of_scope or prediction.intent is None:
            return None, prediction.confidence
        if prediction.confidence < self.settings.policy.template_min_confidence:
            return None, prediction.confidence
        return prediction.intent, prediction.confidence

    def _template(
        self,
        turn: TurnContext,
        intent: str | None,
        turn_slots: dict[str, str],
        details: dict[str, Any],
    ) -> Decision | None:
        """Render the turn's template, or the prompt for its next missing slot; None without one."""
        if self.templates is None:
            turn.state.pending = None
            return None

        template: AnswerTemplate | None = None
        pending = turn.state.pending
        if pending is not None:
            # A reply to the bot's question continues its template, unless the turn is
            # confidently about something else.
            waiting = self.templates.by_id(pending.template)
            if waiting is not None and intent in (None, waiting.intent):
                answered = turn.state.answer_pending(
                    turn.text, turn_slots, self.settings.policy.slot_answer_max_words
                )
                if answered is not None or intent == waiting.intent:
                    template = waiting
            turn.state.pending = None
        if template is None:
            template = self.templates.for_intent(intent)
        if template is None:
            return None

        details["template"] = {"id": template.id, "intent": template.intent}
        missing = template.missing_slots(turn.state.values)
        if missing:
            slot = missing[0]
            turn.state.pending = PendingSlot(template.id, slot)
            details["template"]["asked_slot"] = slot
            return Decision(
                template.prompt(slot, turn.language),
                ReplyPath.TEMPLATE,
                "slot_prompt",
                details=details,
            )
        details["template"]["slots"] = {
            name: turn.state.values[name]
            for name in template.slot_names
            if name in turn.state.values
        }
        return Decision(
            template.render(turn.language, turn.state.values),
            ReplyPath.TEMPLATE,
            "template_answer",
            details=details,
        )

    def _fallback_or_handoff(self, fallback: Decision, turn: TurnContext) -> Decision:
        limit = self.settings.policy.handoff_after_fallbacks
        if limit and turn.recent_fallbacks + 1 >= limit:
            fallback.details["fallback_reason"] = fallback.reason
            return self._handoff("repeated_fallback", turn.language, fallback.details)
        return fallback

    @staticmethod
    def _handoff(reason: str, language: str, details: dict[str, Any]) -> Decision:
        logger.info("Handing off reason=%s", reason)
        return Decision(
            translate("reply.handoff", language),
            ReplyPath.HANDOFF,
            reason,
            details=details,
            handoff_reason=reason,
        )


def _turn_slots(understanding: Understanding | None) -> dict[str, str]:
    """Return the slot values of one turn.

    A ``datetime`` entity ("tomorrow at 7 pm") also fills the ``date`` and ``time`` slots
    that the turn has no entity of their own for, so templates can ask for either.
    """
    if understanding is None:
        return {}
    slots = {name: entity.value for name, entity in understanding.slots.items()}
    moment = slots.get("datetime")
    if moment and "T" in moment:
        day, _, clock = moment.partition("T")
        slots.setdefault("date", day)
        slots.setdefault("time", clock[:5])
    return slots

"""Replay the customer turns of held-out dialogs through a dialog manager.

Each dialog becomes a new live conversation on the channel "eval". Its customer turns
are sent in order, whatever the bot replies. After a handoff the conversation waits for
an agent, so the later turns come back FORWARDED, with no bot reply, as they would for a
real customer. The replay conversations are deleted afterwards unless ``keep`` is set.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from bot.dialog_manager import DialogManager
from bot.guard import InvalidMessageError
from bot.reply import Reply, ReplyPath
from evaluation.held_out import HeldOutDialog, HeldOutTurn
from storage import repository
from storage.errors import NotFoundError

logger = logging.getLogger(__name__)

REPLAY_CHANNEL = "eval"
# Path recorded for a customer turn that the input guard rejected, so it was never sent.
SKIPPED_PATH = "skipped"


@dataclass(frozen=True)
class TurnResult:
    """Outcome of one replayed customer turn.

    Attributes:
        dialog: External id of the held-out conversation.
        turn: Position of the customer turn in the dialog, from 0.
        language: Language of the reply.
        path: A :class:`ReplyPath` value, or "skipped" when the input guard rejected
            the turn.
        reason: The explanation's reason, such as "stored_answer" or
            "conversation_waiting".
        reply: The bot's reply; empty for forwarded and skipped turns.
        reference: The agent's real reply to this turn, or None.
        gold_intent: The turn's intent label, or None.
        predicted_intent: The intent the NLU models gave, or None (out of scope, or no
            NLU explanation because the turn was skipped).
        intent_version: The intent model version that served the turn, or None.
        dialog_version: The dialog model version that served the turn ("base" for the
            base model), or None when the bot did not reply.
        latency_ms: Time of the whole turn, lock wait included, in milliseconds.
    """

    dialog: str
    turn: int
    language: str
    path: str
    reason: str
    reply: str
    reference: str | None
    gold_intent: str | None
    predicted_intent: str | None
    intent_version: str | None
    dialog_version: str | None
    latency_ms: float


def replay_dialogs(
    manager: DialogManager,
    dialogs: Sequence[HeldOutDialog],
    *,
    label: str,
    keep: bool = False,
) -> list[TurnResult]:
    """Replay every dialog as a new conversation and return one result per customer turn.

    Args:
        manager: The dialog manager to answer with.
        dialogs: Held-out dialogs, replayed in this order.
        label: Run label put into the replay conversations' external ids, so that kept
            conversations can be told apart ("eval:<label>:<conversation id>").
        keep: Keep the replay conversations instead of deleting them.

    Raises:
        bot.dialog_manager.ConversationClosedError, bot.turn_lock.TurnLockTimeoutError:
            If a turn cannot be answered; the replay conversation is still deleted.
    """
    results: list[TurnResult] = []
    for number, dialog in enumerate(dialogs, start=1):
        conversation_id = manager.start_conversation(
            channel=REPLAY_CHANNEL,
            language=dialog.language,
            external_id=f"eval:{label}:{dialog.conversation_id}",
        )
        try:
            for index, turn in enumerate(dialog.turns):
                results.append(_replay_turn(manager, conversation_id, dialog, index, turn))
        finally:
            if not keep:
                delete_conversation(manager.session_factory, conversation_id)
        logger.info(
            "Replayed dialog %d/%d conversation id=%s turns=%d label=%s",
            number,
            len(dialogs),
            dialog.conversation_id,
            len(dialog.turns),
            label,
        )
    return results


def delete_conversation(session_factory: sessionmaker[Session], conversation_id: int) -> None:
    """Delete a replay conversation with its messages; a missing one is logged and skipped."""
    with session_factory.begin() as session:
        try:
            conversation = repository.get_conversation(session, conversation_id)
        except NotFoundError:
            logger.warning("Replay conversation id=%s was already deleted", conversation_id)
            return
        session.delete(conversation)
    logger.debug("Deleted replay conversation id=%s", conversation_id)


def _replay_turn(
    manager: DialogManager,
    conversation_id: int,
    dialog: HeldOutDialog,
    index: int,
    turn: HeldOutTurn,
) -> TurnResult:
    try:
        reply = manager.respond(conversation_id, turn.text)
    except InvalidMessageError as error:
        logger.warning(
            "Skipped turn %d of conversation id=%s: %s", index, dialog.conversation_id, error
        )
        return TurnResult(
            dialog=dialog.external_id,
            turn=index,
            language=dialog.language or "",
            path=SKIPPED_PATH,
            reason="invalid_message",
            reply="",
            reference=turn.reference,
            gold_intent=turn.gold_intent,
            predicted_intent=None,
            intent_version=None,
            dialog_version=None,
            latency_ms=0.0,
        )
    return _turn_result(reply, dialog, index, turn)


def _turn_result(reply: Reply, dialog: HeldOutDialog, index: int, turn: HeldOutTurn) -> TurnResult:
    explanation = reply.explanation
    models = explanation.get("models") or {}
    nlu = explanation.get("nlu") or {}
    return TurnResult(
        dialog=dialog.external_id,
        turn=index,
        language=reply.language,
        path=reply.path.value,
        reason=str(explanation.get("reason", "")),
        reply=reply.text if reply.path is not ReplyPath.FORWARDED else "",
        reference=turn.reference,
        gold_intent=turn.gold_intent,
        predicted_intent=nlu.get("intent"),
        # Forwarded turns carry the NLU result but no model list.
        intent_version=models.get("intent_version") or (nlu.get("versions") or {}).get("intent"),
        dialog_version=models.get("dialog_version"),
        latency_ms=float(reply.timings_ms.get("total", 0.0)),
    )

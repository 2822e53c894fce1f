"""Handoff state changes on SQLite and PostgreSQL: claims race, holders, closing."""

from __future__ import annotations

import threading

import pytest

from bot.config import Settings
from bot.handoff import ConversationHeldError, HandoffError, HandoffService, request_handoff
from bot.turn_lock import build_turn_lock
from storage import repository
from storage.errors import NotFoundError
from storage.models import ConversationStatus, Role


@pytest.fixture
def service(db_engine, session_factory, tmp_path) -> HandoffService:
    settings = Settings(home=tmp_path)
    return HandoffService(session_factory, build_turn_lock(db_engine, tmp_path / "locks"), settings)


def _waiting_conversation(session_factory) -> int:
    with session_factory.begin() as session:
        conversation = repository.create_conversation(session, language="en")
        repository.add_message(session, conversation=conversation, role=Role.CUSTOMER, text="help")
        request_handoff(session, conversation, "customer_request")
        return conversation.id


def _race(service: HandoffService, conversation_id: int, agents: tuple[str, ...]) -> dict[str, str]:
    """Let the agents claim at the same moment; return each agent's outcome."""
    barrier = threading.Barrier(len(agents))
    outcomes: dict[str, str] = {}

    def claim(agent: str) -> None:
        barrier.wait(timeout=10)
        try:
            service.claim(conversation_id, agent)
            outcomes[agent] = "won"
        except ConversationHeldError:
            outcomes[agent] = "held"

    threads = [threading.Thread(target=claim, args=(agent,)) for agent in agents]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return outcomes


def test_two_agents_claiming_at_once_exactly_one_wins(service, session_factory):
    for _ in range(5):
        conversation_id = _waiting_conversation(session_factory)

        outcomes = _race(service, conversation_id, ("Mei", "Tom"))

        assert sorted(outcomes.values()) == ["held", "won"]
        winner = next(agent for agent, outcome in outcomes.items() if outcome == "won")
        with session_factory() as session:
            conversation = repository.get_conversation(session, conversation_id)
            assert conversation.status is ConversationStatus.AGENT
            assert conversation.agent == winner


def test_claim_message_uses_conversation_language(service, session_factory):
    with session_factory.begin() as session:
        conversation = repository.create_conversation(session, language="zh-CN")
        conversation_id = conversation.id

    service.claim(conversation_id, "小王")

    with session_factory() as session:
        messages = repository.list_messages(session, conversation_id=conversation_id)
    assert [(m.role, m.meta["event"]) for m in messages] == [(Role.SYSTEM, "agent_joined")]
    assert "小王" in messages[0].text
    assert "已加入" in messages[0].text


def test_reply_needs_the_holder(service, session_factory):
    conversation_id = _waiting_conversation(session_factory)

    with pytest.raises(HandoffError, match="claim it first"):
        service.reply(conversation_id, "Mei", "Hello")
    service.claim(conversation_id, "Mei")
    with pytest.raises(ConversationHeldError, match="held by agent 'Mei'"):
        service.reply(conversation_id, "Tom", "Hello")
    stored = service.reply(conversation_id, "Mei", "  Hello there  ")

    assert stored.text == "Hello there"


def test_hand_back_clears_the_agent_and_pending_slot(service, session_factory):
    conversation_id = _waiting_conversation(session_factory)
    with session_factory.begin() as session:
        conversation = repository.get_conversation(session, conversation_id)
        conversation.dialog_state = {
            "values": {"order_id": "ORD-1"},
            "pending": {"template": "t", "slot": "email"},
        }
    service.claim(conversation_id, "Mei")

    conversation = service.hand_back(conversation_id, "Mei")

    assert conversation.status is ConversationStatus.BOT
    assert conversation.agent is None
    assert conversation.dialog_state == {"values": {"order_id": "ORD-1"}, "pending": None}


def test_close_rejects_other_agent_and_repeats(service, session_factory):
    conversation_id = _waiting_conversation(session_factory)
    service.claim(conversation_id, "Mei")

    with pytest.raises(ConversationHeldError):
        service.close(conversation_id, "Tom")
    first = service.close(conversation_id, "Mei")
    second = service.close(conversation_id)

    assert first.status is ConversationStatus.CLOSED
    assert second.closed_at == first.closed_at
    with pytest.raises(HandoffError, match="closed"):
        service.claim(conversation_id, "Tom")


def test_unknown_conversation_and_bad_agent_names(service):
    with pytest.raises(NotFoundError, match="conversation 424242 not found"):
        service.claim(424242, "Mei")
    with pytest.raises(ValueError, match="agent name is empty"):
        service.claim(424242, "   ")
    with pytest.raises(ValueError, match="more than 255"):
        service.claim(424242, "x" * 300)


def test_claiming_again_adds_no_second_join_message(service, session_factory):
    conversation_id = _waiting_conversation(session_factory)

    service.claim(conversation_id, "Mei")
    service.claim(conversation_id, "Mei")

    with session_factory() as session:
        messages = repository.list_messages(session, conversation_id=conversation_id)
    events = [m.meta.get("event") for m in messages if m.role == Role.SYSTEM]
    assert events == ["agent_joined"]

from __future__ import annotations

import dataclasses
from collections import Counter
from datetime import UTC, datetime

import pytest

from finetune.pairs import (
    ConversationFilter,
    TrainingPair,
    build_pairs,
    choose_best_answers,
    collect_pairs,
    select_conversations,
)
from storage.models import Conversation, ConversationStatus, Correction, Message, Role

CUSTOMER, AGENT, BOT = Role.CUSTOMER, Role.AGENT, Role.BOT


def _store_conversation(
    session,
    external_id: str,
    turns: list[tuple[Role, str]],
    *,
    channel: str = "chat",
    status: ConversationStatus = ConversationStatus.CLOSED,
    source: str | None = "export.jsonl",
    created_at: datetime | None = None,
) -> Conversation:
    conversation = Conversation(
        external_id=external_id,
        channel=channel,
        status=status,
        source=source,
        created_at=created_at or datetime(2024, 3, 1, tzinfo=UTC),
    )
    conversation.messages = [
        Message(seq=seq, role=role, text=text, meta={})
        for seq, (role, text) in enumerate(turns, start=1)
    ]
    session.add(conversation)
    session.flush()
    return conversation


def _build(session_factory, turns, **kwargs) -> tuple[list[TrainingPair], Counter[str]]:
    counts: Counter[str] = Counter()
    with session_factory.begin() as session:
        conversation = _store_conversation(session, "c-1", turns)
        pairs = build_pairs(conversation.messages, drop_counts=counts, **kwargs)
    return pairs, counts


def test_build_pairs_skips_greetings_and_holding(sqlite_session_factory):
    turns = [
        (CUSTOMER, "Hi!"),
        (AGENT, "Hello, how can I help you today?"),
        (CUSTOMER, "My parcel has not arrived."),
        (AGENT, "One moment please."),
        (CUSTOMER, "It was due on Monday"),
        (AGENT, "It is delayed at the depot and arrives tomorrow."),
        (CUSTOMER, "你好"),
        (AGENT, "请稍等"),
    ]

    pairs, counts = _build(sqlite_session_factory, turns)

    assert [(p.question, p.answer) for p in pairs] == [
        (
            "My parcel has not arrived.\nIt was due on Monday",
            "It is delayed at the depot and arrives tomorrow.",
        )
    ]
    assert counts["greeting_message"] == 3
    assert counts["holding_message"] == 2


def test_build_pairs_skips_one_word_and_empty(sqlite_session_factory):
    turns = [
        (CUSTOMER, "Can I change my delivery address?"),
        (AGENT, "Yes."),
        (CUSTOMER, "订单可以取消吗？"),
        (AGENT, "可以"),
        (CUSTOMER, "Where do I do that?"),
        (AGENT, "   "),
        (AGENT, "Under Orders, choose Edit address."),
        (CUSTOMER, "Thanks, and the invoice?"),
    ]

    pairs, counts = _build(sqlite_session_factory, turns)

    assert [p.answer for p in pairs] == ["Under Orders, choose Edit address."]
    assert counts["one_word_answer"] == 2
    assert counts["empty_message"] == 1
    assert counts["unanswered_question"] == 1


def test_build_pairs_merges_consecutive_turns(sqlite_session_factory):
    turns = [
        (CUSTOMER, "I was charged twice."),
        (CUSTOMER, "Order 1234."),
        (BOT, "An agent will join shortly."),
        (AGENT, "I see both charges."),
        (AGENT, "I have refunded the second one."),
    ]

    pairs, counts = _build(sqlite_session_factory, turns)

    assert len(pairs) == 1
    assert pairs[0].question == "I was charged twice.\nOrder 1234."
    assert pairs[0].answer == "I see both charges.\nI have refunded the second one."
    assert pairs[0].answer_seq == 5
    assert counts["bot_or_system_message"] == 1


def test_build_pairs_limits_context(sqlite_session_factory):
    turns = [
        (CUSTOMER, "question one"),
        (AGENT, "answer one here"),
        (CUSTOMER, "question two"),
        (AGENT, "answer two here"),
        (CUSTOMER, "question three"),
        (AGENT, "answer three here"),
    ]

    pairs, _ = _build(sqlite_session_factory, turns, context_turns=3)

    assert [p.context for p in pairs] == [
        (),
        (("customer", "question one"), ("agent", "answer one here")),
        (
            ("agent", "answer one here"),
            ("customer", "question two"),
            ("agent", "answer two here"),
        ),
    ]


def test_build_pairs_records_source_metadata(sqlite_session_factory):
    pairs, _ = _build(
        sqlite_session_factory, [(CUSTOMER, "Is there a fee?"), (AGENT, "No, it is free.")]
    )

    pair = pairs[0]
    assert pair.external_id == "c-1"
    assert pair.channel == "chat"
    assert pair.status == "closed"
    assert pair.source == "export.jsonl"
    assert pair.created_at is not None


def test_build_pairs_applies_redactor(sqlite_session_factory):
    turns = [(CUSTOMER, "My mail is a@example.com"), (AGENT, "We wrote to a@example.com today.")]

    pairs, _ = _build(
        sqlite_session_factory,
        turns,
        redactor=lambda text: text.replace("a@example.com", "[EMAIL]"),
    )

    assert pairs[0].question == "My mail is [EMAIL]"
    assert pairs[0].answer == "We wrote to [EMAIL] today."


def test_build_pairs_negative_context_rejected():
    with pytest.raises(ValueError, match="context_turns must be 0 or more, got -1"):
        build_pairs([], context_turns=-1)


def test_collect_pairs_reads_every_conversation(sqlite_session_factory):
    with sqlite_session_factory.begin() as session:
        ids = [
            _store_conversation(
                session, f"c-{n}", [(CUSTOMER, f"question {n}"), (AGENT, f"answer number {n}")]
            ).id
            for n in range(3)
        ]

    with sqlite_session_factory() as session:
        collection = collect_pairs(session, ids)

    assert collection.conversations_read == 3
    assert [p.external_id for p in collection.pairs] == ["c-0", "c-1", "c-2"]


class TestSelectConversations:
    @pytest.fixture
    def stored_ids(self, session_factory) -> dict[str, int]:
        rows = [
            (
                "jan-chat-closed",
                "chat",
                ConversationStatus.CLOSED,
                "a.jsonl",
                datetime(2024, 1, 5, tzinfo=UTC),
            ),
            (
                "feb-mail-closed",
                "email",
                ConversationStatus.CLOSED,
                "b.jsonl",
                datetime(2024, 2, 5, tzinfo=UTC),
            ),
            (
                "mar-chat-open",
                "chat",
                ConversationStatus.BOT,
                "a.jsonl",
                datetime(2024, 3, 5, tzinfo=UTC),
            ),
        ]
        with session_factory.begin() as session:
            return {
                external_id: _store_conversation(
                    session,
                    external_id,
                    [],
                    channel=channel,
                    status=status,
                    source=source,
                    created_at=created,
                ).id
                for external_id, channel, status, source, created in rows
            }

    def _select(self, session_factory, stored_ids, **filter_fields) -> list[str]:
        names = {value: key for key, value in stored_ids.items()}
        with session_factory() as session:
            ids = select_conversations(session, ConversationFilter(**filter_fields))
        return [names[i] for i in ids]

    def test_select_all_without_filter(self, session_factory, stored_ids):
        assert self._select(session_factory, stored_ids) == list(stored_ids)

    def test_select_by_date_range(self, session_factory, stored_ids):
        selected = self._select(
            session_factory,
            stored_ids,
            created_from=datetime(2024, 2, 1, tzinfo=UTC),
            created_to=datetime(2024, 3, 5, tzinfo=UTC),
        )

        assert selected == ["feb-mail-closed"]

    def test_select_by_naive_date_as_utc(self, session_factory, stored_ids):
        selected = self._select(session_factory, stored_ids, created_from=datetime(2024, 3, 1))

        assert selected == ["mar-chat-open"]

    def test_select_by_channel(self, session_factory, stored_ids):
        assert self._select(session_factory, stored_ids, channels=("email",)) == ["feb-mail-closed"]

    def test_select_by_status(self, session_factory, stored_ids):
        selected = self._select(session_factory, stored_ids, statuses=("closed",))

        assert selected == ["jan-chat-closed", "feb-mail-closed"]

    def test_select_by_source_and_status(self, session_factory, stored_ids):
        selected = self._select(
            session_factory, stored_ids, sources=("a.jsonl",), statuses=(ConversationStatus.BOT,)
        )

        assert selected == ["mar-chat-open"]


def test_filter_unknown_status_rejected():
    with pytest.raises(
        ValueError,
        match="unknown conversation status 'solved'; use one of: bot, waiting, agent, closed",
    ):
        ConversationFilter(statuses=("solved",))


def test_filter_reversed_dates_rejected():
    with pytest.raises(ValueError, match="must be before created_to"):
        ConversationFilter(
            created_from=datetime(2024, 2, 1, tzinfo=UTC),
            created_to=datetime(2024, 1, 1, tzinfo=UTC),
        )


def _pair(index: int, question: str, answer: str, status: str = "closed") -> TrainingPair:
    return TrainingPair(
        conversation_id=index,
        external_id=f"c-{index}",
        context=(),
        question=question,
        answer=answer,
        channel="chat",
        status=status,
        source=None,
        created_at=None,
        answer_seq=2,
    )


def test_choose_best_answers_invalid_similarity_rejected():
    with pytest.raises(ValueError, match=r"similarity must be in \(0, 1\], got 1.5"):
        choose_best_answers([], embedder=None, similarity=1.5)


@pytest.mark.slow
def test_choose_best_answers_prefers_recurring_answer(packaged_embedder):
    reset = "Use the Forgot password link on the sign-in page."
    pairs = [
        _pair(
            0, "How do I reset my password?", "Please email support and we will do it.", "closed"
        ),
        _pair(1, "How can I reset my password?", reset, "bot"),
        _pair(2, "how do i reset my password", reset + "  ", "bot"),
        _pair(3, "What are your opening hours?", "We are open 9:00 to 17:00, Monday to Friday."),
        _pair(4, "怎么重置密码？", "请在登录页点击“忘记密码”。"),
    ]

    result = choose_best_answers(pairs, packaged_embedder, similarity=0.9)

    kept = {pair.conversation_id for pair in result.pairs}
    assert kept == {1, 3, 4}
    assert result.duplicates_removed == 2
    assert result.groups_merged == 1


@pytest.mark.slow
def test_choose_best_answers_prefers_closed_on_tie(packaged_embedder):
    pairs = [
        _pair(0, "How do I reset my password?", "Ask an admin to reset it.", "bot"),
        _pair(1, "How can I reset my password?", "Use the Forgot password link.", "closed"),
    ]

    result = choose_best_answers(pairs, packaged_embedder, similarity=0.9)

    assert [pair.conversation_id for pair in result.pairs] == [1]


def _store_with_correction(session_factory, turns, corrected_seq: int, text: str) -> list[int]:
    with session_factory.begin() as session:
        conversation = _store_conversation(session, "c-1", turns)
        message = next(m for m in conversation.messages if m.seq == corrected_seq)
        session.add(Correction(message_id=message.id, text="An older correction.", author="a"))
        session.flush()
        session.add(Correction(message_id=message.id, text=text, author="agent-7"))
        return [conversation.id]


def test_correction_replaces_bot_reply(sqlite_session_factory):
    turns = [(CUSTOMER, "Where is my parcel?"), (BOT, "I do not know, sorry about that.")]
    ids = _store_with_correction(
        sqlite_session_factory, turns, corrected_seq=2, text="It left the depot this morning."
    )

    with sqlite_session_factory() as session:
        collection = collect_pairs(session, ids)

    assert [pair.answer for pair in collection.pairs] == ["It left the depot this morning."]
    assert collection.pairs[0].is_correction is True


def test_correction_replaces_agent_reply(sqlite_session_factory):
    turns = [(CUSTOMER, "Can I pay later?"), (AGENT, "No, you have to pay today.")]
    ids = _store_with_correction(
        sqlite_session_factory, turns, corrected_seq=2, text="Yes, within 30 days by invoice."
    )

    with sqlite_session_factory() as session:
        collection = collect_pairs(session, ids)

    assert [pair.answer for pair in collection.pairs] == ["Yes, within 30 days by invoice."]


def test_uncorrected_bot_reply_still_dropped(sqlite_session_factory):
    turns = [(CUSTOMER, "Where is my parcel?"), (BOT, "I do not know, sorry about that.")]
    with sqlite_session_factory.begin() as session:
        ids = [_store_conversation(session, "c-1", turns).id]

    with sqlite_session_factory() as session:
        collection = collect_pairs(session, ids)

    assert collection.pairs == []


@pytest.mark.slow
def test_choose_best_answers_prefers_correction(packaged_embedder):
    recurring = "Ask an admin to reset it."
    corrected = dataclasses.replace(
        _pair(2, "How can I reset my password?", "Use the Forgot password link."),
        is_correction=True,
    )
    pairs = [
        _pair(0, "How do I reset my password?", recurring),
        _pair(1, "how do i reset my password", recurring),
        corrected,
    ]

    result = choose_best_answers(pairs, packaged_embedder, similarity=0.9)

    assert [pair.conversation_id for pair in result.pairs] == [2]


def test_filter_by_min_rating(sqlite_session_factory):
    with sqlite_session_factory.begin() as session:
        rated = {}
        for name, rating in (("low", 2), ("high", 5), ("none", None)):
            conversation = _store_conversation(
                session, name, [(CUSTOMER, "question"), (AGENT, "a long answer")]
            )
            conversation.rating = rating
            rated[name] = conversation.id

    with sqlite_session_factory() as session:
        selected = select_conversations(session, ConversationFilter(min_rating=4))

    assert selected == [rated["high"]]


@pytest.mark.parametrize("rating", [0, 6])
def test_filter_invalid_rating_rejected(rating):
    with pytest.raises(ValueError, match=f"invalid min_rating {rating}"):
        ConversationFilter(min_rating=rating)


@pytest.mark.slow
def test_choose_best_answers_prefers_rated_on_tie(packaged_embedder):
    pairs = [
        dataclasses.replace(
            _pair(0, "How do I reset my password?", "Ask an admin to reset it."), rating=2
        ),
        dataclasses.replace(
            _pair(1, "How can I reset my password?", "Use the Forgot password link."), rating=5
        ),
    ]

    result = choose_best_answers(pairs, packaged_embedder, similarity=0.9)

    assert [pair.conversation_id for pair in result.pairs] == [1]


def test_filter_describe_names_every_criterion():
    conversation_filter = ConversationFilter(
        created_from=datetime(2030, 1, 1), statuses=("closed",), min_rating=4
    )

    text = conversation_filter.describe()

    assert "created at or after 2030-01-01T00:00:00+00:00" in text
    assert "status closed" in text
    assert "rating at least 4" in text
    assert ConversationFilter().describe() == "all conversations"

from __future__ import annotations

from bot.policy import _turn_slots
from bot.slots import MAX_SLOT_VALUE_CHARS, DialogState, PendingSlot
from bot.understanding import Understanding
from nlu.types import Entity, IntentPrediction


def test_state_round_trips_through_json():
    state = DialogState(values={"order_id": "ORD-1"}, pending=PendingSlot("t", "email"))

    assert DialogState.from_json(state.to_json()) == state


def test_malformed_stored_state_reads_as_empty():
    for stored in (None, [], {"values": "x", "pending": 3}, {"pending": {"template": "t"}}):
        assert DialogState.from_json(stored) == DialogState()


def test_remember_keeps_latest_cut_value():
    state = DialogState(values={"city": "Paris"})

    changed = state.remember({"city": "Berlin", "date": "  ", "name": "x" * 500})

    assert changed == ["city", "name"]
    assert state.values["city"] == "Berlin"
    assert "date" not in state.values
    assert len(state.values["name"]) == MAX_SLOT_VALUE_CHARS


def test_pending_free_text_slot_takes_a_short_reply():
    state = DialogState(pending=PendingSlot("t", "new_address"))

    assert state.answer_pending("12 Baker Street, London.", {}, max_words=6) == "new_address"
    assert state.values["new_address"] == "12 Baker Street, London"


def test_pending_slot_ignores_long_and_typed():
    long_reply = DialogState(pending=PendingSlot("t", "new_address"))
    email = DialogState(pending=PendingSlot("t", "email"))

    assert long_reply.answer_pending("one two three four five six seven", {}, max_words=6) is None
    assert email.answer_pending("I don't know", {}, max_words=6) is None
    assert email.answer_pending("a@b.co", {"email": "a@b.co"}, max_words=6) == "email"


def test_chinese_reply_counts_four_characters_as_a_word():
    state = DialogState(pending=PendingSlot("t", "new_address"))

    assert state.answer_pending("北京市海淀区中关村大街1号", {}, max_words=6) == "new_address"


def test_datetime_entity_also_fills_date_and_time():
    moment = Entity("datetime", "2026-12-06T19:00", "tomorrow at 7 pm", 0, 16, "rule:datetime")
    understanding = Understanding(
        intent=IntentPrediction(None, 0.0, True, 0.0),
        entities=[moment],
        slots={"datetime": moment},
        language="en",
    )

    slots = _turn_slots(understanding)

    assert slots == {"datetime": "2026-12-06T19:00", "date": "2026-12-06", "time": "19:00"}


def test_question_back_does_not_fill_the_slot():
    state = DialogState(pending=PendingSlot("t", "restaurant_name"))

    assert state.answer_pending("Is the table booked?", {}, max_words=6) is None
    assert state.answer_pending("订好了吗？", {}, max_words=6) is None
    assert "restaurant_name" not in state.values

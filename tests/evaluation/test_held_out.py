"""Selection of held-out dialogs from stored conversations."""

from __future__ import annotations

import pytest

from evaluation.held_out import HeldOutSelection, select_held_out_dialogs
from finetune.splits import conversation_split
from storage import repository
from storage.dialog_import import import_dialogs
from storage.models import ConversationStatus, Role
from tests.evaluation.conftest import EVAL_DIALOGS, HELD_OUT, KETTLE_ANSWER


@pytest.fixture
def imported(session_factory):
    import_dialogs(session_factory, [EVAL_DIALOGS], format="sgd", show_progress=False)
    return session_factory


def test_selection_matches_finetune_test_split(imported):
    dialogs = select_held_out_dialogs(imported, HeldOutSelection())

    assert [dialog.external_id for dialog in dialogs] == HELD_OUT
    assert all(conversation_split(dialog.external_id) == "test" for dialog in dialogs)


def test_selection_follows_seed_and_fractions(imported):
    selection = HeldOutSelection(validation=0.0, test=0.5, seed=7)
    expected = [
        external_id
        for external_id in ("sgd:eval_000", "sgd:eval_007", *HELD_OUT)
        if conversation_split(external_id, validation=0.0, test=0.5, seed=7) == "test"
    ]

    dialogs = select_held_out_dialogs(imported, selection)

    assert sorted(dialog.external_id for dialog in dialogs) == sorted(expected)


def test_turns_carry_reference_and_gold_intent(imported):
    dialogs = {d.external_id: d for d in select_held_out_dialogs(imported, HeldOutSelection())}

    kettle = dialogs["sgd:eval_011"].turns
    refund = dialogs["sgd:eval_031"].turns
    password = dialogs["sgd:eval_026"].turns
    assert len(kettle) == 2
    assert kettle[0].reference == KETTLE_ANSWER
    assert kettle[0].gold_intent is None
    assert refund[0].gold_intent == "request_refund"
    assert refund[1].gold_intent == "FindRestaurants"
    # The third turn keeps reset_password as SGD's active intent but states no intent.
    assert [turn.gold_intent for turn in password] == ["reset_password", None, None, None]


def test_consecutive_customer_messages_form_one_turn(imported):
    with imported.begin() as session:
        conversation = repository.create_conversation(session, external_id="sgd:eval_043")
        for role, message in [
            (Role.CUSTOMER, "My order is late."),
            (Role.CUSTOMER, "It is order 77."),
            (Role.BOT, "Let me look."),
            (Role.AGENT, "Order 77 arrives tomorrow."),
            (Role.CUSTOMER, "Thanks!"),
        ]:
            meta = {"intent": "track_order"} if message == "It is order 77." else None
            repository.add_message(
                session, conversation=conversation, role=role, text=message, meta=meta
            )
        conversation.status = ConversationStatus.CLOSED
    assert conversation_split("sgd:eval_043") == "test"

    dialogs = {d.external_id: d for d in select_held_out_dialogs(imported, HeldOutSelection())}

    turns = dialogs["sgd:eval_043"].turns
    assert [turn.text for turn in turns] == ["My order is late.\nIt is order 77.", "Thanks!"]
    assert [turn.reference for turn in turns] == ["Order 77 arrives tomorrow.", None]
    assert [turn.gold_intent for turn in turns] == ["track_order", None]


def test_open_and_agentless_conversations_left_out(imported):
    with imported.begin() as session:
        live = repository.create_conversation(session, external_id="sgd:eval_064")
        repository.add_message(session, conversation=live, role=Role.CUSTOMER, text="Hello?")
        repository.add_message(session, conversation=live, role=Role.AGENT, text="Hi there.")
        silent = repository.create_conversation(session, external_id="sgd:eval_072")
        repository.add_message(session, conversation=silent, role=Role.CUSTOMER, text="Hello?")
        silent.status = ConversationStatus.CLOSED
    assert conversation_split("sgd:eval_064") == "test"
    assert conversation_split("sgd:eval_072") == "test"

    dialogs = select_held_out_dialogs(imported, HeldOutSelection())

    assert [dialog.external_id for dialog in dialogs] == HELD_OUT


def test_limit_keeps_lowest_ids(imported):
    dialogs = select_held_out_dialogs(imported, HeldOutSelection(limit=2))

    assert [dialog.external_id for dialog in dialogs] == HELD_OUT[:2]


@pytest.mark.parametrize(
    ("selection", "expected"),
    [
        (HeldOutSelection(language="en"), HELD_OUT),
        (HeldOutSelection(language="EN-us"), HELD_OUT),
        (HeldOutSelection(language="zh"), []),
        (HeldOutSelection(source="sgd:"), HELD_OUT),
        (HeldOutSelection(source="crosswoz"), []),
    ],
)
def test_language_and_source_filters(imported, selection, expected):
    dialogs = select_held_out_dialogs(imported, selection)

    assert [dialog.external_id for dialog in dialogs] == expected


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"test": 1.0}, "test must be a fraction"),
        ({"validation": 0.6, "test": 0.5}, "must be below 1"),
        ({"limit": 0}, "limit must be at least 1"),
        ({"language": "fr"}, "invalid language 'fr': use en or zh-CN"),
    ],
)
def test_invalid_selection_rejected(values, message):
    with pytest.raises(ValueError, match=message):
        HeldOutSelection(**values)

from __future__ import annotations

import pytest
from sqlalchemy import inspect
from sqlalchemy.exc import IntegrityError

from storage import repository
from storage.errors import NotFoundError
from storage.models import Role


def test_schema_has_all_tables(db_engine):
    tables = set(inspect(db_engine).get_table_names())

    assert {"conversations", "messages", "knowledge_documents", "chunks"} <= tables
    assert "alembic_version" in tables


def test_add_message_numbers_turns_in_order(session_factory):
    with session_factory.begin() as session:
        conversation = repository.create_conversation(session, external_id="c-1")
        repository.add_message(session, conversation=conversation, role=Role.CUSTOMER, text="hi")
        repository.add_message(
            session, conversation=conversation, role=Role.BOT, text="hello", meta={"path": "x"}
        )

    with session_factory() as session:
        messages = repository.list_messages(session, conversation_id=conversation.id)
        last = repository.list_messages(session, conversation_id=conversation.id, last=1)

    assert [m.seq for m in messages] == [1, 2]
    assert [m.role for m in messages] == [Role.CUSTOMER, Role.BOT]
    assert messages[1].meta == {"path": "x"}
    assert [m.text for m in last] == ["hello"]


def test_get_conversation_not_found(session_factory):
    with session_factory() as session, pytest.raises(NotFoundError, match="conversation 999"):
        repository.get_conversation(session, 999)


def test_external_id_is_unique(session_factory):
    with session_factory.begin() as session:
        repository.create_conversation(session, external_id="dup")

    with pytest.raises(IntegrityError), session_factory.begin() as session:
        repository.create_conversation(session, external_id="dup")

    with session_factory() as session:
        assert repository.count_conversations(session) == 1


def test_chinese_text_round_trips(session_factory):
    with session_factory.begin() as session:
        conversation = repository.create_conversation(session, language="zh-CN")
        repository.add_message(
            session, conversation=conversation, role=Role.CUSTOMER, text="故宫的门票多少钱？😀"
        )

    with session_factory() as session:
        (message,) = repository.list_messages(session, conversation_id=conversation.id)

    assert message.text == "故宫的门票多少钱？😀"


def test_existing_external_ids(session_factory):
    with session_factory.begin() as session:
        repository.create_conversation(session, external_id="a")
        repository.create_conversation(session, external_id="b")

    with session_factory() as session:
        found = repository.get_existing_external_ids(session, ["a", "c", "b", "a"])

    assert found == {"a", "b"}

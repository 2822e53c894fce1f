"""import_dialogs against SQLite and PostgreSQL, with small fixture files."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from storage import repository
from storage.dialog_import import DialogFormatError, import_dialogs
from storage.models import Conversation, ConversationStatus, Role

FIXTURES = Path(__file__).parents[1] / "fixtures" / "dialogs"


def _messages(session_factory, external_id: str):
    with session_factory() as session:
        conversation = repository.get_conversation_by_external_id(session, external_id)
        assert conversation is not None, f"{external_id} was not imported"
        return conversation, repository.list_messages(session, conversation_id=conversation.id)


def _as_utc(value: datetime) -> datetime:
    # SQLite returns naive datetimes, and the importer stores every timestamp in UTC.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _external_ids(session_factory) -> list[str]:
    with session_factory() as session:
        return sorted(session.scalars(select(Conversation.external_id)))


def test_import_jsonl_english_and_chinese(session_factory):
    report = import_dialogs(
        session_factory,
        [FIXTURES / "support_en.jsonl", FIXTURES / "support_zh.jsonl"],
        show_progress=False,
    )

    conversation, messages = _messages(session_factory, "en-1001")
    _, chinese = _messages(session_factory, "zh-2002")
    assert report.conversations_added == 5
    assert report.messages_added == 15
    assert report.conversations_present == 0
    assert report.skipped_count == 0
    assert report.files_read == 2
    assert conversation.channel == "email"
    assert conversation.language == "en"
    assert conversation.status == ConversationStatus.CLOSED
    assert conversation.source == "jsonl:support_en.jsonl"
    assert [m.seq for m in messages] == [1, 2, 3]
    assert [m.role for m in messages] == [Role.CUSTOMER, Role.AGENT, Role.CUSTOMER]
    assert messages[1].meta == {"agent": "a-17", "intent": "reset_password"}
    assert _as_utc(messages[1].created_at) == datetime(2024, 3, 1, 9, 5, tzinfo=UTC)
    assert chinese[0].text == "故宫的门票多少钱？😀"


def test_import_timestamps_fall_back(session_factory):
    import_dialogs(session_factory, [FIXTURES / "support_zh.jsonl"], show_progress=False)

    conversation, messages = _messages(session_factory, "zh-2001")
    expected = datetime(2024, 4, 2, 2, 0, tzinfo=UTC)
    assert _as_utc(conversation.created_at) == expected
    assert [_as_utc(m.created_at) for m in messages] == [expected] * 3


def test_import_csv_interleaved(session_factory):
    report = import_dialogs(
        session_factory,
        [FIXTURES / "support_en.csv", FIXTURES / "support_zh.csv"],
        show_progress=False,
    )

    _, messages = _messages(session_factory, "c-1")
    _, chinese = _messages(session_factory, "zh-c-1")
    assert report.conversations_added == 3
    assert report.messages_added == 10
    assert [m.role for m in messages] == [
        Role.CUSTOMER,
        Role.BOT,
        Role.AGENT,
        Role.CUSTOMER,
        Role.AGENT,
    ]
    assert chinese[2].text == "好的，谢谢！"


def test_import_sgd_and_crosswoz_fixtures(session_factory):
    report = import_dialogs(
        session_factory,
        [FIXTURES / "sgd", FIXTURES / "crosswoz" / "val.json"],
        show_progress=False,
    )

    _, sgd = _messages(session_factory, "sgd:train/1_00001")
    conversation, crosswoz = _messages(session_factory, "crosswoz:7001")
    assert report.conversations_added == 4
    assert report.messages_added == 10
    assert sgd[0].meta["frames"][0]["slots"][1]["value"] == "Anna"
    assert conversation.language == "zh-CN"
    assert crosswoz[0].meta["dialog_acts"][1] == ["Inform", "景点", "门票", "免费"]


def test_reimport_adds_nothing(session_factory):
    paths = [FIXTURES / "support_en.jsonl", FIXTURES / "support_en.csv"]
    import_dialogs(session_factory, paths, show_progress=False)

    report = import_dialogs(session_factory, paths, show_progress=False)

    with session_factory() as session:
        message_count = repository.count_messages(session)
    assert report.conversations_added == 0
    assert report.messages_added == 0
    assert report.conversations_present == 5
    assert len(_external_ids(session_factory)) == 5
    assert message_count == 17


def test_duplicate_id_within_input(session_factory, tmp_path):
    copy = tmp_path / "again.jsonl"
    shutil.copy(FIXTURES / "support_zh.jsonl", copy)

    report = import_dialogs(
        session_factory, [FIXTURES / "support_zh.jsonl", copy], batch_size=10, show_progress=False
    )

    assert report.conversations_added == 2
    assert report.conversations_present == 2


def test_import_limit_across_files(session_factory):
    paths = [FIXTURES / "support_en.jsonl", FIXTURES / "support_zh.jsonl"]

    first = import_dialogs(session_factory, paths, limit=4, batch_size=3, show_progress=False)
    second = import_dialogs(session_factory, paths, limit=4, show_progress=False)

    assert first.conversations_added == 4
    assert first.files_read == 2
    assert _external_ids(session_factory) == ["1003", "en-1001", "en-1002", "zh-2001"]
    assert second.conversations_added == 0
    assert second.conversations_present == 4


def test_invalid_record_stops_import(session_factory):
    with pytest.raises(DialogFormatError, match=r"malformed\.jsonl, line 2: invalid JSON") as info:
        import_dialogs(
            session_factory, [FIXTURES / "malformed.jsonl"], batch_size=1, show_progress=False
        )

    assert info.value.problem.location == "line 2"
    assert "skip_invalid=True" in str(info.value)
    # The valid conversation before the bad line is kept. Nothing after it is written.
    assert _external_ids(session_factory) == ["ok-1"]


def test_invalid_csv_conversation_not_written(session_factory):
    with pytest.raises(DialogFormatError, match=r"line 5 \(conversation m-2\): timestamp"):
        import_dialogs(session_factory, [FIXTURES / "malformed.csv"], show_progress=False)

    with session_factory() as session:
        assert repository.get_conversation_by_external_id(session, "m-2") is None


def test_skip_invalid_counts_reasons(session_factory):
    report = import_dialogs(
        session_factory,
        [FIXTURES / "malformed.jsonl", FIXTURES / "malformed.csv"],
        skip_invalid=True,
        show_progress=False,
    )

    assert report.conversations_added == 3
    assert report.skipped_count == 5
    assert dict(report.skipped_by_kind) == {
        "invalid_json": 1,
        "missing_field": 1,
        "unknown_role": 1,
        "empty_text": 1,
        "invalid_value": 1,
    }
    assert [str(p.path.name) for p in report.skipped] == ["malformed.jsonl"] * 4 + ["malformed.csv"]
    assert [p.location for p in report.skipped[:4]] == ["line 2", "line 3", "line 4", "line 5"]
    assert _external_ids(session_factory) == ["m-1", "ok-1", "ok-2"]


@pytest.mark.parametrize(
    ("content", "kind"),
    [
        (b"", "empty_file"),
        (b'{"id": "a", "turns": [{"role": "agent", "text": "caf\xe9"}]}\n', "invalid_encoding"),
        (b'{"id": "a", "turns": [{"role": "agent", "text": "nul \\u0000"}]}\n', "invalid_value"),
    ],
)
def test_skip_invalid_file_problems(session_factory, tmp_path, content, kind):
    path = tmp_path / "export.jsonl"
    path.write_bytes(content)

    report = import_dialogs(session_factory, [path], skip_invalid=True, show_progress=False)

    assert report.conversations_added == 0
    assert dict(report.skipped_by_kind) == {kind: 1}


def test_empty_file_raises(session_factory, tmp_path):
    path = tmp_path / "export.csv"
    path.write_bytes(b"")

    with pytest.raises(DialogFormatError, match=r"export\.csv, file: file is empty"):
        import_dialogs(session_factory, [path], show_progress=False)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"batch_size": 0}, "batch_size must be at least 1, got 0"),
        ({"limit": 0}, "limit must be at least 1"),
        ({"format": "xml"}, "unknown dialog format 'xml'"),
    ],
)
def test_import_rejects_invalid_arguments(sqlite_session_factory, kwargs, message):
    with pytest.raises(ValueError, match=message):
        import_dialogs(
            sqlite_session_factory, [FIXTURES / "support_en.jsonl"], show_progress=False, **kwargs
        )


def test_explicit_format_overrides_detection(sqlite_session_factory, tmp_path):
    path = tmp_path / "export.txt"
    shutil.copy(FIXTURES / "support_zh.jsonl", path)

    report = import_dialogs(sqlite_session_factory, [path], format="jsonl", show_progress=False)

    assert report.conversations_added == 2


@pytest.mark.slow
def test_import_real_sgd_file(session_factory, shared_data_dir):
    path = shared_data_dir / "sgd" / "train" / "dialogues_001.json.gz"

    report = import_dialogs(session_factory, [path], show_progress=False)

    _, messages = _messages(session_factory, "sgd:train/1_00000")
    assert report.conversations_added == 128
    assert report.messages_added == 2466
    assert report.skipped_count == 0
    assert messages[0].role == Role.CUSTOMER
    assert messages[0].meta["frames"][0]["active_intent"] == "FindRestaurants"
    assert messages[2].meta["frames"][0]["slots"][0]["value"] == "San Jose"


@pytest.mark.slow
def test_import_real_crosswoz_val_with_limit(session_factory, shared_data_dir):
    path = shared_data_dir / "crosswoz" / "val.json.zip"

    report = import_dialogs(session_factory, [path], limit=40, batch_size=16, show_progress=False)

    with session_factory() as session:
        languages = set(session.scalars(select(Conversation.language)))
    assert report.conversations_added == 40
    assert report.messages_added > 40 * 4
    assert report.skipped_count == 0
    assert languages == {"zh-CN"}

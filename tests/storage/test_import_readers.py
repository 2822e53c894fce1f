"""Readers and format detection of the dialog import, without a database."""

from __future__ import annotations

import gzip
import re
import shutil
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import pytest

from storage.importers import (
    DialogRecord,
    InputFile,
    InvalidRecord,
    ProblemKind,
    detect_format,
    read_dialogs,
    resolve_inputs,
)
from storage.models import Role

FIXTURES = Path(__file__).parents[1] / "fixtures" / "dialogs"


def _read(path: Path, format: str | None = None) -> list[DialogRecord | InvalidRecord]:
    return list(read_dialogs(InputFile(path, format or detect_format(path))))


def _valid(records: list) -> dict[str, DialogRecord]:
    return {record.external_id: record for record in records if isinstance(record, DialogRecord)}


def _invalid(records: list) -> list[InvalidRecord]:
    return [record for record in records if isinstance(record, InvalidRecord)]


@pytest.fixture
def crosswoz_zip(tmp_path: Path) -> Path:
    path = tmp_path / "val.json.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.write(FIXTURES / "crosswoz" / "val.json", "val.json")
    return path


@pytest.fixture
def sgd_gzip(tmp_path: Path) -> Path:
    path = tmp_path / "train" / "dialogues_001.json.gz"
    path.parent.mkdir()
    with (FIXTURES / "sgd" / "train" / "dialogues_001.json").open("rb") as source:
        with gzip.open(path, "wb") as target:
            shutil.copyfileobj(source, target)
    return path


@pytest.mark.parametrize(
    ("relative_path", "expected"),
    [
        ("support_en.jsonl", "jsonl"),
        ("support_en.csv", "csv"),
        ("sgd/train/dialogues_001.json", "sgd"),
        ("sgd/train/schema.json", None),
        ("crosswoz/val.json", "crosswoz"),
    ],
)
def test_detect_format_fixture_files(relative_path, expected):
    assert detect_format(FIXTURES / relative_path) == expected


def test_detect_format_compressed_files(crosswoz_zip, sgd_gzip):
    assert detect_format(crosswoz_zip) == "crosswoz"
    assert detect_format(sgd_gzip) == "sgd"


def test_detect_format_jsonl_named_json(tmp_path):
    path = tmp_path / "export.json"
    shutil.copy(FIXTURES / "support_en.jsonl", path)

    assert detect_format(path) == "jsonl"


def test_jsonl_reader_english_fields():
    records = _read(FIXTURES / "support_en.jsonl")

    conversations = _valid(records)
    assert _invalid(records) == []
    assert list(conversations) == ["en-1001", "en-1002", "1003"]
    first = conversations["en-1001"]
    assert first.channel == "email"
    assert first.language == "en"
    assert first.created_at == datetime(2024, 3, 1, 9, 0, tzinfo=UTC)
    assert [turn.role for turn in first.turns] == [Role.CUSTOMER, Role.AGENT, Role.CUSTOMER]
    assert first.turns[1].meta == {"agent": "a-17", "intent": "reset_password"}
    assert first.turns[1].created_at == datetime(2024, 3, 1, 9, 5, tzinfo=UTC)
    assert conversations["en-1002"].turns[1].role == Role.BOT
    assert conversations["1003"].channel == "chat"
    assert conversations["1003"].language is None
    assert conversations["1003"].turns[0].role == Role.SYSTEM
    assert conversations["1003"].turns[1].role == Role.CUSTOMER


def test_jsonl_reader_chinese_text():
    conversations = _valid(_read(FIXTURES / "support_zh.jsonl"))

    assert conversations["zh-2001"].language == "zh-CN"
    # 10:00 at +08:00, converted to UTC.
    assert conversations["zh-2001"].created_at == datetime(2024, 4, 2, 2, 0, tzinfo=UTC)
    assert conversations["zh-2001"].turns[1].meta == {"意图": "查询物流"}
    assert conversations["zh-2002"].turns[0].text == "故宫的门票多少钱？😀"


def test_jsonl_reader_malformed_lines():
    records = _read(FIXTURES / "malformed.jsonl")

    problems = [(p.location, p.kind) for p in _invalid(records)]
    assert list(_valid(records)) == ["ok-1", "ok-2"]
    assert problems == [
        ("line 2", ProblemKind.INVALID_JSON),
        ("line 3", ProblemKind.MISSING_FIELD),
        ("line 4", ProblemKind.UNKNOWN_ROLE),
        ("line 5", ProblemKind.EMPTY_TEXT),
    ]
    assert "'manager'" in _invalid(records)[2].reason


def test_jsonl_reader_non_utf8_line(tmp_path):
    path = tmp_path / "latin1.jsonl"
    good = b'{"id": "a", "turns": [{"role": "customer", "text": "ok"}]}\n'
    path.write_bytes(
        good + '{"id": "b", "turns": [{"role": "customer", "text": "café"}]}\n'.encode("latin-1")
    )

    records = _read(path)

    assert list(_valid(records)) == ["a"]
    assert [(p.location, p.kind) for p in _invalid(records)] == [
        ("line 2", ProblemKind.INVALID_ENCODING)
    ]


@pytest.mark.parametrize(
    ("line", "kind", "reason"),
    [
        ('{"id": "x", "turns": []}', ProblemKind.INVALID_VALUE, "turns must be a non-empty list"),
        ('{"id": "x"}', ProblemKind.MISSING_FIELD, "missing turns"),
        ('{"id": "x", "turns": [{"text": "hi"}]}', ProblemKind.MISSING_FIELD, "turns\\[1\\].role"),
        (
            '{"id": "x", "turns": [{"role": "agent"}]}',
            ProblemKind.MISSING_FIELD,
            "turns\\[1\\].text",
        ),
        (
            '{"id": "x", "turns": [{"role": "agent", "text": "a\\u0000b"}]}',
            ProblemKind.INVALID_VALUE,
            "NUL",
        ),
        (
            '{"id": "x", "turns": [{"role": "agent", "text": "\\ud800"}]}',
            ProblemKind.INVALID_ENCODING,
            "UTF-8",
        ),
        (
            '{"id": "x", "created_at": "May 1", "turns": [{"role": "agent", "text": "a"}]}',
            ProblemKind.INVALID_VALUE,
            "ISO-8601",
        ),
        (
            '{"id": "x", "turns": [{"role": "agent", "text": "a", "metadata": [1]}]}',
            ProblemKind.INVALID_VALUE,
            "metadata must be an object",
        ),
        (
            '{"id": "' + "x" * 256 + '", "turns": [{"role": "agent", "text": "a"}]}',
            ProblemKind.INVALID_VALUE,
            "maximum is 255",
        ),
        ('["not", "an", "object"]', ProblemKind.INVALID_VALUE, "JSON object"),
        (
            '{"id": "x", "rating": 9, "turns": [{"role": "agent", "text": "a"}]}',
            ProblemKind.INVALID_VALUE,
            "rating must be a whole number from 1 to 5, got 9",
        ),
        (
            '{"id": "x", "rating": "good", "turns": [{"role": "agent", "text": "a"}]}',
            ProblemKind.INVALID_VALUE,
            "rating must be a whole number",
        ),
    ],
)
def test_jsonl_reader_rejects_invalid_values(tmp_path, line, kind, reason):
    path = tmp_path / "one.jsonl"
    path.write_text(line + "\n", encoding="utf-8")

    [problem] = _read(path)

    assert isinstance(problem, InvalidRecord)
    assert problem.kind == kind
    assert problem.location == "line 1"
    assert re.search(reason, problem.reason), problem.reason


def test_csv_reader_orders_interleaved_rows():
    conversations = _valid(_read(FIXTURES / "support_en.csv"))

    first = conversations["c-1"]
    assert list(conversations) == ["c-1", "c-2"]
    assert [turn.role for turn in first.turns] == [
        Role.CUSTOMER,
        Role.BOT,
        Role.AGENT,
        Role.CUSTOMER,
        Role.AGENT,
    ]
    # Equal timestamps keep file order.
    assert first.turns[3].text == "It ends in 4242.\nIt is a Visa."
    assert first.turns[4].text.startswith("Thanks!")
    assert first.channel == "chat"
    assert first.created_at == datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
    assert conversations["c-2"].channel == "email"
    assert conversations["c-2"].language == "en"


def test_csv_reader_chinese_naive_timestamps():
    conversations = _valid(_read(FIXTURES / "support_zh.csv"))

    conversation = conversations["zh-c-1"]
    assert conversation.language == "zh-CN"
    assert conversation.turns[1].text == "您好，请在“我的订单”中点击“申请退货”。"
    assert conversation.turns[0].created_at == datetime(2024, 6, 1, 8, 0, tzinfo=UTC)


def test_csv_reader_bad_row_invalidates_conversation():
    records = _read(FIXTURES / "malformed.csv")

    [problem] = _invalid(records)
    assert list(_valid(records)) == ["m-1"]
    assert problem.location == "line 5 (conversation m-2)"
    assert problem.kind == ProblemKind.INVALID_VALUE
    assert "'yesterday'" in problem.reason


def test_csv_reader_missing_header_column(tmp_path):
    path = tmp_path / "export.csv"
    path.write_text("conversation_id,role,text\nc,customer,hi\n", encoding="utf-8")

    [problem] = _read(path)

    assert problem.location == "line 1"
    assert problem.kind == ProblemKind.MISSING_FIELD
    assert "timestamp" in problem.reason


def test_csv_reader_non_utf8_row(tmp_path):
    path = tmp_path / "export.csv"
    path.write_bytes(
        b"conversation_id,timestamp,role,text\n"
        b"a,2024-01-01T00:00:00Z,customer,fine\n"
        b"b,2024-01-01T00:00:00Z,customer,caf\xe9\n"
    )

    records = _read(path)

    assert list(_valid(records)) == ["a"]
    assert [(p.location, p.kind) for p in _invalid(records)] == [
        ("line 3 (conversation b)", ProblemKind.INVALID_ENCODING)
    ]


@pytest.mark.parametrize("name", ["empty.jsonl", "empty.csv", "empty.json"])
def test_empty_file_is_invalid(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(b"")

    [problem] = _read(path)

    assert problem.location == "file"
    assert problem.kind == ProblemKind.EMPTY_FILE


def test_sgd_reader_maps_speakers_and_frames():
    records = _read(FIXTURES / "sgd" / "train" / "dialogues_001.json")

    conversations = _valid(records)
    first = conversations["sgd:train/1_00000"]
    assert list(conversations) == ["sgd:train/1_00000", "sgd:train/1_00001"]
    assert first.language == "en"
    assert [turn.role for turn in first.turns] == [Role.CUSTOMER, Role.AGENT]
    [user_frame] = first.turns[0].meta["frames"]
    assert user_frame["service"] == "Banks_1"
    assert user_frame["active_intent"] == "CheckBalance"
    assert user_frame["slots"] == [
        {"slot": "account_type", "start": 19, "end": 26, "value": "savings"}
    ]
    [system_frame] = first.turns[1].meta["frames"]
    assert "active_intent" not in system_frame
    assert system_frame["actions"] == [{"act": "OFFER", "slot": "balance", "values": ["$1,250"]}]
    assert "service_results" not in system_frame


def test_sgd_reader_gzip_matches_plain(sgd_gzip):
    plain = _read(FIXTURES / "sgd" / "train" / "dialogues_001.json")
    compressed = _read(sgd_gzip)

    assert [r.turns for r in compressed] == [r.turns for r in plain]
    assert [r.external_id for r in compressed] == [r.external_id for r in plain]


def test_sgd_reader_id_without_split_folder(tmp_path):
    path = tmp_path / "dialogues_001.json"
    shutil.copy(FIXTURES / "sgd" / "train" / "dialogues_001.json", path)

    assert list(_valid(_read(path, "sgd"))) == ["sgd:1_00000", "sgd:1_00001"]


def test_sgd_reader_truncated_file(tmp_path):
    path = tmp_path / "dialogues_009.json"
    text = (FIXTURES / "sgd" / "train" / "dialogues_001.json").read_text(encoding="utf-8")
    path.write_text(text[: text.index('"dialogue_id": "1_00001"') + 30], encoding="utf-8")

    records = _read(path, "sgd")

    assert list(_valid(records)) == ["sgd:1_00000"]
    [problem] = _invalid(records)
    assert problem.location == "dialogue 2"
    assert problem.kind == ProblemKind.INVALID_JSON
    assert "rest of the file was not read" in problem.reason


def test_sgd_reader_unknown_speaker(tmp_path):
    path = tmp_path / "dialogues_002.json"
    path.write_text(
        '[{"dialogue_id": "9_1", "turns": [{"speaker": "BOT", "utterance": "hi", "frames": []}]}]',
        encoding="utf-8",
    )

    [problem] = _read(path, "sgd")

    assert problem.location == "dialogue 1 (id 9_1)"
    assert problem.kind == ProblemKind.UNKNOWN_ROLE


def test_crosswoz_reader_zip_matches_json(crosswoz_zip):
    from_json = _valid(_read(FIXTURES / "crosswoz" / "val.json"))
    from_zip = _valid(_read(crosswoz_zip))

    dialog = from_zip["crosswoz:7001"]
    assert list(from_zip) == ["crosswoz:7001", "crosswoz:7002"]
    assert [r.turns for r in from_zip.values()] == [r.turns for r in from_json.values()]
    assert dialog.language == "zh-CN"
    assert [turn.role for turn in dialog.turns] == [Role.CUSTOMER, Role.AGENT, Role.CUSTOMER]
    assert dialog.turns[1].text == "为您推荐天安门广场，门票免费。"
    assert dialog.turns[1].meta == {
        "dialog_acts": [
            ["Recommend", "景点", "名称", "天安门广场"],
            ["Inform", "景点", "门票", "免费"],
        ]
    }
    assert dialog.source == "crosswoz:val.json.zip"


def test_crosswoz_reader_corrupt_zip(tmp_path):
    path = tmp_path / "val.json.zip"
    path.write_bytes(b"PK\x03\x04 this is not a zip file")

    [problem] = _read(path)

    assert problem.kind == ProblemKind.UNREADABLE_FILE
    assert problem.location == "file"


def test_unknown_format_file(tmp_path):
    path = tmp_path / "notes.json"
    path.write_text('{"title": "not a dialog"}', encoding="utf-8")

    [problem] = _read(path)

    assert problem.kind == ProblemKind.UNKNOWN_FORMAT
    assert "pass format" in problem.reason


def test_resolve_inputs_expands_folder():
    inputs = resolve_inputs([FIXTURES / "sgd"])

    assert inputs == [InputFile(FIXTURES / "sgd" / "train" / "dialogues_001.json", "sgd")]


def test_resolve_inputs_skips_named_schema():
    assert resolve_inputs([FIXTURES / "sgd" / "train" / "schema.json"]) == []


def test_resolve_inputs_missing_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found: .*missing.jsonl"):
        resolve_inputs([tmp_path / "missing.jsonl"])


def test_resolve_inputs_unknown_format_argument():
    with pytest.raises(ValueError, match="unknown dialog format 'xml'.*jsonl, csv, sgd, crosswoz"):
        resolve_inputs([FIXTURES / "support_en.jsonl"], format="xml")


def test_resolve_inputs_folder_without_dialogs(tmp_path):
    (tmp_path / "readme.txt").write_text("nothing here", encoding="utf-8")

    with pytest.raises(ValueError, match="no dialog files found in folder"):
        resolve_inputs([tmp_path])


def test_jsonl_reader_reads_rating(tmp_path):
    path = tmp_path / "rated.jsonl"
    path.write_text(
        '{"id": "r", "rating": 4, "turns": [{"role": "customer", "text": "hi there"}]}\n',
        encoding="utf-8",
    )

    [record] = _read(path)

    assert record.rating == 4

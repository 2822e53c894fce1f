from __future__ import annotations

import json
import os

import pytest

from storage.dialog_import import import_dialogs
from ui.demo.corpus import build_demo_corpus
from ui.demo.venues import render_venue


def test_corpus_writes_faq_jsonl(tiny_data_dir, tmp_path):
    corpus = build_demo_corpus(tiny_data_dir, tmp_path / "demo")

    entries = [json.loads(line) for line in corpus.faq_path.read_text("utf-8").splitlines()]
    assert corpus.faq_entries == 2
    assert entries[0] == {
        "question": "How do I reset my password?",
        "answer": "Use the Forgot password link.\n\nOr ask an admin to reset it.",
        "title": "How do I reset my password?",
    }
    assert entries[1]["answer"] == "Yes: Settings > Export writes a JSON file."
    # The paraphrased queries are StackFAQ's evaluation set and stay out of the KB.
    assert "forgot my password, what now" not in corpus.faq_path.read_text("utf-8")


def test_corpus_writes_guideline_markdown(tiny_data_dir, tmp_path):
    corpus = build_demo_corpus(tiny_data_dir, tmp_path / "demo")

    names = [path.name for path in corpus.guideline_paths]
    text = corpus.guideline_paths[0].read_text("utf-8")
    assert names == ["Account_Access.md", "Order_Issue.md"]
    assert corpus.guideline_sections == 3
    assert text.startswith("# Account Access\n\nCovers: username, password")
    assert "## Recover Password\n\nStart by asking what the customer needs.\n\n1. Ask for" in text
    assert "2. Verify the identity with [Enter Details]:\n   - Username\n   - Email address" in text
    assert text.endswith("As always, ask if anything else is needed.\n")


def test_corpus_writes_chinese_venues(tiny_data_dir, tmp_path):
    corpus = build_demo_corpus(tiny_data_dir, tmp_path / "demo")

    by_name = {path.stem: path.read_text("utf-8") for path in corpus.venue_paths}
    temple = by_name["天坛公园"]
    assert corpus.venue_counts == {"attraction": 2, "restaurant": 1, "hotel": 1}
    assert temple.startswith("# 天坛公园\n\n类别：景点\n")
    assert "门票：15元\n" in temple
    assert "评分：4.6\n" in temple
    assert "周边景点：景点一、景点二、景点三、景点四、景点五等7处\n" in temple
    assert "周边酒店" not in temple
    assert "门票：免费\n" in by_name["免费公园_北门"]
    assert "评分" not in by_name["免费公园_北门"]
    assert "推荐菜：豆汁、焦圈、驴打滚\n" in by_name["小吃店"]
    assert "人均消费：23元\n" in by_name["小吃店"]
    assert "营业时间：5:30-21:00\n" in by_name["小吃店"]
    assert "酒店类型：高档型\n" in by_name["某某大酒店"]
    assert "价格：1354元\n" in by_name["某某大酒店"]


def test_corpus_dialog_slices(tiny_data_dir, tmp_path):
    corpus = build_demo_corpus(tiny_data_dir, tmp_path / "demo", sgd_files=3, crosswoz_dialogs=1)

    sgd, crosswoz = corpus.dialog_slices
    assert [path.name for path in sgd.paths] == [
        "dialogues_001.json",
        "dialogues_002.json",
        "dialogues_003.json",
    ]
    assert (sgd.format, sgd.limit, sgd.language) == ("sgd", None, "en")
    assert crosswoz.paths == (tiny_data_dir / "crosswoz" / "val.json.zip",)
    assert (crosswoz.format, crosswoz.limit, crosswoz.language) == ("crosswoz", 1, "zh-CN")


def test_corpus_slices_import(tiny_data_dir, tmp_path, sqlite_session_factory):
    corpus = build_demo_corpus(tiny_data_dir, tmp_path / "demo", sgd_files=1, crosswoz_dialogs=1)

    reports = [
        import_dialogs(
            sqlite_session_factory,
            dialogs.paths,
            format=dialogs.format,
            limit=dialogs.limit,
            show_progress=False,
        )
        for dialogs in corpus.dialog_slices
    ]

    assert [report.conversations_added for report in reports] == [2, 1]


def test_corpus_zero_dialogs(tiny_data_dir, tmp_path):
    corpus = build_demo_corpus(tiny_data_dir, tmp_path / "demo", sgd_files=0, crosswoz_dialogs=0)

    assert corpus.dialog_slices == ()


def test_corpus_rebuild_keeps_unchanged_files(tiny_data_dir, tmp_path):
    first = build_demo_corpus(tiny_data_dir, tmp_path / "demo")
    stale = first.knowledge_dir / "venues" / "hotels" / "旧酒店.md"
    stale.write_text("# 旧酒店\n", encoding="utf-8")
    os.utime(first.faq_path, (1_000_000_000, 1_000_000_000))

    second = build_demo_corpus(tiny_data_dir, tmp_path / "demo")

    assert second.faq_path.stat().st_mtime == 1_000_000_000
    assert not stale.exists()
    assert sorted(second.venue_paths) == sorted(first.venue_paths)


def test_corpus_missing_file(tiny_data_dir, tmp_path):
    (tiny_data_dir / "abcd" / "guidelines.json").unlink()

    with pytest.raises(FileNotFoundError, match="abcd/guidelines.json not found"):
        build_demo_corpus(tiny_data_dir, tmp_path / "demo")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"sgd_files": 4}, "sgd_files must be between 0 and 3, got 4"),
        ({"crosswoz_dialogs": 501}, "crosswoz_dialogs must be between 0 and 500, got 501"),
        ({"crosswoz_dialogs": -1}, "crosswoz_dialogs must be between 0 and 500, got -1"),
    ],
)
def test_corpus_rejects_sizes(tiny_data_dir, tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        build_demo_corpus(tiny_data_dir, tmp_path / "demo", **kwargs)


def test_corpus_invalid_json(tiny_data_dir, tmp_path):
    (tiny_data_dir / "stackfaq" / "stackExchange-FAQ.json").write_text("{", encoding="utf-8")

    with pytest.raises(ValueError, match="stackExchange-FAQ.json is not valid UTF-8 JSON"):
        build_demo_corpus(tiny_data_dir, tmp_path / "demo")


def test_render_venue_rejects_unknown_kind():
    with pytest.raises(ValueError, match="unknown venue kind 'metro'"):
        render_venue("metro", {"名称": "天安门东"})


@pytest.mark.slow
def test_corpus_from_real_data(shared_data_dir, tmp_path):
    corpus = build_demo_corpus(shared_data_dir, tmp_path / "demo")

    palace = (corpus.knowledge_dir / "venues" / "attractions" / "故宫.md").read_text("utf-8")
    assert corpus.faq_entries == 125
    assert len(corpus.guideline_paths) == 10
    assert corpus.guideline_sections == 55
    assert corpus.venue_counts == {"attraction": 465, "restaurant": 951, "hotel": 1133}
    assert len(corpus.venue_paths) == 465 + 951 + 1133
    assert "门票：60元\n" in palace
    assert "评分：4.7\n" in palace
    assert max(len(path.read_text("utf-8")) for path in corpus.venue_paths) < 1200
    assert [path.name for path in corpus.dialog_slices[0].paths] == [
        "dialogues_001.json.gz",
        "dialogues_002.json.gz",
    ]

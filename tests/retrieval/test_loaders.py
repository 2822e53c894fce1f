from __future__ import annotations

import logging
from pathlib import Path

import pytest

from retrieval.errors import DocumentFormatError, SourceNotFoundError
from retrieval.loaders import load_document, load_documents
from storage.models import DocumentKind


def _by_name(documents):
    return {Path(document.source).name: document for document in documents}


def test_load_documents_walks_folder(knowledge_dir):
    documents = _by_name(load_documents([knowledge_dir]))

    assert set(documents) == {
        "account.md",
        "shipping.txt",
        "returns.html",
        "billing.csv",
        "gift_cards.jsonl",
        "beijing.md",
    }
    assert all(Path(document.source).is_absolute() for document in documents.values())


def test_markdown_title_and_kind(knowledge_dir):
    document = load_document(knowledge_dir / "account.md")

    assert document.title == "Account help"
    assert document.kind == DocumentKind.MARKDOWN
    assert document.language == "en"
    assert len(document.checksum) == 64


def test_chinese_markdown_detected(knowledge_dir):
    document = load_document(knowledge_dir / "zh" / "beijing.md")

    assert document.title == "北京景点常见问题"
    assert document.language == "zh-CN"


def test_text_file_titled_by_stem(knowledge_dir):
    document = load_document(knowledge_dir / "shipping.txt")

    assert document.title == "shipping"
    assert document.kind == DocumentKind.TEXT


def test_html_drops_scripts_and_keeps_headings(knowledge_dir):
    document = load_document(knowledge_dir / "returns.html")

    assert document.title == "Returns and refunds"
    assert document.kind == DocumentKind.HTML
    assert "analytics" not in document.text
    assert "tracking code" not in document.text
    assert "font-family" not in document.text
    assert "Home" not in document.text
    assert "## How refunds are paid" in document.text
    assert "within 30 days of delivery" in document.text


def test_csv_faq_entries(knowledge_dir):
    document = load_document(knowledge_dir / "billing.csv")

    assert document.kind == DocumentKind.FAQ
    assert [entry.line for entry in document.faq_entries] == [2, 3]
    first, second = document.faq_entries
    assert first.title == "Payment methods"
    assert first.answer == "We accept Visa, Mastercard, PayPal and bank transfer."
    assert second.title is None
    assert second.answer == 'Yes. Open the order in your account and choose "Download invoice".'


def test_jsonl_faq_entries_skip_blank_lines(knowledge_dir):
    document = load_document(knowledge_dir / "gift_cards.jsonl")

    assert [entry.line for entry in document.faq_entries] == [1, 3]
    assert document.faq_entries[1].title == "Combining gift cards"
    assert "Do gift cards expire?" in document.text


def test_utf8_byte_order_mark_accepted(tmp_path):
    path = tmp_path / "bom.md"
    path.write_bytes("\ufeff# Title\n\nBody text.".encode())

    assert load_document(path).title == "Title"


def test_non_utf8_file_names_line(tmp_path):
    path = tmp_path / "legacy.txt"
    path.write_bytes(b"first line\nsecond line\n" + "退款".encode("gbk"))

    with pytest.raises(DocumentFormatError, match=r"legacy\.txt, line 3: not valid UTF-8"):
        load_document(path)


def test_empty_file_given_directly_fails(tmp_path):
    path = tmp_path / "empty.md"
    path.write_text("  \n\n")

    with pytest.raises(DocumentFormatError, match=r"empty\.md: file is empty"):
        load_documents([path])


def test_unknown_extension_given_directly_fails(tmp_path):
    path = tmp_path / "manual.pdf"
    path.write_bytes(b"%PDF-1.7")

    with pytest.raises(DocumentFormatError, match=r"unsupported extension '\.pdf'"):
        load_documents([path])


def test_folder_walk_skips_empty_unknown_and_hidden(tmp_path, caplog):
    (tmp_path / "good.md").write_text("# Good\n\nText.")
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "picture.png").write_bytes(b"\x89PNG")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "notes.md").write_text("# Hidden")

    with caplog.at_level(logging.WARNING, logger="retrieval.loaders"):
        documents = load_documents([tmp_path])

    assert [Path(document.source).name for document in documents] == ["good.md"]
    assert "empty.txt: file is empty" in caplog.text
    assert "picture.png: unsupported extension" in caplog.text


def test_folder_walk_still_fails_on_bad_encoding(tmp_path):
    (tmp_path / "bad.md").write_bytes(b"# Title\n\xff\xfe")

    with pytest.raises(DocumentFormatError, match="line 2: not valid UTF-8"):
        load_documents([tmp_path])


def test_missing_path_fails(tmp_path):
    with pytest.raises(SourceNotFoundError, match="does not exist"):
        load_documents([tmp_path / "nowhere"])


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("question,reply\nq,a\n", r"line 1: CSV header .* lacks column\(s\) \['answer'\]"),
        ("question,answer\nq1,a1\nq2,a2,extra\n", "line 3: expected 2 fields"),
        ("question,answer\nq1,a1\nq2\n", "line 3: expected 2 fields"),
        ("question,answer\nq1,a1\n,a2\n", "line 3: 'question' is missing or empty"),
        ('question,answer\n"q1\nstill q1",a1\nq2,"a2 unclosed\n', "line 4: malformed CSV"),
    ],
)
def test_malformed_csv_names_line(tmp_path, content, message):
    path = tmp_path / "faq.csv"
    path.write_text(content)

    with pytest.raises(DocumentFormatError, match=message):
        load_document(path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"question": "q", "answer": "a"}\n{"question": "q2", \n', "line 2: invalid JSON"),
        ('{"question": "q", "answer": "a"}\n\n["q", "a"]\n', "line 3: expected a JSON object"),
        ('{"question": "q"}\n', "line 1: 'answer' is missing or empty"),
        ('{"question": "q", "answer": "a", "title": 5}\n', "line 1: 'title' must be a string"),
    ],
)
def test_malformed_jsonl_names_line(tmp_path, content, message):
    path = tmp_path / "faq.jsonl"
    path.write_text(content)

    with pytest.raises(DocumentFormatError, match=message):
        load_document(path)


def test_html_without_text_fails(tmp_path):
    path = tmp_path / "blank.html"
    path.write_text("<html><head><title>T</title><script>x()</script></head><body></body></html>")

    with pytest.raises(DocumentFormatError, match="no text left"):
        load_document(path)

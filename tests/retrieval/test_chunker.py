from __future__ import annotations

import pytest

from retrieval.chunker import (
    TextChunker,
    build_answer_pairs,
    chunk_lexical_text,
    count_words,
    split_sections,
)
from retrieval.loaders import SourceDocument, load_document
from storage.models import DocumentKind, Message, Role


def _markdown(text: str, title: str = "Guide") -> SourceDocument:
    return SourceDocument(
        source="/docs/guide.md",
        title=title,
        kind=DocumentKind.MARKDOWN,
        language="en",
        text=text,
        checksum="0" * 64,
    )


def _sentences(count: int) -> str:
    return " ".join(f"Sentence number {i} explains one more detail." for i in range(count))


def test_split_sections_ignores_headings_in_code_fences():
    text = "# Guide\n\nIntro.\n\n## Install\n\n```\n# comment\n```\n\n## Use\n\nRun it.\n"

    sections = split_sections(text)

    assert [heading for heading, _ in sections] == ["Guide", "Install", "Use"]
    assert "# comment" in sections[1][1]


def test_split_sections_merges_bare_heading_into_next():
    sections = split_sections("# Guide\n\n## Install\n\nDownload it.\n")

    assert sections == [("Install", "# Guide\n\n## Install\n\nDownload it.\n")]


def test_chunks_titled_by_document_and_heading(knowledge_dir):
    document = load_document(knowledge_dir / "account.md")

    drafts = TextChunker(max_chars=1200, overlap_chars=150).split(document)

    assert [draft.title for draft in drafts] == [
        "Account help",
        "Account help > Resetting your password",
        "Account help > Changing your e-mail address",
        "Account help > Deleting your account",
    ]
    assert [draft.position for draft in drafts] == [0, 1, 2, 3]
    assert all(draft.question is None for draft in drafts)


def test_chunks_respect_max_chars_and_sentence_boundaries():
    text = "## Long section\n\n" + _sentences(40)

    drafts = TextChunker(max_chars=300, overlap_chars=60).split(_markdown(text))

    assert len(drafts) > 5
    for draft in drafts:
        assert len(draft.text) <= 300
        assert draft.text.endswith(".")
        assert draft.title == "Guide > Long section"


def test_chunks_overlap_previous_chunk():
    text = _sentences(40)

    chunks = TextChunker(max_chars=300, overlap_chars=60).split_text(text)

    for previous, current in zip(chunks, chunks[1:], strict=False):
        overlap = next(
            size
            for size in range(min(len(previous), len(current)), -1, -1)
            if previous.endswith(current[:size])
        )
        assert 0 < overlap <= 60
        # The overlap starts at a sentence start.
        assert current.startswith("Sentence number")


def test_zero_overlap_repeats_nothing():
    chunks = TextChunker(max_chars=300, overlap_chars=0).split_text(_sentences(40))

    assert " ".join(chunks) == _sentences(40)


def test_paragraph_boundaries_preferred():
    paragraphs = [f"Paragraph {i}. " + "Words " * 20 for i in range(6)]
    text = "\n\n".join(p.strip() for p in paragraphs)

    chunks = TextChunker(max_chars=300, overlap_chars=0).split_text(text)

    assert all(chunk.startswith("Paragraph") for chunk in chunks)


def test_chinese_text_split_at_sentence_punctuation():
    sentence = "退款会在收到退货后的五个工作日内原路返回。"
    text = sentence * 12 + "如有疑问请联系客服！还有问题吗？"

    chunks = TextChunker(max_chars=100, overlap_chars=30).split_text(text)

    assert len(chunks) >= 3
    for chunk in chunks:
        assert len(chunk) <= 100
        assert chunk[-1] in "。！？"
    assert chunks[1].startswith("退款会")


def test_long_word_run_cut_hard():
    chunks = TextChunker(max_chars=100, overlap_chars=0).split_text("x" * 250)

    assert [len(chunk) for chunk in chunks] == [100, 100, 50]


def test_faq_entries_become_one_chunk_each(knowledge_dir):
    document = load_document(knowledge_dir / "billing.csv")

    drafts = TextChunker(max_chars=50, overlap_chars=0).split(document)

    assert len(drafts) == 2
    assert drafts[0].question == "Which payment methods do you accept?"
    assert drafts[0].text == "We accept Visa, Mastercard, PayPal and bank transfer."
    assert drafts[0].title == "Payment methods"
    assert drafts[1].title == "Can I get an invoice for my order?"


def test_text_documents_have_no_heading_sections():
    document = SourceDocument(
        source="/docs/notes.txt",
        title="notes",
        kind=DocumentKind.TEXT,
        language="en",
        text="# not a heading in plain text\n\nBody.",
        checksum="0" * 64,
    )

    drafts = TextChunker().split(document)

    assert [draft.title for draft in drafts] == ["notes"]


@pytest.mark.parametrize(
    ("max_chars", "overlap_chars", "message"),
    [(10, 0, "max_chars must be at least 50"), (100, 60, "overlap_chars must be between")],
)
def test_chunker_rejects_bad_sizes(max_chars, overlap_chars, message):
    with pytest.raises(ValueError, match=message):
        TextChunker(max_chars=max_chars, overlap_chars=overlap_chars)


def _message(role: Role, text: str) -> Message:
    return Message(role=role, text=text, seq=0)


def test_answer_pairs_merge_turns_and_skip_short_replies():
    messages = [
        _message(Role.CUSTOMER, "Hi"),
        _message(Role.CUSTOMER, "my parcel has not arrived"),
        _message(Role.BOT, "Let me get an agent."),
        _message(Role.AGENT, "Sorry to hear that."),
        _message(Role.AGENT, "I have sent a replacement by express shipping today."),
        _message(Role.CUSTOMER, "thanks"),
        _message(Role.AGENT, "You're welcome!"),
    ]

    pairs = build_answer_pairs(messages, min_answer_words=6)

    assert pairs == [
        (
            "Hi\nmy parcel has not arrived",
            "Sorry to hear that.\nI have sent a replacement by express shipping today.",
        )
    ]


def test_answer_pairs_skip_clarifying_questions():
    messages = [
        _message(Role.CUSTOMER, "I want to book a table for dinner"),
        _message(Role.AGENT, "Sure, at what time will you be dining tonight?"),
        _message(Role.CUSTOMER, "帮我推荐一个评分高的景点"),
        _message(Role.AGENT, "您想去哪个区的景点呢，对门票价格有要求吗？"),
        _message(Role.CUSTOMER, "At eight please"),
        _message(Role.AGENT, "Your table for eight o'clock is booked at Il Fornaio."),
    ]

    pairs = build_answer_pairs(messages, min_answer_words=4)

    assert pairs == [("At eight please", "Your table for eight o'clock is booked at Il Fornaio.")]


def test_lexical_text_of_past_answer_is_question_only():
    text = chunk_lexical_text(
        title="Conversation 7",
        question="门票多少钱？",
        text="门票免费，周边有故宫。",
        kind=DocumentKind.DIALOG,
    )

    assert text == "门票多少钱？"


def test_lexical_text_of_faq_includes_answer():
    text = chunk_lexical_text(
        title="Payment",
        question="Can I pay with PayPal?",
        text="Yes, PayPal works.",
        kind=DocumentKind.FAQ,
    )

    assert text == "Can I pay with PayPal?\nYes, PayPal works."


def test_count_words_halves_cjk_characters():
    assert count_words("Please wait two days") == 4
    assert count_words("退款三天到账") == 3
    assert count_words("订单 12345 已发货") == 3.5

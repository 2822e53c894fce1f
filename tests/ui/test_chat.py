from __future__ import annotations

import json

import pytest

from bot.reply import Citation, Reply, ReplyPath
from ui.web.chat import _relabel, _send, build_chat, format_reply

pytestmark = pytest.mark.slow


def test_send_starts_conversation_and_shows_sources(api_runtime):
    manager = api_runtime.dialog_manager

    text, history, conversation_id = _send(manager, "Can I pay with PayPal?", [], None, "en")

    assert text == ""
    assert conversation_id is not None
    assert [turn["role"] for turn in history] == ["user", "assistant"]
    assert "**Sources**" in history[1]["content"]
    assert "Payment methods" in history[1]["content"]


def test_send_keeps_conversation_across_turns(api_runtime):
    manager = api_runtime.dialog_manager
    _, history, conversation_id = _send(manager, "Can I pay with PayPal?", [], None, "en")

    _, history, same_id = _send(manager, "故宫的门票多少钱？", history, conversation_id, "zh-CN")

    assert same_id == conversation_id
    assert len(history) == 4
    assert "参考来源" in history[3]["content"]
    _, messages = manager.get_transcript(conversation_id)
    assert len(messages) == 4


def test_send_escapes_html_in_customer_text(api_runtime):
    manager = api_runtime.dialog_manager

    _, history, _ = _send(manager, "<script>alert('x')</script> refund?", [], None, "en")

    assert "<script>" not in history[0]["content"]
    assert "&lt;script&gt;" in history[0]["content"]


def test_send_empty_message_keeps_history(api_runtime):
    manager = api_runtime.dialog_manager

    text, history, conversation_id = _send(manager, "   ", [], None, "en")

    assert text == "   "
    assert history == []
    assert conversation_id is not None


def test_relabel_switches_to_chinese():
    header, language, textbox, send, new, footer = _relabel("zh-CN")

    assert "在线客服" in header["value"]
    assert language["label"] == "语言"
    assert send["value"] == "发送"
    assert new["value"] == "新对话"


def test_format_reply_escapes_citation_titles():
    reply = Reply(
        conversation_id=1,
        customer_message_id=1,
        message_id=2,
        text="Use <b>bold</b>",
        path=ReplyPath.RETRIEVED,
        language="en",
        citations=[Citation(1, 1, "<img src=x onerror=alert(1)>", "s", "faq", 0.9)],
    )

    rendered = format_reply(reply, "en")

    assert "<img" not in rendered
    assert "<b>" not in rendered
    assert "match 0.90" in rendered


@pytest.mark.parametrize(("language", "title"), [("en", "Customer support"), ("zh-CN", "在线客服")])
def test_build_chat_renders_catalogue_strings(api_runtime, language, title):
    blocks = build_chat(api_runtime.dialog_manager, default_language=language)

    config = json.dumps(blocks.get_config_file(), ensure_ascii=False, default=str)

    assert title in config

from __future__ import annotations

import json

import pytest

from ui.web.chat import (
    _end,
    _poll,
    _rate_conversation,
    _rate_reply,
    _relabel,
    _send,
    as_text,
    build_chat,
    format_bot_reply,
    new_view,
)

pytestmark = pytest.mark.slow

SKIP = {"__type__": "update"}


def test_send_starts_conversation_and_shows_sources(api_runtime):
    text, history, view, _ = _send(api_runtime, "Can I pay with PayPal?", [], new_view(), "en")

    assert text == ""
    assert view["conversation_id"] is not None
    assert [turn["role"] for turn in history] == ["user", "assistant"]
    assert "**Sources**" in history[1]["content"]
    assert "Payment methods" in history[1]["content"]
    assert view["message_ids"][0] is None
    assert view["message_ids"][1] is not None


def test_send_keeps_conversation_across_turns(api_runtime):
    _, history, view, _ = _send(api_runtime, "Can I pay with PayPal?", [], new_view(), "en")

    _, history, same_view, _ = _send(api_runtime, "故宫的门票多少钱？", history, view, "zh-CN")

    assert same_view["conversation_id"] == view["conversation_id"]
    assert len(history) == 4
    assert "参考来源" in history[3]["content"]
    _, messages = api_runtime.dialog_manager.get_transcript(view["conversation_id"])
    assert len(messages) == 4


def test_send_escapes_html_in_customer_text(api_runtime):
    _, history, _, _ = _send(
        api_runtime, "<script>alert('x')</script> refund?", [], new_view(), "en"
    )

    assert "<script>" not in history[0]["content"]
    assert "&lt;script&gt;" in history[0]["content"]


def test_send_empty_message_keeps_history(api_runtime):
    text, history, view, _ = _send(api_runtime, "   ", [], new_view(), "en")

    assert text == "   "
    assert history == []
    assert view["conversation_id"] is not None


def test_poll_shows_agent_reply(api_runtime):
    _, history, view, _ = _send(
        api_runtime, "I want to talk to a human agent", [], new_view(), "en"
    )
    conversation_id = view["conversation_id"]
    _, forwarded, view, _ = _send(api_runtime, "Are you there?", history, view, "en")
    unchanged = _poll(api_runtime, view, "en")
    api_runtime.handoff.claim(conversation_id, "<b>Alice</b>")
    api_runtime.handoff.reply(conversation_id, "<b>Alice</b>", "Hi, <i>I</i> can help.")

    polled, polled_view, _ = _poll(api_runtime, view, "en")

    assert "human agent" in history[1]["content"]
    assert [turn["role"] for turn in forwarded] == ["user", "assistant", "user"]
    assert unchanged == (SKIP, SKIP, SKIP)
    assert polled[3]["content"] == "_Agent &lt;b&gt;Alice&lt;/b&gt; has joined the conversation._"
    assert polled[4]["content"] == (
        "**Agent &lt;b&gt;Alice&lt;/b&gt;**\n\nHi, &lt;i&gt;I&lt;/i&gt; can help."
    )
    assert polled_view["last_seq"] == 5
    assert polled_view["status"] == "agent"


def test_thumbs_down_hands_off(api_runtime):
    _, history, view, _ = _send(api_runtime, "Can I pay with PayPal?", [], new_view(), "en")

    handed_off, new_view_value, _ = _rate_reply(api_runtime, view, "en", 1, False)
    conversation, _ = api_runtime.dialog_manager.get_transcript(view["conversation_id"])
    feedback = api_runtime.feedback.feedback_of(view["conversation_id"])

    assert feedback == {view["message_ids"][1]: -1}
    assert conversation.status.value == "waiting"
    assert len(handed_off) == 3
    assert "human agent" in handed_off[2]["content"]
    assert new_view_value["message_ids"][2] is not None


def test_thumbs_up_stored(api_runtime):
    _, _, view, _ = _send(api_runtime, "Can I pay with PayPal?", [], new_view(), "en")

    result = _rate_reply(api_runtime, view, "en", 1, "Like")

    assert result == (SKIP, SKIP, SKIP)
    assert api_runtime.feedback.feedback_of(view["conversation_id"]) == {view["message_ids"][1]: 1}


def test_thumbs_on_customer_message_ignored(api_runtime):
    _, _, view, _ = _send(api_runtime, "Can I pay with PayPal?", [], new_view(), "en")

    result = _rate_reply(api_runtime, view, "en", 0, False)

    assert result == (SKIP, SKIP, SKIP)
    assert api_runtime.feedback.feedback_of(view["conversation_id"]) == {}


def test_end_conversation_offers_rating(api_runtime):
    _, _, view, _ = _send(api_runtime, "Can I pay with PayPal?", [], new_view(), "en")

    history, closed_view, panel = _end(api_runtime, view, "en")
    text, _, _, _ = _send(api_runtime, "One more question", history, closed_view, "en")
    rated_view, hidden = _rate_conversation(api_runtime, closed_view, 4, "en")
    conversation, _ = api_runtime.dialog_manager.get_transcript(view["conversation_id"])

    assert history[-1]["content"] == "_This conversation is closed. Thank you for contacting us._"
    assert closed_view["status"] == "closed"
    assert panel["visible"] is True
    assert text == "One more question"
    assert conversation.rating == 4
    assert rated_view["rated"] is True
    assert hidden["visible"] is False


def test_agent_close_shows_rating_on_poll(api_runtime):
    _, _, view, _ = _send(api_runtime, "I want to talk to a human agent", [], new_view(), "en")
    api_runtime.handoff.claim(view["conversation_id"], "Alice")
    api_runtime.handoff.close(view["conversation_id"], "Alice")

    _, polled_view, panel = _poll(api_runtime, view, "en")

    assert polled_view["status"] == "closed"
    assert panel["visible"] is True


def test_rating_without_choice_is_rejected(api_runtime):
    _, _, view, _ = _send(api_runtime, "Can I pay with PayPal?", [], new_view(), "en")

    result = _rate_conversation(api_runtime, view, None, "en")
    conversation, _ = api_runtime.dialog_manager.get_transcript(view["conversation_id"])

    assert result == (SKIP, SKIP)
    assert conversation.rating is None


def test_relabel_switches_to_chinese():
    header, language, textbox, send, new, end, prompt, rate, footer = _relabel("zh-CN")

    assert "在线客服" in header["value"]
    assert language["label"] == "语言"
    assert send["value"] == "发送"
    assert new["value"] == "新对话"
    assert end["value"] == "结束对话"


def test_format_bot_reply_escapes_citation_titles():
    meta = {
        "path": "retrieved",
        "citations": [{"title": "<img src=x onerror=alert(1)>", "kind": "faq", "score": 0.9}],
    }

    rendered = format_bot_reply("Use <b>bold</b>", meta, "en")

    assert "<img" not in rendered
    assert "<b>" not in rendered
    assert "match 0.90" in rendered


def test_explanation_shown_only_when_enabled():
    meta = {
        "path": "template",
        "explanation": {
            "path": "template",
            "reason": "<script>x</script>",
            "nlu": {"intent": "refund", "confidence": 0.93, "out_of_scope": False},
            "template": {"id": "refund_policy"},
        },
    }

    hidden = format_bot_reply("Answer", meta, "en")
    shown = format_bot_reply("Answer", meta, "en", show_explanation=True)

    assert "How this answer was chosen" not in hidden
    assert "How this answer was chosen: template, &lt;script&gt;x&lt;/script&gt;" in shown
    assert "refund (0.93)" in shown
    assert "template refund_policy" in shown
    assert "<script>" not in shown


@pytest.mark.parametrize(("language", "title"), [("en", "Customer support"), ("zh-CN", "在线客服")])
def test_build_chat_renders_catalogue_strings(api_runtime, language, title):
    blocks = build_chat(api_runtime, default_language=language)

    config = json.dumps(blocks.get_config_file(), ensure_ascii=False, default=str)

    assert title in config


def test_as_text_shows_markdown_syntax_as_written():
    text = as_text("Use ~~tildes~~ or *stars* around <b>words</b>")

    assert text == "Use \\~\\~tildes\\~\\~ or \\*stars\\* around &lt;b&gt;words&lt;/b&gt;"

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from bot.i18n import translate
from storage.models import Correction
from ui.web.console import _refresh, _search, _show, build_console
from ui.web.console_actions import AgentConsole, ConsoleInputError, parse_date
from ui.web.mount import mount_console
from ui.web.transcript import TranscriptHeader, TranscriptMessage, render_transcript

pytestmark = pytest.mark.slow

HANDOFF_REQUEST = "I want to talk to a human agent"


def _waiting_conversation(runtime) -> int:
    manager = runtime.dialog_manager
    conversation_id = manager.start_conversation(channel="web", language="en")
    manager.respond(conversation_id, "Can I pay with PayPal?")
    reply = manager.respond(conversation_id, HANDOFF_REQUEST)
    assert reply.conversation_status == "waiting"
    return conversation_id


def _bot_message_ids(runtime, conversation_id: int) -> list[int]:
    _, messages = runtime.dialog_manager.get_transcript(conversation_id)
    return [message.id for message in messages if message.role.value == "bot"]


def test_queue_lists_waiting_conversation(api_runtime):
    console = AgentConsole(api_runtime)
    conversation_id = _waiting_conversation(api_runtime)

    queue = console.queue_html("en")

    assert f"<td>#{conversation_id}</td>" in queue
    assert "customer_request" in queue


def test_claim_reply_hand_back_close(api_runtime):
    console = AgentConsole(api_runtime)
    conversation_id = _waiting_conversation(api_runtime)

    claimed = console.claim(conversation_id, "Alice", "en")
    replied = console.reply(conversation_id, "Alice", "Hello, Alice here.", "en")
    transcript = console.transcript_html(conversation_id, "en")
    handed_back = console.hand_back(conversation_id, "Alice", "en")
    closed = console.close(conversation_id, "Alice", "en")
    conversation, _ = api_runtime.dialog_manager.get_transcript(conversation_id)

    assert claimed.ok
    assert claimed.message == f"You now hold conversation #{conversation_id}."
    assert replied.ok
    assert "Hello, Alice here." in transcript
    assert "Agent Alice has joined the conversation." in transcript
    assert handed_back.ok
    assert closed.ok
    assert conversation.status.value == "closed"
    assert f"<td>#{conversation_id}</td>" not in console.queue_html("en")


def test_claim_held_names_holder(api_runtime):
    console = AgentConsole(api_runtime)
    conversation_id = _waiting_conversation(api_runtime)
    assert console.claim(conversation_id, "Alice", "en").ok

    claim = console.claim(conversation_id, "Bob", "en")
    reply = console.reply(conversation_id, "Bob", "Hi", "zh-CN")
    close = console.close(conversation_id, "Bob", "en")

    assert not claim.ok
    assert "held by agent Alice" in claim.message
    assert not reply.ok
    assert reply.message.startswith(f"对话 #{conversation_id} 正由客服 Alice 处理")
    assert not close.ok


def test_actions_reject_closed_and_unclaimed(api_runtime):
    console = AgentConsole(api_runtime)
    conversation_id = _waiting_conversation(api_runtime)

    unclaimed = console.reply(conversation_id, "Alice", "Hi", "en")
    assert console.close(conversation_id, "Alice", "en").ok
    after_close = console.claim(conversation_id, "Alice", "en")

    assert unclaimed.message == translate(
        "console.error_not_claimed", "en", conversation_id=conversation_id
    )
    assert after_close.message == translate(
        "console.error_closed", "en", conversation_id=conversation_id
    )


@pytest.mark.parametrize(
    ("conversation_id", "agent", "key"),
    [
        (None, "Alice", "console.error_no_conversation"),
        (10**9, "Alice", "console.error_not_found"),
        ("existing", "   ", "console.error_agent_missing"),
    ],
)
def test_action_input_errors(api_runtime, conversation_id, agent, key):
    console = AgentConsole(api_runtime)
    if conversation_id == "existing":
        conversation_id = _waiting_conversation(api_runtime)

    result = console.claim(conversation_id, agent, "en")

    assert not result.ok
    assert result.message == translate(key, "en", conversation_id=conversation_id)


def test_reply_empty_text_is_rejected(api_runtime):
    console = AgentConsole(api_runtime)
    conversation_id = _waiting_conversation(api_runtime)
    console.claim(conversation_id, "Alice", "en")

    result = console.reply(conversation_id, "Alice", "   ", "en")

    assert not result.ok
    assert result.message == translate("console.error_empty", "en")


def test_correction_is_stored_and_shown(api_runtime):
    console = AgentConsole(api_runtime)
    conversation_id = _waiting_conversation(api_runtime)
    first_reply = _bot_message_ids(api_runtime, conversation_id)[0]

    result = console.correct(
        conversation_id, "Alice", first_reply, "Yes, PayPal works <b>everywhere</b>.", "en"
    )
    transcript = console.transcript_html(conversation_id, "en")
    with api_runtime.session_factory() as session:
        stored = session.scalars(
            select(Correction).where(Correction.message_id == first_reply)
        ).all()

    assert result.ok
    assert [row.text for row in stored] == ["Yes, PayPal works <b>everywhere</b>."]
    assert [row.author for row in stored] == ["Alice"]
    assert "Yes, PayPal works &lt;b&gt;everywhere&lt;/b&gt;." in transcript
    assert "<b>everywhere</b>" not in transcript


def test_correction_of_customer_message_is_rejected(api_runtime):
    console = AgentConsole(api_runtime)
    conversation_id = _waiting_conversation(api_runtime)
    _, messages = api_runtime.dialog_manager.get_transcript(conversation_id)
    customer_message = messages[0].id

    wrong_role = console.correct(conversation_id, "Alice", customer_message, "text", "en")
    missing = console.correct(conversation_id, "Alice", 10**9, "text", "en")

    assert wrong_role.message == translate(
        "console.error_not_bot_reply", "en", message_id=customer_message
    )
    assert missing.message == translate(
        "console.error_message_not_found",
        "en",
        message_id=10**9,
        conversation_id=conversation_id,
    )


def test_transcript_shows_explanation(api_runtime):
    console = AgentConsole(api_runtime)
    manager = api_runtime.dialog_manager
    conversation_id = manager.start_conversation(channel="web", language="en")
    reply = manager.respond(conversation_id, "Can I pay with PayPal?")
    api_runtime.feedback.rate_reply(conversation_id, reply.message_id, -1)

    transcript = console.transcript_html(conversation_id, "en")

    assert "<details class='sb-explanation'>" in transcript
    assert "<dt>Path</dt>" in transcript
    assert "<dt>Cited passages</dt>" in transcript
    assert "Payment methods" in transcript
    assert "<dt>Models</dt>" in transcript
    assert "<dt>Thresholds</dt>" in transcript
    assert "Customer gave a thumbs down" in transcript
    assert "negative_feedback" in transcript


def test_transcript_escapes_customer_html(api_runtime):
    console = AgentConsole(api_runtime)
    manager = api_runtime.dialog_manager
    conversation_id = manager.start_conversation(channel="web", language="en")
    manager.respond(conversation_id, "<script>alert('x')</script> refund?")
    console.claim(conversation_id, "<img src=x onerror=alert(1)>", "en")

    transcript = console.transcript_html(conversation_id, "en")

    assert "<script>" not in transcript
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; refund?" in transcript
    assert "<img" not in transcript
    assert "&lt;img src=x onerror=alert(1)&gt;" in transcript


def test_render_transcript_escapes_explanation_values():
    header = TranscriptHeader(1, "bot", None, "web", None, None)
    meta = {
        "path": "retrieved",
        "citations": [{"title": "<svg onload=alert(1)>", "kind": "faq", "score": 0.9}],
        "explanation": {"path": "retrieved", "reason": "<i>stored_answer</i>"},
    }
    message = TranscriptMessage(2, 2, "bot", "<b>Answer</b>", None, meta, None, None, None)

    rendered = render_transcript(header, [message], {}, {2: "<u>fixed</u>"}, "en")

    assert "<svg" not in rendered
    assert "&lt;svg onload=alert(1)&gt; (faq, score 0.90)" in rendered
    assert "&lt;i&gt;stored_answer&lt;/i&gt;" in rendered
    assert "&lt;b&gt;Answer&lt;/b&gt;" in rendered
    assert "&lt;u&gt;fixed&lt;/u&gt;" in rendered


def test_search_filters(api_runtime):
    console = AgentConsole(api_runtime)
    manager = api_runtime.dialog_manager
    waiting_id = _waiting_conversation(api_runtime)
    disliked_id = manager.start_conversation(channel="web", language="en")
    reply = manager.respond(disliked_id, "Can I pay with PayPal? zebra-marker")
    api_runtime.feedback.rate_reply(disliked_id, reply.message_id, -1)
    bot_id = manager.start_conversation(channel="web", language="en")
    manager.respond(bot_id, "Can I pay with PayPal?")

    waiting = console.search_html("en", statuses=["waiting"])
    negative = console.search_html("en", with_negative_feedback=True)
    by_text = console.search_html("en", text="ZEBRA-marker")
    future = console.search_html("en", since="2999-01-01")
    past = console.search_html("en", until="2000-01-01")

    assert f"<td>#{waiting_id}</td>" in waiting
    assert f"<td>#{bot_id}</td>" not in waiting
    assert f"<td>#{disliked_id}</td>" in negative
    assert f"<td>#{bot_id}</td>" not in negative
    assert f"<td>#{disliked_id}</td>" in by_text
    assert "<td>#" not in by_text.replace(f"<td>#{disliked_id}</td>", "")
    assert future.endswith(translate("console.search_empty", "en") + "</p>")
    assert past.endswith(translate("console.search_empty", "en") + "</p>")


def test_search_low_confidence_and_fallback(api_runtime):
    console = AgentConsole(api_runtime)
    manager = api_runtime.dialog_manager
    conversation_id = manager.start_conversation(channel="web", language="en")
    reply = manager.respond(conversation_id, "???")

    fallback = console.search_html("en", with_fallback=True)
    low = console.search_html("en", low_confidence=True)
    conversation, _ = manager.get_transcript(conversation_id)

    assert reply.path.value == "fallback"
    assert f"<td>#{conversation_id}</td>" in fallback
    threshold = api_runtime.settings.policy.template_min_confidence
    has_low = (
        conversation.min_intent_confidence is not None
        and conversation.min_intent_confidence < threshold
    )
    assert (f"<td>#{conversation_id}</td>" in low) == has_low


def test_search_rejects_invalid_date(api_runtime):
    status_line = _search(
        AgentConsole(api_runtime), "en", [], False, False, False, "May 1st", "", ""
    )[1]

    assert "May 1st" in status_line
    assert "Active since" in status_line


def test_parse_date_until_includes_the_day():
    until = parse_date("2024-05-01", "console.filter_until", "en", end_of_day=True)
    since = parse_date("2024-05-01 13:30", "console.filter_since", "en")

    assert until == datetime(2024, 5, 2, tzinfo=UTC)
    assert since == datetime(2024, 5, 1, 13, 30, tzinfo=UTC)
    assert parse_date("  ", "console.filter_since", "en") is None
    with pytest.raises(ConsoleInputError, match="2024-13-01"):
        parse_date("2024-13-01", "console.filter_since", "en")


def test_refresh_skips_unchanged_views(api_runtime):
    console = AgentConsole(api_runtime)
    conversation_id = _waiting_conversation(api_runtime)
    _, transcript, queue, shown = _show(console, conversation_id, "en", {}, "")

    unchanged = _refresh(console, conversation_id, "en", shown)
    console.claim(conversation_id, "Alice", "en")
    changed = _refresh(console, conversation_id, "en", shown)

    assert unchanged == ({"__type__": "update"},) * 3
    assert "Agent Alice has joined" in changed[0]
    assert changed[2]["transcript"] == changed[0]


@pytest.mark.parametrize(("language", "title"), [("en", "Agent console"), ("zh-CN", "客服工作台")])
def test_build_console_renders_catalogue_strings(api_runtime, language, title):
    blocks = build_console(api_runtime, default_language=language)

    config = json.dumps(blocks.get_config_file(), ensure_ascii=False, default=str)

    assert title in config


def test_console_requires_agent_token(api_runtime):
    app = mount_console(FastAPI(), api_runtime, path="/console", agent_token="s3cret-token")

    with TestClient(app) as client:
        anonymous = client.get("/console/config")
        wrong = client.post("/console/login", data={"username": "Alice", "password": "nope"})
        right = client.post(
            "/console/login", data={"username": "Alice", "password": "s3cret-token"}
        )
        signed_in = client.get("/console/config")

    assert anonymous.status_code == 401
    assert wrong.status_code == 400
    assert right.status_code == 200
    assert signed_in.status_code == 200
    assert "Agent console" in signed_in.text


def test_console_is_mounted_beside_chat(client):
    page = client.get("/console/")
    config = client.get("/console/config")

    assert page.status_code == 200
    assert config.status_code == 200
    assert "console-transcript" in config.text

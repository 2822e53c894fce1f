"""The dialog policy over the HTTP API: each path reached by a real turn, slots, handoff.

The bot serves the packaged models, an English intent model trained on the fixture intents
and the fixture answer templates; ``request_refund`` is configured as a handoff intent.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from bot.config import Settings
from bot.runtime import BotRuntime
from finetune.build import DatasetConfig, build_dataset
from storage.db import create_db_engine, create_session_factory, upgrade_schema
from tests.ui.conftest import build_indexed_runtime
from tests.ui.test_nlu_serving import _register_active, _train_fixture_intents
from ui.api.app import create_app

pytestmark = pytest.mark.slow

TEMPLATES = Path(__file__).parents[1] / "fixtures" / "templates" / "support.yaml"
POLICY = {
    "templates_path": str(TEMPLATES),
    "handoff_intents": ["request_refund"],
    "handoff_after_fallbacks": 2,
}


@pytest.fixture(scope="module")
def policy_runtime(tmp_path_factory, packaged_embedder, packaged_generator) -> Iterator[BotRuntime]:
    home = tmp_path_factory.mktemp("home")
    intent_dir = _train_fixture_intents("en", "csv", tmp_path_factory.mktemp("intent") / "en")
    engine = create_db_engine(Settings(home=home).resolved_database_url)
    upgrade_schema(engine)
    _register_active(create_session_factory(engine), "intent-en-policy", intent_dir, "en")
    engine.dispose()

    runtime = build_indexed_runtime(
        home,
        packaged_embedder,
        packaged_generator,
        nlu={"reload_interval_s": 0, "timezone": "UTC"},
        policy=POLICY,
    )
    yield runtime
    runtime.close()


@pytest.fixture(scope="module")
def client(policy_runtime: BotRuntime) -> Iterator[TestClient]:
    with TestClient(create_app(runtime=policy_runtime)) as test_client:
        yield test_client


def _start(client: TestClient) -> int:
    response = client.post("/v1/conversations", json={})
    assert response.status_code == 201
    return response.json()["id"]


def _ask(client: TestClient, conversation_id: int, text: str) -> dict:
    response = client.post(f"/v1/conversations/{conversation_id}/messages", json={"text": text})
    assert response.status_code == 200, response.text
    return response.json()


def _transcript(client: TestClient, conversation_id: int) -> dict:
    response = client.get(f"/v1/agent/conversations/{conversation_id}")
    assert response.status_code == 200, response.text
    return response.json()


def test_slots_are_filled_over_three_turns(client):
    conversation_id = _start(client)

    first = _ask(client, conversation_id, "Where is my parcel right now?")
    second = _ask(client, conversation_id, "It is ORD-2024-5551")
    third = _ask(client, conversation_id, "alex@example.com")

    assert (first["path"], first["explanation"]["reason"]) == ("template", "slot_prompt")
    assert first["explanation"]["template"] == {
        "id": "order_status",
        "intent": "track_order",
        "asked_slot": "order_id",
    }
    assert first["text"] == "What is your order number? It starts with ORD."
    assert second["explanation"]["template"]["asked_slot"] == "email"
    assert (third["path"], third["explanation"]["reason"]) == ("template", "template_answer")
    assert third["text"] == (
        "Order ORD-2024-5551 is on its way. We will send the tracking link to alex@example.com."
    )
    assert third["explanation"]["slots"] == {
        "order_id": "ORD-2024-5551",
        "email": "alex@example.com",
    }


def test_slot_given_earlier_is_reused(client):
    conversation_id = _start(client)
    _ask(client, conversation_id, "Where is my order ORD-2024-7777?")

    reply = _ask(client, conversation_id, "Please cancel my order")

    assert reply["path"] == "template"
    assert reply["explanation"]["template"]["id"] == "cancel_order"
    assert (
        reply["text"] == "Order ORD-2024-7777 can be cancelled from Orders → Cancel until it ships."
    )


def test_short_reply_fills_a_free_text_slot(client):
    conversation_id = _start(client)
    asked = _ask(client, conversation_id, "I need to change my delivery address")

    reply = _ask(client, conversation_id, "12 Baker Street, London")

    assert asked["explanation"]["template"]["asked_slot"] == "new_address"
    assert reply["explanation"]["reason"] == "template_answer"
    assert "12 Baker Street, London" in reply["text"]


def test_different_question_drops_the_pending_slot(client):
    conversation_id = _start(client)
    _ask(client, conversation_id, "Where is my parcel right now?")

    reply = _ask(client, conversation_id, "Can I pay with PayPal at checkout?")

    assert reply["path"] == "retrieved"
    assert reply["explanation"]["reason"] == "stored_answer"
    assert "PayPal" in reply["text"]


def test_generated_path_cites_passages(client):
    conversation_id = _start(client)

    reply = _ask(client, conversation_id, "I forgot my password, how can I get a reset link?")

    assert reply["path"] == "generated", reply["explanation"]
    assert reply["citations"], reply
    assert (
        reply["explanation"]["retrieved"][0]["score"]
        >= reply["explanation"]["thresholds"]["passage"]
    )


def test_follow_up_is_read_with_the_previous_turn(client):
    conversation_id = _start(client)
    _ask(client, conversation_id, "Is express delivery available?")

    reply = _ask(client, conversation_id, "and how much is it?")

    assert reply["explanation"]["retrieval_query"] == (
        "Is express delivery available? and how much is it?"
    )
    assert reply["path"] in ("generated", "retrieved")
    assert any("hipping" in citation["title"] for citation in reply["citations"])


def test_handoff_when_the_customer_asks(client):
    conversation_id = _start(client)

    reply = _ask(client, conversation_id, "Can I talk to a real person please?")

    assert reply["path"] == "handoff"
    assert reply["explanation"]["handoff_reason"] == "customer_request"
    assert reply["conversation_status"] == "waiting"
    assert "human agent" in reply["text"]
    queue = client.get("/v1/agent/queue").json()
    assert conversation_id in [item["id"] for item in queue]


def test_handoff_in_chinese_is_told_in_chinese(client):
    conversation_id = _start(client)

    reply = _ask(client, conversation_id, "我要转人工")

    assert reply["path"] == "handoff"
    assert "人工客服" in reply["text"]


def test_handoff_on_a_configured_intent(client):
    conversation_id = _start(client)

    reply = _ask(client, conversation_id, "I want my money back for this order")

    assert reply["path"] == "handoff"
    assert reply["explanation"]["handoff_reason"] == "intent:request_refund"


def test_handoff_after_repeated_fallbacks(client):
    conversation_id = _start(client)

    first = _ask(client, conversation_id, "Which opera did Verdi write in 1853?")
    second = _ask(client, conversation_id, "Who won the football world cup in 1998?")

    assert first["path"] == "fallback"
    assert second["path"] == "handoff"
    assert second["explanation"]["handoff_reason"] == "repeated_fallback"
    assert second["explanation"]["fallback_reason"] == "no_relevant_passage"
    summary = _transcript(client, conversation_id)["conversation"]
    assert summary["fallback_count"] == 1
    assert summary["handoff_reason"] == "repeated_fallback"


def test_bot_silent_while_agent_holds(client):
    conversation_id = _start(client)
    _ask(client, conversation_id, "Can I pay with PayPal?")
    claim = client.post(f"/v1/agent/conversations/{conversation_id}/claim", json={"agent": "Mei"})
    assert claim.status_code == 200, claim.text
    assert claim.json()["status"] == "agent"

    reply = _ask(client, conversation_id, "Can I pay with PayPal?")

    assert reply["path"] == "forwarded"
    assert reply["message_id"] is None
    assert reply["text"] == ""
    roles = [message["role"] for message in _transcript(client, conversation_id)["messages"]]
    assert roles == ["customer", "bot", "system", "customer"]


def test_agent_reply_hand_back_and_close(client):
    conversation_id = _start(client)
    _ask(client, conversation_id, "I want to speak to a human")
    client.post(f"/v1/agent/conversations/{conversation_id}/claim", json={"agent": "Mei"})

    sent = client.post(
        f"/v1/agent/conversations/{conversation_id}/messages",
        json={"agent": "Mei", "text": "Hello, I am Mei. How can I help?"},
    )
    back = client.post(
        f"/v1/agent/conversations/{conversation_id}/hand-back", json={"agent": "Mei"}
    )
    answered = _ask(client, conversation_id, "Can I pay with PayPal?")
    closed = client.post(f"/v1/agent/conversations/{conversation_id}/close", json={"agent": "Mei"})
    after_close = client.post(
        f"/v1/conversations/{conversation_id}/messages", json={"text": "hello?"}
    )

    assert sent.status_code == 201
    assert sent.json()["role"] == "agent"
    assert back.json()["status"] == "bot"
    assert back.json()["agent"] is None
    assert answered["path"] == "retrieved"
    assert closed.json()["status"] == "closed"
    assert after_close.status_code == 409
    customer_view = client.get(f"/v1/conversations/{conversation_id}").json()["messages"]
    assert "Hello, I am Mei. How can I help?" in [m["text"] for m in customer_view]
    events = [m["metadata"].get("event") for m in customer_view if m["role"] == "system"]
    assert events == ["agent_joined", "handed_back", "closed"]


def test_second_agent_cannot_claim_or_reply(client):
    conversation_id = _start(client)
    client.post(f"/v1/agent/conversations/{conversation_id}/claim", json={"agent": "Mei"})

    claim = client.post(f"/v1/agent/conversations/{conversation_id}/claim", json={"agent": "Tom"})
    sent = client.post(
        f"/v1/agent/conversations/{conversation_id}/messages", json={"agent": "Tom", "text": "Hi"}
    )
    again = client.post(f"/v1/agent/conversations/{conversation_id}/claim", json={"agent": "Mei"})

    assert claim.status_code == 409
    assert "held by agent 'Mei'" in claim.json()["detail"]
    assert sent.status_code == 409
    assert again.status_code == 200


def test_thumbs_down_hands_off_and_is_counted(client):
    conversation_id = _start(client)
    reply = _ask(client, conversation_id, "Can I pay with PayPal?")

    response = client.post(
        f"/v1/conversations/{conversation_id}/messages/{reply['message_id']}/feedback",
        json={"value": -1},
    )

    body = response.json()
    assert response.status_code == 200, response.text
    assert body["handed_off"] is True
    assert body["conversation_status"] == "waiting"
    transcript = _transcript(client, conversation_id)
    assert transcript["conversation"]["negative_feedback_count"] == 1
    assert transcript["conversation"]["handoff_reason"] == "negative_feedback"
    rated = next(m for m in transcript["messages"] if m["id"] == reply["message_id"])
    assert rated["feedback"] == -1


def test_feedback_on_a_customer_message_is_rejected(client):
    conversation_id = _start(client)
    reply = _ask(client, conversation_id, "Can I pay with PayPal?")

    response = client.post(
        f"/v1/conversations/{conversation_id}/messages/{reply['customer_message_id']}/feedback",
        json={"value": 1},
    )
    bad_value = client.post(
        f"/v1/conversations/{conversation_id}/messages/{reply['message_id']}/feedback",
        json={"value": 5},
    )

    assert response.status_code == 422
    assert "only bot replies" in response.json()["detail"]
    assert bad_value.status_code == 422


def test_rating_and_customer_close(client):
    conversation_id = _start(client)
    _ask(client, conversation_id, "Can I pay with PayPal?")

    closed = client.post(f"/v1/conversations/{conversation_id}/close")
    rated = client.post(f"/v1/conversations/{conversation_id}/rating", json={"rating": 4})
    out_of_range = client.post(f"/v1/conversations/{conversation_id}/rating", json={"rating": 9})

    assert closed.json()["status"] == "closed"
    assert rated.json()["rating"] == 4
    assert out_of_range.status_code == 422


def test_correction_is_stored_and_shown_to_agents(client):
    conversation_id = _start(client)
    reply = _ask(client, conversation_id, "Can I pay with PayPal?")

    response = client.post(
        f"/v1/agent/conversations/{conversation_id}/messages/{reply['message_id']}/correction",
        json={"agent": "Mei", "text": "Yes, and also with Alipay."},
    )
    on_customer_turn = client.post(
        f"/v1/agent/conversations/{conversation_id}/messages/{reply['customer_message_id']}"
        "/correction",
        json={"agent": "Mei", "text": "x"},
    )

    assert response.status_code == 201, response.text
    corrected = next(
        m
        for m in _transcript(client, conversation_id)["messages"]
        if m["id"] == reply["message_id"]
    )
    assert corrected["correction"] == "Yes, and also with Alipay."
    assert on_customer_turn.status_code == 422


def test_search_filters(client):
    fallback_id = _start(client)
    _ask(client, fallback_id, "Which opera did Verdi write in 1853?")
    plain_id = _start(client)
    _ask(client, plain_id, "Can I pay with PayPal?")

    with_fallback = client.get("/v1/agent/conversations", params={"fallback": "true"}).json()
    by_text = client.get("/v1/agent/conversations", params={"q": "VERDI WRITE"}).json()
    bots = client.get("/v1/agent/conversations", params={"status": "bot"}).json()
    bad_status = client.get("/v1/agent/conversations", params={"status": "solved"})

    assert fallback_id in [item["id"] for item in with_fallback]
    assert plain_id not in [item["id"] for item in with_fallback]
    assert fallback_id in [item["id"] for item in by_text]
    assert plain_id not in [item["id"] for item in by_text]
    assert all(item["status"] == "bot" for item in bots)
    assert bad_status.status_code == 422


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("get", "/v1/conversations/999999", None),
        ("post", "/v1/conversations/999999/messages", {"text": "hi"}),
        ("post", "/v1/conversations/999999/close", None),
        ("post", "/v1/conversations/999999/rating", {"rating": 3}),
        ("get", "/v1/agent/conversations/999999", None),
        ("post", "/v1/agent/conversations/999999/claim", {"agent": "Mei"}),
        ("post", "/v1/agent/conversations/999999/hand-back", {"agent": "Mei"}),
        ("post", "/v1/agent/conversations/999999/messages", {"agent": "Mei", "text": "hi"}),
    ],
)
def test_unknown_conversation_is_404(client, method, path, body):
    response = getattr(client, method)(path, **({"json": body} if body is not None else {}))

    assert response.status_code == 404
    assert "999999" in response.json()["detail"]


def test_blank_agent_name_is_rejected(client):
    conversation_id = _start(client)

    response = client.post(f"/v1/agent/conversations/{conversation_id}/claim", json={"agent": "  "})

    assert response.status_code == 422
    assert "agent name is blank" in response.text


def test_correction_wins_next_pair_build(client, policy_runtime, packaged_embedder, tmp_path):
    question = "My package tracking number shows no updates for a week, what should I do?"
    corrected = "Send us the order number: after 5 days without a tracking update we reship it."
    conversation_id = _start(client)
    reply = _ask(client, conversation_id, question)
    response = client.post(
        f"/v1/agent/conversations/{conversation_id}/messages/{reply['message_id']}/correction",
        json={"agent": "Mei", "text": corrected},
    )
    assert response.status_code == 201

    build_dataset(
        policy_runtime.session_factory,
        DatasetConfig(out_dir=tmp_path / "pairs", validation=0.0, test=0.0),
        embedder=packaged_embedder,
    )

    examples = [
        json.loads(line)
        for line in (tmp_path / "pairs" / "train.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    answers = [
        example["messages"][-1]["content"]
        for example in examples
        if example["messages"][-2]["content"] == question
    ]
    # The imported conversation asked the same question; near-duplicate merging keeps
    # the agent's correction instead of its answer.
    assert answers == [corrected]


@pytest.fixture
def agent_token(policy_runtime: BotRuntime) -> Iterator[str]:
    policy_runtime.settings.policy.agent_token = "s3cret-token"
    yield "s3cret-token"
    policy_runtime.settings.policy.agent_token = None


def test_agent_token_guards_agent_routes_and_explanations(client, agent_token):
    conversation_id = _start(client)
    reply = _ask(client, conversation_id, "Can I pay with PayPal?")
    headers = {"Authorization": f"Bearer {agent_token}"}

    anonymous = client.get("/v1/agent/queue")
    wrong = client.get("/v1/agent/queue", headers={"Authorization": "Bearer nope"})
    allowed = client.get("/v1/agent/queue", headers=headers)
    customer_view = client.get(f"/v1/conversations/{conversation_id}").json()
    agent_view = client.get(f"/v1/conversations/{conversation_id}", headers=headers).json()

    assert anonymous.status_code == 401
    assert "SUPPORTBOT_POLICY__AGENT_TOKEN" in anonymous.json()["detail"]
    assert wrong.status_code == 401
    assert allowed.status_code == 200
    assert reply["explanation"] == {}
    assert "explanation" not in customer_view["messages"][1]["metadata"]
    assert agent_view["messages"][1]["metadata"]["explanation"]["path"] == "retrieved"


def test_forwarded_turn_keeps_its_understanding(client):
    conversation_id = _start(client)
    client.post(f"/v1/agent/conversations/{conversation_id}/claim", json={"agent": "Mei"})

    reply = _ask(client, conversation_id, "Where is my parcel right now?")

    assert reply["path"] == "forwarded"
    assert reply["explanation"]["reason"] == "conversation_agent"
    assert reply["explanation"]["nlu"]["intent"] == "track_order"

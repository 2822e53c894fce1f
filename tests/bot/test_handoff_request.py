from __future__ import annotations

import pytest

from bot.handoff_request import asks_for_human


@pytest.mark.parametrize(
    "text",
    [
        "Can I talk to a real person?",
        "I want to speak to a human agent",
        "agent please",
        "Human!",
        "get me a manager",
        "I don't want to chat with a bot",
        "我要转人工",
        "人工",
        "帮我转接人工客服",
        "不要机器人",
    ],
)
def test_requests_for_a_human_are_recognised(text):
    assert asks_for_human(text)


@pytest.mark.parametrize(
    "text",
    [
        "Where is my order?",
        "my travel agent booked it",
        "put it in the cart",
        "I am not a robot",
        "Is this product made by humans or machines?",
        "人工智能是什么",
        "订单什么时候到",
    ],
)
def test_other_messages_are_not_requests(text):
    assert not asks_for_human(text)

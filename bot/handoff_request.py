"""Recognise a customer asking for a human, in English or Chinese, without any model."""

from __future__ import annotations

import re

_HUMAN_REQUEST_PATTERNS = [
    re.compile(pattern)
    for pattern in (
        r"\b(talk|speak|chat|connect|transfer|put|get)\b.{0,25}\b(human|person|agent|"
        r"representative|rep|operator|someone|somebody|staff|employee|supervisor|manager)\b",
        r"\b(real|live|actual|human)\s+(person|agent|human|people|support|representative)\b",
        r"^\s*(human|agent|operator|representative)( please| pls)?\s*[.!?]*\s*$",
        r"\b(want|need|prefer)\b.{0,15}\b(a |an )?(human|agent|operator|representative)\b",
        r"\b(don'?t|do not)\s+want\b.{0,20}\b(bot|robot|machine)\b",
        r"(转|转接|接通|找|要|叫).{0,4}(人工|真人|客服人员|人工客服|客服经理|主管)",
        r"^\s*(人工|人工客服|真人|转人工)\s*[。！!？?]*\s*$",
        r"(不要|不想要|别用).{0,4}(机器人|自动回复)",
    )
]


def asks_for_human(text: str) -> bool:
    """Return True when the message asks to be passed to a human agent.

    Example:
        >>> asks_for_human("Can I talk to a real person?")
        True
        >>> asks_for_human("我要转人工")
        True
    """
    lowered = text.lower()
    return any(pattern.search(lowered) for pattern in _HUMAN_REQUEST_PATTERNS)

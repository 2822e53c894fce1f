"""Input checks on a customer message before any model sees it."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass


class InvalidMessageError(ValueError):
    """A customer message cannot be processed.

    Attributes:
        code: ``"empty"`` or ``"too_long"``, for picking a translated message.
        length: Characters in the trimmed message.
        max_chars: The configured limit.
    """

    def __init__(self, message: str, *, code: str, length: int, max_chars: int) -> None:
        super().__init__(message)
        self.code = code
        self.length = length
        self.max_chars = max_chars


@dataclass(frozen=True)
class GuardResult:
    """Outcome of the input guard: the cleaned text and, if set, why not to answer it."""

    text: str
    block_reason: str | None = None


# Requests aimed at the bot's own instructions rather than at support. Matched on
# lowercased text; they are refused without reaching retrieval or the dialog model.
_PROMPT_INJECTION_PATTERNS = [
    re.compile(pattern)
    for pattern in (
        r"\b(ignore|disregard|forget)\b.{0,40}\b(previous|prior|above|earlier|all|your)\b.{0,40}"
        r"\b(instructions?|rules?|prompts?|directions?)",
        r"\b(system|initial|hidden|original)\s+(prompt|instructions?|message)",
        r"\b(print|reveal|show|repeat|output|tell me|what (are|is|were))\b.{0,40}"
        r"\byour\b.{0,20}\b(instructions?|prompt|rules)",
        r"\byou are now\b|\bact as\b.{0,30}\b(unrestricted|jailbroken|dan)\b|\bdeveloper mode\b",
        r"(忽略|无视|忘记|忘掉).{0,15}(之前|以上|上面|先前|所有|你的).{0,15}(指令|指示|规则|提示)",
        r"(系统|初始|隐藏|原始)(提示词?|指令|设定)",
        r"(输出|打印|显示|告诉我|重复|泄露).{0,15}(你的|你).{0,10}(指令|提示词?|规则|设定)",
    )
]


# Insults aimed at the bot or at staff. A customer who swears about a late parcel still
# gets an answer; one who only abuses gets a calm reply and, when it repeats, an agent.
_ABUSE_PATTERNS = [
    re.compile(pattern)
    for pattern in (
        r"\b(you|u|ur|you're|youre|this bot|stupid bot)\b.{0,20}\b(idiot|moron|stupid|"
        r"useless|dumb|retard(ed)?|piece of (shit|crap)|bitch|asshole)\b",
        r"\b(fuck|screw)\s+(you|u|off|this bot)\b",
        r"\b(shut up|go to hell|kill yourself|kys)\b",
        r"(你|你们|这)(是|个|真是|真)?.{0,4}(傻[逼屄比]|白痴|蠢货|废物|智障|脑残|垃圾)",
        r"(去死|滚蛋|闭嘴|草泥马|操你|他妈的)",
    )
]


def check_message(text: str, *, max_chars: int) -> GuardResult:
    """Normalise a customer message and decide whether the bot may answer it.

    Args:
        text: The raw message.
        max_chars: Longest accepted message after trimming, in characters.

    Returns:
        The trimmed text, with ``block_reason`` set to ``"no_content"`` (only emoji,
        symbols or punctuation), ``"prompt_injection"`` (asks about or against the
        bot's instructions) or ``"abusive"`` (insults), or None when the turn may be
        answered.

    Raises:
        InvalidMessageError: If the text is empty after trimming or longer than
            ``max_chars``.
    """
    cleaned = _strip_control_characters(text).strip()
    if not cleaned:
        raise InvalidMessageError(
            "message text is empty: send at least one visible character",
            code="empty",
            length=0,
            max_chars=max_chars,
        )
    if len(cleaned) > max_chars:
        raise InvalidMessageError(
            f"message has {len(cleaned)} characters, more than the limit of {max_chars}: "
            "shorten it or split it into several messages",
            code="too_long",
            length=len(cleaned),
            max_chars=max_chars,
        )

    if not any(unicodedata.category(char)[0] in "LN" for char in cleaned):
        return GuardResult(cleaned, "no_content")
    lowered = cleaned.lower()
    if any(pattern.search(lowered) for pattern in _PROMPT_INJECTION_PATTERNS):
        return GuardResult(cleaned, "prompt_injection")
    if any(pattern.search(lowered) for pattern in _ABUSE_PATTERNS):
        return GuardResult(cleaned, "abusive")
    return GuardResult(cleaned)


def _strip_control_characters(text: str) -> str:
    # Keep newlines and tabs; drop other control and format characters such as NUL
    # or bidi overrides, which only confuse storage and display.
    return "".join(
        char
        for char in text
        if char in "\n\t"
        or unicodedata.category(char) not in ("Cc", "Cf", "Cs")
        or char == "\u200d"
    )

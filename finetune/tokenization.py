"""Tokenize chat-format examples with loss only on the final assistant answer.

Each example is a list of ``{"role", "content"}`` messages as written by
``finetune.dataset.write_dataset``; its last message is the assistant answer to
learn. The conversation is rendered with the tokenizer's chat template, and the
labels are -100 (ignored by the loss) everywhere except the answer tokens and the
end-of-turn token that closes the answer.

Example:
    >>> result = tokenize_examples(conversations, tokenizer, max_seq_len=1024)
    >>> result.examples[0].input_ids[:5], result.rejected
    ([1, 9690, 198, 2683, 359], Counter())
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger(__name__)

IGNORE_INDEX = -100
REJECT_ANSWER_TOO_LONG = "answer_too_long"


class ExampleRejectedError(ValueError):
    """An example that cannot be trained on; ``reason`` is a short key for counting."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass
class TokenizedExample:
    """Token ids of one example and its labels, both of the same length.

    Attributes:
        input_ids: Token ids of the rendered conversation.
        labels: The token id where the loss applies, else -100.
        is_truncated: Whether context turns or prompt tokens were dropped to fit.
    """

    input_ids: list[int]
    labels: list[int]
    is_truncated: bool = False


@dataclass
class TokenizationResult:
    """Tokenized examples with counts of the examples that were left out or shortened."""

    examples: list[TokenizedExample] = field(default_factory=list)
    rejected: Counter[str] = field(default_factory=Counter)
    truncated: int = 0


def tokenize_examples(
    conversations: Iterable[Sequence[dict[str, str]]], tokenizer: Any, *, max_seq_len: int
) -> TokenizationResult:
    """Tokenize many examples, counting the rejected ones instead of raising.

    Args:
        conversations: Message lists as in the dataset JSONL files.
        tokenizer: A transformers tokenizer with a chat template.
        max_seq_len: Maximum tokens per example.

    Returns:
        The tokenized examples in input order, and rejection counts per reason.

    Raises:
        ValueError: If the tokenizer or its chat template cannot be used, or an
            example is malformed (see ``tokenize_example``).
    """
    result = TokenizationResult()
    for messages in conversations:
        try:
            example = tokenize_example(messages, tokenizer, max_seq_len=max_seq_len)
        except ExampleRejectedError as error:
            result.rejected[error.reason] += 1
            continue
        result.examples.append(example)
        result.truncated += example.is_truncated

    logger.info(
        "tokenized %d examples, truncated %d, rejected %s",
        len(result.examples),
        result.truncated,
        dict(result.rejected),
    )
    return result


def tokenize_example(
    messages: Sequence[dict[str, str]], tokenizer: Any, *, max_seq_len: int
) -> TokenizedExample:
    """Render one conversation with the chat template and label its final answer.

    The answer tokens are found as the full rendering minus the rendering of the
    earlier messages with ``add_generation_prompt=True``. Tokens the template adds
    after the end-of-turn token (such as a newline) keep label -100. When the
    example is longer than ``max_seq_len``, the oldest context turns are dropped
    first, keeping a system message; if the last question alone is still too long,
    its oldest tokens are cut. Each drop renders the conversation again, so the
    cost grows with the number of turns dropped.

    Args:
        messages: System, user and assistant messages; the last is the answer.
        tokenizer: A transformers tokenizer with a chat template.
        max_seq_len: Maximum tokens of the result, at least 2.

    Returns:
        The token ids and labels, at most ``max_seq_len`` long.

    Raises:
        ValueError: If the tokenizer has no chat template, the template renders the
            prompt differently from the start of the full conversation, or the
            messages do not end with an assistant answer after a user message.
        ExampleRejectedError: With reason "answer_too_long" if the answer tokens
            leave no room for at least one prompt token.
    """
    _validate_messages(messages)
    if max_seq_len < 2:
        raise ValueError(f"invalid max_seq_len {max_seq_len}: use at least 2")
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError(
            f"tokenizer {getattr(tokenizer, 'name_or_path', '')!r} has no chat template: "
            "use an instruct model's tokenizer or set tokenizer.chat_template"
        )

    kept_messages = list(messages)
    prompt_ids, answer_ids = _split_prompt_and_answer(kept_messages, tokenizer)
    if len(answer_ids) >= max_seq_len:
        raise ExampleRejectedError(
            REJECT_ANSWER_TOO_LONG,
            f"answer of {len(answer_ids)} tokens leaves no room for the prompt within "
            f"max_seq_len {max_seq_len}: raise max_seq_len or drop the example",
        )

    is_truncated = False
    while len(prompt_ids) + len(answer_ids) > max_seq_len and _has_droppable_turn(kept_messages):
        kept_messages = _drop_oldest_turn(kept_messages)
        prompt_ids, answer_ids = _split_prompt_and_answer(kept_messages, tokenizer)
        is_truncated = True
    overflow = len(prompt_ids) + len(answer_ids) - max_seq_len
    if overflow > 0:
        # NOTE: cutting inside the question also removes the template's opening tokens.
        prompt_ids = prompt_ids[overflow:]
        is_truncated = True

    labels = [IGNORE_INDEX] * len(prompt_ids) + _label_answer(answer_ids, tokenizer)
    return TokenizedExample(prompt_ids + answer_ids, labels, is_truncated)


def _validate_messages(messages: Sequence[dict[str, str]]) -> None:
    roles = [message.get("role") for message in messages]
    if len(roles) < 2 or roles[-1] != "assistant" or roles[-2] != "user":
        raise ValueError(
            f"invalid example with roles {roles}: the last message must be the assistant "
            "answer and the one before it a user message"
        )


def _render_ids(
    tokenizer: Any, messages: Sequence[dict[str, str]], **kwargs: Any
) -> tuple[str, list[int]]:
    text = tokenizer.apply_chat_template(list(messages), tokenize=False, **kwargs)
    return text, tokenizer(text, add_special_tokens=False)["input_ids"]


def _split_prompt_and_answer(
    messages: Sequence[dict[str, str]], tokenizer: Any
) -> tuple[list[int], list[int]]:
    """Return the prompt ids and the answer ids, checking the prompt is a prefix."""
    prompt_text, prompt_ids = _render_ids(tokenizer, messages[:-1], add_generation_prompt=True)
    full_text, full_ids = _render_ids(tokenizer, messages)
    if not full_text.startswith(prompt_text):
        raise ValueError(
            "the chat template renders the prompt with add_generation_prompt=True "
            "differently from the start of the full conversation, so the answer tokens "
            "cannot be located: use a template whose generation prompt matches how it "
            f"renders an assistant turn (prompt ends {prompt_text[-40:]!r}, full "
            f"conversation at that point {full_text[len(prompt_text) - 40 : len(prompt_text)]!r})"
        )
    if full_ids[: len(prompt_ids)] != prompt_ids:
        raise ValueError(
            "the tokenizer merges the end of the chat template's generation prompt with "
            "the start of the answer, so the answer tokens cannot be separated: end the "
            "generation prompt with a special token or a newline"
        )
    return prompt_ids, full_ids[len(prompt_ids) :]


def _label_answer(answer_ids: list[int], tokenizer: Any) -> list[int]:
    """Label the answer through its last end-of-turn token; ignore template tokens after it."""
    eos_id = tokenizer.eos_token_id
    if eos_id is None or eos_id not in answer_ids:
        return list(answer_ids)
    end = len(answer_ids) - answer_ids[::-1].index(eos_id)
    return answer_ids[:end] + [IGNORE_INDEX] * (len(answer_ids) - end)


def _has_droppable_turn(messages: Sequence[dict[str, str]]) -> bool:
    start = 1 if messages[0]["role"] == "system" else 0
    return len(messages) - start > 2


def _drop_oldest_turn(messages: list[dict[str, str]]) -> list[dict[str, str]]:
    """Drop the oldest non-system message, then any assistant message left first."""
    start = 1 if messages[0]["role"] == "system" else 0
    rest = messages[start + 1 :]
    while len(rest) > 2 and rest[0]["role"] != "user":
        rest = rest[1:]
    return messages[:start] + rest

"""Chat messages for grounded generation: passages, conversation history and the question."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from bot.generation.base import ChatMessage
from retrieval.retriever import Passage
from storage.models import Message, Role

_PROMPTS_DIR = Path(__file__).parent / "prompts"

# Characters of one passage put into the prompt; SmolLM2-135M has a 2,048-token context,
# so three passages of this size plus history leave room for the answer.
MAX_PASSAGE_CHARS = 900


@cache
def _load_template(name: str) -> str:
    return (_PROMPTS_DIR / name).read_text(encoding="utf-8")


def build_grounded_messages(
    *,
    question: str,
    passages: list[Passage],
    history: list[Message],
    slots: dict[str, str] | None = None,
) -> list[ChatMessage]:
    """Build the chat for a grounded answer.

    Args:
        question: The customer's message being answered.
        passages: Retrieved passages, best first. They go into the system message under
            their titles, as reference data.
        history: Earlier messages of the conversation, oldest first, without ``question``.
        slots: What the customer told so far (order id, date...), listed after the
            passages as data.

    Returns:
        A system message, the history as user/assistant turns, and the question.
    """
    # Passages are introduced by their titles, not numbers: with numbers, SmolLM2-135M
    # wrote about a "[4]" it was never given in one benchmark run.
    passage_block = "\n\n".join(
        f"{passage.title}:\n{_passage_body(passage)[:MAX_PASSAGE_CHARS]}" for passage in passages
    )
    system = _load_template("grounded_answer.txt").format(passages=passage_block)
    if slots:
        known = "\n".join(f"- {name}: {value}" for name, value in sorted(slots.items()))
        system += f"\n\nDetails the customer gave earlier:\n{known}"
    messages = [ChatMessage(role="system", content=system)]
    for message in history:
        if message.role == Role.CUSTOMER:
            messages.append(ChatMessage(role="user", content=message.text))
        elif message.role in (Role.AGENT, Role.BOT):
            messages.append(ChatMessage(role="assistant", content=message.text))
    messages.append(ChatMessage(role="user", content=question))
    return messages


def _passage_body(passage: Passage) -> str:
    if passage.question:
        return f"Q: {passage.question}\nA: {passage.text}"
    return passage.text

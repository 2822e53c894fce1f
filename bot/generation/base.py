"""The generator interface that the dialog manager calls, and the factory that builds one.

Example:
    >>> generator = build_generator(settings.generation, settings.model_cache_dir)
    >>> reply = generator.generate(
    ...     [ChatMessage("system", "You are a support agent."), ChatMessage("user", "Hi")],
    ...     max_new_tokens=settings.generation.max_new_tokens,
    ...     temperature=settings.generation.temperature,
    ... )
    >>> reply.text
"""

from __future__ import annotations

import abc
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Literal, get_args

# Re-exported so that callers can import the interface and its errors from one module.
from bot.generation.errors import (  # noqa: F401
    GenerationError,
    GenerationTimeoutError,
    ModelUnavailableError,
)

if TYPE_CHECKING:
    from bot.config import GenerationSettings

logger = logging.getLogger(__name__)

Role = Literal["system", "user", "assistant"]
ROLES: tuple[str, ...] = get_args(Role)


@dataclass(frozen=True)
class ChatMessage:
    """One turn of a conversation in the OpenAI chat format."""

    role: Role
    content: str

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"invalid role {self.role!r}: use one of {', '.join(ROLES)}")
        if not isinstance(self.content, str):
            raise TypeError(f"content must be a str, got {type(self.content).__name__}")

    def to_dict(self) -> dict[str, str]:
        """Return the message as ``{"role": ..., "content": ...}``."""
        return {"role": self.role, "content": self.content}


@dataclass(frozen=True)
class Generation:
    """A generated reply with its cost.

    Attributes:
        text: The reply without special tokens or surrounding whitespace. May be empty.
        model: Name of the model that wrote it: the configured value, or the name that an
            OpenAI-compatible server reports.
        prompt_tokens: Tokens in the prompt after truncation, or None when the backend
            does not report usage.
        completion_tokens: Tokens generated, or None when the backend does not report usage.
        seconds: Wall-clock time of the request, including retries and waiting for a lock.
        finish_reason: "stop" when the model ended the reply, "length" when it reached
            ``max_new_tokens``, or what the server reports; None when unknown.
        is_prompt_truncated: True when earlier turns or prompt tokens were dropped to fit
            the model's context window.
    """

    text: str
    model: str
    prompt_tokens: int | None
    completion_tokens: int | None
    seconds: float
    finish_reason: str | None = None
    is_prompt_truncated: bool = False


class Generator(abc.ABC):
    """A dialog model that writes the next assistant turn of a conversation.

    Implementations are safe to call from several threads. Use one as a context manager,
    or call ``close`` to release connections or memory.

    Attributes:
        model_name: Name of the served model, shown in reply explanations.
    """

    model_name: str

    @abc.abstractmethod
    def generate(
        self, messages: Sequence[ChatMessage], *, max_new_tokens: int, temperature: float
    ) -> Generation:
        """Generate the next assistant turn.

        Args:
            messages: The conversation so far, oldest first. Must not be empty.
            max_new_tokens: Maximum tokens in the reply, at least 1.
            temperature: Sampling temperature from 0 to 2. 0 decodes greedily.

        Returns:
            The reply with token counts and timing.

        Raises:
            ValueError: If ``messages`` is empty or a number is out of range.
            GenerationTimeoutError: If the request takes longer than the timeout.
            ModelUnavailableError: If the model or server cannot be reached.
            GenerationError: If generation fails for another reason.
        """

    def close(self) -> None:  # noqa: B027 - optional hook, most backends hold nothing
        """Release resources held by the generator. The default does nothing."""

    def __enter__(self) -> Generator:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def validate_generation_request(
    messages: Sequence[ChatMessage], max_new_tokens: int, temperature: float
) -> None:
    """Raise ValueError or TypeError unless the arguments of ``Generator.generate`` are valid."""
    if not messages:
        raise ValueError("messages is empty: pass at least one ChatMessage")
    for index, message in enumerate(messages):
        if not isinstance(message, ChatMessage):
            raise TypeError(
                f"messages[{index}] is a {type(message).__name__}, expected a ChatMessage"
            )
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
    if not 0.0 <= temperature <= 2.0:
        raise ValueError(f"temperature must be between 0 and 2, got {temperature}")


def build_generator(settings: GenerationSettings, model_cache_dir: Path) -> Generator:
    """Build the generator that ``settings`` describe.

    The 'transformers' backend resolves ``settings.model`` first, which converts the
    packaged model on its first use (about 20 s and 540 MB in ``model_cache_dir``), and
    then loads the weights into memory. The 'openai' backend only creates an HTTP client
    and contacts the server on the first request.

    Args:
        settings: The generation settings. ``max_new_tokens`` and ``temperature`` are not
            used here because callers pass them to every ``generate`` call.
        model_cache_dir: Folder of converted model weights.

    Returns:
        A ready generator.

    Raises:
        ValueError: If the 'openai' backend is chosen without ``base_url``.
        ModelUnavailableError: If the model cannot be found, converted or loaded.
    """
    if settings.backend == "openai":
        # Imported here so that an 'openai' deployment never imports torch.
        from bot.generation.openai_backend import OpenAICompatibleGenerator

        if not settings.base_url:
            raise ValueError(
                "generation.base_url is unset but generation.backend is 'openai': set "
                "SUPPORTBOT_GENERATION__BASE_URL, for example http://127.0.0.1:8000/v1"
            )
        return OpenAICompatibleGenerator(
            settings.base_url,
            settings.model,
            api_key=settings.api_key,
            timeout_s=settings.timeout_s,
        )

    from bot.generation.model_cache import resolve_model_path

    model_path = resolve_model_path(settings.model, model_cache_dir)
    from bot.generation.transformers_backend import TransformersGenerator

    return TransformersGenerator(
        model_path,
        model_name=settings.model,
        timeout_s=settings.timeout_s,
        repetition_penalty=settings.repetition_penalty,
    )

"""Checks that every ``Generator`` implementation must pass.

Test classes inherit ``GeneratorContract`` and provide a ``generator`` fixture.
"""

from __future__ import annotations

import pytest

from bot.generation import ChatMessage, Generation, Generator

SUPPORT_MESSAGES = [
    ChatMessage("system", "You are a customer support agent. Answer in one sentence."),
    ChatMessage("user", "How do I reset my password?"),
]


class GeneratorContract:
    """Behaviour shared by all generators; subclasses define the ``generator`` fixture."""

    @pytest.fixture
    def generator(self) -> Generator:
        raise NotImplementedError("subclasses provide a generator fixture")

    def test_generate_returns_generation(self, generator: Generator):
        result = generator.generate(SUPPORT_MESSAGES, max_new_tokens=16, temperature=0.0)

        assert isinstance(result, Generation)
        assert isinstance(result.text, str)
        assert result.text.strip()
        assert result.model
        assert result.seconds > 0

    def test_generate_counts_tokens(self, generator: Generator):
        result = generator.generate(SUPPORT_MESSAGES, max_new_tokens=16, temperature=0.0)

        assert result.prompt_tokens is not None
        assert result.prompt_tokens > 0
        assert result.completion_tokens is not None
        assert 0 < result.completion_tokens <= 16

    def test_generate_greedy_is_deterministic(self, generator: Generator):
        first = generator.generate(SUPPORT_MESSAGES, max_new_tokens=12, temperature=0.0)
        second = generator.generate(SUPPORT_MESSAGES, max_new_tokens=12, temperature=0.0)

        assert first.text == second.text

    def test_generate_empty_messages_rejected(self, generator: Generator):
        with pytest.raises(ValueError, match="messages is empty"):
            generator.generate([], max_new_tokens=8, temperature=0.0)

    @pytest.mark.parametrize("temperature", [-0.1, 2.5])
    def test_generate_bad_temperature_rejected(self, generator: Generator, temperature: float):
        with pytest.raises(ValueError, match="temperature must be between 0 and 2"):
            generator.generate(SUPPORT_MESSAGES, max_new_tokens=8, temperature=temperature)

    def test_generate_zero_max_new_tokens_rejected(self, generator: Generator):
        with pytest.raises(ValueError, match="max_new_tokens must be at least 1"):
            generator.generate(SUPPORT_MESSAGES, max_new_tokens=0, temperature=0.0)

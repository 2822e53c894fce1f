from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import GenerationSettings
from bot.generation import (
    ChatMessage,
    ModelUnavailableError,
    build_generator,
    validate_generation_request,
)
from bot.generation.openai_backend import OpenAICompatibleGenerator
from tests.utils.openai_stub import REPLY_PREFIX, OpenAIStubServer


def test_chat_message_invalid_role_rejected():
    with pytest.raises(ValueError, match="invalid role 'tool'"):
        ChatMessage("tool", "hi")


def test_chat_message_non_string_content_rejected():
    with pytest.raises(TypeError, match="content must be a str"):
        ChatMessage("user", None)


def test_chat_message_to_dict():
    message = ChatMessage("user", "Where is my order?")

    assert message.to_dict() == {"role": "user", "content": "Where is my order?"}


def test_validate_request_non_message_rejected():
    with pytest.raises(TypeError, match=r"messages\[1\] is a dict"):
        validate_generation_request(
            [ChatMessage("user", "hi"), {"role": "user", "content": "hi"}], 8, 0.0
        )


def test_build_generator_openai_without_base_url_rejected(tmp_path: Path):
    settings = GenerationSettings(backend="openai", model="stub-model")

    with pytest.raises(ValueError, match="generation.base_url is unset"):
        build_generator(settings, tmp_path)


@pytest.mark.integration
def test_build_generator_openai_calls_endpoint(tmp_path: Path, openai_stub: OpenAIStubServer):
    settings = GenerationSettings(
        backend="openai", model="stub-model", base_url=openai_stub.base_url, timeout_s=5
    )

    with build_generator(settings, tmp_path) as generator:
        result = generator.generate(
            [ChatMessage("user", "ping")], max_new_tokens=8, temperature=0.0
        )

    assert isinstance(generator, OpenAICompatibleGenerator)
    assert result.text == REPLY_PREFIX + "ping"
    assert not list(tmp_path.iterdir())


def test_build_generator_missing_folder_raises(tmp_path: Path):
    missing = tmp_path / "no-such-model"
    settings = GenerationSettings(model=str(missing))

    with pytest.raises(ModelUnavailableError, match="no-such-model.*not found"):
        build_generator(settings, tmp_path / "cache")


@pytest.mark.slow
def test_build_generator_packaged_model(packaged_model_cache_dir: Path, packaged_generator_path):
    settings = GenerationSettings(model="packaged:SmolLM2-135M-Instruct")

    generator = build_generator(settings, packaged_model_cache_dir)

    assert generator.model_name == "packaged:SmolLM2-135M-Instruct"
    assert generator.timeout_s == settings.timeout_s
    assert generator.max_context_tokens == 8192

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from bot.generation import ChatMessage, GenerationTimeoutError, ModelUnavailableError
from bot.generation.transformers_backend import TransformersGenerator
from tests.bot.test_generation_contract import SUPPORT_MESSAGES, GeneratorContract

LONG_HISTORY = [
    ChatMessage("system", "You are a support agent. Be brief."),
    ChatMessage("user", "My first order arrived late. " * 20),
    ChatMessage("assistant", "Sorry about the delay with your first order. " * 10),
    ChatMessage("user", "Can I change my delivery address?"),
]


def test_transformers_missing_folder_names_path(tmp_path: Path):
    missing = tmp_path / "no-such-model"

    with pytest.raises(ModelUnavailableError, match="not found") as raised:
        TransformersGenerator(missing)

    assert str(missing) in str(raised.value)


def test_transformers_invalid_timeout_rejected(tmp_path: Path):
    with pytest.raises(ValueError, match="timeout_s must be positive"):
        TransformersGenerator(tmp_path, timeout_s=0)


@pytest.mark.slow
class TestTransformersGenerator(GeneratorContract):
    @pytest.fixture
    def generator(self, packaged_generator: TransformersGenerator) -> TransformersGenerator:
        return packaged_generator

    def test_generate_english_prompt(self, packaged_generator: TransformersGenerator):
        result = packaged_generator.generate(SUPPORT_MESSAGES, max_new_tokens=60, temperature=0.0)

        assert len(result.text.split()) >= 3
        assert "<|im_end|>" not in result.text
        assert "<|im_start|>" not in result.text
        assert 0 < result.completion_tokens <= 60
        assert result.finish_reason in {"stop", "length"}
        assert result.is_prompt_truncated is False

    def test_prompt_uses_chat_template(self, packaged_generator: TransformersGenerator):
        prompt = packaged_generator.render_prompt(SUPPORT_MESSAGES)

        assert "<|im_start|>system\nYou are a customer support agent." in prompt
        assert "<|im_start|>user\nHow do I reset my password?<|im_end|>" in prompt
        assert prompt.endswith("<|im_start|>assistant\n")

    def test_prompt_tokens_match_template(self, packaged_generator: TransformersGenerator):
        prompt = packaged_generator.render_prompt(SUPPORT_MESSAGES)
        expected_tokens = len(
            packaged_generator.tokenizer(prompt, add_special_tokens=False)["input_ids"]
        )

        result = packaged_generator.generate(SUPPORT_MESSAGES, max_new_tokens=4, temperature=0.0)

        assert result.prompt_tokens == expected_tokens

    def test_sampling_returns_text(self, packaged_generator: TransformersGenerator):
        result = packaged_generator.generate(SUPPORT_MESSAGES, max_new_tokens=12, temperature=0.8)

        assert result.text
        assert result.completion_tokens <= 12

    def test_max_new_tokens_beyond_context_rejected(
        self, packaged_generator: TransformersGenerator
    ):
        with pytest.raises(ValueError, match="leaves no room for a prompt"):
            packaged_generator.generate(SUPPORT_MESSAGES, max_new_tokens=8192, temperature=0.0)

    def test_concurrent_calls_match_serial(self, packaged_generator: TransformersGenerator):
        expected = packaged_generator.generate(SUPPORT_MESSAGES, max_new_tokens=10, temperature=0.0)
        texts: list[str] = []

        def call() -> None:
            result = packaged_generator.generate(
                SUPPORT_MESSAGES, max_new_tokens=10, temperature=0.0
            )
            texts.append(result.text)

        threads = [threading.Thread(target=call) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)

        assert texts == [expected.text] * 3


@pytest.fixture(scope="module")
def small_context_generator(packaged_generator_path: Path) -> TransformersGenerator:
    return TransformersGenerator(packaged_generator_path, device="cpu", max_context_tokens=96)


@pytest.mark.slow
class TestPromptTruncation:
    def test_old_turns_dropped_first(self, small_context_generator: TransformersGenerator):
        kept_messages = [LONG_HISTORY[0], LONG_HISTORY[-1]]
        kept_tokens = len(
            small_context_generator.tokenizer(
                small_context_generator.render_prompt(kept_messages), add_special_tokens=False
            )["input_ids"]
        )

        result = small_context_generator.generate(LONG_HISTORY, max_new_tokens=8, temperature=0.0)

        assert result.is_prompt_truncated is True
        assert result.prompt_tokens == kept_tokens
        assert result.prompt_tokens <= 96 - 8

    def test_long_last_message_cut_from_left(
        self, small_context_generator: TransformersGenerator, caplog
    ):
        messages = [ChatMessage("user", "Please help with my refund. " * 200)]

        result = small_context_generator.generate(messages, max_new_tokens=8, temperature=0.0)

        assert result.is_prompt_truncated is True
        assert result.prompt_tokens == 96 - 8
        assert result.completion_tokens <= 8
        assert "exceeds the 88-token limit" in caplog.text

    def test_context_above_model_limit_rejected(self, packaged_generator_path: Path):
        with pytest.raises(ValueError, match="exceeds the 8192-token context"):
            TransformersGenerator(packaged_generator_path, max_context_tokens=10_000)


@pytest.mark.slow
def test_transformers_timeout_raises(packaged_generator_path: Path):
    generator = TransformersGenerator(packaged_generator_path, device="cpu", timeout_s=1e-4)

    with pytest.raises(GenerationTimeoutError, match="timed out"):
        generator.generate(SUPPORT_MESSAGES, max_new_tokens=32, temperature=0.0)


@pytest.mark.slow
def test_transformers_without_chat_template_raises(packaged_generator_path: Path, tmp_path: Path):
    # A copy of the converted model, linked file by file, minus its chat template.
    for source in packaged_generator_path.iterdir():
        if source.name != "chat_template.jinja":
            os.symlink(source, tmp_path / source.name)

    with pytest.raises(ModelUnavailableError, match="has no chat template") as raised:
        TransformersGenerator(tmp_path)

    assert str(tmp_path) in str(raised.value)


@pytest.mark.slow
@pytest.mark.gpu
def test_transformers_cuda_uses_bfloat16(packaged_generator_path: Path):
    import torch

    if not torch.cuda.is_available():
        pytest.skip("no CUDA device: this torch build or machine has none")
    generator = TransformersGenerator(packaged_generator_path)

    result = generator.generate(SUPPORT_MESSAGES, max_new_tokens=16, temperature=0.0)

    assert generator.device.type == "cuda"
    assert generator.dtype in {torch.bfloat16, torch.float16}
    assert result.text

from __future__ import annotations

import socket
import time

import pytest

from bot.generation import (
    ChatMessage,
    GenerationError,
    GenerationTimeoutError,
    ModelUnavailableError,
)
from bot.generation.openai_backend import OpenAICompatibleGenerator
from tests.bot.test_generation_contract import GeneratorContract
from tests.utils.openai_stub import REPLY_PREFIX, OpenAIStubServer

pytestmark = pytest.mark.integration

MESSAGES = [
    ChatMessage("system", "You are a support agent."),
    ChatMessage("user", "Where is my parcel?"),
]


def _make_generator(server: OpenAIStubServer, **kwargs) -> OpenAICompatibleGenerator:
    options = {"timeout_s": 5.0, "backoff_s": 0.01} | kwargs
    return OpenAICompatibleGenerator(server.base_url, "stub-model", **options)


class TestOpenAICompatibleGenerator(GeneratorContract):
    @pytest.fixture
    def generator(self, openai_stub: OpenAIStubServer):
        with _make_generator(openai_stub) as generator:
            yield generator


def test_openai_success_returns_reply(openai_stub: OpenAIStubServer):
    with _make_generator(openai_stub) as generator:
        result = generator.generate(MESSAGES, max_new_tokens=32, temperature=0.3)

    assert result.text == REPLY_PREFIX + "Where is my parcel?"
    assert result.model == "stub-model"
    assert result.prompt_tokens == 9
    assert result.completion_tokens == 5
    assert result.finish_reason == "stop"
    assert result.is_prompt_truncated is False


def test_openai_request_body_and_headers(openai_stub: OpenAIStubServer):
    with _make_generator(openai_stub, api_key="test-key") as generator:
        generator.generate(MESSAGES, max_new_tokens=32, temperature=0.3)

    request = openai_stub.requests[0]
    assert request.path == "/v1/chat/completions"
    assert request.headers["Authorization"] == "Bearer test-key"
    assert request.body["model"] == "stub-model"
    assert request.body["max_tokens"] == 32
    assert request.body["temperature"] == 0.3
    assert request.body["messages"] == [message.to_dict() for message in MESSAGES]


def test_openai_no_api_key_sends_no_header(openai_stub: OpenAIStubServer):
    with _make_generator(openai_stub) as generator:
        generator.generate(MESSAGES, max_new_tokens=8, temperature=0.0)

    assert "Authorization" not in openai_stub.requests[0].headers


def test_openai_retries_after_one_500(openai_stub: OpenAIStubServer, caplog):
    openai_stub.fail_next(500)

    with _make_generator(openai_stub) as generator:
        result = generator.generate(MESSAGES, max_new_tokens=8, temperature=0.0)

    assert result.text == REPLY_PREFIX + "Where is my parcel?"
    assert len(openai_stub.requests) == 2
    assert "attempt 1 of 3" in caplog.text
    assert "HTTP 500" in caplog.text


def test_openai_persistent_5xx_raises_after_retries(openai_stub: OpenAIStubServer):
    openai_stub.fail_next(503, times=3)

    with _make_generator(openai_stub, max_retries=2) as generator:
        with pytest.raises(ModelUnavailableError, match="failed after 3 attempts: HTTP 503"):
            generator.generate(MESSAGES, max_new_tokens=8, temperature=0.0)

    assert len(openai_stub.requests) == 3


def test_openai_timeout_raises_without_retry(openai_stub: OpenAIStubServer):
    openai_stub.delay_next(3.0)

    with _make_generator(openai_stub, timeout_s=0.3) as generator:
        started = time.perf_counter()
        with pytest.raises(GenerationTimeoutError, match=r"did not reply within 0.3 s"):
            generator.generate(MESSAGES, max_new_tokens=8, temperature=0.0)
        elapsed_s = time.perf_counter() - started

    assert elapsed_s < 2.5
    assert len(openai_stub.requests) == 1


def test_openai_400_raises_with_url_and_status(openai_stub: OpenAIStubServer):
    openai_stub.fail_next(400)

    with _make_generator(openai_stub) as generator:
        with pytest.raises(GenerationError, match="returned HTTP 400") as raised:
            generator.generate(MESSAGES, max_new_tokens=8, temperature=0.0)

    assert openai_stub.base_url + "/chat/completions" in str(raised.value)
    assert "stub failure 400" in str(raised.value)
    assert len(openai_stub.requests) == 1


def test_openai_401_mentions_api_key(openai_stub: OpenAIStubServer):
    openai_stub.fail_next(401)

    with _make_generator(openai_stub) as generator:
        with pytest.raises(GenerationError, match="Check generation.api_key"):
            generator.generate(MESSAGES, max_new_tokens=8, temperature=0.0)


def test_openai_wrong_path_mentions_base_url(openai_stub: OpenAIStubServer):
    base_url = openai_stub.base_url.removesuffix("/v1")

    with OpenAICompatibleGenerator(base_url, "stub-model", timeout_s=5) as generator:
        with pytest.raises(GenerationError, match="HTTP 404.*it usually ends in /v1"):
            generator.generate(MESSAGES, max_new_tokens=8, temperature=0.0)


def test_openai_malformed_json_raises(openai_stub: OpenAIStubServer):
    openai_stub.send_malformed_next()

    with _make_generator(openai_stub) as generator:
        with pytest.raises(GenerationError, match="HTTP 200 with a body that is not a chat"):
            generator.generate(MESSAGES, max_new_tokens=8, temperature=0.0)


def test_openai_connection_refused_raises_after_retries():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    base_url = f"http://127.0.0.1:{port}/v1"

    with OpenAICompatibleGenerator(base_url, "m", timeout_s=2, backoff_s=0.01) as generator:
        with pytest.raises(ModelUnavailableError, match="failed after 3 attempts: ConnectError"):
            generator.generate(MESSAGES, max_new_tokens=8, temperature=0.0)


@pytest.mark.parametrize(
    ("base_url", "model", "message"),
    [
        ("127.0.0.1:8000/v1", "m", "invalid base_url"),
        ("http://127.0.0.1:8000/v1", " ", "model is empty"),
    ],
)
def test_openai_invalid_arguments_rejected(base_url: str, model: str, message: str):
    with pytest.raises(ValueError, match=message):
        OpenAICompatibleGenerator(base_url, model)


def test_openai_closed_generator_raises(openai_stub: OpenAIStubServer):
    generator = _make_generator(openai_stub)
    generator.close()

    with pytest.raises(GenerationError, match="is closed"):
        generator.generate(MESSAGES, max_new_tokens=8, temperature=0.0)

    assert openai_stub.requests == []

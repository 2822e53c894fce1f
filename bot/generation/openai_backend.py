"""Generation through an OpenAI-compatible chat completions endpoint such as vLLM or TGI.

Example:
    >>> generator = OpenAICompatibleGenerator("http://127.0.0.1:8000/v1", "Qwen2.5-7B-Instruct")
    >>> generator.generate([ChatMessage("user", "Hi")], max_new_tokens=60, temperature=0.0)
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Sequence

import httpx

from bot.generation.base import ChatMessage, Generation, Generator, validate_generation_request
from bot.generation.errors import GenerationError, GenerationTimeoutError, ModelUnavailableError

logger = logging.getLogger(__name__)

# Connecting should take milliseconds; a lower limit than the reply's keeps a dead host
# from using the whole timeout on every retry.
MAX_CONNECT_TIMEOUT_S = 10.0
# Characters of an error response quoted in exception messages.
MAX_ERROR_BODY_CHARS = 300


class OpenAICompatibleGenerator(Generator):
    """A client of ``POST {base_url}/chat/completions``.

    Connection errors and 5xx responses are retried up to ``max_retries`` times, waiting
    ``backoff_s``, then twice as long, and so on. Timeouts and 4xx responses are not
    retried. The client is thread-safe and reuses connections.

    Args:
        base_url: Endpoint root that ends before ``/chat/completions``, for example
            ``http://127.0.0.1:8000/v1``.
        model: Model name sent in every request.
        api_key: Bearer token. None sends no Authorization header.
        timeout_s: Maximum seconds to wait for each response. httpx applies it to each
            read, which for a non-streaming request is the wait for the whole reply.
            A request that is retried can therefore take up to about
            ``(max_retries + 1) * timeout_s`` plus the backoff in total.
        max_retries: Retries after the first attempt, 0 to disable.
        backoff_s: Wait before the first retry, in seconds; it doubles on each retry.

    Raises:
        ValueError: If ``base_url`` is not an http(s) URL, ``model`` is empty, or a
            number is out of range.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        timeout_s: float = 60.0,
        max_retries: int = 2,
        backoff_s: float = 0.5,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(
                f"invalid base_url {base_url!r}: use an http(s) URL such as "
                "http://127.0.0.1:8000/v1"
            )
        if not model.strip():
            raise ValueError("model is empty: set the model name that the endpoint serves")
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be positive, got {timeout_s}")
        if max_retries < 0:
            raise ValueError(f"max_retries must be 0 or more, got {max_retries}")
        if backoff_s < 0:
            raise ValueError(f"backoff_s must be 0 or more, got {backoff_s}")

        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model_name = model
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(
            headers=headers,
            timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, MAX_CONNECT_TIMEOUT_S)),
        )
        self._closed = threading.Event()

    def generate(
        self, messages: Sequence[ChatMessage], *, max_new_tokens: int, temperature: float
    ) -> Generation:
        """Generate the next assistant turn; see ``Generator.generate``.

        Raises:
            ValueError: If an argument is invalid.
            GenerationTimeoutError: If the server does not reply within ``timeout_s``.
            ModelUnavailableError: If the server cannot be reached, or keeps responding
                with 5xx, after all retries.
            GenerationError: If the server responds with 4xx or with a body that is not a
                chat completion.
        """
        validate_generation_request(messages, max_new_tokens, temperature)
        payload = {
            "model": self.model_name,
            "messages": [message.to_dict() for message in messages],
            "max_tokens": max_new_tokens,
            "temperature": temperature,
        }

        started = time.perf_counter()
        response = self._post_with_retries(payload)
        seconds = time.perf_counter() - started

        generation = self._parse_response(response, seconds)
        logger.debug(
            "Endpoint %s generated %s tokens in %.2f s",
            self.url,
            generation.completion_tokens,
            seconds,
        )
        return generation

    def close(self) -> None:
        """Close the connection pool."""
        self._closed.set()
        self._client.close()

    def _post_with_retries(self, payload: dict) -> httpx.Response:
        if self._closed.is_set():
            raise GenerationError(f"generator for {self.url} is closed: build a new one")
        attempts = self.max_retries + 1
        for attempt in range(1, attempts + 1):
            try:
                response = self._client.post(self.url, json=payload)
            except httpx.TimeoutException as error:
                if not isinstance(error, httpx.ConnectTimeout):
                    raise GenerationTimeoutError(
                        f"{self.url} did not reply within {self.timeout_s} s: increase "
                        "generation.timeout_s or lower generation.max_new_tokens"
                    ) from error
                failure = f"{type(error).__name__}: {error}"
                detail = failure
            except httpx.TransportError as error:
                failure = f"{type(error).__name__}: {error}"
                detail = failure
            else:
                if response.status_code < 500:
                    return response
                # The log gets only the status because an error body may quote the prompt.
                failure = f"HTTP {response.status_code}"
                detail = f"{failure}: {_body_excerpt(response)}"

            if attempt == attempts:
                raise ModelUnavailableError(
                    f"POST {self.url} failed after {attempts} attempts: {detail}. Check that "
                    "the server is running and that generation.base_url points at it"
                )
            delay_s = self.backoff_s * 2 ** (attempt - 1)
            logger.warning(
                "POST %s failed (attempt %d of %d): %s; retrying in %.1f s",
                self.url,
                attempt,
                attempts,
                failure,
                delay_s,
            )
            if self._closed.wait(delay_s):
                raise GenerationError(f"generator for {self.url} was closed during a retry")
        raise AssertionError("the retry loop returns or raises on its last attempt")

    def _parse_response(self, response: httpx.Response, seconds: float) -> Generation:
        if response.status_code >= 400:
            hint = {
                401: "Check generation.api_key",
                403: "Check generation.api_key",
                404: "Check generation.base_url (it usually ends in /v1) and generation.model",
            }.get(response.status_code, "Check generation.model and the request limits")
            raise GenerationError(
                f"POST {self.url} returned HTTP {response.status_code}: "
                f"{_body_excerpt(response)}. {hint}"
            )
        try:
            body = response.json()
            choice = body["choices"][0]
            text = choice["message"]["content"]
            if not isinstance(text, str):
                raise TypeError(f"message content is {type(text).__name__}, expected a string")
        except (json.JSONDecodeError, KeyError, IndexError, TypeError) as error:
            raise GenerationError(
                f"POST {self.url} returned HTTP {response.status_code} with a body that is not "
                f"a chat completion ({type(error).__name__}: {error}): "
                f"{_body_excerpt(response)}. Check that generation.base_url points at an "
                "OpenAI-compatible endpoint"
            ) from error

        usage = body.get("usage") or {}
        return Generation(
            text=text.strip(),
            model=body.get("model") or self.model_name,
            prompt_tokens=usage.get("prompt_tokens"),
            completion_tokens=usage.get("completion_tokens"),
            seconds=seconds,
            finish_reason=choice.get("finish_reason"),
        )


def _body_excerpt(response: httpx.Response) -> str:
    text = response.text.strip().replace("\n", " ")
    if len(text) > MAX_ERROR_BODY_CHARS:
        return text[:MAX_ERROR_BODY_CHARS] + "..."
    return text or "(empty body)"

"""A small OpenAI-compatible chat completions server for tests.

It listens on 127.0.0.1 on a free port and replies deterministically: the reply is
``"echo: "`` followed by the last user message, and usage counts whitespace-separated
words. Tests queue failures to exercise the client's error handling.

Example:
    >>> with OpenAIStubServer() as server:
    ...     server.fail_next(500)
    ...     generator = OpenAICompatibleGenerator(server.base_url, "stub-model")
"""

from __future__ import annotations

import json
import logging
import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType

logger = logging.getLogger(__name__)

REPLY_PREFIX = "echo: "


@dataclass
class StubFailure:
    """One queued misbehaviour, used by the next request that reaches the server.

    Attributes:
        status: HTTP status to return with an OpenAI-style error body, or None.
        delay_s: Seconds to wait before replying.
        is_malformed: Whether to reply 200 with a body that is not JSON.
    """

    status: int | None = None
    delay_s: float = 0.0
    is_malformed: bool = False


@dataclass
class ReceivedRequest:
    """A request as the server received it."""

    path: str
    headers: dict[str, str]
    body: dict = field(default_factory=dict)


class OpenAIStubServer:
    """``POST /v1/chat/completions`` on 127.0.0.1, served from a background thread."""

    def __init__(self) -> None:
        self.requests: list[ReceivedRequest] = []
        self._failures: deque[StubFailure] = deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def base_url(self) -> str:
        """Root URL to pass as ``base_url``, ending in ``/v1``."""
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def start(self) -> OpenAIStubServer:
        """Start serving in a daemon thread and return the server."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, interrupt delayed replies and close the socket."""
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def fail_next(self, status: int, *, times: int = 1) -> None:
        """Respond to the next ``times`` requests with HTTP ``status`` and an error body."""
        self._queue(StubFailure(status=status), times)

    def delay_next(self, delay_s: float, *, times: int = 1) -> None:
        """Wait ``delay_s`` seconds before responding to the next ``times`` requests."""
        self._queue(StubFailure(delay_s=delay_s), times)

    def send_malformed_next(self, *, times: int = 1) -> None:
        """Respond to the next ``times`` requests with HTTP 200 and a body that is not JSON."""
        self._queue(StubFailure(is_malformed=True), times)

    def __enter__(self) -> OpenAIStubServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _queue(self, failure: StubFailure, times: int) -> None:
        with self._lock:
            self._failures.extend([failure] * times)

    def _take_failure(self) -> StubFailure | None:
        with self._lock:
            return self._failures.popleft() if self._failures else None

    def _record(self, request: ReceivedRequest) -> None:
        with self._lock:
            self.requests.append(request)


def build_completion(body: dict) -> dict:
    """Return the chat completion that the stub sends for a request body."""
    user_messages = [m["content"] for m in body.get("messages", []) if m.get("role") == "user"]
    text = REPLY_PREFIX + (user_messages[-1] if user_messages else "")
    prompt_words = sum(len(m.get("content", "").split()) for m in body.get("messages", []))
    return {
        "id": "chatcmpl-stub",
        "object": "chat.completion",
        "created": 0,
        "model": body.get("model", "stub-model"),
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": prompt_words,
            "completion_tokens": len(text.split()),
            "total_tokens": prompt_words + len(text.split()),
        },
    }


def _make_handler(stub: OpenAIStubServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - name fixed by http.server
            length = int(self.headers.get("Content-Length", "0"))
            raw = self.rfile.read(length)
            try:
                body = json.loads(raw or b"{}")
            except json.JSONDecodeError:
                self._send_json(400, _error_body("request body is not JSON"))
                return
            stub._record(ReceivedRequest(self.path, dict(self.headers), body))

            if self.path != "/v1/chat/completions":
                self._send_json(404, _error_body(f"no route {self.path}"))
                return
            failure = stub._take_failure()
            if failure is not None and failure.delay_s:
                stub._stopping.wait(failure.delay_s)
            if failure is not None and failure.status is not None:
                self._send_json(failure.status, _error_body(f"stub failure {failure.status}"))
            elif failure is not None and failure.is_malformed:
                self._send_bytes(200, b"<html>not json</html>", "text/html")
            else:
                self._send_json(200, build_completion(body))

        def log_message(self, format: str, *args) -> None:  # noqa: A002 - base signature
            logger.debug("stub %s: " + format, self.address_string(), *args)

        def _send_json(self, status: int, payload: dict) -> None:
            self._send_bytes(status, json.dumps(payload).encode(), "application/json")

        def _send_bytes(self, status: int, data: bytes, content_type: str) -> None:
            try:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                # The client gave up, for example after its timeout.
                pass

    return Handler


def _error_body(message: str) -> dict:
    return {"error": {"message": message, "type": "stub_error", "code": None}}

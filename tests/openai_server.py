"""A loopback chat-completions server for tests: a real HTTP server in a thread, no mocks of the client.

It speaks enough of the OpenAI API (``POST /v1/chat/completions``) for the ``openai`` package. Replies come
from a *script*, a function of the request body, so that concurrent requests get the right answer
whatever order they arrive in; faults are injected for the next requests with :meth:`ChatServer.inject`:

* ``Fault.error(429, retry_after=0.2)`` / ``Fault.error(500)``: an error status, optional ``Retry-After``;
* ``Fault.hang(seconds)``: say nothing for ``seconds`` (past the client's timeout), then answer;
* ``Fault.malformed()``: ``200`` with a body that is not JSON;
* ``Fault.drop()``: close the connection without a response.

Every POST is counted (``server.request_count``) and logged with its arrival time (``server.log``), so a
test can assert that a rerun served from the cache sends zero requests, or that ``Retry-After`` was
honoured. Usage is counted in whitespace-separated words: deterministic, and enough to test accounting.

Usable outside pytest too: ``python tests/openai_server.py`` serves a script that echoes the program.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class Fault:
    """One injected failure (see the module docstring)."""

    kind: str
    status: int = 0
    retry_after: float | None = None
    seconds: float = 0.0

    @classmethod
    def error(cls, status: int, retry_after: float | None = None) -> Fault:
        return cls("status", status=status, retry_after=retry_after)

    @classmethod
    def hang(cls, seconds: float) -> Fault:
        return cls("hang", seconds=seconds)

    @classmethod
    def malformed(cls) -> Fault:
        return cls("malformed")

    @classmethod
    def drop(cls) -> Fault:
        return cls("drop")


@dataclass(frozen=True)
class Reply:
    """An answer with a chosen ``finish_reason`` (``"length"``: cut at the token limit)."""

    text: str
    finish_reason: str = "stop"


#: What a script returns: the assistant's text, a :class:`Reply`, or a fault to answer this request with.
ScriptResult = str | Reply | Fault
Script = Callable[[dict], ScriptResult]


@dataclass
class LoggedRequest:
    at: float
    body: dict
    answer: str  # "text", the fault's kind, or "pending" while the script is still deciding


def user_messages(body: dict) -> list[str]:
    return [m["content"] for m in body.get("messages", []) if m.get("role") == "user"]


def task_program(body: dict) -> str:
    """The program the request asks to transform: the first python block of the LAST task message.

    The conversation is system, example user, example assistant, task user, then (assistant, repair user)
    pairs; the task message is the 2nd user message.
    """
    users = user_messages(body)
    task = users[1] if len(users) > 1 else users[-1]
    match = re.search(r"```python\n(.*?)\n```", task, re.DOTALL)
    if match is None:
        raise ValueError("no ```python block in the task message")
    return match.group(1) + "\n"


def repair_round(body: dict) -> int:
    """0 for the first request of a pair, k for its k-th repair (assistant turns after the example)."""
    return max(sum(1 for m in body.get("messages", []) if m.get("role") == "assistant") - 1, 0)


def requested_concept(body: dict) -> str:
    match = re.search(r"Concept: (\w+)", body["messages"][0]["content"])
    return match.group(1) if match else ""


def fenced(code: str, reasoning: str = "Reasoning: done.") -> str:
    return f"{reasoning}\n\n```python\n{code.rstrip()}\n```\n"


class ChatServer:
    """Loopback OpenAI-compatible server. Use as a context manager; ``url`` is the ``base_url``."""

    def __init__(self, script: Script | None = None, model: str = "test-model", port: int = 0) -> None:
        self.script: Script = script or (lambda body: fenced(task_program(body)))
        self.model = model
        self.log: list[LoggedRequest] = []
        self._faults: list[Fault] = []
        self._connections: set[socket.socket] = set()  # open keep-alive connections, closed by stop()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, like real endpoints

            def log_message(self, *args: object) -> None:  # keep test output clean
                pass

            def setup(self) -> None:
                super().setup()
                with server._lock:
                    server._connections.add(self.connection)

            def finish(self) -> None:
                with server._lock:
                    server._connections.discard(self.connection)
                try:
                    super().finish()
                except OSError:
                    pass  # closed by stop()

            def do_POST(self) -> None:  # noqa: N802 (http.server naming)
                length = int(self.headers.get("Content-Length", 0))
                raw = self.rfile.read(length)
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    self._send(404, {"error": {"message": f"no route {self.path}"}})
                    return
                body = json.loads(raw)
                entry = LoggedRequest(time.monotonic(), body, "pending")  # counted on arrival
                with server._lock:
                    server.log.append(entry)
                fault = server._next_fault()
                try:
                    result: ScriptResult = fault if fault is not None else server.script(body)
                except Exception as err:  # a broken script answers 500, like a crashing model server
                    entry.answer = "script error"
                    self._send(500, {"error": {"message": f"script raised {type(err).__name__}: {err}"}})
                    return
                entry.answer = result.kind if isinstance(result, Fault) else "text"
                if isinstance(result, Fault):
                    self._fault(result, body)
                else:
                    try:
                        self._send(200, server._completion(body, result))
                    except OSError:
                        pass  # the client went away while the script was thinking (a killed run)

            def _fault(self, fault: Fault, body: dict) -> None:
                if fault.kind == "status":
                    headers = {} if fault.retry_after is None else {"Retry-After": f"{fault.retry_after:g}"}
                    self._send(fault.status, {"error": {"message": f"injected {fault.status}"}}, headers)
                elif fault.kind == "hang":
                    server._stopping.wait(fault.seconds)
                    try:
                        self._send(200, server._completion(body, "late answer"))
                    except OSError:
                        pass  # the client gave up long ago
                elif fault.kind == "malformed":
                    self._send_raw(200, b'{"id": "x", "choices": [ {"message": ', "application/json")
                elif fault.kind == "drop":
                    self.close_connection = True
                    try:
                        self.connection.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                else:
                    raise ValueError(f"unknown fault kind {fault.kind!r}")

            def _send(self, status: int, payload: dict, headers: dict | None = None) -> None:
                self._send_raw(status, json.dumps(payload).encode(), "application/json", headers)

            def _send_raw(self, status: int, data: bytes, ctype: str, headers: dict | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)
                self.wfile.flush()

        self._httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)  # port 0: any free port
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, name="chat-server", daemon=True
        )

    # -- control -------------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    @property
    def request_count(self) -> int:
        with self._lock:
            return len(self.log)

    def inject(self, *faults: Fault) -> None:
        """Answer the next ``len(faults)`` requests with these faults, in order, before the script."""
        with self._lock:
            self._faults.extend(faults)

    def _next_fault(self) -> Fault | None:
        with self._lock:
            return self._faults.pop(0) if self._faults else None

    def _completion(self, body: dict, answer: str | Reply) -> dict:
        reply = answer if isinstance(answer, Reply) else Reply(answer)
        text = reply.text
        prompt_words = sum(len(str(m.get("content", "")).split()) for m in body.get("messages", []))
        completion_words = len(text.split())
        return {
            "id": f"chatcmpl-{len(self.log)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", self.model),
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": reply.finish_reason}
            ],
            "usage": {
                "prompt_tokens": prompt_words,
                "completion_tokens": completion_words,
                "total_tokens": prompt_words + completion_words,
            },
        }

    def start(self) -> ChatServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # releases hanging handlers at once
        self._httpd.shutdown()
        self._httpd.server_close()
        with self._lock:  # like a stopped process: kept-alive connections go too
            connections, self._connections = list(self._connections), set()
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._thread.join(timeout=5)

    def __enter__(self) -> ChatServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


if __name__ == "__main__":  # a manual playground: echo the program back
    with ChatServer() as srv:
        print(f"serving on {srv.url}; Ctrl-C to stop")
        try:
            while True:
                time.sleep(1)
        except KeyboardInterrupt:
            pass

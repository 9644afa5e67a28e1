"""An async chat-completions client for any OpenAI-compatible endpoint, built for long batch runs.

It wraps ``openai.AsyncOpenAI`` and adds what a run over thousands of prompts needs:

* bounded concurrency: at most ``max_concurrency`` calls in flight (an :class:`asyncio.Semaphore`);
* retries with exponential backoff and jitter on 429, 408/409, 5xx, timeouts, dropped connections and
  malformed bodies, honouring ``Retry-After`` / ``retry-after-ms``. The openai client's own retries are
  switched off (``max_retries=0``) because its backoff constants (0.5 s doubling to 8 s) are module
  globals: here they are configuration, so tests run with millisecond backoffs and a run against a busy
  shared server can back off for longer;
* a per-request timeout;
* the persistent :class:`~procure_trl.perturb.llm.cache.ResponseCache`: a hit sends nothing;
* counters (requests sent, retries, cache hits, tokens billed vs. served from cache) for the final report.

Errors that retrying cannot fix (401 bad key, 403, 404 unknown model or wrong ``base_url``) raise
:class:`LLMFatalError` at once, and so does a refused connection or an unknown host name before the
endpoint has answered anything (a wrong ``base_url`` or a server that is not running: retrying for a
minute would only hide it). Once the endpoint has answered, a refused connection counts as transient (a
server restarting) and is retried. A transient fault that outlives the retries raises
:class:`LLMRequestError`.
"""

from __future__ import annotations

import asyncio
import email.utils
import errno
import math
import random
import socket
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import openai

from procure_trl.perturb.llm.cache import ResponseCache, cache_key


class LLMRequestError(RuntimeError):
    """A request failed after all retries (or with an error that is specific to this request)."""


class LLMFatalError(RuntimeError):
    """An error that every further request would hit too (bad key, unknown model, wrong URL): stop the run."""


class MalformedResponseError(ValueError):
    """The endpoint answered 2xx with a body that is not a usable chat completion."""


@dataclass
class Usage:
    """Token counts as reported by the endpoint (0 when it reports none)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0

    def __iadd__(self, other: Usage) -> Usage:
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        return self

    def to_dict(self) -> dict[str, int]:
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens}


@dataclass
class ChatResponse:
    """One assistant message: its text, its token usage, and whether it came from the cache."""

    text: str
    usage: Usage
    cached: bool = False
    retries: int = 0
    finish_reason: str | None = None
    """``"stop"``, or ``"length"`` when the answer hit the token limit (its code block may be cut)."""


@dataclass
class ClientStats:
    """What the client did, for the end-of-run report."""

    requests: int = 0  # HTTP requests sent, retries included
    retries: int = 0
    cache_hits: int = 0
    failures: int = 0  # calls that raised after their retries
    billed: Usage = field(default_factory=Usage)  # tokens of answers fetched from the endpoint
    cached: Usage = field(default_factory=Usage)  # tokens of answers served from the cache (cost nothing)


def backoff_delay(
    retry: int, initial: float, maximum: float, rng: random.Random, retry_after: float | None = None
) -> float:
    """Seconds to wait before retry number ``retry`` (0-based).

    A server's ``Retry-After`` wins (capped at ``maximum`` so a misconfigured server cannot park the run).
    Otherwise ``initial * 2**retry``, capped at ``maximum``, times a jitter factor drawn from [0.5, 1): the
    jitter keeps concurrent workers that failed together from retrying in lockstep.
    """
    if retry_after is not None and math.isfinite(retry_after) and retry_after >= 0:
        return min(retry_after, maximum)
    base = min(initial * (2.0 ** min(retry, 60)), maximum)
    return base * (0.5 + 0.5 * rng.random())


def parse_retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds from ``retry-after-ms`` or ``retry-after`` (seconds or an HTTP date); ``None`` if absent."""
    if not headers:
        return None
    for name, divisor in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            return max(float(value) / divisor, 0.0)
        except ValueError:
            pass
        parsed = email.utils.parsedate_tz(value)
        if parsed is not None:
            return max(float(email.utils.mktime_tz(parsed) - time.time()), 0.0)
    return None


_FATAL_STATUS = {401: "the API key was rejected", 403: "access denied", 404: "unknown model or wrong base URL"}


class ChatClient:
    """Concurrency-bounded, retrying, caching chat-completions client.

    Args:
        model: model name sent with every request.
        api_key: the key (local servers accept any non-empty string).
        base_url: endpoint root, e.g. ``http://localhost:8000/v1``; ``None`` uses the openai default.
        params: sampling parameters sent with every request (``temperature``, ``max_tokens``, ``seed``...);
            they are part of the cache key.
        request_timeout: seconds for one HTTP request.
        max_retries: retries of one call after the first attempt.
        initial_backoff / max_backoff: backoff schedule in seconds (see :func:`backoff_delay`).
        max_concurrency: calls in flight at once.
        cache: a :class:`ResponseCache`, or ``None`` to disable caching.
        seed: seeds the jitter so a run's schedule is reproducible.
    """

    def __init__(
        self,
        *,
        model: str,
        api_key: str,
        base_url: str | None = None,
        params: Mapping[str, Any] | None = None,
        request_timeout: float = 120.0,
        max_retries: int = 5,
        initial_backoff: float = 1.0,
        max_backoff: float = 60.0,
        max_concurrency: int = 8,
        cache: ResponseCache | None = None,
        seed: int | None = 0,
    ) -> None:
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be >= 1, got {max_concurrency}")
        if max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {max_retries}")
        if request_timeout <= 0:
            raise ValueError(f"request_timeout must be > 0 seconds, got {request_timeout}")
        self.model = model
        self.base_url = base_url
        self.params = {k: v for k, v in dict(params or {}).items() if v is not None}
        self.max_retries = max_retries
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        self.cache = cache
        self.stats = ClientStats()
        self._rng = random.Random(seed)
        self._answered = False  # has the endpoint sent any HTTP response yet?
        self._semaphore = asyncio.Semaphore(max_concurrency)
        self._client = openai.AsyncOpenAI(
            api_key=api_key,
            base_url=base_url,
            timeout=openai.Timeout(request_timeout, connect=min(request_timeout, 10.0)),
            max_retries=0,
        )

    async def aclose(self) -> None:
        await self._client.close()

    async def __aenter__(self) -> ChatClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def key(self, messages: Sequence[Mapping[str, Any]]) -> str:
        return cache_key(self.model, messages, self.params)

    async def complete(self, messages: Sequence[Mapping[str, Any]]) -> ChatResponse:
        """The assistant's reply to ``messages``: from the cache, else from the endpoint with retries."""
        key = self.key(messages)
        if self.cache is not None:
            entry = self.cache.get(key)
            if entry is not None:
                usage = Usage(**entry.get("usage", {}))
                self.stats.cache_hits += 1
                self.stats.cached += usage
                return ChatResponse(text=entry["text"], usage=usage, cached=True,
                                    finish_reason=entry.get("finish_reason"))

        async with self._semaphore:
            response = await self._complete_with_retries(messages)
        self.stats.billed += response.usage
        if self.cache is not None:
            # Write from a thread: fsync must not stall the event loop (and the other requests in flight).
            entry = {"text": response.text, "usage": response.usage.to_dict(), "model": self.model,
                     "finish_reason": response.finish_reason}
            await asyncio.to_thread(self.cache.put, key, entry)
        return response

    async def _complete_with_retries(self, messages: Sequence[Mapping[str, Any]]) -> ChatResponse:
        last_error = ""
        for attempt in range(self.max_retries + 1):
            retry_after = None
            try:
                self.stats.requests += 1
                completion = await self._client.chat.completions.create(
                    # openai types messages as per-role TypedDicts; ours are plain role/content mappings
                    model=self.model, messages=list(messages), **self.params  # type: ignore[arg-type]
                )
                self._answered = True
                text, usage, finish = _read_completion(completion)
                return ChatResponse(text=text, usage=usage, retries=attempt, finish_reason=finish)
            except openai.APIStatusError as err:
                self._answered = True
                status = err.status_code
                if status in _FATAL_STATUS:
                    self.stats.failures += 1
                    raise LLMFatalError(
                        f"{self._where()} answered {status} ({_FATAL_STATUS[status]}): {_short(err.message)}"
                    ) from err
                if status not in (408, 409, 429) and status < 500:
                    self.stats.failures += 1
                    raise LLMRequestError(f"{self._where()} answered {status}: {_short(err.message)}") from err
                retry_after = parse_retry_after(err.response.headers)
                last_error = f"HTTP {status}: {_short(err.message)}"
            except openai.APITimeoutError as err:
                last_error = f"timeout: {type(err).__name__}"
            except openai.APIConnectionError as err:
                unreachable = _unreachable_reason(err)
                if unreachable is not None and not self._answered:
                    self.stats.failures += 1
                    raise LLMFatalError(
                        f"{self._where()} cannot be reached: {unreachable}; check the base URL and that the "
                        "server is running"
                    ) from err
                cause = err.__cause__ or err
                last_error = f"connection error: {type(cause).__name__}: {_short(str(cause))}"
            except (openai.APIResponseValidationError, MalformedResponseError, ValueError) as err:
                last_error = f"malformed response: {type(err).__name__}: {_short(str(err))}"
            if attempt < self.max_retries:
                self.stats.retries += 1
                await asyncio.sleep(
                    backoff_delay(attempt, self.initial_backoff, self.max_backoff, self._rng, retry_after)
                )
        self.stats.failures += 1
        raise LLMRequestError(
            f"{self._where()} failed after {self.max_retries + 1} attempt(s); last error: {last_error}"
        )

    def _where(self) -> str:
        return f"endpoint {self.base_url or 'default OpenAI'} (model {self.model!r})"


def _read_completion(completion: Any) -> tuple[str, Usage, str | None]:
    """Text, usage and finish reason of a chat completion; :class:`MalformedResponseError` if it has no text."""
    choices = getattr(completion, "choices", None)
    if not choices:
        raise MalformedResponseError("the response has no choices")
    message = getattr(choices[0], "message", None)
    text = getattr(message, "content", None)
    if not isinstance(text, str):
        raise MalformedResponseError("the first choice has no text content")
    raw = getattr(completion, "usage", None)
    usage = Usage(
        prompt_tokens=int(getattr(raw, "prompt_tokens", 0) or 0),
        completion_tokens=int(getattr(raw, "completion_tokens", 0) or 0),
    )
    finish = getattr(choices[0], "finish_reason", None)
    return text, usage, finish if isinstance(finish, str) else None


def _unreachable_reason(err: BaseException) -> str | None:
    """``"connection refused"`` / ``"unknown host"`` / ... when ``err`` was caused by a failed connect that
    names a wrong address (not a dropped or reset connection); ``None`` otherwise.

    The cause chain is read down to the socket error, so this does not depend on the HTTP library the
    openai package uses.
    """
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ConnectionRefusedError):
            return "connection refused"
        if isinstance(current, socket.gaierror):
            return f"unknown host ({current.strerror or current})"
        if isinstance(current, OSError) and current.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH):
            return f"no route to host ({current.strerror})"
        current = current.__cause__ or current.__context__
    return None


def _short(text: str, limit: int = 200) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."

"""ChatClient against the loopback server: every fault of the issue, retries, Retry-After, cache."""

from __future__ import annotations

import asyncio
import random
import re
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from openai_server import ChatServer, Fault  # noqa: E402

from procure_trl.perturb.llm.cache import ResponseCache
from procure_trl.perturb.llm.client import (
    ChatClient,
    LLMFatalError,
    LLMRequestError,
    backoff_delay,
    parse_retry_after,
)

MESSAGES = [{"role": "user", "content": "say hello"}]


def make_client(server: ChatServer, **overrides) -> ChatClient:
    kwargs = dict(
        model="test-model",
        api_key="sk-test",
        base_url=server.url,
        request_timeout=5.0,  # generous: a loaded CI machine must not turn normal answers into timeouts
        max_retries=3,
        initial_backoff=0.01,
        max_backoff=1.0,
        params={"temperature": 1.0},
    )
    kwargs.update(overrides)
    return ChatClient(**kwargs)


def complete(client: ChatClient, messages=MESSAGES):
    async def go():
        try:
            return await client.complete(messages)
        finally:
            await client.aclose()

    return asyncio.run(go())


@pytest.fixture
def server():
    with ChatServer(lambda body: "hello there") as srv:
        yield srv


@pytest.mark.parametrize(
    "fault",
    [Fault.error(500), Fault.error(503), Fault.error(429), Fault.malformed(), Fault.drop(), Fault.hang(5.0)],
    ids=["500", "503", "429", "malformed-json", "dropped-connection", "hang-past-timeout"],
)
def test_transient_fault_is_retried_and_answer_returned(server, fault):
    server.inject(fault)
    client = make_client(server, request_timeout=1.0)  # the hang (5 s) must outlast it
    response = complete(client)
    assert response.text == "hello there"
    assert response.retries == 1
    assert server.request_count == 2
    assert [r.answer for r in server.log] == [fault.kind, "text"]
    assert client.stats.requests == 2 and client.stats.retries == 1


def test_retry_after_header_is_honoured(server):
    server.inject(Fault.error(429, retry_after=0.4))
    complete(make_client(server, initial_backoff=0.001))
    first, second = server.log
    # The client's own backoff would be ~1 ms; the gap proves the server's 0.4 s was waited for.
    assert second.at - first.at >= 0.38


def test_gives_up_after_max_retries_with_last_error(server):
    server.inject(*[Fault.error(500)] * 10)
    client = make_client(server, max_retries=2)
    with pytest.raises(LLMRequestError, match=r"failed after 3 attempt\(s\); last error: HTTP 500"):
        complete(client)
    assert server.request_count == 3
    assert client.stats.failures == 1


@pytest.mark.parametrize("status", [401, 404])
def test_unfixable_status_is_fatal_without_retry(server, status):
    server.inject(Fault.error(status))
    with pytest.raises(LLMFatalError, match=str(status)):
        complete(make_client(server))
    assert server.request_count == 1


def test_bad_request_fails_this_request_without_retry(server):
    server.inject(Fault.error(400))
    with pytest.raises(LLMRequestError, match="400"):
        complete(make_client(server))
    assert server.request_count == 1


@pytest.mark.parametrize("where", ["closed-port", "unknown-host"])
def test_unreachable_endpoint_is_fatal_at_once(where):
    if where == "closed-port":
        with ChatServer() as srv:
            url = srv.url  # closed on exit: connections are refused
        expected = "connection refused"
    else:
        url, expected = "http://no-such-host.invalid/v1", "unknown host"  # .invalid never resolves (RFC 6761)
    client = ChatClient(model="m", api_key="k", base_url=url, max_retries=5, initial_backoff=1.0, request_timeout=5.0)
    started = time.monotonic()
    with pytest.raises(LLMFatalError, match=f"endpoint {re.escape(url)} .*cannot be reached: {expected}"):
        complete(client)
    assert client.stats.requests == 1 and client.stats.retries == 0  # no backoff: a wrong URL stays wrong
    assert time.monotonic() - started < 5.0


def test_refused_connection_after_an_answer_is_retried():
    # A server that answered once and then restarts (refusing connections for a moment) is waited for.
    first = ChatServer(lambda body: "before").start()
    port = int(first.url.split(":")[2].split("/")[0])
    client = make_client(first, max_retries=8, initial_backoff=0.05, max_backoff=0.2)
    restarted: list[ChatServer] = []

    async def go():
        try:
            assert (await client.complete(MESSAGES)).text == "before"
            first.stop()
            loop = asyncio.get_running_loop()
            loop.call_later(0.3, lambda: restarted.append(ChatServer(lambda body: "after", port=port).start()))
            return await client.complete([{"role": "user", "content": "again"}])
        finally:
            await client.aclose()

    try:
        assert asyncio.run(go()).text == "after"
    finally:
        for srv in restarted:
            srv.stop()
    assert client.stats.retries >= 1 and client.stats.failures == 0


def test_cache_serves_a_repeat_without_a_request(server, tmp_path):
    cache = ResponseCache(tmp_path)
    first = complete(make_client(server, cache=cache))
    second = complete(make_client(server, cache=cache))
    assert server.request_count == 1
    assert not first.cached and second.cached
    assert second.text == first.text and second.usage == first.usage
    # Another parameter is another key: it must reach the server.
    complete(make_client(server, cache=cache, params={"temperature": 0.0}))
    assert server.request_count == 2


def test_concurrency_is_bounded():
    import threading

    lock = threading.Lock()
    live = {"now": 0, "max": 0}
    # Requests are let through in pairs: a pair's first request waits for a second one in flight, so a client
    # that serialized its requests would break the barrier (a failed request) instead of passing by timing luck.
    pairs = threading.Barrier(2, timeout=10)

    def paired(body):
        with lock:
            live["now"] += 1
            live["max"] = max(live["max"], live["now"])
        pairs.wait()
        with lock:
            live["now"] -= 1
        return "ok"

    with ChatServer(paired) as srv:
        client = make_client(srv, max_concurrency=2, request_timeout=15.0, max_retries=0)

        async def go():
            try:
                return await asyncio.gather(*[client.complete([{"role": "user", "content": str(i)}])
                                              for i in range(8)])
            finally:
                await client.aclose()

        replies = asyncio.run(go())
        assert srv.request_count == 8 and [r.text for r in replies] == ["ok"] * 8
    assert live["max"] <= 2  # never more in flight than max_concurrency (and 2 were: the barrier passed)


def test_backoff_grows_exponentially_with_bounded_jitter():
    rng = random.Random(0)
    delays = [backoff_delay(k, 0.5, 8.0, rng) for k in range(6)]
    for k, d in enumerate(delays):
        base = min(0.5 * 2**k, 8.0)
        assert base * 0.5 <= d < base
    assert backoff_delay(3, 0.5, 8.0, rng, retry_after=2.5) == 2.5
    assert backoff_delay(3, 0.5, 8.0, rng, retry_after=999) == 8.0  # capped


def test_parse_retry_after_forms():
    assert parse_retry_after({"retry-after": "3"}) == 3.0
    assert parse_retry_after({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert parse_retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0  # in the past
    assert parse_retry_after({}) is None
    assert parse_retry_after({"retry-after": "soon"}) is None


def test_invalid_settings_name_the_setting():
    with pytest.raises(ValueError, match="max_concurrency"):
        ChatClient(model="m", api_key="k", max_concurrency=0)
    with pytest.raises(ValueError, match="request_timeout"):
        ChatClient(model="m", api_key="k", request_timeout=0)

"""Limits: body size, requests in flight, timeouts, disconnects, not-ready pacing."""

from __future__ import annotations

import asyncio
import json
import logging
import time

import pytest

from gateway.app import create_app
from gateway.settings import Settings
from tests.unit.gateway_fakes import (  # noqa: F401
    FakeModel,
    FakeTriton,
    anyio_backend,
    qa_body,
    running_gateway,
    windowed_handler,
)

pytestmark = pytest.mark.anyio

TEN_MB = 10_000_000


async def test_ten_megabyte_body_is_413():
    body = json.dumps(qa_body(context="x" * TEN_MB)).encode()
    fake = FakeTriton()
    async with running_gateway(fake) as (client, _):
        response = await client.post("/", content=body)
    assert response.status_code == 413
    assert response.json()["error_type"] == "payload_too_large"
    assert f"Content-Length is {len(body)} bytes" in response.json()["error"]
    assert "limit is 1048576 bytes" in response.json()["error"]
    assert fake.client_calls == []


async def test_chunked_body_over_limit_is_413():
    async def chunks():
        for _ in range(20):
            yield b"x" * 1000

    async with running_gateway(max_body_bytes=5000) as (client, _):
        response = await client.post("/", content=chunks())
    assert response.status_code == 413
    assert "more than 5000 bytes were sent" in response.json()["error"]


async def test_body_at_limit_is_accepted():
    body = json.dumps(qa_body()).encode()
    async with running_gateway(max_body_bytes=len(body)) as (client, _):
        accepted = await client.post("/", content=body)
    async with running_gateway(max_body_bytes=len(body) - 1) as (client, _):
        rejected = await client.post("/", content=body)
    assert accepted.status_code == 200
    assert rejected.status_code == 413


async def test_long_context_within_limit_is_answered():
    context = "word " * 150_000
    fake = FakeTriton(handler=windowed_handler(num_windows=40))
    async with running_gateway(fake) as (client, _):
        response = await client.post("/", json=qa_body(context=context))
    assert response.status_code == 200
    assert len(fake.client_calls) == 10


async def test_in_flight_limit_gives_429():
    fake = FakeTriton(infer_delay_s=0.5)
    async with running_gateway(fake, max_in_flight=2, retry_after_s=3) as (client, _):
        slow = [
            asyncio.ensure_future(client.post("/", json=qa_body())) for _ in range(2)
        ]
        await asyncio.sleep(0.1)
        started = time.monotonic()
        rejected = await client.post("/", json=qa_body())
        elapsed = time.monotonic() - started
        finished = await asyncio.gather(*slow)
        after = await client.post("/", json=qa_body())
    assert rejected.status_code == 429
    assert rejected.headers["retry-after"] == "3"
    assert "limit of 2 requests" in rejected.json()["error"]
    assert elapsed < 0.3
    assert [r.status_code for r in finished] == [200, 200]
    assert after.status_code == 200


async def test_timeout_is_504_and_cancels_triton_call():
    fake = FakeTriton(infer_delay_s=5)
    async with running_gateway(fake, request_timeout_s=0.2) as (client, _):
        started = time.monotonic()
        response = await client.post("/", json=qa_body())
        elapsed = time.monotonic() - started
    assert response.status_code == 504
    assert response.json() == {
        "error": "the request timed out after 0.2 seconds",
        "error_type": "timeout",
    }
    assert elapsed < 2
    assert fake.cancelled >= 1


async def test_triton_deadline_matches_request_timeout():
    fake = FakeTriton()
    async with running_gateway(fake, request_timeout_s=7) as (client, _):
        await client.post("/", json=qa_body())
    (call,) = fake.client_calls
    assert 6 < call.client_timeout <= 7


async def test_unreachable_triton_is_502():
    fake = FakeTriton()
    async with running_gateway(fake) as (client, _):
        fake.reachable = False
        response = await client.post("/", json=qa_body())
    assert response.status_code == 502
    assert response.json()["error_type"] == "triton_unavailable"
    assert "unreachable" in response.json()["error"]


async def test_triton_never_reached_is_503():
    fake = FakeTriton(reachable=False)
    async with running_gateway(fake, not_ready_delay_s=0) as (client, _):
        response = await client.post("/", json=qa_body())
    assert response.status_code == 503
    assert response.headers["retry-after"] == "2"
    assert response.json()["error"] == "no model is ready yet; retry later"


async def test_loading_model_is_503_with_retry_after():
    fake = FakeTriton(models=[FakeModel(state="LOADING")])
    async with running_gateway(fake, not_ready_delay_s=0) as (client, _):
        response = await client.post("/models/acme/tiny-qa", json=qa_body())
    assert response.status_code == 503
    assert response.headers["retry-after"] == "2"
    assert (
        response.json()["error"] == "model acme/tiny-qa is not ready yet; retry later"
    )


async def test_not_ready_answers_are_paced_and_cheap():
    fake = FakeTriton(reachable=False)
    async with running_gateway(fake, not_ready_delay_s=0.2) as (client, _):
        started = time.monotonic()
        responses = await asyncio.gather(
            *(client.post("/", json=qa_body()) for _ in range(100))
        )
        elapsed = time.monotonic() - started
    assert {r.status_code for r in responses} == {503}
    assert 0.2 <= elapsed < 2
    assert fake.calls == []


def _http_scope() -> dict:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "path": "/",
        "raw_path": b"/",
        "query_string": b"",
        "headers": [(b"content-type", b"application/json")],
        "client": ("127.0.0.1", 1234),
        "server": ("127.0.0.1", 8080),
        "scheme": "http",
        "root_path": "",
    }


async def _call_and_disconnect(fake: FakeTriton, messages: list[dict]) -> list[dict]:
    """Send `messages` as the request, then disconnect after 0.2 s."""
    app = create_app(Settings(), fake)
    disconnect = asyncio.Event()
    sent = []

    async def receive():
        if messages:
            return messages.pop(0)
        await disconnect.wait()
        return {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    async with app.router.lifespan_context(app):
        gateway = app.state.gateway
        while not gateway.registry.discovered:
            await asyncio.sleep(0.01)
        task = asyncio.ensure_future(app(_http_scope(), receive, send))
        await asyncio.sleep(0.2)
        disconnect.set()
        await asyncio.wait_for(task, 2)
    return sent


async def test_client_disconnect_cancels_triton_call():
    fake = FakeTriton(infer_delay_s=5)
    body = json.dumps(qa_body()).encode()
    messages = [{"type": "http.request", "body": body, "more_body": False}]
    sent = await _call_and_disconnect(fake, messages)
    assert fake.cancelled == 1
    assert sent[0]["status"] == 499


async def test_disconnect_during_upload_is_quiet(caplog):
    fake = FakeTriton()
    messages = [{"type": "http.request", "body": b'{"inputs": ', "more_body": True}]
    sent = await _call_and_disconnect(fake, messages)
    assert sent[0]["status"] == 499
    assert fake.client_calls == []
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []

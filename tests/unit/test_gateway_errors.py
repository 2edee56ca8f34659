"""The error table: every error kind produced through the app, one envelope."""

from __future__ import annotations

import asyncio
import json

import pytest

from gateway.errors import STATUS_BY_KIND, ErrorKind, GatewayError, error_response
from gateway.metrics import Metrics
from gateway.registry import ModelInfo
from gateway.triton import TritonRunner, parse_step_error
from tests.unit.gateway_fakes import (  # noqa: F401
    FakeModel,
    FakeTriton,
    anyio_backend,
    grpc_error,
    qa_body,
    running_gateway,
)

pytestmark = pytest.mark.anyio


async def _post(fake=None, body=None, path="/", headers=None, **settings):
    async with running_gateway(fake, **settings) as (client, _):
        return await client.post(path, json=body or qa_body(), headers=headers)


async def invalid_json():
    async with running_gateway() as (client, _):
        return await client.post("/", content=b"{")


async def invalid_body():
    async with running_gateway() as (client, _):
        return await client.post("/", content=b"[1]")


async def validation_error():
    return await _post(body=qa_body(top_k=0))


async def unauthorized():
    return await _post(api_tokens="secret-a")


async def model_not_found():
    return await _post(path="/models/no/such-model")


async def not_found():
    async with running_gateway() as (client, _):
        return await client.get("/no/such/route")


async def method_not_allowed():
    async with running_gateway() as (client, _):
        return await client.get("/")


async def payload_too_large():
    return await _post(body=qa_body(context="word " * 100), max_body_bytes=100)


async def overloaded():
    fake = FakeTriton(infer_delay_s=0.5)
    async with running_gateway(fake, max_in_flight=1) as (client, _):
        first = asyncio.ensure_future(client.post("/", json=qa_body()))
        await asyncio.sleep(0.1)
        second = await client.post("/", json=qa_body())
        await first
        return second


async def triton_unavailable():
    fake = FakeTriton()
    async with running_gateway(fake) as (client, _):
        fake.reachable = False
        return await client.post("/", json=qa_body())


async def triton_error():
    def fail(call, model):
        raise grpc_error("INTERNAL", "Stub process is unhealthy")

    return await _post(FakeTriton(handler=fail))


async def not_ready():
    fake = FakeTriton(models=[FakeModel(state="LOADING")])
    return await _post(fake, path="/models/acme/tiny-qa", not_ready_delay_s=0)


async def timeout():
    return await _post(FakeTriton(infer_delay_s=5), request_timeout_s=0.2)


async def internal_error():
    def crash(call, model):
        raise RuntimeError("bug in the gateway")

    return await _post(FakeTriton(handler=crash))


SCENARIOS = {
    ErrorKind.INVALID_JSON: invalid_json,
    ErrorKind.INVALID_BODY: invalid_body,
    ErrorKind.VALIDATION_ERROR: validation_error,
    ErrorKind.UNAUTHORIZED: unauthorized,
    ErrorKind.MODEL_NOT_FOUND: model_not_found,
    ErrorKind.NOT_FOUND: not_found,
    ErrorKind.METHOD_NOT_ALLOWED: method_not_allowed,
    ErrorKind.PAYLOAD_TOO_LARGE: payload_too_large,
    ErrorKind.OVERLOADED: overloaded,
    ErrorKind.TRITON_UNAVAILABLE: triton_unavailable,
    ErrorKind.TRITON_ERROR: triton_error,
    ErrorKind.NOT_READY: not_ready,
    ErrorKind.TIMEOUT: timeout,
    ErrorKind.INTERNAL_ERROR: internal_error,
}

EXTRA_HEADERS = {
    ErrorKind.UNAUTHORIZED: {"www-authenticate": "Bearer"},
    ErrorKind.METHOD_NOT_ALLOWED: {"allow": "POST"},
    ErrorKind.OVERLOADED: {"retry-after": "2"},
    ErrorKind.NOT_READY: {"retry-after": "2"},
}


def test_status_table_covers_every_kind():
    assert set(STATUS_BY_KIND) == set(ErrorKind)
    assert set(SCENARIOS) == set(ErrorKind)


@pytest.mark.parametrize("kind", list(ErrorKind), ids=lambda kind: kind.value)
async def test_error_kind_produces_envelope(kind):
    response = await SCENARIOS[kind]()
    assert response.status_code == STATUS_BY_KIND[kind]
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"error", "error_type"}
    assert body["error_type"] == kind.value
    assert isinstance(body["error"], str)
    assert body["error"]
    assert response.headers["x-request-id"]
    for name, value in EXTRA_HEADERS.get(kind, {}).items():
        assert response.headers[name] == value


async def test_internal_error_names_request_id():
    response = await internal_error()
    assert response.headers["x-request-id"] in response.json()["error"]
    assert "bug in the gateway" not in response.json()["error"]


def test_error_message_with_surrogate_is_encodable():
    response = error_response(
        GatewayError(ErrorKind.VALIDATION_ERROR, "bad \ud800 key")
    )
    assert json.loads(response.body)["error"] == "bad \\ud800 key"


MODEL = ModelInfo("acme/tiny-qa", "acme--tiny-qa", 4, 512, "roberta", ())

GRPC_STATUSES = [
    ("UNAVAILABLE", "failed to connect to all addresses", ErrorKind.TRITON_UNAVAILABLE),
    ("UNAVAILABLE", "Socket closed", ErrorKind.TRITON_UNAVAILABLE),
    (
        "UNAVAILABLE",
        "Request for unknown model: 'x' has no available versions",
        ErrorKind.NOT_READY,
    ),
    ("NOT_FOUND", "Request for unknown model", ErrorKind.NOT_READY),
    ("DEADLINE_EXCEEDED", "Deadline Exceeded", ErrorKind.TIMEOUT),
    ("RESOURCE_EXHAUSTED", "Exceeds maximum queue size", ErrorKind.OVERLOADED),
    ("INTERNAL", "Stub process is not healthy", ErrorKind.TRITON_ERROR),
    (
        "INVALID_ARGUMENT",
        "inference request batch-size must be <= 4",
        ErrorKind.TRITON_ERROR,
    ),
    ("UNKNOWN", "boom", ErrorKind.TRITON_ERROR),
    ("CANCELLED", "Cancelled", ErrorKind.TRITON_ERROR),
]


@pytest.mark.parametrize(("status", "message", "kind"), GRPC_STATUSES)
def test_grpc_status_mapping(status, message, kind):
    runner = TritonRunner(FakeTriton(), Metrics(), "127.0.0.1:8001")
    error = runner.map_error(grpc_error(status, message), MODEL)
    assert error.kind is kind
    assert error.error_type == kind.value


def test_error_without_grpc_status_is_triton_error():
    from tritonclient.utils import InferenceServerException

    runner = TritonRunner(FakeTriton(), Metrics(), "127.0.0.1:8001")
    error = runner.map_error(InferenceServerException("local failure"), MODEL)
    assert error.kind is ErrorKind.TRITON_ERROR


@pytest.mark.parametrize(
    ("message", "status", "error_type"),
    [
        ('triton-qa-error:{"error": "e", "error_type": "t", "status": 422}', 422, "t"),
        ('x triton-qa-error: {"error": "e", "error_type": "t"} trailing', 422, "t"),
        ('triton-qa-error:{"error": "e", "status": 413}', 413, "payload_too_large"),
        ('triton-qa-error:{"error": "e", "error_type": "t", "status": 500}', 422, "t"),
    ],
)
def test_step_error_parsing(message, status, error_type):
    error = parse_step_error(message)
    assert error.status == status
    assert error.error_type == error_type
    assert error.message == "e"


@pytest.mark.parametrize(
    "message",
    [
        "no marker",
        "triton-qa-error: not json",
        'triton-qa-error:["e"]',
        'triton-qa-error:{"error": 5}',
    ],
)
def test_malformed_step_error_is_ignored(message):
    assert parse_step_error(message) is None

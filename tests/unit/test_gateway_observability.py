"""Request ids, logs, timing headers and the OpenAPI page."""

from __future__ import annotations

import io
import json
import logging

import pytest

from gateway import context
from gateway.logs import RequestIdFilter, configure_logging
from tests.unit.gateway_fakes import (  # noqa: F401
    FakeTriton,
    anyio_backend,
    qa_body,
    running_gateway,
)

pytestmark = pytest.mark.anyio

QUESTION = "Which secret phrase opens the vault?"
CONTEXT = "The phrase is porcupine-lantern-41 and it opens the vault."


async def test_request_id_is_echoed():
    async with running_gateway() as (client, _):
        response = await client.post(
            "/", json=qa_body(), headers={"X-Request-Id": "abc-123"}
        )
    assert response.headers["x-request-id"] == "abc-123"


@pytest.mark.parametrize(
    "incoming", [None, "", "has space", "x" * 200, "bad\u00e9id".encode("latin-1")]
)
async def test_request_id_is_generated(incoming):
    headers = {} if incoming is None else {"X-Request-Id": incoming}
    async with running_gateway() as (client, _):
        response = await client.get("/health/live", headers=headers)
    generated = response.headers["x-request-id"]
    assert generated != incoming
    assert len(generated) == 32


async def test_request_id_on_404_and_errors():
    async with running_gateway() as (client, _):
        missing = await client.get("/nowhere", headers={"X-Request-Id": "r-404"})
        invalid = await client.post(
            "/", content=b"{", headers={"X-Request-Id": "r-400"}
        )
    assert missing.headers["x-request-id"] == "r-404"
    assert invalid.headers["x-request-id"] == "r-400"


async def test_request_log_lines_carry_request_id(caplog):
    caplog.set_level(logging.DEBUG)
    caplog.handler.addFilter(RequestIdFilter())
    async with running_gateway() as (client, _):
        await client.post("/", json=qa_body(), headers={"X-Request-Id": "trace-9"})
    lines = [r for r in caplog.records if getattr(r, "request_id", "-") == "trace-9"]
    assert any("POST / -> 200" in r.getMessage() for r in lines)
    assert all(r.levelno == logging.DEBUG for r in lines)


async def test_bodies_not_logged_by_default(caplog):
    caplog.set_level(logging.DEBUG)
    async with running_gateway() as (client, _):
        await client.post("/", json=qa_body(question=QUESTION, context=CONTEXT))
        await client.post(
            "/", json=qa_body(question=QUESTION, context=CONTEXT, top_k=0)
        )
    assert "porcupine-lantern-41" not in caplog.text
    assert "secret phrase" not in caplog.text


async def test_bodies_logged_when_enabled(caplog):
    caplog.set_level(logging.DEBUG)
    async with running_gateway(log_request_bodies=True) as (client, _):
        await client.post("/", json=qa_body(question=QUESTION, context=CONTEXT))
    assert "porcupine-lantern-41" in caplog.text


async def test_client_errors_are_not_logged_as_errors(caplog):
    caplog.set_level(logging.DEBUG)
    async with running_gateway() as (client, _):
        await client.post("/", content=b"{")
        await client.post("/", json=qa_body(top_k=0))
        await client.post("/models/no/model", json=qa_body())
        await client.get("/nowhere")
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


async def test_server_timing_header():
    async with running_gateway() as (client, _):
        response = await client.post("/", json=qa_body())
    stages = dict(
        part.strip().split(";dur=")
        for part in response.headers["server-timing"].split(",")
    )
    assert set(stages) == {"parse", "triton", "total"}
    assert all(float(value) >= 0 for value in stages.values())


def test_json_log_lines(monkeypatch):
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        configure_logging("INFO", json_lines=True)
        token = context.start("json-req-1")
        logging.getLogger("gateway.test").info("model %s ready", "acme/tiny-qa")
        context.reset(token)
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
    record = json.loads(stream.getvalue().strip().splitlines()[-1])
    assert record["message"] == "model acme/tiny-qa ready"
    assert record["level"] == "INFO"
    assert record["request_id"] == "json-req-1"
    assert record["name"] == "gateway.test"


async def test_openapi_describes_request_and_errors():
    async with running_gateway() as (client, _):
        schema = (await client.get("/openapi.json")).json()
        docs = await client.get("/docs")
    assert docs.status_code == 200
    operation = schema["paths"]["/models/{model_id}"]["post"]
    body_ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert body_ref == "#/components/schemas/QARequest"
    components = schema["components"]["schemas"]
    for name in ("QARequest", "QAInput", "QAParameters", "Answer", "ErrorBody"):
        assert name in components
    assert set(components["QAParameters"]["properties"]) == {
        "top_k",
        "doc_stride",
        "max_answer_len",
        "max_seq_len",
        "max_question_len",
        "handle_impossible_answer",
        "align_to_words",
    }
    assert components["QARequest"]["examples"]
    for status in ("400", "401", "404", "413", "422", "429", "502", "503", "504"):
        ref = operation["responses"][status]["content"]["application/json"]["schema"]
        assert ref == {"$ref": "#/components/schemas/ErrorBody"}
    assert "200" in schema["paths"]["/"]["post"]["responses"]

"""The gateway against a real tritonserver: errors, shapes, limits, health, auth."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest

from tests.conftest import BUNDLED_MODEL_ID, free_port
from tests.integration.gateway_processes import TcpRelay, gateway_process

pytestmark = pytest.mark.integration

CONTEXT = (
    "The old harbour library of Quillmere opened in 1901 beside the river. Its first "
    "librarian was a retired pilot named Edda Vossberg, who kept the reading room open "
    "until 1934."
)
TOKEN = "itg-token-5d1e8b"


def body(question="Who was the first librarian?", context=CONTEXT, **parameters):
    request = {"inputs": {"question": question, "context": context}}
    if parameters:
        request["parameters"] = parameters
    return request


def post(url: str, payload=None, content=None, **kwargs) -> httpx.Response:
    return httpx.post(url, json=payload, content=content, timeout=120, **kwargs)


def test_models_are_listed(stack):
    listing = httpx.get(f"{stack.url}/models", timeout=30).json()
    ids = {entry["model_id"] for entry in listing["models"]}
    assert ids == set(stack.model_ids.values())
    assert listing["default_model"] == BUNDLED_MODEL_ID
    for entry in listing["models"]:
        assert entry["ready"] is True
        assert entry["window_batch_size"] >= 1
        assert entry["model_max_length"] >= 64


ERRORS = [
    ("POST", "/", b"{", 400, "invalid_json", "not valid JSON"),
    ("POST", "/", b"[1, 2]", 400, "invalid_body", "must be a JSON object"),
    ("POST", "/", b"{}", 422, "validation_error", "inputs is missing"),
    (
        "POST",
        "/",
        json.dumps(body(top_k="3")).encode(),
        422,
        "validation_error",
        'parameters.top_k must be an integer from 1 to 2147483647, got "3" (string)',
    ),
    (
        "POST",
        "/",
        json.dumps(body(topk=3)).encode(),
        422,
        "validation_error",
        "parameters.topk is not a valid parameter",
    ),
    (
        "POST",
        "/",
        json.dumps(body(max_seq_len=100_000)).encode(),
        422,
        "validation_error",
        "parameters.max_seq_len must be at most",
    ),
    (
        "POST",
        "/",
        json.dumps(body(doc_stride=370, max_seq_len=384)).encode(),
        422,
        None,
        "doc_stride",
    ),
    (
        "POST",
        "/models/nobody/none",
        json.dumps(body()).encode(),
        404,
        "model_not_found",
        BUNDLED_MODEL_ID,
    ),
    ("GET", "/v1/chat", None, 404, "not_found", "no endpoint at /v1/chat"),
    ("GET", "/", None, 405, "method_not_allowed", "allowed: POST"),
    (
        "POST",
        "/",
        json.dumps(body(context="word " * 400_000)).encode(),
        413,
        "payload_too_large",
        "limit is 1048576 bytes",
    ),
]


@pytest.mark.parametrize(
    ("method", "path", "content", "status", "error_type", "fragment"),
    ERRORS,
    ids=[f"{e[3]}-{e[4] or 'step'}-{i}" for i, e in enumerate(ERRORS)],
)
def test_error_responses(stack, method, path, content, status, error_type, fragment):
    response = httpx.request(method, stack.url + path, content=content, timeout=120)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    payload = response.json()
    assert set(payload) == {"error", "error_type"}
    if error_type is not None:
        assert payload["error_type"] == error_type
    assert fragment in payload["error"]


def test_shapes_follow_top_k(stack):
    single = post(stack.url, body()).json()
    one = post(stack.url, body(top_k=1)).json()
    several = post(stack.url, body(top_k=3)).json()
    assert isinstance(single, dict)
    assert one == single
    assert isinstance(several, list)
    assert 1 <= len(several) <= 3
    for item in [single, *several]:
        assert CONTEXT[item["start"] : item["end"]] == item["answer"]


def test_batch_matches_single_requests(stack):
    pairs = [
        {"question": "Who was the first librarian?", "context": CONTEXT},
        {"question": "Which metal was the gate?", "context": "The gate was iron."},
        {"question": "When did it open?", "context": CONTEXT},
    ]
    batch = post(stack.url, {"inputs": pairs, "parameters": {"top_k": 2}}).json()
    columns = post(
        stack.url,
        {
            "inputs": {
                "question": [p["question"] for p in pairs],
                "context": [p["context"] for p in pairs],
            },
            "parameters": {"top_k": 2},
        },
    ).json()
    singles = [
        post(stack.url, {"inputs": p, "parameters": {"top_k": 2}}).json() for p in pairs
    ]
    assert batch == singles
    assert columns == singles


def test_long_context_is_answered_in_chunks(stack):
    filler = " ".join(
        f"Record {i} mentions the granary near Tessaro." for i in range(600)
    )
    context = filler + " The lighthouse keeper in 1887 was Ines Marlow. " + filler
    before = httpx.get(f"{stack.url}/metrics", timeout=30).text
    response = post(stack.url, body("Who was the lighthouse keeper?", context, top_k=2))
    after = httpx.get(f"{stack.url}/metrics", timeout=30).text
    assert response.status_code == 200
    for item in response.json():
        assert context[item["start"] : item["end"]] == item["answer"]
    calls = _triton_calls(after) - _triton_calls(before)
    assert calls > 1


def test_concurrent_requests_agree(stack):
    questions = [f"Who kept room {i} open?" for i in range(24)]

    async def run():
        async with httpx.AsyncClient(base_url=stack.url, timeout=120) as client:
            return await asyncio.gather(
                *(client.post("/", json=body(q, top_k=2)) for q in questions)
            )

    responses = asyncio.run(run())
    assert [r.status_code for r in responses] == [200] * len(questions)
    sequential = [post(stack.url, body(q, top_k=2)).json() for q in questions[:4]]
    assert [r.json() for r in responses[:4]] == sequential


def test_request_id_and_timing_headers(stack):
    response = post(stack.url, body(), headers={"X-Request-Id": "itg-req-1"})
    assert response.headers["x-request-id"] == "itg-req-1"
    stages = response.headers["server-timing"]
    assert "triton;dur=" in stages
    assert "total;dur=" in stages


def test_ready_and_metrics(stack):
    ready = httpx.get(f"{stack.url}/health/ready", timeout=30)
    assert ready.status_code == 200
    models = ready.json()["models"]
    assert set(models) == set(stack.model_ids.values())
    metrics = httpx.get(f"{stack.url}/metrics", timeout=30).text
    assert "triton_qa_requests_total" in metrics
    assert "triton_qa_triton_call_duration_seconds_bucket" in metrics


def test_auth_and_token_kept_out_of_logs(stack, tmp_path):
    env = {"TRITON_QA_API_TOKENS": f"old-token-1,{TOKEN}", "TRITON_QA_LOG_JSON": "true"}
    with gateway_process(stack.triton_grpc, tmp_path, env) as gateway:
        missing = post(gateway.url, body())
        wrong = post(gateway.url, body(), headers={"Authorization": "Bearer nope"})
        right = post(gateway.url, body(), headers={"Authorization": f"bearer {TOKEN}"})
        old = post(gateway.url, body(), headers={"Authorization": "Bearer old-token-1"})
        openapi = httpx.get(f"{gateway.url}/openapi.json", timeout=30).text
        log = gateway.log_text()
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == "Bearer"
    assert wrong.status_code == 401
    assert right.status_code == 200
    assert old.status_code == 200
    assert TOKEN not in log
    assert "old-token-1" not in log
    assert TOKEN not in openapi
    assert "api_tokens=**********" in log
    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    assert lines
    assert all("request_id" in line for line in lines)


def test_triton_never_reached_is_503(tmp_path):
    dead = f"127.0.0.1:{free_port()}"
    env = {"TRITON_QA_NOT_READY_DELAY_S": "0.2"}
    with gateway_process(dead, tmp_path, env, wait_path="/health/live") as gateway:
        started = time.monotonic()
        response = post(gateway.url, body())
        elapsed = time.monotonic() - started
        ready = httpx.get(f"{gateway.url}/health/ready", timeout=30)
    assert response.status_code == 503
    assert response.headers["retry-after"] == "2"
    assert response.json()["error_type"] == "not_ready"
    assert elapsed >= 0.2
    assert ready.status_code == 503


def test_triton_lost_is_502(stack, tmp_path):
    relay = TcpRelay(stack.triton_grpc)
    try:
        with gateway_process(relay.address, tmp_path) as gateway:
            assert post(gateway.url, body()).status_code == 200
            relay.close()
            response = post(gateway.url, body())
            ready = _wait_for_status(f"{gateway.url}/health/ready", 503)
    finally:
        relay.close()
    assert response.status_code == 502
    assert response.json()["error_type"] == "triton_unavailable"
    assert ready == 503


def _triton_calls(metrics_text: str) -> float:
    total = 0.0
    for line in metrics_text.splitlines():
        if (
            line.startswith("triton_qa_triton_calls_total{")
            and BUNDLED_MODEL_ID in line
        ):
            total += float(line.rsplit(" ", 1)[1])
    return total


def _wait_for_status(url: str, status: int, timeout_s: float = 20.0) -> int:
    deadline = time.monotonic() + timeout_s
    code = 0
    while time.monotonic() < deadline:
        code = httpx.get(url, timeout=10).status_code
        if code == status:
            break
        time.sleep(0.25)
    return code

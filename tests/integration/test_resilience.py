"""Overload, slow requests, huge bodies and a killed tritonserver, end to end.

These run real processes: a tritonserver of their own where they kill it, and
extra gateways with tighter settings against the shared one otherwise.
"""

from __future__ import annotations

import asyncio
import signal
import time

import httpx
import psutil
import pytest

from tests.conftest import BUNDLED_MODEL_ID, free_port
from tests.integration.gateway_processes import gateway_process
from tests.reference import assert_contract_items
from triton_qa.build import BUNDLED_REPOSITORY
from triton_qa.tritonserver import TritonPorts, TritonProcess

pytestmark = pytest.mark.integration

CONTEXT = "The old harbour library of Quillmere opened in 1901 beside the river."
BODY = {"inputs": {"question": "When did the library open?", "context": CONTEXT}}


def long_body(words: int = 30_000) -> dict:
    text = " ".join(f"word{index % 97}" for index in range(words))
    return {
        "inputs": {"question": "Which word?", "context": text},
        "parameters": {"max_seq_len": 32, "doc_stride": 0},
    }


async def _post_many(url: str, bodies: list[dict]) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=len(bodies))
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as http:
        return await asyncio.gather(*(http.post("/", json=body) for body in bodies))


def test_two_hundred_concurrent_against_cap_of_sixteen(stack, tmp_path):
    env = {"TRITON_QA_MAX_IN_FLIGHT": "16"}
    with gateway_process(stack.triton_grpc, tmp_path, env) as gateway:
        expected = httpx.post(gateway.url, json=BODY, timeout=60).json()
        responses = asyncio.run(_post_many(gateway.url, [BODY] * 200))
    statuses = [response.status_code for response in responses]
    assert set(statuses) <= {200, 429}, statuses
    assert statuses.count(429) > 0
    assert statuses.count(200) >= 16
    for response in responses:
        if response.status_code == 429:
            assert int(response.headers["retry-after"]) >= 1
            assert response.json()["error_type"] == "overloaded"
        else:
            assert response.json() == expected


def test_slow_request_times_out_with_504(stack, tmp_path):
    env = {"TRITON_QA_REQUEST_TIMEOUT_S": "0.3", "TRITON_QA_MAX_BODY_BYTES": "4000000"}
    with gateway_process(stack.triton_grpc, tmp_path, env) as gateway:
        started = time.monotonic()
        response = httpx.post(gateway.url, json=long_body(), timeout=60)
        elapsed = time.monotonic() - started
        after = httpx.post(gateway.url, json=BODY, timeout=60)
    assert response.status_code == 504, response.text
    assert response.json()["error_type"] == "timeout"
    assert elapsed < 5
    assert after.status_code == 200


def test_ten_megabyte_body_is_413(stack):
    body = {"inputs": {"question": "Who?", "context": "x" * 10_000_000}}
    response = httpx.post(stack.url, json=body, timeout=60)
    assert response.status_code == 413
    assert response.json()["error_type"] == "payload_too_large"
    assert httpx.post(stack.url, json=BODY, timeout=60).status_code == 200


@pytest.fixture
def own_triton(tmp_path):
    """A tritonserver of this test's own, which it may kill and restart."""
    ports = TritonPorts(free_port(), free_port(), free_port())
    cache_dir = tmp_path / "cache"

    def start() -> TritonProcess:
        triton = TritonProcess(
            BUNDLED_REPOSITORY, ports, cache_dir, log_path=tmp_path / "triton.log"
        )
        triton.start()
        triton.wait_ready(120)
        return triton

    processes = [start()]
    yield ports, processes, start
    for triton in processes:
        triton.stop()


def test_triton_killed_mid_request_then_recovers(own_triton, tmp_path):
    ports, processes, start = own_triton
    env = {
        "TRITON_QA_MAX_BODY_BYTES": "4000000",
        "TRITON_QA_HEALTH_CHECK_INTERVAL_S": "1",
        "TRITON_QA_MODEL_REFRESH_INTERVAL_S": "1",
    }
    with gateway_process(f"127.0.0.1:{ports.grpc}", tmp_path, env) as gateway:
        assert httpx.post(gateway.url, json=BODY, timeout=60).status_code == 200

        async def kill_during_request():
            async with httpx.AsyncClient(base_url=gateway.url, timeout=120) as http:
                pending = asyncio.create_task(http.post("/", json=long_body()))
                await asyncio.sleep(0.3)
                # SIGKILL leaves the Python-backend stubs behind; end them too.
                stubs = psutil.Process(processes[0].process.pid).children(
                    recursive=True
                )
                processes[0].process.send_signal(signal.SIGKILL)
                for stub in stubs:
                    stub.kill()
                return await pending

        response = asyncio.run(kill_during_request())
        processes[0].process.wait(30)
        assert response.status_code in (502, 503), response.text
        assert response.json()["error_type"] in ("triton_unavailable", "not_ready")
        down = httpx.post(gateway.url, json=BODY, timeout=60)
        assert down.status_code in (502, 503), down.text

        processes.append(start())
        deadline = time.monotonic() + 60
        recovered = None
        while time.monotonic() < deadline:
            recovered = httpx.post(gateway.url, json=BODY, timeout=60)
            if recovered.status_code == 200:
                break
            time.sleep(0.5)
        assert recovered is not None and recovered.status_code == 200, recovered.text
        assert_contract_items([recovered.json()], CONTEXT, 1)
        ready = httpx.get(f"{gateway.url}/health/ready", timeout=30)
        deadline = time.monotonic() + 30
        while ready.status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.5)
            ready = httpx.get(f"{gateway.url}/health/ready", timeout=30)
        assert ready.status_code == 200


def test_models_listing_names_bundled_model(stack):
    listing = httpx.get(f"{stack.url}/models", timeout=30).json()
    assert BUNDLED_MODEL_ID in [model["model_id"] for model in listing["models"]]

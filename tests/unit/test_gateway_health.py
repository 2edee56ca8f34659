"""Liveness, readiness with its canary inference, and metrics."""

from __future__ import annotations

import asyncio

import pytest

from tests.unit.gateway_fakes import (  # noqa: F401
    FakeModel,
    FakeTriton,
    anyio_backend,
    grpc_error,
    qa_body,
    running_gateway,
)

pytestmark = pytest.mark.anyio


async def test_live_answers_without_triton():
    async with running_gateway(FakeTriton(reachable=False)) as (client, _):
        response = await client.get("/health/live")
    assert response.status_code == 200
    assert response.json()["status"] == "live"


async def test_ready_after_canary_succeeds():
    fake = FakeTriton()
    async with running_gateway(fake) as (client, gateway):
        await gateway.health.check()
        response = await client.get("/health/ready")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ready"
    report = body["models"]["acme/tiny-qa"]
    assert report["steps_ready"] == {
        "acme--tiny-qa": True,
        "acme--tiny-qa_tokenize": True,
        "acme--tiny-qa_model": True,
        "acme--tiny-qa_postprocess": True,
    }
    assert report["canary_age_s"] < 5
    assert any(c.request_id.startswith("canary") for c in fake.calls)


async def test_not_ready_when_triton_unreachable():
    async with running_gateway(FakeTriton(reachable=False)) as (client, gateway):
        await gateway.health.check()
        response = await client.get("/health/ready")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "2"
    assert response.json()["error_type"] == "not_ready"
    assert "Triton is unreachable" in response.json()["error"]


async def test_not_ready_when_triton_not_ready():
    async with running_gateway(FakeTriton(server_ready=False)) as (client, gateway):
        await gateway.health.check()
        response = await client.get("/health/ready")
    assert response.status_code == 503
    assert "Triton is not ready" in response.json()["error"]


async def test_not_ready_when_a_step_is_not_ready():
    fake = FakeTriton(not_ready_steps={"acme--tiny-qa_postprocess"})
    async with running_gateway(fake) as (client, gateway):
        await gateway.health.check()
        response = await client.get("/health/ready")
    assert response.status_code == 503
    assert "step acme--tiny-qa_postprocess is not ready" in response.json()["error"]


async def test_crashed_stub_is_caught_by_canary():
    fake = FakeTriton()
    async with running_gateway(fake) as (client, gateway):
        await gateway.health.check()
        before = await client.get("/health/ready")

        def crashed(call, model):
            raise grpc_error(
                "INTERNAL", "Failed to process the request(s): stub crashed"
            )

        fake.handler = crashed
        await gateway.health.check()
        after = await client.get("/health/ready")
    assert before.status_code == 200
    assert after.status_code == 503
    assert "canary inference failed" in after.json()["error"]
    assert "stub crashed" in after.json()["error"]


async def test_stale_canary_is_not_ready():
    async with running_gateway(canary_max_age_s=0.05) as (client, gateway):
        await gateway.health.check()
        await asyncio.sleep(0.1)
        response = await client.get("/health/ready")
    assert response.status_code == 503
    assert "canary inference is stale" in response.json()["error"]


async def test_metrics_count_requests_and_rejections():
    fake = FakeTriton()
    async with running_gateway(fake) as (client, _):
        await client.post("/", json=qa_body())
        await client.post("/", json=qa_body(top_k=0))
        await client.post("/models/none/such", json=qa_body())
        response = await client.get("/metrics")
    text = response.text
    assert response.headers["content-type"].startswith("text/plain")
    assert (
        'triton_qa_requests_total{endpoint="/",model="acme/tiny-qa",status="200"} 1.0'
        in text
    )
    assert (
        'triton_qa_requests_total{endpoint="/",model="acme/tiny-qa",status="422"} 1.0'
        in text
    )
    assert 'triton_qa_rejections_total{reason="validation_error"} 1.0' in text
    assert 'triton_qa_rejections_total{reason="model_not_found"} 1.0' in text
    assert "triton_qa_request_duration_seconds_bucket" in text
    assert 'triton_qa_triton_call_duration_seconds_count{model="acme/tiny-qa"}' in text
    assert "triton_qa_requests_in_flight 0.0" in text


async def test_in_flight_gauge_counts_running_requests():
    fake = FakeTriton(infer_delay_s=0.3)
    async with running_gateway(fake) as (client, _):
        running = asyncio.ensure_future(client.post("/", json=qa_body()))
        await asyncio.sleep(0.1)
        during = (await client.get("/metrics")).text
        await running
    assert "triton_qa_requests_in_flight 1.0" in during


def test_model_found_after_health_check_is_not_ready():
    """A model the registry found after the last health check has no canary yet."""
    from gateway.health import HealthMonitor

    monitor = HealthMonitor.__new__(HealthMonitor)
    monitor._triton_error = None
    monitor._models = {}
    monitor._canary_max_age_s = 35.0
    monitor._registry = _RegistryWithOneModel()
    assert monitor.problems() == ["model acme/qa: no canary inference has run yet"]


class _RegistryWithOneModel:
    discovered = True

    @property
    def models(self):
        from types import SimpleNamespace

        return [SimpleNamespace(model_id="acme/qa")]

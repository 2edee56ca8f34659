"""A fake Triton gRPC aio client for the gateway's unit tests.

It serves ensembles with the config parameters the gateway reads, returns
`infer` results from a replaceable handler, and records every call.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np
import pytest
from tritonclient.utils import InferenceServerException, deserialize_bytes_tensor

from gateway.app import create_app
from gateway.settings import Settings
from gateway.state import Gateway

MODEL_ID = "acme/tiny-qa"
ENSEMBLE = "acme--tiny-qa"


@dataclass
class FakeModel:
    """An ensemble the fake serves."""

    model_id: str = MODEL_ID
    name: str = ENSEMBLE
    window_batch_size: int = 4
    model_max_length: int = 512
    state: str = "READY"

    @property
    def steps(self) -> list[str]:
        return [
            f"{self.name}_tokenize",
            f"{self.name}_model",
            f"{self.name}_postprocess",
        ]


@dataclass
class InferCall:
    """One recorded `infer` call."""

    model_name: str
    question: str
    context: str
    parameters: dict[str, Any]
    request_id: str
    client_timeout: float | None


@dataclass
class FakeResult:
    """What `infer` returns: an object with `as_numpy`."""

    payload: bytes

    def as_numpy(self, name: str) -> np.ndarray:
        return np.array([self.payload], dtype=np.object_)


def grpc_error(status: str, message: str) -> InferenceServerException:
    """Build the exception tritonclient raises for a gRPC status."""
    return InferenceServerException(msg=message, status=f"StatusCode.{status}")


def word_answers(text: str, top_k: int) -> list[dict]:
    """Answer with the first `top_k` words of `text`, scores decreasing."""
    words = list(re.finditer(r"\S+", text))[:top_k]
    return [
        {
            "answer": m.group(),
            "score": 0.5 / (i + 1),
            "start": m.start(),
            "end": m.end(),
        }
        for i, m in enumerate(words)
    ]


def default_handler(call: InferCall, model: FakeModel) -> dict:
    """Answer in one call, as a context of one window does."""
    top_k = call.parameters.get("top_k", 1)
    return {
        "num_windows": 1,
        "window_start": 0,
        "window_count": 1,
        "answers": word_answers(call.context, top_k),
    }


def windowed_handler(num_windows: int) -> Callable[[InferCall, FakeModel], dict]:
    """Simulate a context of `num_windows` windows; window i finds word i."""

    def handle(call: InferCall, model: FakeModel) -> dict:
        start = call.parameters["window_start"]
        count = min(call.parameters["window_limit"], num_windows - start)
        words = list(re.finditer(r"\S+", call.context))
        candidates = []
        for window in range(start, start + count):
            match = words[window % len(words)]
            candidates.append(
                {
                    "answer": match.group(),
                    "score": 0.01 * (window + 1),
                    "start": match.start(),
                    "end": match.end(),
                }
            )
        result = {
            "num_windows": num_windows,
            "window_start": start,
            "window_count": count,
        }
        if start == 0 and count == num_windows:
            ranked = sorted(candidates, key=lambda item: item["score"], reverse=True)
            result["answers"] = ranked[: call.parameters.get("top_k", 1)]
        else:
            result["candidates"] = candidates
            result["null_score"] = 0.001 * (start + 1)
        return result

    return handle


@dataclass
class FakeTriton:
    """Stands in for `tritonclient.grpc.aio.InferenceServerClient`."""

    models: list[FakeModel] = field(default_factory=lambda: [FakeModel()])
    handler: Callable[[InferCall, FakeModel], Any] = default_handler
    server_ready: bool = True
    reachable: bool = True
    not_ready_steps: set[str] = field(default_factory=set)
    infer_delay_s: float = 0.0
    calls: list[InferCall] = field(default_factory=list)
    cancelled_ids: list[str] = field(default_factory=list)
    closed: bool = False

    def _check_reachable(self) -> None:
        if not self.reachable:
            raise grpc_error(
                "UNAVAILABLE", "failed to connect to all addresses; Connection refused"
            )

    async def get_model_repository_index(self, as_json=False, client_timeout=None):
        self._check_reachable()
        entries = [
            {"name": m.name, "version": "1", "state": m.state} for m in self.models
        ]
        for model in self.models:
            entries += [
                {"name": s, "version": "1", "state": "READY"} for s in model.steps
            ]
        return {"models": entries}

    async def get_model_config(self, name, as_json=False, client_timeout=None):
        self._check_reachable()
        for model in self.models:
            if name == model.name:
                return {"config": self._ensemble_config(model)}
            if name in model.steps:
                return {"config": {"name": name, "backend": "python"}}
        raise grpc_error(
            "NOT_FOUND", f"Request for unknown model: '{name}' is not found"
        )

    async def is_server_ready(self, client_timeout=None):
        self._check_reachable()
        return self.server_ready

    async def is_model_ready(self, name, model_version="", client_timeout=None):
        self._check_reachable()
        return name not in self.not_ready_steps

    async def infer(
        self,
        model_name,
        inputs,
        outputs=None,
        request_id="",
        parameters=None,
        client_timeout=None,
        **kwargs,
    ):
        self._check_reachable()
        texts = {
            i.name(): deserialize_bytes_tensor(i._get_content())[0] for i in inputs
        }
        call = InferCall(
            model_name=model_name,
            question=texts["QUESTION"].decode("utf-8"),
            context=texts["CONTEXT"].decode("utf-8"),
            parameters=dict(parameters or {}),
            request_id=request_id,
            client_timeout=client_timeout,
        )
        self.calls.append(call)
        model = next(m for m in self.models if m.name == model_name)
        try:
            if self.infer_delay_s:
                await asyncio.sleep(self.infer_delay_s)
        except asyncio.CancelledError:
            self.cancelled_ids.append(request_id)
            raise
        result = self.handler(call, model)
        if isinstance(result, (bytes, str)):
            payload = result.encode() if isinstance(result, str) else result
        else:
            payload = json.dumps(result).encode("utf-8")
        return FakeResult(payload)

    @property
    def cancelled(self) -> int:
        """Number of cancelled calls, without the gateway's canary inferences."""
        return sum(1 for i in self.cancelled_ids if not i.startswith("canary"))

    @property
    def client_calls(self) -> list[InferCall]:
        """The recorded calls, without the gateway's canary inferences."""
        return [c for c in self.calls if not c.request_id.startswith("canary")]

    async def close(self):
        self.closed = True

    @staticmethod
    def _ensemble_config(model: FakeModel) -> dict:
        parameters = {
            "model_id": model.model_id,
            "window_batch_size": str(model.window_batch_size),
            "model_max_length": str(model.model_max_length),
            "model_family": "roberta",
        }
        return {
            "name": model.name,
            "platform": "ensemble",
            "parameters": {k: {"string_value": v} for k, v in parameters.items()},
            "ensemble_scheduling": {"step": [{"model_name": s} for s in model.steps]},
        }


@contextlib.asynccontextmanager
async def running_gateway(
    fake: FakeTriton | None = None, **settings: Any
) -> AsyncIterator[tuple[httpx.AsyncClient, Gateway]]:
    """Start the app with `fake` as Triton; yield an HTTP client and its Gateway.

    Returns once the first model discovery has finished, when Triton is
    reachable.
    """
    fake = fake if fake is not None else FakeTriton()
    app = create_app(Settings(**settings), fake)
    gateway: Gateway = app.state.gateway
    async with app.router.lifespan_context(app):
        if fake.reachable:
            for _ in range(200):
                if gateway.registry.discovered:
                    break
                await asyncio.sleep(0.01)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://gw"
        ) as client:
            yield client, gateway


def qa_body(
    question: str = "Who ran it?", context: str = "Alice ran it.", **parameters
):
    """Return a request body with one pair and the given parameters."""
    body: dict[str, Any] = {"inputs": {"question": question, "context": context}}
    if parameters:
        body["parameters"] = parameters
    return body


@pytest.fixture
def anyio_backend() -> str:
    """Run the anyio-marked tests on asyncio only, the loop uvicorn uses."""
    return "asyncio"

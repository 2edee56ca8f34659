"""Readiness: Triton, every step model, and a recent canary inference per model.

Triton's own ready endpoints keep reporting ready after a Python-backend stub
has crashed, so only an inference through the whole ensemble shows that a
model still answers.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from tritonclient.utils import InferenceServerException

from gateway import context
from gateway.errors import GatewayError
from gateway.registry import ModelInfo, ModelRegistry
from gateway.schemas import QAInput
from gateway.triton import TritonRunner
from gateway.validation import ParsedRequest

logger = logging.getLogger(__name__)

# Triton logs and traces show canary calls under this request id.
CANARY_REQUEST_ID = "canary"
CANARY_REQUEST = ParsedRequest(
    pairs=[
        QAInput(
            question="What does this check?",
            context="This request checks that the model answers.",
        )
    ],
    parameters={},
    batched=False,
)


@dataclass
class ModelHealth:
    """The last readiness observations of one model."""

    steps_ready: dict[str, bool] = field(default_factory=dict)
    canary_ok_at: float | None = None
    canary_error: str | None = None


class HealthMonitor:
    """Checks Triton and the served models, and reports readiness."""

    def __init__(
        self,
        client: Any,
        registry: ModelRegistry,
        runner: TritonRunner,
        *,
        timeout_s: float,
        canary_max_age_s: float,
    ) -> None:
        self._client = client
        self._registry = registry
        self._runner = runner
        self._timeout_s = timeout_s
        self._canary_max_age_s = canary_max_age_s
        self._triton_ready = False
        self._triton_error: str | None = "not checked yet"
        self._models: dict[str, ModelHealth] = {}

    async def check(self) -> None:
        """Ask Triton for its state and run one canary inference per model."""
        try:
            self._triton_ready = await self._client.is_server_ready(
                client_timeout=self._timeout_s
            )
            self._triton_error = None if self._triton_ready else "Triton is not ready"
        except InferenceServerException as error:
            self._triton_ready = False
            self._triton_error = f"Triton is unreachable: {error.message()}"
        if not self._triton_ready:
            return
        models = self._registry.models
        self._models = {
            info.model_id: self._models.get(info.model_id, ModelHealth())
            for info in models
        }
        await asyncio.gather(*(self._check_model(info) for info in models))

    def problems(self) -> list[str]:
        """Return why the gateway is not ready; empty when it is ready."""
        if self._triton_error:
            return [self._triton_error]
        if not self._registry.discovered or not self._registry.models:
            return ["no model is served yet"]
        now = time.monotonic()
        problems = []
        # Models the registry found after the last health check have no
        # entry yet, and they count as not ready until their first canary.
        for info in self._registry.models:
            model_id = info.model_id
            health = self._models.get(model_id, ModelHealth())
            problems += [
                f"model {model_id}: step {step} is not ready"
                for step, ready in sorted(health.steps_ready.items())
                if not ready
            ]
            if health.canary_error:
                problems.append(
                    f"model {model_id}: canary inference failed: {health.canary_error}"
                )
            elif health.canary_ok_at is None:
                problems.append(f"model {model_id}: no canary inference has run yet")
            elif now - health.canary_ok_at > self._canary_max_age_s:
                problems.append(f"model {model_id}: the last canary inference is stale")
        return problems

    def model_report(self) -> dict[str, dict[str, Any]]:
        """Return each model's readiness details for the ready endpoint."""
        now = time.monotonic()
        return {
            model_id: {
                "steps_ready": health.steps_ready,
                "canary_age_s": None
                if health.canary_ok_at is None
                else round(now - health.canary_ok_at, 3),
            }
            for model_id, health in sorted(self._models.items())
        }

    async def _check_model(self, info: ModelInfo) -> None:
        health = self._models[info.model_id]
        for step in (info.ensemble, *info.steps):
            health.steps_ready[step] = await self._is_model_ready(step)
        token = context.start(CANARY_REQUEST_ID)
        try:
            await self._runner.answer(info, CANARY_REQUEST, self._timeout_s)
        except GatewayError as error:
            if health.canary_error != error.message:
                logger.warning(
                    "Canary inference on model %s failed: %s", info.model_id, error
                )
            health.canary_error = error.message
            return
        finally:
            context.reset(token)
        if health.canary_error:
            logger.info("Canary inference on model %s succeeds again", info.model_id)
        health.canary_error = None
        health.canary_ok_at = time.monotonic()

    async def _is_model_ready(self, name: str) -> bool:
        try:
            return await self._client.is_model_ready(
                name, client_timeout=self._timeout_s
            )
        except InferenceServerException:
            return False


async def run_periodically(
    task: Callable[[], Awaitable[object]],
    interval_s: Callable[[], float],
    name: str,
) -> None:
    """Run `task` forever, waiting `interval_s()` seconds after each run.

    A failure is logged when it first occurs and when it changes, not on every
    run, so an unreachable Triton does not flood the log.
    """
    last_failure = None
    while True:
        try:
            await task()
        except InferenceServerException as error:
            if str(error) != last_failure:
                logger.warning("%s failed: %s", name, error)
            last_failure = str(error)
        except Exception as error:
            if repr(error) != last_failure:
                logger.exception("%s failed", name)
            last_failure = repr(error)
        else:
            if last_failure is not None:
                logger.info("%s succeeds again", name)
            last_failure = None
        await asyncio.sleep(interval_s())

"""The gateway's long-lived parts: Triton client, model registry, health checks."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from gateway.auth import TokenStore
from gateway.health import HealthMonitor, run_periodically
from gateway.limits import InFlightLimiter
from gateway.metrics import Metrics
from gateway.registry import ModelRegistry
from gateway.settings import Settings
from gateway.triton import TritonRunner

logger = logging.getLogger(__name__)

# Retry interval for discovery and readiness checks while they fail.
FAST_RETRY_S = 1.0


class Gateway:
    """Everything the request handlers share, created once per app.

    The Triton client is created in `start`, inside the server's event loop,
    because gRPC aio channels belong to the loop that creates them. Tests pass
    a fake client instead.
    """

    def __init__(self, settings: Settings, triton_client: Any | None = None) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self.tokens = TokenStore(settings.tokens(), settings.api_tokens_file)
        self.limiter = InFlightLimiter(settings.max_in_flight, self.metrics)
        self._client = triton_client
        self._owns_client = triton_client is None
        self._tasks: list[asyncio.Task] = []
        self.registry: ModelRegistry | None = None
        self.runner: TritonRunner | None = None
        self.health: HealthMonitor | None = None

    async def start(self) -> None:
        """Connect to Triton and start model discovery and health checks."""
        settings = self.settings
        if self._client is None:
            import tritonclient.grpc.aio as grpc_aio

            self._client = grpc_aio.InferenceServerClient(settings.triton_grpc_url)
        self.registry = ModelRegistry(
            self._client, settings.default_model, settings.triton_timeout_s
        )
        self.runner = TritonRunner(
            self._client,
            self.metrics,
            settings.triton_grpc_url,
            chunks_in_flight=settings.max_chunks_in_flight,
        )
        self.health = HealthMonitor(
            self._client,
            self.registry,
            self.runner,
            timeout_s=settings.triton_timeout_s,
            canary_max_age_s=settings.canary_max_age_s,
        )
        self._tasks = [
            asyncio.create_task(
                run_periodically(
                    self._refresh, self._refresh_interval, "Model discovery"
                )
            ),
            asyncio.create_task(
                run_periodically(
                    self.health.check, self._health_interval, "Health check"
                )
            ),
        ]
        logger.info("Gateway started; Triton gRPC at %s", settings.triton_grpc_url)

    async def stop(self) -> None:
        """Stop the background tasks and close the Triton client."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if self._owns_client and self._client is not None:
            await self._client.close()
            self._client = None
        logger.info("Gateway stopped")

    async def _refresh(self) -> None:
        self.tokens.reload_if_changed()
        await self.registry.refresh()

    def _refresh_interval(self) -> float:
        if self.registry.discovered:
            return self.settings.model_refresh_interval_s
        return min(FAST_RETRY_S, self.settings.model_refresh_interval_s)

    def _health_interval(self) -> float:
        if self.health.problems():
            return min(FAST_RETRY_S, self.settings.health_check_interval_s)
        return self.settings.health_check_interval_s

"""HTTP endpoints: inference, model list, health and metrics."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from gateway import context
from gateway.errors import ErrorKind, GatewayError
from gateway.limits import ClientDisconnected, read_body, run_with_limits
from gateway.registry import ModelInfo
from gateway.schemas import (
    ErrorBody,
    HealthStatus,
    ModelEntry,
    ModelList,
    QAResponse,
)
from gateway.state import Gateway
from gateway.validation import ParsedRequest, parse_request

logger = logging.getLogger(__name__)

# Not a registered status; nginx uses it for requests the client abandoned.
CLIENT_CLOSED_REQUEST = 499

router = APIRouter()


def _error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    descriptions = {
        400: "The body is not JSON, or not a JSON object.",
        401: "A bearer token is required and is missing or wrong.",
        404: "The model is not served here.",
        413: "The body is larger than the configured limit.",
        422: "A field is missing, of the wrong type or out of range.",
        429: "Too many requests in flight; retry after Retry-After seconds.",
        502: "Triton is unreachable or failed.",
        503: "The models are still loading; retry after Retry-After seconds.",
        504: "The request took longer than the configured time limit.",
    }
    return {
        status: {"model": ErrorBody, "description": descriptions[status]}
        for status in statuses
    }


_REQUEST_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/QARequest"}}
        },
    }
}
_ANSWER_RESPONSES = _error_responses(400, 401, 404, 413, 422, 429, 502, 503, 504)
_ANSWER_DESCRIPTION = (
    "Answer a question from a context. The response is one answer object when "
    "top_k is absent or 1, a list of 1 to top_k answers when top_k is above 1, and "
    "for list inputs a list with one such result per pair."
)


@router.post(
    "/",
    summary="Answer with the default model",
    description=_ANSWER_DESCRIPTION,
    response_model=QAResponse,
    responses=_ANSWER_RESPONSES,
    openapi_extra=_REQUEST_BODY,
)
async def answer_default(request: Request) -> Response:
    return await _answer(request, None)


@router.post(
    "/models/{model_id:path}",
    summary="Answer with a given model",
    description=_ANSWER_DESCRIPTION,
    response_model=QAResponse,
    responses=_ANSWER_RESPONSES,
    openapi_extra=_REQUEST_BODY,
)
async def answer_with_model(request: Request, model_id: str) -> Response:
    return await _answer(request, model_id)


@router.get(
    "/models",
    summary="List the served models",
    response_model=ModelList,
    responses=_error_responses(401),
)
async def list_models(request: Request) -> ModelList:
    gateway = _gateway(request)
    gateway.tokens.check(request.headers.get("authorization"))
    registry = gateway.registry
    default = registry.default_model_id()
    entries = [
        ModelEntry(
            model_id=info.model_id,
            ensemble=info.ensemble,
            model_family=info.model_family,
            model_max_length=info.model_max_length,
            window_batch_size=info.window_batch_size,
            ready=registry.is_ready(info.model_id),
            default=info.model_id == default,
        )
        for info in registry.models
    ]
    return ModelList(default_model=default, models=entries)


@router.get("/health/live", summary="Liveness", response_model=HealthStatus)
async def live() -> HealthStatus:
    return HealthStatus(status="live")


@router.get(
    "/health/ready",
    summary="Readiness",
    description="Ready when Triton and every step of every served ensemble are "
    "ready and a canary inference per model succeeded recently.",
    response_model=HealthStatus,
    responses=_error_responses(503),
)
async def ready(request: Request) -> HealthStatus:
    health = _gateway(request).health
    problems = health.problems()
    if problems:
        raise GatewayError(ErrorKind.NOT_READY, "not ready: " + "; ".join(problems))
    return HealthStatus(status="ready", models=health.model_report())


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses=_error_responses(401),
)
async def metrics(request: Request) -> Response:
    gateway = _gateway(request)
    if gateway.settings.metrics_require_auth:
        gateway.tokens.check(request.headers.get("authorization"))
    body, content_type = gateway.metrics.render()
    return Response(body, media_type=content_type)


async def _answer(request: Request, model_id: str | None) -> Response:
    gateway = _gateway(request)
    settings = gateway.settings
    gateway.tokens.check(request.headers.get("authorization"))
    model = await _resolve_model(gateway, model_id)
    state = context.current()
    state.model = model.model_id

    with gateway.limiter.slot():
        deadline = time.monotonic() + settings.request_timeout_s
        try:
            parsed = await _read_request(request, gateway, model, deadline)
            answers = await _run_inference(request, gateway, model, parsed, deadline)
        except asyncio.TimeoutError:
            raise GatewayError(
                ErrorKind.TIMEOUT,
                f"the request timed out after {settings.request_timeout_s:g} seconds",
            ) from None
        except ClientDisconnected:
            logger.debug("Client disconnected; its Triton calls were cancelled")
            return Response(status_code=CLIENT_CLOSED_REQUEST)

    results = [_shape(items, parsed) for items in answers]
    return JSONResponse(results if parsed.batched else results[0])


async def _resolve_model(gateway: Gateway, model_id: str | None) -> ModelInfo:
    try:
        return gateway.registry.resolve(model_id)
    except GatewayError as error:
        if error.kind is ErrorKind.NOT_READY:
            # Paces clients that retry 503 at once, in a loop.
            await asyncio.sleep(gateway.settings.not_ready_delay_s)
        raise


async def _run_inference(
    request: Request,
    gateway: Gateway,
    model: ModelInfo,
    parsed: ParsedRequest,
    deadline: float,
) -> list[list[dict]]:
    started = time.perf_counter()
    try:
        return await run_with_limits(
            gateway.runner.answer(model, parsed, deadline - time.monotonic()),
            request.receive,
            deadline - time.monotonic(),
        )
    finally:
        context.current().add_timing("triton", time.perf_counter() - started)


async def _read_request(
    request: Request, gateway: Gateway, model: ModelInfo, deadline: float
) -> ParsedRequest:
    settings = gateway.settings
    started = time.perf_counter()
    body = await asyncio.wait_for(
        read_body(request, settings.max_body_bytes), deadline - time.monotonic()
    )
    parsed = parse_request(
        body,
        max_batch_inputs=settings.max_batch_inputs,
        model_max_length=model.model_max_length,
        model_id=model.model_id,
    )
    context.current().add_timing("parse", time.perf_counter() - started)
    if settings.log_request_bodies:
        for index, pair in enumerate(parsed.pairs):
            logger.debug(
                "Pair %d: question=%r context=%r", index, pair.question, pair.context
            )
    return parsed


def _shape(answers: list[dict], parsed: ParsedRequest) -> dict | list[dict]:
    """Return one answer object for top_k 1 (or unset), else the list."""
    if parsed.top_k == 1:
        return answers[0]
    return answers


def _gateway(request: Request) -> Gateway:
    return request.app.state.gateway

"""The FastAPI application: routes, error handlers, lifespan and OpenAPI schema."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from gateway import context
from gateway.errors import ErrorKind, GatewayError, error_response
from gateway.middleware import RequestMiddleware
from gateway.routes import router
from gateway.schemas import QARequest
from gateway.settings import Settings
from gateway.state import Gateway

logger = logging.getLogger(__name__)

API_DESCRIPTION = """\
Extractive question answering with the request and response format of the
Hugging Face Inference API `question-answering` task, served by NVIDIA Triton.

Every error response is a JSON object `{"error": "<message>", "error_type":
"<kind>"}`. When bearer tokens are configured, inference and model listing need
`Authorization: Bearer <token>`.
"""

_HTTP_ERROR_KINDS = {
    404: ErrorKind.NOT_FOUND,
    405: ErrorKind.METHOD_NOT_ALLOWED,
    413: ErrorKind.PAYLOAD_TOO_LARGE,
}


def create_app(
    settings: Settings | None = None, triton_client: Any | None = None
) -> FastAPI:
    """Build the gateway app; `triton_client` replaces the gRPC client in tests."""
    settings = settings or Settings()
    gateway = Gateway(settings, triton_client)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await gateway.start()
        try:
            yield
        finally:
            await gateway.stop()

    app = FastAPI(
        title="triton-qa gateway",
        version="0.1.0",
        description=API_DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.gateway = gateway
    app.include_router(router)
    app.add_middleware(RequestMiddleware, metrics=gateway.metrics)
    _add_error_handlers(app, settings)
    app.openapi = lambda: _openapi(app, gateway)
    return app


def _add_error_handlers(app: FastAPI, settings: Settings) -> None:
    def respond(error: GatewayError) -> JSONResponse:
        request = context.current()
        if request is not None:
            request.error_type = error.error_type
        return error_response(error, retry_after_s=settings.retry_after_s)

    async def on_gateway_error(request: Request, error: GatewayError) -> JSONResponse:
        return respond(error)

    async def on_http_error(request: Request, error: HTTPException) -> JSONResponse:
        kind = _HTTP_ERROR_KINDS.get(error.status_code, ErrorKind.INVALID_BODY)
        if kind is ErrorKind.NOT_FOUND:
            message = f"no endpoint at {request.url.path}; see /docs for the API"
        elif kind is ErrorKind.METHOD_NOT_ALLOWED:
            allowed = (error.headers or {}).get("Allow", "")
            message = (
                f"method {request.method} is not allowed on {request.url.path}; "
                f"allowed: {allowed}"
            )
        else:
            message = str(error.detail)
        return respond(GatewayError(kind, message, headers=error.headers))

    async def on_validation_error(
        request: Request, error: RequestValidationError
    ) -> JSONResponse:
        details = "; ".join(item.get("msg", "") for item in error.errors())
        return respond(GatewayError(ErrorKind.VALIDATION_ERROR, details))

    app.add_exception_handler(GatewayError, on_gateway_error)
    app.add_exception_handler(HTTPException, on_http_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)


def _openapi(app: FastAPI, gateway: Gateway) -> dict[str, Any]:
    if app.openapi_schema is not None:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
    )
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    # The inference routes read the body themselves, to tell 400 from 422 and
    # to word each message, so FastAPI does not add the request models.
    request_schema = QARequest.model_json_schema(
        ref_template="#/components/schemas/{model}"
    )
    components.update(request_schema.pop("$defs", {}))
    components[QARequest.__name__] = request_schema
    if gateway.tokens.enabled:
        _add_bearer_security(schema)
    app.openapi_schema = schema
    return schema


def _add_bearer_security(schema: dict[str, Any]) -> None:
    schema["components"]["securitySchemes"] = {
        "bearerAuth": {"type": "http", "scheme": "bearer"}
    }
    for path, operations in schema["paths"].items():
        if path == "/" or path.startswith("/models"):
            for operation in operations.values():
                operation["security"] = [{"bearerAuth": []}]

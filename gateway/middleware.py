"""ASGI middleware around every request: request id, timing, metrics, 500 guard."""

from __future__ import annotations

import logging
import time

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway import context
from gateway.errors import ErrorKind, GatewayError, error_response
from gateway.metrics import Metrics

logger = logging.getLogger(__name__)


class RequestMiddleware:
    """Set up the request context and report each finished request.

    It adds `X-Request-Id` and `Server-Timing` to every response, records the
    request metrics, logs one DEBUG line per request, and turns an unhandled
    exception into the 500 error envelope so that no other body shape leaves
    the gateway.
    """

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming_id = Headers(scope=scope).get(context.REQUEST_ID_HEADER)
        request_id = context.choose_request_id(incoming_id)
        token = context.start(request_id)
        request = context.current()
        started = time.perf_counter()
        status = 0

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                request.add_timing("total", time.perf_counter() - started)
                headers = MutableHeaders(scope=message)
                headers[context.REQUEST_ID_HEADER] = request_id
                headers["Server-Timing"] = server_timing(request.timings_ms)
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except Exception:
            logger.exception("Unhandled error on %s %s", scope["method"], scope["path"])
            if status == 0:
                error = GatewayError(
                    ErrorKind.INTERNAL_ERROR,
                    f"internal error; report the request id {request_id}",
                )
                request.error_type = error.error_type
                await error_response(error)(scope, receive, send_with_headers)
        finally:
            self._record(scope, request, status, time.perf_counter() - started)
            context.reset(token)

    def _record(
        self,
        scope: Scope,
        request: context.RequestContext,
        status: int,
        seconds: float,
    ) -> None:
        route = scope.get("route")
        endpoint = getattr(route, "path", "unmatched")
        self.metrics.requests.labels(endpoint, request.model, str(status)).inc()
        self.metrics.request_seconds.labels(endpoint, request.model).observe(seconds)
        if request.error_type:
            self.metrics.rejections.labels(request.error_type).inc()
        logger.debug(
            "%s %s -> %d in %.1f ms%s%s",
            scope["method"],
            scope["path"],
            status,
            seconds * 1000.0,
            f", model {request.model}" if request.model else "",
            f", error_type {request.error_type}" if request.error_type else "",
        )


def server_timing(timings_ms: dict[str, float]) -> str:
    """Format stage durations as a Server-Timing header value."""
    return ", ".join(f"{name};dur={value:.1f}" for name, value in timings_ms.items())

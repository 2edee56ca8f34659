"""Request limits: body size, requests in flight, time, and client disconnects."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Iterator
from typing import TypeVar

from starlette.requests import ClientDisconnect, Request
from starlette.types import Receive

from gateway.errors import ErrorKind, GatewayError
from gateway.metrics import Metrics

T = TypeVar("T")


class ClientDisconnected(Exception):
    """The client closed the connection before the response was ready."""


class InFlightLimiter:
    """Admits at most `limit` inference requests at once, and never queues."""

    def __init__(self, limit: int, metrics: Metrics) -> None:
        self._limit = limit
        self._count = 0
        self._metrics = metrics

    @contextlib.contextmanager
    def slot(self) -> Iterator[None]:
        """Hold one slot, or raise GatewayError(429) when all are taken."""
        if self._count >= self._limit:
            raise GatewayError(
                ErrorKind.OVERLOADED,
                f"the gateway is processing its limit of {self._limit} requests; "
                "retry after the time in Retry-After",
            )
        self._count += 1
        self._metrics.in_flight.inc()
        try:
            yield
        finally:
            self._count -= 1
            self._metrics.in_flight.dec()


async def read_body(request: Request, max_bytes: int) -> bytes:
    """Read the request body, or raise GatewayError(413) past `max_bytes`.

    The declared Content-Length is checked first, and the received size while
    reading, because a chunked body declares no length.
    """
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise _too_large(max_bytes, f"Content-Length is {declared} bytes")
    chunks = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_bytes:
                raise _too_large(max_bytes, f"more than {max_bytes} bytes were sent")
            chunks.append(chunk)
    except ClientDisconnect:
        raise ClientDisconnected() from None
    return b"".join(chunks)


async def run_with_limits(work: Awaitable[T], receive: Receive, timeout_s: float) -> T:
    """Await `work`, cancelling it on timeout or when the client leaves.

    Raises asyncio.TimeoutError after `timeout_s` seconds and ClientDisconnected
    when the client closes the connection first.

    Cancelling the task cancels its gRPC calls, so Triton stops work whose
    result no client waits for.
    """
    work_task = asyncio.ensure_future(work)
    disconnect_task = asyncio.ensure_future(_wait_for_disconnect(receive))
    try:
        done, _ = await asyncio.wait(
            {work_task, disconnect_task},
            timeout=timeout_s,
            return_when=asyncio.FIRST_COMPLETED,
        )
    finally:
        disconnect_task.cancel()
        if not work_task.done():
            work_task.cancel()
            await asyncio.gather(work_task, return_exceptions=True)
    if work_task in done:
        return work_task.result()
    if disconnect_task in done:
        raise ClientDisconnected()
    raise asyncio.TimeoutError()


async def _wait_for_disconnect(receive: Receive) -> None:
    # After the body is read, the server's next message is http.disconnect.
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


def _too_large(max_bytes: int, detail: str) -> GatewayError:
    return GatewayError(
        ErrorKind.PAYLOAD_TOO_LARGE,
        f"request body is too large: {detail}, and the limit is {max_bytes} bytes",
    )

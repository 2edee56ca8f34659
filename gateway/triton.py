"""Calls to the Triton ensembles: window chunks, merging and error mapping.

One ensemble call runs at most `window_batch_size` windows of a context. The
first call reports how many windows the context needs. The remaining chunks
then run a few at a time, and `ChunkMerger`, which shares its merging with the
postprocessing step, merges their candidates in window order.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Iterable, Iterator
from typing import Any, NoReturn, TypeVar

import numpy as np
from tritonclient.grpc import InferInput, InferRequestedOutput
from tritonclient.utils import InferenceServerException

from gateway import context
from gateway.errors import STATUS_BY_KIND, ErrorKind, GatewayError
from gateway.metrics import Metrics
from gateway.registry import ModelInfo
from gateway.schemas import QAInput
from gateway.validation import ParsedRequest
from python_backend import protocol
from python_backend.decoding import ChunkMerger

logger = logging.getLogger(__name__)

T = TypeVar("T")

# gRPC details that mean the channel never reached Triton, as opposed to
# Triton returning UNAVAILABLE for a model that is not loaded.
# NOTE: grpcio does not promise these texts; they were checked with grpcio 1.85.
_CONNECTION_FAILURES = (
    "failed to connect",
    "connection refused",
    "connections to all backends failing",
    "socket closed",
    "connection reset",
    "dns resolution failed",
    "name resolution",
)
_MAX_TRITON_MESSAGE_CHARS = 300
# Pseudo-status for UNAVAILABLE caused by a connection failure.
_CONNECTION_FAILED = "CONNECTION_FAILED"
_NOT_READY = (
    ErrorKind.NOT_READY,
    "model {model} is not ready: {detail}",
    logging.WARNING,
)
# gRPC status to (error kind, message template, log level).
_GRPC_ERRORS = {
    _CONNECTION_FAILED: (
        ErrorKind.TRITON_UNAVAILABLE,
        "the inference server is unreachable: {detail}",
        logging.WARNING,
    ),
    "UNAVAILABLE": _NOT_READY,
    "NOT_FOUND": _NOT_READY,
    "DEADLINE_EXCEEDED": (
        ErrorKind.TIMEOUT,
        "the inference call to model {model} timed out",
        logging.WARNING,
    ),
    "RESOURCE_EXHAUSTED": (
        ErrorKind.OVERLOADED,
        "the inference server is overloaded: {detail}",
        logging.WARNING,
    ),
}
_OTHER_GRPC_ERROR = (
    ErrorKind.TRITON_ERROR,
    "the inference server failed on model {model}: {detail}",
    logging.ERROR,
)
# Statuses a Python-backend step may ask for, and the kind that carries each.
_STEP_ERROR_KINDS = {
    STATUS_BY_KIND[kind]: kind
    for kind in (
        ErrorKind.INVALID_BODY,
        ErrorKind.PAYLOAD_TOO_LARGE,
        ErrorKind.VALIDATION_ERROR,
    )
}


class TritonRunner:
    """Answers question-context pairs with a model's ensemble."""

    def __init__(
        self,
        client: Any,
        metrics: Metrics,
        triton_url: str,
        chunks_in_flight: int = 4,
    ) -> None:
        self._client = client
        self._metrics = metrics
        self._triton_url = triton_url
        self._chunks_in_flight = chunks_in_flight

    async def answer(
        self, model: ModelInfo, request: ParsedRequest, timeout_s: float
    ) -> list[list[dict]]:
        """Return the answer list of every pair of `request`, in order."""
        deadline = time.monotonic() + timeout_s
        calls = [
            self._answer_pair(model, pair, request, deadline, index)
            for index, pair in enumerate(request.pairs)
        ]
        try:
            return await gather_or_cancel(calls)
        except GatewayError as error:
            if request.batched and error.status < 500 and error.pair_index is not None:
                error.message = f"inputs[{error.pair_index}]: {error.message}"
            raise

    async def _answer_pair(
        self,
        model: ModelInfo,
        pair: QAInput,
        request: ParsedRequest,
        deadline: float,
        index: int,
    ) -> list[dict]:
        try:
            first = await self._infer(model, pair, request.parameters, 0, deadline)
            self._metrics.windows.labels(model.model_id).observe(first["num_windows"])
            if "answers" in first:
                return check_answers(first["answers"], pair.context, model.model_id)
            merger = ChunkMerger()
            merger.add(first)
            covered = first["window_start"] + first["window_count"]
            starts = range(covered, first["num_windows"], model.window_batch_size)
            chunks = (
                self._infer(model, pair, request.parameters, start, deadline)
                for start in starts
            )
            async for result in in_order_bounded(chunks, self._chunks_in_flight):
                merger.add(result)
        except GatewayError as error:
            error.pair_index = index
            raise
        answers = merger.answers(request.top_k, request.handle_impossible_answer)
        return check_answers(answers, pair.context, model.model_id)

    async def _infer(
        self,
        model: ModelInfo,
        pair: QAInput,
        parameters: dict[str, int | bool],
        window_start: int,
        deadline: float,
    ) -> dict:
        inputs = [
            _text_input(protocol.QUESTION, pair.question),
            _text_input(protocol.CONTEXT, pair.context),
        ]
        call_parameters = {
            **parameters,
            "window_start": window_start,
            "window_limit": model.window_batch_size,
        }
        request = context.current()
        request_id = f"{request.request_id}@{window_start}" if request else ""
        outcome = "ok"
        started = time.perf_counter()
        try:
            result = await self._client.infer(
                model.ensemble,
                inputs,
                outputs=[InferRequestedOutput(protocol.RESULT)],
                request_id=request_id,
                parameters=call_parameters,
                client_timeout=max(deadline - time.monotonic(), 0.001),
            )
        except InferenceServerException as error:
            mapped = self.map_error(error, model)
            outcome = mapped.error_type
            raise mapped from None
        except asyncio.CancelledError:
            outcome = "cancelled"
            raise
        finally:
            elapsed = time.perf_counter() - started
            self._metrics.triton_seconds.labels(model.model_id).observe(elapsed)
            self._metrics.triton_calls.labels(model.model_id, outcome).inc()
        return parse_result(result.as_numpy(protocol.RESULT), model.model_id)

    def map_error(
        self, error: InferenceServerException, model: ModelInfo
    ) -> GatewayError:
        """Turn a Triton error into the gateway error for the client."""
        message = error.message() or str(error)
        step_error = parse_step_error(message)
        if step_error is not None:
            return step_error

        status = (error.status() or "").removeprefix("StatusCode.")
        if status == "UNAVAILABLE" and _is_connection_failure(message):
            status = _CONNECTION_FAILED
        kind, template, level = _GRPC_ERRORS.get(status, _OTHER_GRPC_ERROR)
        logger.log(
            level,
            "Triton call to %s at %s failed with status %s: %s",
            model.ensemble,
            self._triton_url,
            status or "none",
            message,
        )
        detail = message[:_MAX_TRITON_MESSAGE_CHARS]
        return GatewayError(kind, template.format(model=model.model_id, detail=detail))


async def gather_or_cancel(calls: Iterable[Awaitable[T]]) -> list[T]:
    """Run `calls` concurrently; on the first failure cancel the others and raise."""
    tasks = [asyncio.ensure_future(call) for call in calls]
    try:
        return list(await asyncio.gather(*tasks))
    finally:
        for task in tasks:
            task.cancel()


async def in_order_bounded(
    calls: Iterator[Awaitable[T]], limit: int
) -> AsyncIterator[T]:
    """Yield the results of `calls` in order, running at most `limit` at once.

    A long context needs many chunk calls, and each carries the whole context,
    so sending them all at once would hold every copy in memory and push other
    clients' requests to the back of Triton's queue. On a failure the calls
    still running are cancelled.
    """
    pending: deque[asyncio.Future] = deque()
    try:
        for call in calls:
            pending.append(asyncio.ensure_future(call))
            if len(pending) >= limit:
                yield await pending.popleft()
        while pending:
            yield await pending.popleft()
    finally:
        for task in pending:
            task.cancel()


def parse_step_error(message: str) -> GatewayError | None:
    """Extract the error that a Python-backend step reported, if any."""
    marker = message.find(protocol.ERROR_MARKER)
    if marker < 0:
        return None
    text = message[marker + len(protocol.ERROR_MARKER) :].lstrip()
    try:
        body, _ = json.JSONDecoder().raw_decode(text)
    except ValueError:
        return None
    if not isinstance(body, dict) or not isinstance(body.get("error"), str):
        return None
    kind = _STEP_ERROR_KINDS.get(body.get("status"), ErrorKind.VALIDATION_ERROR)
    error_type = body.get("error_type")
    if not isinstance(error_type, str) or not error_type:
        error_type = kind.value
    return GatewayError(kind, body["error"], error_type=error_type)


def parse_result(raw: np.ndarray | None, model_id: str) -> dict:
    """Decode and check the RESULT tensor of one ensemble call."""
    try:
        result = json.loads(raw.reshape(-1)[0])
        _check_result(result)
    except (AttributeError, IndexError, TypeError, ValueError, KeyError) as error:
        logger.error("Model %s returned an invalid RESULT: %s", model_id, error)
        raise GatewayError(
            ErrorKind.TRITON_ERROR, f"model {model_id} returned an invalid result"
        ) from None
    return result


def check_answers(answers: Any, text: str, model_id: str) -> list[dict]:
    """Check that `answers` is a non-empty list of answers found in `text`.

    Each answer must equal `text[start:end]`, so a decoding fault in a model
    step becomes a 502 instead of a wrong answer.
    """
    if not isinstance(answers, list) or not answers:
        _invalid_answers(model_id, "no answers")
    for item in answers:
        if not _is_valid_answer(item, text):
            _invalid_answers(model_id, f"invalid answer {item!r:.200}")
    return answers


def _is_valid_answer(item: Any, text: str) -> bool:
    if not isinstance(item, dict):
        return False
    answer, score = item.get("answer"), item.get("score")
    start, end = item.get("start"), item.get("end")
    return (
        isinstance(answer, str)
        and isinstance(score, (int, float))
        and not isinstance(score, bool)
        and math.isfinite(score)
        and isinstance(start, int)
        and isinstance(end, int)
        and 0 <= start <= end <= len(text)
        and text[start:end] == answer
    )


def _invalid_answers(model_id: str, detail: str) -> NoReturn:
    logger.error("Model %s returned invalid answers: %s", model_id, detail)
    raise GatewayError(
        ErrorKind.TRITON_ERROR, f"model {model_id} returned an invalid result"
    )


def _check_result(result: Any) -> None:
    if not isinstance(result, dict):
        raise TypeError(f"RESULT is a {type(result).__name__}, not an object")
    for key in ("num_windows", "window_start", "window_count"):
        if not isinstance(result[key], int) or result[key] < 0:
            raise ValueError(f"{key} is {result[key]!r}")
    if "answers" not in result:
        if not isinstance(result["candidates"], list):
            raise TypeError("candidates is not a list")
        if result["window_count"] < 1:
            raise ValueError("a partial RESULT covers no window")
        float(result["null_score"])


def _is_connection_failure(message: str) -> bool:
    lowered = message.lower()
    return any(text in lowered for text in _CONNECTION_FAILURES)


def _text_input(name: str, text: str) -> InferInput:
    tensor = InferInput(name, [1], "BYTES")
    tensor.set_data_from_numpy(np.array([text.encode("utf-8")], dtype=np.object_))
    return tensor

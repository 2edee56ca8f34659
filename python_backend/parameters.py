"""Parse and check the request parameters that reach the Triton steps.

The gateway validates requests before they reach Triton, but the ensemble can
also be called directly over gRPC or HTTP, so every step checks what it reads.
"""

from __future__ import annotations

import json
from typing import Any

from python_backend import protocol
from python_backend.tokenization import RequestError

_MINIMUMS = {
    "top_k": 1,
    "max_answer_len": 1,
    "max_seq_len": 1,
    "max_question_len": 1,
    "doc_stride": 0,
    "window_start": 0,
    "window_limit": 1,
}


def parse_parameters(raw: str | None) -> dict[str, Any]:
    """Return the known parameters of a request, checked for type and range.

    Unknown names are ignored here, because Triton itself may add parameters;
    the gateway rejects unknown names from HTTP clients.
    """
    if not raw:
        return {}
    try:
        values = json.loads(raw)
    except ValueError as error:
        raise RequestError("parameters", f"request parameters are not JSON: {error}")
    if not isinstance(values, dict):
        raise RequestError("parameters", "request parameters must be a JSON object")
    parsed: dict[str, Any] = {}
    for name in protocol.INT_PARAMETERS + protocol.WINDOW_PARAMETERS:
        if name not in values:
            continue
        value = values[name]
        if isinstance(value, bool) or not isinstance(value, int):
            raise RequestError(
                name, f"{name}={value!r} is invalid; it must be an integer"
            )
        if value < _MINIMUMS[name]:
            raise RequestError(
                name,
                f"{name}={value} is invalid; it must be at least {_MINIMUMS[name]}",
            )
        parsed[name] = value
    for name in protocol.BOOL_PARAMETERS:
        if name not in values:
            continue
        value = values[name]
        if not isinstance(value, bool):
            raise RequestError(
                name, f"{name}={value!r} is invalid; it must be a boolean"
            )
        parsed[name] = value
    return parsed

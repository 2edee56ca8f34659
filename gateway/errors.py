"""The error envelope: one JSON shape and one status table for every failure.

Every error response is `{"error": "<message>", "error_type": "<kind>"}` with
`Content-Type: application/json`, because both Hugging Face clients show only a
JSON object's `error` string and crash on other bodies.
"""

from __future__ import annotations

import enum

from fastapi.responses import JSONResponse


class ErrorKind(str, enum.Enum):
    """Kinds of failure; the value is the `error_type` of the response body."""

    INVALID_JSON = "invalid_json"
    INVALID_BODY = "invalid_body"
    VALIDATION_ERROR = "validation_error"
    UNAUTHORIZED = "unauthorized"
    MODEL_NOT_FOUND = "model_not_found"
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    OVERLOADED = "overloaded"
    TRITON_UNAVAILABLE = "triton_unavailable"
    TRITON_ERROR = "triton_error"
    NOT_READY = "not_ready"
    TIMEOUT = "timeout"
    INTERNAL_ERROR = "internal_error"


STATUS_BY_KIND: dict[ErrorKind, int] = {
    ErrorKind.INVALID_JSON: 400,
    ErrorKind.INVALID_BODY: 400,
    ErrorKind.VALIDATION_ERROR: 422,
    ErrorKind.UNAUTHORIZED: 401,
    ErrorKind.MODEL_NOT_FOUND: 404,
    ErrorKind.NOT_FOUND: 404,
    ErrorKind.METHOD_NOT_ALLOWED: 405,
    ErrorKind.PAYLOAD_TOO_LARGE: 413,
    ErrorKind.OVERLOADED: 429,
    ErrorKind.TRITON_UNAVAILABLE: 502,
    ErrorKind.TRITON_ERROR: 502,
    ErrorKind.NOT_READY: 503,
    ErrorKind.TIMEOUT: 504,
    ErrorKind.INTERNAL_ERROR: 500,
}

# Kinds whose responses carry a Retry-After header.
RETRY_AFTER_KINDS = frozenset({ErrorKind.OVERLOADED, ErrorKind.NOT_READY})


class GatewayError(Exception):
    """A failure that becomes an error response.

    `error_type` is normally `kind.value`. Errors that a Triton step reports
    keep the step's own `error_type`, with the status of `kind`.
    """

    def __init__(
        self,
        kind: ErrorKind,
        message: str,
        *,
        error_type: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.error_type = error_type or kind.value
        self.headers = headers or {}
        # Index of the question-context pair that failed, in a batch request.
        self.pair_index: int | None = None

    @property
    def status(self) -> int:
        """HTTP status of the response."""
        return STATUS_BY_KIND[self.kind]


def error_response(
    error: GatewayError, *, retry_after_s: int | None = None
) -> JSONResponse:
    """Build the JSON error response for `error`."""
    headers = dict(error.headers)
    if error.kind is ErrorKind.UNAUTHORIZED:
        headers["WWW-Authenticate"] = "Bearer"
    if error.kind in RETRY_AFTER_KINDS and retry_after_s is not None:
        headers.setdefault("Retry-After", str(retry_after_s))
    body = {"error": _printable(error.message), "error_type": error.error_type}
    return JSONResponse(body, status_code=error.status, headers=headers)


def _printable(message: str) -> str:
    # A message may quote client text, and an unpaired surrogate in it would
    # make the UTF-8 encoding of the response fail.
    return message.encode("utf-8", "backslashreplace").decode("utf-8")

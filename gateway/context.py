"""Per-request state shared by the middleware, the handlers and the log filter."""

from __future__ import annotations

import contextvars
import re
import uuid
from dataclasses import dataclass, field

REQUEST_ID_HEADER = "X-Request-Id"
# Client ids are echoed in headers and logs, so only short plain ids are kept.
_VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._:/+=-]{1,128}")


@dataclass
class RequestContext:
    """State of one request: its id, model, error type and stage timings."""

    request_id: str
    model: str = ""
    error_type: str = ""
    timings_ms: dict[str, float] = field(default_factory=dict)

    def add_timing(self, name: str, seconds: float) -> None:
        """Add `seconds` to the stage `name`, in milliseconds."""
        self.timings_ms[name] = self.timings_ms.get(name, 0.0) + seconds * 1000.0


_current: contextvars.ContextVar[RequestContext | None] = contextvars.ContextVar(
    "triton_qa_request", default=None
)


def current() -> RequestContext | None:
    """Return the context of the request being handled, if any."""
    return _current.get()


def start(request_id: str) -> contextvars.Token:
    """Make a new context current; pass the token to `reset` when done."""
    return _current.set(RequestContext(request_id=request_id))


def reset(token: contextvars.Token) -> None:
    """Restore the context that was current before `start`."""
    _current.reset(token)


def choose_request_id(header_value: str | None) -> str:
    """Return the client's request id if it is a plain short id, else a new one."""
    if header_value and _VALID_REQUEST_ID.fullmatch(header_value):
        return header_value
    return uuid.uuid4().hex

"""Logging setup: text or JSON lines, with the request id on every record."""

from __future__ import annotations

import logging
import sys

from pythonjsonlogger.json import JsonFormatter

from gateway import context

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"
JSON_FIELDS = "%(asctime)s %(levelname)s %(name)s %(request_id)s %(message)s"
# Loggers of the libraries the gateway runs on; they log through the same handler.
LIBRARY_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "fastapi")
# Loggers that write a line per event-loop step or gRPC call at DEBUG.
NOISY_LOGGERS = ("grpc", "asyncio")


class RequestIdFilter(logging.Filter):
    """Set `record.request_id` to the current request's id, or "-" outside one."""

    def filter(self, record: logging.LogRecord) -> bool:
        request = context.current()
        record.request_id = request.request_id if request else "-"
        return True


def configure_logging(level: str, json_lines: bool) -> None:
    """Send all logs to stderr through one handler, as text or JSON lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RequestIdFilter())
    if json_lines:
        handler.setFormatter(
            JsonFormatter(JSON_FIELDS, rename_fields={"levelname": "level"})
        )
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name in LIBRARY_LOGGERS:
        library_logger = logging.getLogger(name)
        library_logger.handlers.clear()
        library_logger.propagate = True
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(max(root.level, logging.INFO))

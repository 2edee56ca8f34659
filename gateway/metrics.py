"""Prometheus metrics of the gateway, in a registry of their own per app."""

from __future__ import annotations

import prometheus_client
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

# The *_created series double the output and no dashboard here reads them.
prometheus_client.disable_created_metrics()

# Request latencies span sub-millisecond errors to long contexts of many windows.
LATENCY_BUCKETS_S = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)


class Metrics:
    """The gateway's counters, gauges and histograms."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "triton_qa_requests_total",
            "HTTP requests by endpoint, model and status code.",
            ["endpoint", "model", "status"],
            registry=self.registry,
        )
        self.request_seconds = Histogram(
            "triton_qa_request_duration_seconds",
            "Time from receiving a request to sending its response headers.",
            ["endpoint", "model"],
            buckets=LATENCY_BUCKETS_S,
            registry=self.registry,
        )
        self.triton_seconds = Histogram(
            "triton_qa_triton_call_duration_seconds",
            "Duration of one Triton inference call (one chunk of windows).",
            ["model"],
            buckets=LATENCY_BUCKETS_S,
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "triton_qa_requests_in_flight",
            "Inference requests being processed.",
            registry=self.registry,
        )
        self.rejections = Counter(
            "triton_qa_rejections_total",
            "Requests answered with an error, by error_type.",
            ["reason"],
            registry=self.registry,
        )
        self.triton_calls = Counter(
            "triton_qa_triton_calls_total",
            "Triton inference calls by model and outcome (ok or the error_type).",
            ["model", "outcome"],
            registry=self.registry,
        )
        self.windows = Histogram(
            "triton_qa_windows_per_pair",
            "Windows that one question-context pair needed.",
            ["model"],
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
            registry=self.registry,
        )

    def render(self) -> tuple[bytes, str]:
        """Return the exposition text and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

"""`triton-qa serve`: run tritonserver and the gateway until Ctrl-C or SIGTERM."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

from triton_qa.tritonserver import (
    TritonPorts,
    TritonProcess,
    stop_process,
    terminate_with_parent,
    wait_for_http,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServeOptions:
    model_repository: Path
    host: str = "127.0.0.1"
    port: int = 8080
    triton_ports: TritonPorts = field(default_factory=TritonPorts)
    cache_dir: Path = Path(".cache/triton-qa")
    triton_log: Path | None = None
    startup_timeout_s: float = 300.0
    gateway_args: tuple[str, ...] = ()


class Stack:
    """tritonserver plus the gateway, started and stopped together."""

    def __init__(self, options: ServeOptions):
        self.options = options
        self.triton = TritonProcess(
            options.model_repository,
            options.triton_ports,
            options.cache_dir,
            log_path=options.triton_log,
        )
        self.gateway: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://{self.options.host}:{self.options.port}"

    def start(self) -> None:
        self.triton.start()
        try:
            self.triton.wait_ready(self.options.startup_timeout_s)
            self.gateway = subprocess.Popen(
                self.gateway_command(),
                env=self.gateway_env(),
                preexec_fn=terminate_with_parent,  # noqa: PLW1509 - one libc call
            )
            wait_for_http(
                f"{self.url}/health/ready",
                self.options.startup_timeout_s,
                self.gateway,
                "gateway",
            )
        except BaseException:
            self.stop()
            raise

    def gateway_command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "gateway",
            "--host",
            self.options.host,
            "--port",
            str(self.options.port),
            *self.options.gateway_args,
        ]

    def gateway_env(self) -> dict[str, str]:
        env = dict(os.environ)
        grpc_port = self.options.triton_ports.grpc
        env["TRITON_QA_TRITON_GRPC_URL"] = f"127.0.0.1:{grpc_port}"
        return env

    def stop(self) -> None:
        stop_process(self.gateway, 15.0, "gateway")
        self.triton.stop()


def serve(options: ServeOptions) -> int:
    """Start the stack, print its URL, and block until a signal arrives."""
    stack = Stack(options)
    stopping = threading.Event()
    started = threading.Event()

    def request_stop(signum, _frame) -> None:
        logger.info("received %s, shutting down", signal.Signals(signum).name)
        if not started.is_set() and not stopping.is_set():
            # Still starting: unwind start(), which stops what it started.
            stopping.set()
            raise KeyboardInterrupt
        stopping.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    try:
        stack.start()
    except KeyboardInterrupt:
        return 0
    started.set()
    print(f"triton-qa is ready at {stack.url}", flush=True)
    try:
        while not stopping.wait(1.0):
            if stack.triton.process.poll() is not None:
                logger.error(
                    "tritonserver exited with %s", stack.triton.process.returncode
                )
                return 1
            if stack.gateway is not None and stack.gateway.poll() is not None:
                logger.error("gateway exited with %s", stack.gateway.returncode)
                return 1
    finally:
        stack.stop()
    return 0

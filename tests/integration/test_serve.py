"""`triton-qa serve` as a user runs it: build on start, answer, stop on a signal."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest

from tests.conftest import ROOT, free_port
from triton_qa.tritonserver import wait_for_http

pytestmark = pytest.mark.integration


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def serve_command(ports: list[int], *extra: str) -> list[str]:
    """Return `triton-qa serve` on the gateway and three Triton ports given."""
    flags = [
        "--port",
        "--triton-http-port",
        "--triton-grpc-port",
        "--triton-metrics-port",
    ]
    command = [sys.executable, "-m", "triton_qa.cli", "serve", *extra]
    for flag, port in zip(flags, ports):
        command += [flag, str(port)]
    return command


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_serve_model_folder_then_stop(checkpoints, tmp_path, stop_signal):
    ports = [free_port() for _ in range(4)]
    command = serve_command(ports, "--model", str(checkpoints["distilbert"]))
    log_path = tmp_path / "serve.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT
        )
    try:
        wait_for_http(
            f"http://127.0.0.1:{ports[0]}/health/ready", 240, process, "serve"
        )
        model_id = checkpoints["distilbert"].name
        response = httpx.post(
            f"http://127.0.0.1:{ports[0]}/models/{model_id}",
            json={
                "inputs": {"question": "Who ran it?", "context": "Alice ran the mill."}
            },
            timeout=60,
        )
        assert response.status_code == 200, response.text
        assert response.json()["answer"] in "Alice ran the mill."
        # serve prints its URL after its own readiness poll, which can lag ours.
        deadline = time.monotonic() + 10
        while "triton-qa is ready at" not in log_path.read_text():
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.2)

        process.send_signal(stop_signal)
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert not _port_open(ports[0]), "the gateway still listens after shutdown"
    assert not _port_open(ports[1]), "tritonserver still listens after shutdown"


def test_serve_killed_takes_children_down(tmp_path):
    """tritonserver and the gateway stop even when serve gets SIGKILL."""
    import psutil

    ports = [free_port() for _ in range(4)]
    command = serve_command(ports)
    with open(tmp_path / "serve.log", "wb") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT
        )
    try:
        wait_for_http(
            f"http://127.0.0.1:{ports[0]}/health/ready", 240, process, "serve"
        )
        descendants = psutil.Process(process.pid).children(recursive=True)
        assert len(descendants) >= 2
        process.kill()
        process.wait(30)
        _, alive = psutil.wait_procs(descendants, timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    for leftover in alive:
        leftover.kill()
    assert not alive, [child.name() for child in alive]
    assert not _port_open(ports[0])
    assert not _port_open(ports[1])

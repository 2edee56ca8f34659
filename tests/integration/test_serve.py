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


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_serve_model_folder_then_stop(checkpoints, tmp_path, stop_signal):
    ports = [free_port() for _ in range(4)]
    command = [
        sys.executable,
        "-m",
        "triton_qa.cli",
        "serve",
        "--model",
        str(checkpoints["distilbert"]),
        "--port",
        str(ports[0]),
        "--triton-http-port",
        str(ports[1]),
        "--triton-grpc-port",
        str(ports[2]),
        "--triton-metrics-port",
        str(ports[3]),
    ]
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
    command = [
        sys.executable,
        "-m",
        "triton_qa.cli",
        "serve",
        "--port",
        str(ports[0]),
        "--triton-http-port",
        str(ports[1]),
        "--triton-grpc-port",
        str(ports[2]),
        "--triton-metrics-port",
        str(ports[3]),
    ]
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

"""Extra gateway processes and a TCP relay for the gateway's integration tests.

The shared stack runs one gateway with default settings. These helpers start
further `python -m gateway` processes against the same tritonserver, with
other settings, and a relay that can cut the gateway off from Triton.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import BUNDLED_MODEL_ID, ROOT, free_port
from triton_qa.tritonserver import stop_process, wait_for_http


@dataclass
class GatewayProcess:
    """A running `python -m gateway` and the file it logs to."""

    url: str
    log_path: Path
    process: subprocess.Popen

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")


@contextlib.contextmanager
def gateway_process(
    triton_grpc: str,
    log_dir: Path,
    env: dict[str, str] | None = None,
    wait_path: str = "/health/ready",
) -> Iterator[GatewayProcess]:
    """Run a gateway against `triton_grpc` until the block ends."""
    port = free_port()
    full_env = {
        **os.environ,
        "TRITON_QA_TRITON_GRPC_URL": triton_grpc,
        "TRITON_QA_LOG_LEVEL": "DEBUG",
        "TRITON_QA_DEFAULT_MODEL": BUNDLED_MODEL_ID,
        **(env or {}),
    }
    log_path = log_dir / f"gateway-{port}.log"
    command = [sys.executable, "-m", "gateway", "--port", str(port)]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command, env=full_env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT
        )
    running = GatewayProcess(f"http://127.0.0.1:{port}", log_path, process)
    try:
        wait_for_http(running.url + wait_path, 60, process, "gateway")
        yield running
    except BaseException:
        print(running.log_text()[-5000:])
        raise
    finally:
        stop_process(process, 15.0, "gateway")


class TcpRelay:
    """Forwards TCP connections from a local port to `target` until closed."""

    def __init__(self, target: str) -> None:
        host, port = target.rsplit(":", 1)
        self._target = (host, int(port))
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self._listener.getsockname()[1]}"
        self._sockets: list[socket.socket] = [self._listener]
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        """Close the port and every forwarded connection."""
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self._sockets.clear()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self._target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._sockets += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(
                    target=self._pump, args=(source, sink), daemon=True
                ).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

"""Start the tritonserver that the `nvidia-pytriton` wheel bundles.

The wheel carries a real tritonserver 2.51 with the Python backend, but no ONNX
Runtime backend. Run directly, tritonserver needs three things:

- a backend folder with the Python backend and the stub built for the running
  Python version;
- the wheel's shared libraries and libpython on `LD_LIBRARY_PATH`;
- this virtual environment first on `PATH`, because the stub takes its
  site-packages from the first `python3` there and ignores `PYTHONPATH`.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

# prctl option from <sys/prctl.h>.
_PR_SET_PDEATHSIG = 1


# Loaded here, in the parent, so that the forked child only makes one call.
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


def terminate_with_parent() -> None:
    """Ask Linux to send SIGTERM to this process when its parent dies.

    Used as `preexec_fn` so that tritonserver and the gateway stop even when
    `triton-qa serve` itself is killed with SIGKILL. Elsewhere it does nothing.
    """
    if _LIBC is not None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class TritonNotFoundError(RuntimeError):
    """The bundled tritonserver is not installed."""


@dataclass(frozen=True)
class TritonPorts:
    http: int = 8000
    grpc: int = 8001
    metrics: int = 8002


def pytriton_root() -> Path:
    try:
        import pytriton
    except ImportError as error:
        raise TritonNotFoundError(
            "nvidia-pytriton is not installed; run `make serve` or "
            "`pip install nvidia-pytriton==0.7.0`"
        ) from error
    return Path(pytriton.__file__).parent


def backend_directory(cache_dir: Path) -> Path:
    """Return a backend folder for the Python backend of this Python version."""
    root = pytriton_root() / "tritonserver"
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    stub = root / "python_backend_stubs" / version / "triton_python_backend_stub"
    if not stub.exists():
        raise TritonNotFoundError(
            f"the tritonserver wheel has no Python {version} stub"
        )
    python_dir = cache_dir / "backends" / "python"
    python_dir.mkdir(parents=True, exist_ok=True)
    sources = [
        root / "backends" / "python" / "libtriton_python.so",
        root / "backends" / "python" / "triton_python_backend_utils.py",
        stub,
    ]
    for source in sources:
        target = python_dir / source.name
        if not target.exists() or target.stat().st_size != source.stat().st_size:
            shutil.copy2(source, target)
    return python_dir.parent


def triton_environment() -> dict[str, str]:
    env = dict(os.environ)
    libs = [
        str(pytriton_root().parent / "nvidia_pytriton.libs"),
        sysconfig.get_config_var("LIBDIR") or "",
    ]
    if env.get("LD_LIBRARY_PATH"):
        libs.append(env["LD_LIBRARY_PATH"])
    env["LD_LIBRARY_PATH"] = ":".join(path for path in libs if path)
    # sys.executable is the venv's python; its folder must come first on PATH
    # without resolving the symlink, or the stub finds the base interpreter.
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
    return env


def triton_command(
    model_repository: Path,
    ports: TritonPorts,
    cache_dir: Path,
    host: str = "127.0.0.1",
    extra_args: tuple[str, ...] = (),
) -> list[str]:
    binary = pytriton_root() / "tritonserver" / "bin" / "tritonserver"
    return [
        str(binary),
        f"--model-repository={model_repository}",
        f"--backend-directory={backend_directory(cache_dir)}",
        f"--http-address={host}",
        f"--grpc-address={host}",
        f"--metrics-address={host}",
        f"--http-port={ports.http}",
        f"--grpc-port={ports.grpc}",
        f"--metrics-port={ports.metrics}",
        "--exit-timeout-secs=10",
        "--log-verbose=0",
        *extra_args,
    ]


class TritonProcess:
    """A tritonserver child process."""

    def __init__(
        self,
        model_repository: Path,
        ports: TritonPorts,
        cache_dir: Path,
        log_path: Path | None = None,
        host: str = "127.0.0.1",
    ):
        self.model_repository = model_repository
        self.ports = ports
        self.cache_dir = cache_dir
        self.log_path = log_path
        self.host = host
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        command = triton_command(
            self.model_repository, self.ports, self.cache_dir, self.host
        )
        logger.info("starting tritonserver on ports %s", self.ports)
        with contextlib.ExitStack() as files:
            output = subprocess.DEVNULL
            if self.log_path:
                output = files.enter_context(open(self.log_path, "ab"))
            self.process = subprocess.Popen(
                command,
                env=triton_environment(),
                stdout=output,
                stderr=subprocess.STDOUT,
                preexec_fn=terminate_with_parent,  # noqa: PLW1509 - one libc call
            )

    def ready_url(self) -> str:
        return f"http://{self.host}:{self.ports.http}/v2/health/ready"

    def wait_ready(self, timeout_s: float) -> None:
        """Poll Triton's readiness until it returns 200; fail fast if it exits."""
        wait_for_http(self.ready_url(), timeout_s, self.process, "tritonserver")

    def stop(self, timeout_s: float = 30.0) -> None:
        stop_process(self.process, timeout_s, "tritonserver")


def wait_for_http(
    url: str, timeout_s: float, process: subprocess.Popen | None, name: str
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{name} exited with status {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.25)
    raise TimeoutError(f"{name} was not ready at {url} after {timeout_s:.0f} s")


def stop_process(process: subprocess.Popen | None, timeout_s: float, name: str) -> None:
    """Send SIGTERM, wait, then SIGKILL."""
    if process is None or process.poll() is not None:
        return
    logger.info("stopping %s (pid %d)", name, process.pid)
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        logger.warning("%s did not exit after %.0f s; killing it", name, timeout_s)
        process.kill()
        process.wait()

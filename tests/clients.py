"""Install and run the real Hugging Face clients for the integration tests.

Python: `huggingface_hub` 0.36.2 runs from the project's virtual environment,
because transformers 4.57 needs a version below 1.0. Version 2.4.0 runs from a
virtual environment that `install_hub2_venv` creates under `.cache/clients`.
Both run `client_scripts/hub_client.py` in a subprocess, so one script drives
every version the same way.

JavaScript: `@huggingface/inference` 4.13.30, installed with npm under
`.cache/js-client` and run with Node 20 or newer through
`client_scripts/js_client.js`.

The installs need PyPI and the npm registry. When a registry cannot be
reached they fail the tests with the command and its output, within
`INSTALL_TIMEOUT_S`.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

logger = logging.getLogger(__name__)

SCRIPTS_DIR = Path(__file__).resolve().parent / "client_scripts"
HUB_CLIENT_SCRIPT = SCRIPTS_DIR / "hub_client.py"
JS_CLIENT_SCRIPT = SCRIPTS_DIR / "js_client.js"

HUB_VERSION = "0.36.2"
HUB2_VERSION = "2.4.0"
HUB2_REQUIREMENT = f"huggingface_hub=={HUB2_VERSION}"
HUB2_VENV = ROOT / ".cache" / "clients" / "hub2-venv"
# Written after a successful install. It contains the installed requirement.
HUB2_MARKER = HUB2_VENV / "installed-requirement.txt"

JS_CLIENT_VERSION = "4.13.30"
JS_PREFIX = ROOT / ".cache" / "js-client"
JS_MODULES = JS_PREFIX / "node_modules"
JS_PACKAGE_JSON = JS_MODULES / "@huggingface" / "inference" / "package.json"

# Time limit for one install command. pip and npm get shorter network timeouts
# of their own, so an unreachable registry fails well before this limit.
INSTALL_TIMEOUT_S = 300
NETWORK_TIMEOUT_S = 30


def run_install(command: list[str], package: str) -> None:
    """Run an install command, or fail the test with its output."""
    logger.info("Installing %s: %s", package, " ".join(command))
    text = " ".join(command)
    try:
        result = subprocess.run(
            command,
            check=False,
            capture_output=True,
            text=True,
            timeout=INSTALL_TIMEOUT_S,
            cwd=ROOT,
        )
    except subprocess.TimeoutExpired as error:
        pytest.fail(
            f"installing {package} timed out after {INSTALL_TIMEOUT_S} s: `{text}`. "
            f"The tests need the package registry. Output: {error.output!r}",
            pytrace=False,
        )
    if result.returncode != 0:
        output = (result.stdout + result.stderr)[-4000:]
        pytest.fail(
            f"installing {package} failed with exit code {result.returncode}: `{text}`. "
            "The tests need the package registry (PyPI for Python, npm for JS); "
            f"check that it is reachable.\n{output}",
            pytrace=False,
        )


def hub2_install_commands() -> list[list[str]]:
    """Return the commands that create the huggingface_hub 2.x environment."""
    python = HUB2_VENV / "bin" / "python"
    return [
        [sys.executable, "-m", "venv", str(HUB2_VENV)],
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--timeout",
            str(NETWORK_TIMEOUT_S),
            "--retries",
            "2",
            HUB2_REQUIREMENT,
        ],
    ]


def installed_hub2_requirement() -> str | None:
    try:
        return HUB2_MARKER.read_text(encoding="utf-8").strip()
    except OSError:
        return None


def install_hub2_venv() -> Path:
    """Create the huggingface_hub 2.x environment unless its marker matches.

    Returns the environment's Python interpreter.
    """
    python = HUB2_VENV / "bin" / "python"
    if python.exists() and installed_hub2_requirement() == HUB2_REQUIREMENT:
        return python
    shutil.rmtree(HUB2_VENV, ignore_errors=True)
    HUB2_VENV.parent.mkdir(parents=True, exist_ok=True)
    for command in hub2_install_commands():
        run_install(command, HUB2_REQUIREMENT)
    HUB2_MARKER.write_text(HUB2_REQUIREMENT + "\n", encoding="utf-8")
    return python


def js_install_command() -> list[str]:
    """Return the npm command that installs the JS client."""
    return [
        "npm",
        "install",
        "--prefix",
        str(JS_PREFIX),
        "--save-exact",
        "--no-audit",
        "--no-fund",
        "--fetch-timeout",
        str(NETWORK_TIMEOUT_S * 1000),
        "--fetch-retries",
        "1",
        "--fetch-retry-maxtimeout",
        str(NETWORK_TIMEOUT_S * 1000),
        f"@huggingface/inference@{JS_CLIENT_VERSION}",
    ]


def installed_js_version() -> str | None:
    try:
        return json.loads(JS_PACKAGE_JSON.read_text(encoding="utf-8"))["version"]
    except (OSError, ValueError, KeyError):
        return None


def install_js_client() -> Path:
    """Install the JS client unless that version is installed.

    Returns the node_modules folder.
    """
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.fail(
            "the JS client tests need Node 20 or newer as `node`, with `npm`",
            pytrace=False,
        )
    if installed_js_version() != JS_CLIENT_VERSION:
        JS_PREFIX.mkdir(parents=True, exist_ok=True)
        run_install(js_install_command(), f"@huggingface/inference@{JS_CLIENT_VERSION}")
    installed = installed_js_version()
    if installed != JS_CLIENT_VERSION:
        pytest.fail(
            f"npm installed @huggingface/inference {installed}, "
            f"expected {JS_CLIENT_VERSION}",
            pytrace=False,
        )
    return JS_MODULES


def client_environment(home: Path) -> dict[str, str]:
    """Return an environment with no Hugging Face token and no proxy for 127.0.0.1.

    A token from HF_TOKEN or a saved login would reach the gateway whenever a
    call passes no token, so the calls run with an empty HF_HOME.
    """
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_TOKEN_PATH")
    }
    env["HF_HOME"] = str(home)
    env["HF_HUB_DISABLE_TELEMETRY"] = "1"
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    return env


def run_script(
    command: list[str], payload: dict, env: dict[str, str], timeout_s: float
) -> dict:
    """Run a client script with `payload` on stdin and return its JSON output."""
    result = subprocess.run(
        command,
        check=False,
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout_s,
        cwd=ROOT,
    )
    assert result.returncode == 0, (command, result.stdout[-2000:], result.stderr)
    return json.loads(result.stdout)


def run_python_client(
    python: Path | str, calls: list[dict], home: Path, timeout_s: float = 180
) -> dict:
    """Make `calls` with the huggingface_hub installed for `python`."""
    command = [str(python), str(HUB_CLIENT_SCRIPT)]
    return run_script(command, {"calls": calls}, client_environment(home), timeout_s)


def run_js_client(
    node_modules: Path, calls: list[dict], home: Path, timeout_s: float = 180
) -> dict:
    """Make `calls` with @huggingface/inference from `node_modules`."""
    env = client_environment(home)
    env["NODE_PATH"] = str(node_modules)
    return run_script(["node", str(JS_CLIENT_SCRIPT)], {"calls": calls}, env, timeout_s)

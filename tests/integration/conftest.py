"""Session fixtures that install the real Hugging Face clients."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.clients import install_hub2_venv, install_js_client


@pytest.fixture(scope="session")
def hub2_python() -> Path:
    """The Python interpreter of the environment with huggingface_hub 2.4.0."""
    return install_hub2_venv()


@pytest.fixture(scope="session")
def js_node_modules() -> Path:
    """The node_modules folder that contains @huggingface/inference 4.13.30."""
    return install_js_client()


@pytest.fixture(scope="session")
def client_home(tmp_path_factory) -> Path:
    """An empty HF_HOME for the client subprocesses, so no saved token is sent."""
    return tmp_path_factory.mktemp("hf-home")

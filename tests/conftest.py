"""Shared fixtures: tiny checkpoints, reference pipelines and a running stack.

The integration tier starts one real tritonserver and one gateway per test
session, on free ports, serving the bundled model and tiny BERT and DistilBERT
checkpoints that the tests build.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CASES_DIR = Path(__file__).resolve().parent / "cases"
CACHE_DIR = ROOT / ".cache" / "tests"
BUNDLED_MODEL_ID = "triton-qa/tiny-random-roberta-qa"
TINY_MODEL_IDS = {
    "roberta": BUNDLED_MODEL_ID,
    "bert": "triton-qa/tiny-random-bert-qa",
    "distilbert": "triton-qa/tiny-random-distilbert-qa",
}


def load_cases() -> list[tuple[str, dict]]:
    """Return the acceptance cases as (file stem, case) pairs."""
    return [
        (path.stem, json.loads(path.read_text(encoding="utf-8")))
        for path in sorted(CASES_DIR.glob("*.json"))
    ]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def checkpoints() -> dict[str, Path]:
    """Tiny checkpoints of the three families, built once and cached on disk."""
    from triton_qa.checkpoints import build_tiny_checkpoint

    folders = {}
    for family in TINY_MODEL_IDS:
        folder = CACHE_DIR / "checkpoints" / f"{family}-seed0"
        if not (folder / "model.safetensors").exists():
            shutil.rmtree(folder, ignore_errors=True)
            build_tiny_checkpoint(family, folder, seed=0)
        folders[family] = folder
    return folders


class ThreadSafePipeline:
    """A transformers pipeline behind a lock: its fast tokenizer is not thread-safe."""

    def __init__(self, pipeline):
        self.pipeline = pipeline
        self.tokenizer = pipeline.tokenizer
        self._lock = threading.Lock()

    def __call__(self, **kwargs):
        with self._lock:
            return self.pipeline(**kwargs)


@pytest.fixture(scope="session")
def pipelines(checkpoints) -> dict[str, ThreadSafePipeline]:
    """The transformers 4.x question-answering pipeline for each tiny checkpoint."""
    from transformers import pipeline

    return {
        family: ThreadSafePipeline(
            pipeline("question-answering", model=str(folder), tokenizer=str(folder))
        )
        for family, folder in checkpoints.items()
    }


@dataclass
class RunningStack:
    url: str
    triton_http: str
    triton_grpc: str
    model_ids: dict[str, str]
    log_dir: Path
    process: subprocess.Popen
    env: dict = field(default_factory=dict)


@pytest.fixture(scope="session")
def model_repository(checkpoints, tmp_path_factory) -> Path:
    """A repository with the bundled model and the tiny BERT and DistilBERT models."""
    from triton_qa.build import BUNDLED_REPOSITORY, build_model
    from triton_qa.repository import RepositoryOptions

    repository = tmp_path_factory.mktemp("model_repository")
    for folder in BUNDLED_REPOSITORY.iterdir():
        shutil.copytree(folder, repository / folder.name)
    for family in ("bert", "distilbert"):
        build_model(
            str(checkpoints[family]),
            repository,
            RepositoryOptions(),
            model_id=TINY_MODEL_IDS[family],
        )
    return repository


@pytest.fixture(scope="session")
def stack(model_repository, tmp_path_factory) -> RunningStack:
    """`triton-qa serve` on free ports, started once for the whole session."""
    from triton_qa.tritonserver import wait_for_http

    log_dir = tmp_path_factory.mktemp("stack-logs")
    ports = {name: free_port() for name in ("port", "http", "grpc", "metrics")}
    env = dict(os.environ)
    env.setdefault("TRITON_QA_DEFAULT_MODEL", BUNDLED_MODEL_ID)
    env["TRITON_QA_LOG_LEVEL"] = "DEBUG"
    command = [
        sys.executable,
        "-m",
        "triton_qa.cli",
        "serve",
        "--model-repository",
        str(model_repository),
        "--port",
        str(ports["port"]),
        "--triton-http-port",
        str(ports["http"]),
        "--triton-grpc-port",
        str(ports["grpc"]),
        "--triton-metrics-port",
        str(ports["metrics"]),
        "--triton-log",
        str(log_dir / "triton.log"),
    ]
    with open(log_dir / "serve.log", "wb") as output:
        process = subprocess.Popen(
            command, env=env, stdout=output, stderr=subprocess.STDOUT, cwd=ROOT
        )
    url = f"http://127.0.0.1:{ports['port']}"
    try:
        wait_for_http(f"{url}/health/ready", 240, process, "triton-qa serve")
    except BaseException:
        process.terminate()
        process.wait(30)
        print((log_dir / "serve.log").read_text(errors="replace")[-5000:])
        print((log_dir / "triton.log").read_text(errors="replace")[-5000:])
        raise
    running = RunningStack(
        url=url,
        triton_http=f"127.0.0.1:{ports['http']}",
        triton_grpc=f"127.0.0.1:{ports['grpc']}",
        model_ids=dict(TINY_MODEL_IDS),
        log_dir=log_dir,
        process=process,
        env=env,
    )
    yield running
    process.terminate()
    try:
        process.wait(60)
    except subprocess.TimeoutExpired:
        process.kill()

"""Tests for resolving local folders and Hub ids to checkpoint folders.

Only ``snapshot_download`` (the network boundary) is replaced, and only in the
tests that check which files a download requests.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError
from huggingface_hub.utils import filter_repo_objects

from triton_qa import hub
from triton_qa.checkpoints import build_tiny_checkpoint
from triton_qa.hub import CheckpointError, resolve_checkpoint

REPOSITORY_ROOT = Path(__file__).resolve().parents[2]
HUB_ID = "deepset/roberta-base-squad2"
# The files of a typical Hub QA repository, including weights for other
# frameworks and an ONNX export that the build does not need.
HUB_REPOSITORY_FILES = [
    ".gitattributes",
    "README.md",
    "config.json",
    "merges.txt",
    "vocab.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "model.safetensors",
    "pytorch_model.bin",
    "tf_model.h5",
    "flax_model.msgpack",
    "rust_model.ot",
    "onnx/model.onnx",
    "onnx/model.safetensors",
]
EXPECTED_DOWNLOADS = {
    "config.json",
    "merges.txt",
    "vocab.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "model.safetensors",
}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_checkpoint("roberta", tmp_path_factory.mktemp("hub") / "roberta")


@pytest.fixture
def checkpoint_copy(checkpoint: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "copy"
    shutil.copytree(checkpoint, folder)
    return folder


class FakeHub:
    """Stand-in for snapshot_download over a fixed list of repository files."""

    def __init__(self, source: Path, repository_files: list[str], root: Path) -> None:
        self.source = source
        self.repository_files = repository_files
        self.root = root
        self.calls: list[dict] = []

    def __call__(self, **kwargs: object) -> str:
        self.calls.append(kwargs)
        snapshot = self.root / "snapshot"
        snapshot.mkdir(exist_ok=True)
        selected = filter_repo_objects(
            self.repository_files, allow_patterns=kwargs["allow_patterns"]
        )
        for name in selected:
            target = snapshot / name
            target.parent.mkdir(parents=True, exist_ok=True)
            if (self.source / name).is_file():
                shutil.copyfile(self.source / name, target)
            else:
                target.write_bytes(b"")
        return str(snapshot)

    def downloaded(self) -> set[str]:
        snapshot = self.root / "snapshot"
        return {
            str(p.relative_to(snapshot)) for p in snapshot.rglob("*") if p.is_file()
        }


def test_local_folder_returned_as_is(checkpoint: Path) -> None:
    assert resolve_checkpoint(str(checkpoint)) == checkpoint


def test_local_relative_folder(
    checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(checkpoint.parent)

    assert resolve_checkpoint(f".{os.sep}{checkpoint.name}") == Path(checkpoint.name)


@pytest.mark.parametrize("name", ["missing", "./missing", "a/b/missing"])
def test_missing_folder_raises(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)

    with pytest.raises(CheckpointError, match="checkpoint folder .* not found"):
        resolve_checkpoint(str(tmp_path / name) if name == "missing" else name)


def test_file_instead_of_folder_raises(checkpoint: Path) -> None:
    with pytest.raises(CheckpointError, match="is a file, not a checkpoint folder"):
        resolve_checkpoint(str(checkpoint / "config.json"))


def test_unsupported_model_type_raises(checkpoint_copy: Path) -> None:
    config_path = checkpoint_copy / "config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config["model_type"] = "gpt2"
    config_path.write_text(json.dumps(config), encoding="utf-8")

    with pytest.raises(CheckpointError, match="unsupported model_type 'gpt2'") as info:
        resolve_checkpoint(str(checkpoint_copy))
    assert "xlm-roberta" in str(info.value)


def test_missing_fast_tokenizer_raises(checkpoint_copy: Path) -> None:
    (checkpoint_copy / "tokenizer.json").unlink()

    with pytest.raises(CheckpointError, match=r"no fast tokenizer \(tokenizer.json\)"):
        resolve_checkpoint(str(checkpoint_copy))


def test_missing_config_raises(checkpoint_copy: Path) -> None:
    (checkpoint_copy / "config.json").unlink()

    with pytest.raises(CheckpointError, match="has no config.json"):
        resolve_checkpoint(str(checkpoint_copy))


def test_invalid_config_raises(checkpoint_copy: Path) -> None:
    (checkpoint_copy / "config.json").write_text("{not json", encoding="utf-8")

    with pytest.raises(CheckpointError, match="could not read"):
        resolve_checkpoint(str(checkpoint_copy))


def test_missing_weights_raises(checkpoint_copy: Path) -> None:
    (checkpoint_copy / "model.safetensors").unlink()

    with pytest.raises(CheckpointError, match="has no model weights"):
        resolve_checkpoint(str(checkpoint_copy))


def test_hub_offline_error(tmp_path: Path) -> None:
    # huggingface_hub reads HF_HUB_OFFLINE at import, so the check runs in a
    # fresh interpreter with an empty cache.
    script = (
        "from triton_qa.hub import CheckpointError, resolve_checkpoint\n"
        "try:\n"
        f"    resolve_checkpoint({HUB_ID!r})\n"
        "except CheckpointError as error:\n"
        "    print(error)\n"
        "    raise SystemExit(3)\n"
    )
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path)}
    completed = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPOSITORY_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert completed.returncode == 3, completed.stderr
    message = completed.stdout
    assert f"could not download {HUB_ID} from the Hugging Face Hub" in message
    assert "HF_HUB_OFFLINE" in message
    assert "pass a local folder" in message


def test_hub_download_requests_needed_files(
    checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeHub(checkpoint, HUB_REPOSITORY_FILES, tmp_path)
    monkeypatch.setattr(hub, "snapshot_download", fake)

    folder = resolve_checkpoint(HUB_ID, cache_dir=tmp_path / "cache")

    assert folder == tmp_path / "snapshot"
    assert len(fake.calls) == 1
    assert fake.calls[0]["repo_id"] == HUB_ID
    assert fake.calls[0]["cache_dir"] == str(tmp_path / "cache")
    assert fake.downloaded() == EXPECTED_DOWNLOADS


def test_hub_download_falls_back_to_pytorch_weights(
    checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = [name for name in HUB_REPOSITORY_FILES if "safetensors" not in name]
    fake = FakeHub(checkpoint, files, tmp_path)
    monkeypatch.setattr(hub, "snapshot_download", fake)

    folder = resolve_checkpoint(HUB_ID)

    assert len(fake.calls) == 2
    assert fake.calls[0]["cache_dir"] is None
    assert (folder / "pytorch_model.bin").is_file()
    expected = EXPECTED_DOWNLOADS - {"model.safetensors"} | {"pytorch_model.bin"}
    assert fake.downloaded() == expected


def test_hub_download_without_tokenizer_json_raises(
    checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = [name for name in HUB_REPOSITORY_FILES if name != "tokenizer.json"]
    monkeypatch.setattr(hub, "snapshot_download", FakeHub(checkpoint, files, tmp_path))

    with pytest.raises(CheckpointError, match=f"{HUB_ID} has no fast tokenizer"):
        resolve_checkpoint(HUB_ID)


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (RepositoryNotFoundError("404 Client Error"), "neither a local folder nor"),
        (GatedRepoError("403 Client Error"), "is a gated model"),
        (ConnectionError("Name or service not known"), "check network access"),
    ],
)
def test_hub_errors_name_model_and_fix(
    error: Exception, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing_download(**kwargs: object) -> str:
        raise error

    monkeypatch.setattr(hub, "snapshot_download", failing_download)

    with pytest.raises(CheckpointError, match=message) as info:
        resolve_checkpoint(HUB_ID)
    assert HUB_ID in str(info.value)
    assert "local folder" in str(info.value)
    assert info.value.__cause__ is error

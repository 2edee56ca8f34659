"""The committed model repository is what `triton-qa build` makes of the bundled checkpoint."""

from __future__ import annotations

from pathlib import Path

import pytest

from python_backend.tokenization import read_tokenizer_info
from triton_qa.build import BUNDLED_MODEL_ID, BUNDLED_REPOSITORY
from triton_qa.export import verify_onnx
from triton_qa.repository import RepositoryOptions, write_repository

NAME = "triton-qa--tiny-random-roberta-qa"


def _files(root: Path) -> dict[str, Path]:
    return {
        str(path.relative_to(root)): path
        for path in sorted(root.rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts
    }


def test_tokenizer_is_reproduced(checkpoints):
    committed = BUNDLED_REPOSITORY / f"{NAME}_tokenize" / "1" / "tokenizer.json"
    assert (
        committed.read_bytes()
        == (checkpoints["roberta"] / "tokenizer.json").read_bytes()
    )


def test_onnx_matches_rebuilt_checkpoint(checkpoints):
    committed = BUNDLED_REPOSITORY / f"{NAME}_model" / "1" / "model.onnx"
    assert verify_onnx(checkpoints["roberta"], committed, atol=1e-5) <= 1e-5


def test_configs_are_reproduced(checkpoints, tmp_path):
    checkpoint = checkpoints["roberta"]
    write_repository(
        tmp_path,
        BUNDLED_MODEL_ID,
        "roberta",
        BUNDLED_REPOSITORY / f"{NAME}_model" / "1" / "model.onnx",
        checkpoint / "tokenizer.json",
        read_tokenizer_info(checkpoint),
        RepositoryOptions(),
    )
    rebuilt = _files(tmp_path)
    committed = _files(BUNDLED_REPOSITORY)
    committed.pop(f"{NAME}/1/.gitkeep", None)
    assert sorted(rebuilt) == sorted(committed)
    for name, path in rebuilt.items():
        if name.endswith((".pbtxt", ".py", ".json")):
            assert path.read_text() == committed[name].read_text(), name


@pytest.mark.parametrize("step", ["tokenize", "model", "postprocess"])
def test_step_entry_points_import(step):
    text = (BUNDLED_REPOSITORY / f"{NAME}_{step}" / "1" / "model.py").read_text()
    assert "from python_backend.models." in text

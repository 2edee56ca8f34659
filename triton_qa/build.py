"""`triton-qa build`: turn QA checkpoints into one Triton model repository."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

from python_backend.tokenization import read_tokenizer_info
from triton_qa.repository import RepositoryOptions, write_repository

logger = logging.getLogger(__name__)

# The bundled model: a tiny RoBERTa-architecture checkpoint with random
# weights, built by triton_qa.checkpoints. Its answers mean nothing.
BUNDLED_MODEL_ID = "triton-qa/tiny-random-roberta-qa"
BUNDLED_SEED = 0
REPOSITORY_ROOT = Path(__file__).resolve().parent.parent
BUNDLED_REPOSITORY = REPOSITORY_ROOT / "model_repository"


def build_model(
    model: str,
    output: Path,
    options: RepositoryOptions,
    model_id: str | None = None,
    quantize: str | None = None,
    cache_dir: Path | None = None,
) -> Path:
    """Build one model into the repository `output` and return its ensemble folder.

    `model` is a local checkpoint folder or a Hugging Face Hub id. A folder
    that already contains `model.onnx` is used as exported; anything else is
    exported with PyTorch and checked against it.
    """
    from triton_qa.hub import resolve_checkpoint

    checkpoint = resolve_checkpoint(model, cache_dir)
    if model_id is None:
        model_id = model if not Path(model).expanduser().is_dir() else checkpoint.name
    info = read_tokenizer_info(checkpoint)
    with tempfile.TemporaryDirectory(prefix="triton-qa-build-") as work_dir:
        onnx_path, family = _onnx_for(checkpoint, Path(work_dir))
        if quantize == "int8":
            from triton_qa.export import quantize_int8

            onnx_path = quantize_int8(onnx_path, Path(work_dir) / "model.int8.onnx")
        ensemble = write_repository(
            output,
            model_id,
            family,
            onnx_path,
            checkpoint / "tokenizer.json",
            info,
            options,
        )
    logger.info("built %s into %s", model_id, ensemble)
    return ensemble


def _onnx_for(checkpoint: Path, work_dir: Path) -> tuple[Path, str]:
    import json

    family = json.loads((checkpoint / "config.json").read_text(encoding="utf-8"))[
        "model_type"
    ]
    prebuilt = checkpoint / "model.onnx"
    if prebuilt.exists():
        return prebuilt, family
    from triton_qa.export import export_onnx, verify_onnx

    info = export_onnx(checkpoint, work_dir / "model.onnx")
    verify_onnx(checkpoint, info.onnx_path)
    return info.onnx_path, info.family


def build_bundled_repository(output: Path = BUNDLED_REPOSITORY) -> Path:
    """Rebuild the bundled test model's repository from scratch (needs PyTorch)."""
    from triton_qa.checkpoints import build_tiny_checkpoint

    with tempfile.TemporaryDirectory(prefix="triton-qa-bundled-") as work_dir:
        checkpoint = build_tiny_checkpoint("roberta", Path(work_dir), seed=BUNDLED_SEED)
        return build_model(
            str(checkpoint), output, RepositoryOptions(), model_id=BUNDLED_MODEL_ID
        )

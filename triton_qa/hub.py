"""Resolve a model argument to a local checkpoint folder.

A model argument is either a local folder or a Hugging Face Hub model id. Hub
models are downloaded with ``huggingface_hub.snapshot_download``, limited to the
config, the tokenizer files and one set of weights.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from huggingface_hub import snapshot_download
from huggingface_hub.errors import (
    GatedRepoError,
    HfHubHTTPError,
    HFValidationError,
    LocalEntryNotFoundError,
    RepositoryNotFoundError,
)
from huggingface_hub.utils import validate_repo_id

logger = logging.getLogger(__name__)

# config.model_type -> model family. XLM-RoBERTa and CamemBERT reuse the RoBERTa
# model code (position ids offset past the padding index, no token_type_ids).
# NOTE: their export is tested with a byte-level BPE tokenizer only, not with
# their own SentencePiece-based (Unigram) tokenizer.json.
MODEL_TYPE_FAMILIES = {
    "bert": "bert",
    "camembert": "roberta",
    "distilbert": "distilbert",
    "roberta": "roberta",
    "xlm-roberta": "roberta",
}
SUPPORTED_MODEL_TYPES = tuple(MODEL_TYPE_FAMILIES)

CONFIG_FILES = ["config.json"]
TOKENIZER_FILES = [
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "sentencepiece.bpe.model",
]
SAFETENSORS_FILES = [
    "model.safetensors",
    "model.safetensors.index.json",
    "model-*.safetensors",
]
PYTORCH_FILES = [
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
    "pytorch_model-*.bin",
]


class CheckpointError(ValueError):
    """Raised when a model argument does not resolve to a usable checkpoint."""


def resolve_checkpoint(model: str, cache_dir: Path | None = None) -> Path:
    """Return a local checkpoint folder for a folder path or a Hub model id.

    An existing folder is validated and returned unchanged. Any other argument
    that is a valid Hub model id is downloaded into ``cache_dir`` (the Hugging
    Face cache by default). Safetensors weights are preferred, and PyTorch
    ``.bin`` weights are downloaded only when the repository has no safetensors.
    Raises CheckpointError when the folder is missing or invalid, the download
    fails, or the model type is not supported.
    """
    path = Path(model).expanduser()
    if path.is_dir():
        validate_checkpoint(path, model)
        return path
    if path.exists():
        raise CheckpointError(f"{model} is a file, not a checkpoint folder")
    if _looks_like_path(model):
        raise CheckpointError(
            f"checkpoint folder {model} not found: pass an existing folder or a "
            "Hugging Face Hub model id such as deepset/roberta-base-squad2"
        )

    folder = _download(model, cache_dir)
    validate_checkpoint(folder, model)
    return folder


def validate_checkpoint(folder: Path, model: str) -> None:
    """Raise CheckpointError unless the folder contains a supported QA checkpoint.

    The folder must contain config.json with a supported model_type, a fast
    tokenizer (tokenizer.json) and safetensors or PyTorch weights.
    """
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise CheckpointError(
            f"{model} has no config.json: pass a transformers checkpoint folder "
            "saved with save_pretrained"
        )
    model_type = _read_model_type(config_path, model)
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise CheckpointError(
            f"{model} has unsupported model_type {model_type!r}: supported model "
            f"types are {', '.join(SUPPORTED_MODEL_TYPES)}"
        )
    if not (folder / "tokenizer.json").is_file():
        raise CheckpointError(
            f"{model} has no fast tokenizer (tokenizer.json): save one with "
            "AutoTokenizer.from_pretrained(MODEL).save_pretrained(FOLDER) and pass "
            "that folder"
        )
    if not _has_weights(folder):
        raise CheckpointError(
            f"{model} has no model weights (model.safetensors or "
            "pytorch_model.bin): pass a complete checkpoint folder"
        )


def _read_model_type(config_path: Path, model: str) -> str | None:
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        message = f"could not read {config_path} of {model}: {error}"
        raise CheckpointError(message) from error
    if not isinstance(config, dict):
        raise CheckpointError(f"{config_path} of {model} is not a JSON object")
    return config.get("model_type")


def _has_weights(folder: Path) -> bool:
    patterns = SAFETENSORS_FILES + PYTORCH_FILES
    return any(any(folder.glob(pattern)) for pattern in patterns)


def _has_safetensors(folder: Path) -> bool:
    return any(any(folder.glob(pattern)) for pattern in SAFETENSORS_FILES)


def _looks_like_path(model: str) -> bool:
    if model.startswith((".", "~", "/")) or os.path.isabs(model):
        return True
    # A Hub id is "name" or "namespace/name", so "a/b/c" can only be a folder.
    try:
        validate_repo_id(model)
    except HFValidationError:
        return True
    return False


def _download(model: str, cache_dir: Path | None) -> Path:
    base_patterns = CONFIG_FILES + TOKENIZER_FILES
    folder = _snapshot(model, cache_dir, base_patterns + SAFETENSORS_FILES)
    if not _has_safetensors(folder):
        logger.info(
            "%s has no safetensors weights, downloading pytorch_model.bin", model
        )
        folder = _snapshot(model, cache_dir, base_patterns + PYTORCH_FILES)
    logger.info("resolved %s to %s", model, folder)
    return folder


def _snapshot(model: str, cache_dir: Path | None, patterns: list[str]) -> Path:
    try:
        folder = snapshot_download(
            repo_id=model,
            cache_dir=str(cache_dir) if cache_dir is not None else None,
            allow_patterns=patterns,
        )
    except GatedRepoError as error:
        raise CheckpointError(
            f"{model} is a gated model on the Hugging Face Hub ({error}): accept its "
            "terms on huggingface.co and set HF_TOKEN, or pass a local folder"
        ) from error
    except RepositoryNotFoundError as error:
        raise CheckpointError(
            f"{model} is neither a local folder nor a model on the Hugging Face Hub "
            f"({error}): check the id, set HF_TOKEN for a private model, or pass a "
            "local folder"
        ) from error
    except (LocalEntryNotFoundError, HfHubHTTPError, OSError) as error:
        # Connection errors of requests (huggingface_hub 0.x) are OSErrors too.
        raise CheckpointError(
            f"could not download {model} from the Hugging Face Hub ({error}): check "
            "network access and HF_HUB_OFFLINE, or pass a local folder"
        ) from error
    return Path(folder)

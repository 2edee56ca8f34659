"""Checkpoints, ONNX files and model repositories that the benchmark measures.

Two regimes: the bundled tiny RoBERTa, where serving overhead dominates, and a
model with the architecture of deepset/roberta-base-squad2 and random weights,
where the model dominates. Both use the tiny tokenizer of
`triton_qa.checkpoints`, so the base model's embedding table is small, but its
per-token computation is that of roberta-base. Everything is built offline and
cached, keyed by the repository options.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from python_backend import protocol
from python_backend.tokenization import TokenizerInfo, read_tokenizer_info
from triton_qa.repository import RepositoryOptions

logger = logging.getLogger(__name__)

REGIMES = ("tiny", "base")
MODEL_IDS = {
    "tiny": "triton-qa/tiny-random-roberta-qa",
    "base": "triton-qa/random-roberta-base-qa",
}
# deepset/roberta-base-squad2's config.json, less the vocabulary size.
ROBERTA_BASE = {
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
    "max_position_embeddings": 514,
    "layer_norm_eps": 1e-5,
    "type_vocab_size": 1,
}
# Same reason as triton_qa.checkpoints.QA_HEAD_STD: a head with the default
# std of 0.02 gives near-uniform span scores, so every rounding change, such
# as int8 weights, would reorder the answers.
QA_HEAD_STD = 0.5
_TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.json",
    "merges.txt",
)


@dataclass(frozen=True)
class ModelArtifacts:
    """A built model: its checkpoint, ONNX files and Triton repository."""

    regime: str
    model_id: str
    checkpoint: Path
    repository: Path
    onnx_path: Path
    tokenizer_json: Path
    info: TokenizerInfo
    quantize: str | None = None

    @property
    def ensemble(self) -> str:
        return protocol.ensemble_name(self.model_id)


def options_key(options: RepositoryOptions) -> str:
    """Return a short hash that names a repository built with `options`."""
    text = json.dumps(dataclasses.asdict(options), sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def build_checkpoint(regime: str, folder: Path) -> Path:
    """Build the checkpoint of `regime` into `folder`, unless it is there already."""
    if (folder / "model.safetensors").exists():
        return folder
    import torch
    from transformers import RobertaConfig, RobertaForQuestionAnswering

    from triton_qa.build import BUNDLED_SEED
    from triton_qa.checkpoints import build_tiny_checkpoint

    shutil.rmtree(folder, ignore_errors=True)
    staging = folder.with_name(folder.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    build_tiny_checkpoint("roberta", staging, seed=BUNDLED_SEED)
    if regime == "base":
        logger.info("building a random RoBERTa-base QA checkpoint in %s", folder)
        config = RobertaConfig.from_pretrained(staging)
        for key, value in ROBERTA_BASE.items():
            setattr(config, key, value)
        torch.manual_seed(BUNDLED_SEED)
        model = RobertaForQuestionAnswering(config)
        with torch.no_grad():
            torch.nn.init.normal_(model.qa_outputs.weight, std=QA_HEAD_STD)
        model.eval()
        for path in staging.glob("model*.safetensors"):
            path.unlink()
        model.save_pretrained(str(staging), safe_serialization=True)
        (staging / "README.md").write_text(
            "# Random RoBERTa-base question-answering model\n\n"
            "The architecture of deepset/roberta-base-squad2 with random weights "
            "and the tiny tokenizer of triton_qa.checkpoints, built by "
            "triton_qa.bench for speed measurements. Its answers mean nothing.\n",
            encoding="utf-8",
        )
    staging.rename(folder)
    return folder


def build_artifacts(
    regime: str,
    cache_dir: Path,
    options: RepositoryOptions,
    quantize: str | None = None,
) -> ModelArtifacts:
    """Build (or reuse) the checkpoint and model repository of `regime`.

    `quantize="int8"` builds the repository as `triton-qa build --quantize int8`
    does.
    """
    from triton_qa.build import build_model

    if regime not in REGIMES:
        raise ValueError(f"regime {regime!r} is invalid; use one of {REGIMES}")
    model_id = MODEL_IDS[regime]
    checkpoint = build_checkpoint(regime, cache_dir / "checkpoints" / regime)
    suffix = f"-{quantize}" if quantize else ""
    name = f"{regime}{suffix}-{options_key(options)}"
    repository = cache_dir / "repositories" / name
    steps = protocol.step_names(protocol.ensemble_name(model_id))
    onnx_path = repository / steps["model"] / "1" / "model.onnx"
    if not onnx_path.exists():
        logger.info(
            "building the %s%s model repository in %s", regime, suffix, repository
        )
        with _quiet_root_logger():
            build_model(
                str(checkpoint),
                repository,
                options,
                model_id=model_id,
                quantize=quantize,
            )
    return ModelArtifacts(
        regime=regime,
        model_id=model_id,
        checkpoint=checkpoint,
        repository=repository,
        onnx_path=onnx_path,
        tokenizer_json=checkpoint / "tokenizer.json",
        info=read_tokenizer_info(checkpoint),
        quantize=quantize,
    )


@contextlib.contextmanager
def _quiet_root_logger() -> Iterator[None]:
    """Raise the root logger to WARNING for a while.

    ONNX Runtime's quantization tools log one INFO line per tensor on the root
    logger.
    """
    root = logging.getLogger()
    level = root.level
    root.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        root.setLevel(level)

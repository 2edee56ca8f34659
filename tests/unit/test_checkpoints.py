"""Tests for the deterministic tiny QA checkpoints."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import (
    AutoConfig,
    AutoModelForQuestionAnswering,
    AutoTokenizer,
    pipeline,
)

from triton_qa.checkpoints import FAMILIES, MODEL_MAX_LENGTH, build_tiny_checkpoint

REPOSITORY_ROOT = Path(__file__).resolve().parents[2]

EXPECTED_CLASSES = {
    "roberta": ("RobertaTokenizerFast", "RobertaForQuestionAnswering"),
    "bert": ("BertTokenizerFast", "BertForQuestionAnswering"),
    "distilbert": ("DistilBertTokenizerFast", "DistilBertForQuestionAnswering"),
}
NON_ASCII_WORDS = ["Zürich", "東京", "กรุงเทพ", "🎉", "José"]


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("checkpoints")
    return {family: build_tiny_checkpoint(family, root / family) for family in FAMILIES}


def _assert_same_weights(first: Path, second: Path) -> None:
    first_tensors = load_file(first / "model.safetensors")
    second_tensors = load_file(second / "model.safetensors")
    assert first_tensors.keys() == second_tensors.keys()
    for name, tensor in first_tensors.items():
        assert torch.equal(tensor, second_tensors[name]), name


@pytest.mark.parametrize("family", FAMILIES)
def test_build_is_deterministic(
    family: str, checkpoints: dict[str, Path], tmp_path: Path
) -> None:
    rebuilt = build_tiny_checkpoint(family, tmp_path / family)

    original_bytes = (checkpoints[family] / "tokenizer.json").read_bytes()
    rebuilt_bytes = (rebuilt / "tokenizer.json").read_bytes()
    assert rebuilt_bytes == original_bytes
    _assert_same_weights(checkpoints[family], rebuilt)


@pytest.mark.parametrize("family", FAMILIES)
def test_cli_build_matches_in_process(
    family: str, checkpoints: dict[str, Path], tmp_path: Path
) -> None:
    # A second process gets new hash-map seeds in the tokenizers trainer.
    output_dir = tmp_path / family
    completed = subprocess.run(
        [sys.executable, "-m", "triton_qa.checkpoints", family, str(output_dir)],
        cwd=REPOSITORY_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr

    summary = json.loads(completed.stdout)
    assert summary == {"family": family, "path": str(output_dir), "seed": 0}
    original_bytes = (checkpoints[family] / "tokenizer.json").read_bytes()
    assert (output_dir / "tokenizer.json").read_bytes() == original_bytes
    _assert_same_weights(checkpoints[family], output_dir)


def test_seed_changes_weights_not_tokenizer(
    checkpoints: dict[str, Path], tmp_path: Path
) -> None:
    reseeded = build_tiny_checkpoint("bert", tmp_path / "bert", seed=1)

    original_bytes = (checkpoints["bert"] / "tokenizer.json").read_bytes()
    assert (reseeded / "tokenizer.json").read_bytes() == original_bytes
    original = load_file(checkpoints["bert"] / "model.safetensors")
    changed = load_file(reseeded / "model.safetensors")
    name = "qa_outputs.weight"
    assert not torch.equal(original[name], changed[name])


@pytest.mark.parametrize("family", FAMILIES)
def test_checkpoint_files(family: str, checkpoints: dict[str, Path]) -> None:
    folder = checkpoints[family]
    for name in ("config.json", "model.safetensors", "tokenizer.json", "README.md"):
        assert (folder / name).is_file(), name
    assert (folder / "tokenizer_config.json").is_file()
    size = (folder / "model.safetensors").stat().st_size
    assert size < 2_000_000


@pytest.mark.parametrize("family", FAMILIES)
def test_tokenizer_reloads_from_disk(family: str, checkpoints: dict[str, Path]) -> None:
    tokenizer = AutoTokenizer.from_pretrained(checkpoints[family])
    config = AutoConfig.from_pretrained(checkpoints[family])

    assert type(tokenizer).__name__ == EXPECTED_CLASSES[family][0]
    assert tokenizer.is_fast
    assert 500 <= len(tokenizer) <= 5000
    assert len(tokenizer) == config.vocab_size
    assert tokenizer.model_max_length == MODEL_MAX_LENGTH
    assert tokenizer.pad_token_id == config.pad_token_id


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("word", NON_ASCII_WORDS)
def test_non_ascii_is_not_unknown(
    family: str, word: str, checkpoints: dict[str, Path]
) -> None:
    tokenizer = AutoTokenizer.from_pretrained(checkpoints[family])
    token_ids = tokenizer(word, add_special_tokens=False)["input_ids"]

    assert token_ids
    assert tokenizer.unk_token_id not in token_ids


def test_roberta_tokenizer_options(checkpoints: dict[str, Path]) -> None:
    tokenizer = AutoTokenizer.from_pretrained(checkpoints["roberta"])
    special_ids = [tokenizer.convert_tokens_to_ids(t) for t in ("<s>", "<pad>", "</s>")]
    encoded = tokenizer("at Zürich", return_offsets_mapping=True)

    assert special_ids == [0, 1, 2]
    assert tokenizer.add_prefix_space is False
    # trim_offsets: the space that the byte-level token carries is not in its span.
    assert encoded["offset_mapping"][2][0] == 3


@pytest.mark.parametrize("family", ["bert", "distilbert"])
def test_bert_tokenizers_are_uncased(family: str, checkpoints: dict[str, Path]) -> None:
    tokenizer = AutoTokenizer.from_pretrained(checkpoints[family])

    upper = tokenizer("WHERE WAS JOSÉ BORN")["input_ids"]
    lower = tokenizer("where was jose born")["input_ids"]
    assert upper == lower


@pytest.mark.parametrize(
    ("family", "max_positions", "type_vocab_size"),
    [("roberta", 514, 1), ("bert", 512, 2), ("distilbert", 512, None)],
)
def test_config_values(
    family: str,
    max_positions: int,
    type_vocab_size: int | None,
    checkpoints: dict[str, Path],
) -> None:
    config = AutoConfig.from_pretrained(checkpoints[family])

    assert config.model_type == family
    assert config.architectures == [EXPECTED_CLASSES[family][1]]
    assert config.max_position_embeddings == max_positions
    assert getattr(config, "type_vocab_size", None) == type_vocab_size
    assert config.triton_qa_test_model is True
    assert "random weights" in config.triton_qa_note
    if family == "roberta":
        assert config.pad_token_id == 1


@pytest.mark.parametrize("family", FAMILIES)
def test_readme_labels_test_model(family: str, checkpoints: dict[str, Path]) -> None:
    readme = (checkpoints[family] / "README.md").read_text(encoding="utf-8")

    assert "random weights" in readme
    assert "mean nothing" in readme


@pytest.mark.parametrize("family", FAMILIES)
def test_qa_head_is_sharpened(family: str, checkpoints: dict[str, Path]) -> None:
    model = AutoModelForQuestionAnswering.from_pretrained(checkpoints[family])
    with torch.no_grad():
        head_std = float(model.qa_outputs.weight.std())
        embedding_std = float(model.base_model.embeddings.word_embeddings.weight.std())

    assert head_std > 1.0
    assert embedding_std < 0.1


@pytest.mark.parametrize("family", FAMILIES)
def test_pipeline_returns_span(family: str, checkpoints: dict[str, Path]) -> None:
    folder = str(checkpoints[family])
    question_answerer = pipeline(
        "question-answering", model=folder, tokenizer=folder, device="cpu"
    )
    context = "Alice Martin was born in Zürich in 1987 and moved to 東京 in 2010."

    result = question_answerer(question="Where was Alice born?", context=context)

    assert 0 <= result["start"] < result["end"] <= len(context)
    assert result["answer"] == context[result["start"] : result["end"]]
    assert 0.0 < result["score"] <= 1.0


def test_unknown_family_raises(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unsupported checkpoint family 'gpt2'"):
        build_tiny_checkpoint("gpt2", tmp_path / "gpt2")
    assert not (tmp_path / "gpt2").exists()

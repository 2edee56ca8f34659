"""Tests for the ONNX export of QA checkpoints, run against real ONNX Runtime."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from transformers import (
    AutoConfig,
    AutoTokenizer,
    CamembertConfig,
    CamembertForQuestionAnswering,
    XLMRobertaConfig,
    XLMRobertaForQuestionAnswering,
)

from triton_qa.checkpoints import FAMILIES, build_tiny_checkpoint, generate_corpus
from triton_qa.export import (
    ExportError,
    ExportInfo,
    OnnxParityError,
    export_onnx,
    load_checkpoint,
    max_sequence_length,
    quantize_int8,
    verify_onnx,
)

EXPECTED_INPUTS = {
    "roberta": ("input_ids", "attention_mask"),
    "bert": ("input_ids", "attention_mask", "token_type_ids"),
    "distilbert": ("input_ids", "attention_mask"),
}
MAX_ANSWER_TOKENS = 15


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("checkpoints")
    return {family: build_tiny_checkpoint(family, root / family) for family in FAMILIES}


@pytest.fixture(scope="module")
def exports(
    checkpoints: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, ExportInfo]:
    root = tmp_path_factory.mktemp("onnx")
    return {
        family: export_onnx(folder, root / family / "model.onnx")
        for family, folder in checkpoints.items()
    }


@pytest.mark.parametrize("family", FAMILIES)
def test_export_info(family: str, exports: dict[str, ExportInfo]) -> None:
    info = exports[family]

    assert info.family == family
    assert info.input_names == EXPECTED_INPUTS[family]
    assert info.output_names == ("start_logits", "end_logits")
    assert info.model_max_length == 512
    assert info.onnx_path.is_file()


@pytest.mark.parametrize("family", FAMILIES)
def test_onnx_signature(family: str, exports: dict[str, ExportInfo]) -> None:
    session = ort.InferenceSession(str(exports[family].onnx_path))
    inputs = session.get_inputs()
    outputs = session.get_outputs()

    assert tuple(value.name for value in inputs) == EXPECTED_INPUTS[family]
    assert {value.type for value in inputs} == {"tensor(int64)"}
    assert [value.shape for value in inputs] == [["batch", "sequence"]] * len(inputs)
    assert [value.name for value in outputs] == ["start_logits", "end_logits"]
    assert {value.type for value in outputs} == {"tensor(float)"}
    assert [value.shape for value in outputs] == [["batch", "sequence"]] * 2


@pytest.mark.parametrize("family", FAMILIES)
def test_onnx_is_self_contained(family: str, exports: dict[str, ExportInfo]) -> None:
    onnx_path = exports[family].onnx_path
    graph_model = onnx.load(str(onnx_path), load_external_data=False)

    assert [path.name for path in onnx_path.parent.iterdir()] == ["model.onnx"]
    for tensor in graph_model.graph.initializer:
        assert tensor.data_location != onnx.TensorProto.EXTERNAL, tensor.name


@pytest.mark.parametrize("family", FAMILIES)
def test_verify_onnx_passes(
    family: str, checkpoints: dict[str, Path], exports: dict[str, ExportInfo]
) -> None:
    max_difference = verify_onnx(checkpoints[family], exports[family].onnx_path)

    assert 0.0 <= max_difference <= 1e-4


def test_verify_onnx_detects_other_weights(
    exports: dict[str, ExportInfo], tmp_path: Path
) -> None:
    other_seed = build_tiny_checkpoint("distilbert", tmp_path / "distilbert", seed=1)

    with pytest.raises(OnnxParityError, match="differ from PyTorch"):
        verify_onnx(other_seed, exports["distilbert"].onnx_path)


def _bert_logits(
    checkpoint: Path, onnx_path: Path, token_type: int
) -> tuple[np.ndarray, np.ndarray]:
    model, tokenizer = load_checkpoint(checkpoint)
    encoded = tokenizer(
        ["Where was Alice born?", "Who built the tower?"],
        ["Alice Martin was born in Zürich in 1987.", "The tower was built in 1901."],
        padding=True,
        return_tensors="np",
    )
    inputs = {name: encoded[name].astype(np.int64) for name in EXPECTED_INPUTS["bert"]}
    inputs["token_type_ids"] = np.full_like(inputs["input_ids"], token_type)
    with torch.no_grad():
        expected = model(**{name: torch.from_numpy(a) for name, a in inputs.items()})
    session = ort.InferenceSession(str(onnx_path))
    (actual,) = session.run(["start_logits"], inputs)
    return expected.start_logits.numpy(), actual


def test_bert_token_type_ids_fed_by_name(
    checkpoints: dict[str, Path], exports: dict[str, ExportInfo]
) -> None:
    # Fed into the attention_mask slot, all-zero token_type_ids would mask every
    # token, and the two runs would not match PyTorch.
    onnx_path = exports["bert"].onnx_path
    torch_zeros, onnx_zeros = _bert_logits(checkpoints["bert"], onnx_path, 0)
    torch_ones, onnx_ones = _bert_logits(checkpoints["bert"], onnx_path, 1)

    np.testing.assert_allclose(onnx_zeros, torch_zeros, atol=1e-4)
    np.testing.assert_allclose(onnx_ones, torch_ones, atol=1e-4)
    assert np.max(np.abs(onnx_zeros - onnx_ones)) > 1e-2


def test_max_sequence_length_caps_by_positions(checkpoints: dict[str, Path]) -> None:
    config = AutoConfig.from_pretrained(checkpoints["roberta"])
    tokenizer = AutoTokenizer.from_pretrained(checkpoints["roberta"])
    tokenizer.model_max_length = int(1e30)

    assert max_sequence_length(config, tokenizer) == 512
    config.max_position_embeddings = 130
    assert max_sequence_length(config, tokenizer) == 128
    tokenizer.model_max_length = 64
    assert max_sequence_length(config, tokenizer) == 64


@pytest.mark.parametrize(
    ("config_class", "model_class"),
    [
        (XLMRobertaConfig, XLMRobertaForQuestionAnswering),
        (CamembertConfig, CamembertForQuestionAnswering),
    ],
)
def test_roberta_relatives_export(
    config_class: type,
    model_class: type,
    checkpoints: dict[str, Path],
    tmp_path: Path,
) -> None:
    folder = tmp_path / "checkpoint"
    shutil.copytree(checkpoints["roberta"], folder)
    roberta_config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    for key in ("model_type", "architectures", "transformers_version"):
        roberta_config.pop(key)
    torch.manual_seed(0)
    model_class(config_class(**roberta_config)).save_pretrained(folder)

    info = export_onnx(folder, tmp_path / "model.onnx")

    assert info.family == "roberta"
    assert info.input_names == ("input_ids", "attention_mask")
    assert info.model_max_length == 512
    assert verify_onnx(folder, info.onnx_path) <= 1e-4


def test_export_rejects_unsupported_model_type(
    checkpoints: dict[str, Path], tmp_path: Path
) -> None:
    folder = tmp_path / "checkpoint"
    shutil.copytree(checkpoints["bert"], folder)
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    config["model_type"] = "electra"
    (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")

    with pytest.raises(ExportError, match="unsupported model_type 'electra'"):
        export_onnx(folder, tmp_path / "model.onnx")
    assert not (tmp_path / "model.onnx").exists()


def test_export_rejects_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="config.json not found"):
        export_onnx(tmp_path / "missing", tmp_path / "model.onnx")


def _best_span(start: np.ndarray, end: np.ndarray, context: np.ndarray) -> tuple:
    length = len(start)
    allowed = np.triu(np.ones((length, length), dtype=bool))
    allowed &= ~np.triu(np.ones((length, length), dtype=bool), MAX_ANSWER_TOKENS)
    allowed &= context[:, None] & context[None, :]
    scores = np.where(allowed, start[:, None] + end[None, :], -np.inf)
    return np.unravel_index(int(np.argmax(scores)), scores.shape)


@pytest.mark.parametrize("family", FAMILIES)
def test_quantize_int8_keeps_most_spans(
    family: str,
    checkpoints: dict[str, Path],
    exports: dict[str, ExportInfo],
    tmp_path: Path,
    record_property: pytest.RecordProperty,
) -> None:
    quantized_path = quantize_int8(exports[family].onnx_path, tmp_path / "int8.onnx")
    full = ort.InferenceSession(str(exports[family].onnx_path))
    quantized = ort.InferenceSession(str(quantized_path))
    tokenizer = AutoTokenizer.from_pretrained(checkpoints[family])
    sentences = generate_corpus(num_sentences=60, seed=7)

    agreements = []
    for index in range(0, len(sentences), 3):
        question, context = sentences[index], " ".join(sentences[index + 1 : index + 3])
        encoded = tokenizer(question, context, return_tensors="np")
        inputs = {
            name: encoded[name].astype(np.int64) for name in EXPECTED_INPUTS[family]
        }
        is_context = np.array([sequence == 1 for sequence in encoded.sequence_ids(0)])
        full_start, full_end = full.run(None, inputs)
        int8_start, int8_end = quantized.run(None, inputs)
        assert np.all(np.isfinite(int8_start))
        full_span = _best_span(full_start[0], full_end[0], is_context)
        int8_span = _best_span(int8_start[0], int8_end[0], is_context)
        agreements.append(full_span == int8_span)

    share = sum(agreements) / len(agreements)
    record_property(f"{family}_int8_top_span_agreement", share)
    print(f"{family}: int8 top span unchanged for {share:.0%} of {len(agreements)}")
    assert quantized_path.stat().st_size < exports[family].onnx_path.stat().st_size
    opset_domains = {op.domain for op in onnx.load(str(quantized_path)).opset_import}
    assert opset_domains == {"", "com.microsoft"}
    # Weight quantization may move near-tied spans, so only a majority must hold.
    assert share >= 0.6

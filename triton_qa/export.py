"""ONNX export of transformers extractive-QA checkpoints, with a parity check.

The exported graph takes int64 ``input_ids``, ``attention_mask`` and, for BERT,
``token_type_ids`` of shape ``[batch, sequence]`` and returns float32
``start_logits`` and ``end_logits`` of the same shape. Both axes are dynamic.
"""

from __future__ import annotations

import inspect
import logging
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx.external_data_helper import uses_external_data
from transformers import (
    AutoConfig,
    AutoModelForQuestionAnswering,
    AutoTokenizer,
    PretrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from triton_qa.hub import MODEL_TYPE_FAMILIES

logger = logging.getLogger(__name__)

DEFAULT_OPSET = 17
OUTPUT_NAMES = ("start_logits", "end_logits")
SUPPORTED_INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
# RoBERTa-style position ids start at padding_idx + 1, so the first two position
# embeddings are never used and roberta-base has 514 of them for 512 tokens.
POSITION_OFFSETS = {"roberta": 2, "bert": 0, "distilbert": 0}
# The ONNX Runtime transformer optimizer handles all three families as "bert".
ORT_OPTIMIZER_MODEL_TYPE = "bert"

_VERIFY_EXAMPLES = [
    ("Where was Alice born?", "Alice Martin was born in London in 1987."),
    (
        "Who designed the museum in Zürich?",
        (
            "The museum of Zürich was built in 1901 by José Álvarez. 🎉 It opened in "
            "1903, and about 4000 people visited it in its first year."
        ),
    ),
    ("東京?", "山田太郎 moved to 東京 in 1999 to study music."),
]


class ExportError(RuntimeError):
    """Raised when a checkpoint cannot be exported or the export is invalid."""


class OnnxParityError(ExportError):
    """Raised when ONNX Runtime logits differ from PyTorch beyond the tolerance."""


@dataclass(frozen=True)
class ExportInfo:
    """Description of an exported QA model, as the model repository needs it."""

    family: str
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]
    model_max_length: int
    onnx_path: Path


class _QuestionAnsweringLogits(torch.nn.Module):
    """Wrapper that returns the logits as a plain tuple for the ONNX exporter.

    Its parameters follow SUPPORTED_INPUT_NAMES, so the graph inputs do too.
    """

    def __init__(self, model: PreTrainedModel) -> None:
        super().__init__()
        self.model = model

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            inputs["token_type_ids"] = token_type_ids
        output = self.model(**inputs, return_dict=True)
        return output.start_logits, output.end_logits


def model_family(config: PretrainedConfig) -> str:
    """Return the family of a config's model_type, or raise ExportError."""
    family = MODEL_TYPE_FAMILIES.get(config.model_type)
    if family is None:
        supported = ", ".join(sorted(MODEL_TYPE_FAMILIES))
        raise ExportError(
            f"unsupported model_type {config.model_type!r}: "
            f"supported model types are {supported}"
        )
    return family


def model_input_names(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase
) -> tuple[str, ...]:
    """Return the inputs that both the tokenizer produces and the model accepts.

    The names keep the order of SUPPORTED_INPUT_NAMES, which is the order of the
    exported graph's inputs.
    """
    forward_parameters = inspect.signature(model.forward).parameters
    names = tuple(
        name
        for name in SUPPORTED_INPUT_NAMES
        if name in tokenizer.model_input_names and name in forward_parameters
    )
    if "input_ids" not in names:
        raise ExportError(
            f"{type(model).__name__} with {type(tokenizer).__name__} takes no "
            "input_ids: it is not a supported extractive QA checkpoint"
        )
    return names


def max_sequence_length(
    config: PretrainedConfig, tokenizer: PreTrainedTokenizerBase
) -> int:
    """Return the tokenizer's model_max_length capped by the position embeddings."""
    family = model_family(config)
    position_limit = config.max_position_embeddings - POSITION_OFFSETS[family]
    return min(int(tokenizer.model_max_length), position_limit)


def load_checkpoint(
    checkpoint_dir: Path,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a QA model in eval mode and its fast tokenizer from a local folder."""
    checkpoint_dir = Path(checkpoint_dir)
    if not (checkpoint_dir / "config.json").is_file():
        raise ExportError(
            f"{checkpoint_dir} is not a checkpoint folder (config.json not found): "
            "pass a folder from triton_qa.hub.resolve_checkpoint"
        )
    config = AutoConfig.from_pretrained(checkpoint_dir)
    model_family(config)
    tokenizer = AutoTokenizer.from_pretrained(checkpoint_dir, use_fast=True)
    if not tokenizer.is_fast:
        raise ExportError(
            f"{checkpoint_dir} has no fast tokenizer: save one with "
            "AutoTokenizer.from_pretrained(...).save_pretrained(folder)"
        )
    # Eager attention traces to plain MatMul and Softmax nodes, which the ONNX
    # Runtime transformer optimizer fuses into its Attention operator.
    model = AutoModelForQuestionAnswering.from_pretrained(
        checkpoint_dir, attn_implementation="eager"
    )
    model.eval()
    return model, tokenizer


def _example_inputs(
    tokenizer: PreTrainedTokenizerBase, input_names: tuple[str, ...]
) -> dict[str, torch.Tensor]:
    questions = [question for question, _ in _VERIFY_EXAMPLES]
    contexts = [context for _, context in _VERIFY_EXAMPLES]
    encoded = tokenizer(
        questions, contexts, padding=True, truncation="only_second", max_length=128
    )
    return {
        name: torch.tensor(encoded[name], dtype=torch.int64) for name in input_names
    }


def export_onnx(
    checkpoint_dir: Path, output_path: Path, opset: int = DEFAULT_OPSET
) -> ExportInfo:
    """Export a ``*ForQuestionAnswering`` checkpoint to one self-contained ONNX file.

    Raises ExportError for an unsupported model type, a missing fast tokenizer,
    or an exported graph whose inputs or outputs are not the expected ones.
    """
    checkpoint_dir = Path(checkpoint_dir)
    output_path = Path(output_path)
    model, tokenizer = load_checkpoint(checkpoint_dir)
    family = model_family(model.config)
    input_names = model_input_names(model, tokenizer)
    # The example batch is padded, so the traced graph keeps the attention mask.
    example = _example_inputs(tokenizer, input_names)
    dynamic_axes = {name: {0: "batch", 1: "sequence"} for name in input_names}
    dynamic_axes.update({name: {0: "batch", 1: "sequence"} for name in OUTPUT_NAMES})

    output_path.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", category=torch.jit.TracerWarning)
        # NOTE: PyTorch 2.13 warns that the TorchScript exporter is deprecated.
        # The dynamo exporter, the default since 2.9, needs onnxscript.
        warnings.simplefilter("ignore", category=DeprecationWarning)
        # The inputs go in by keyword: BERT's forward order (input_ids,
        # attention_mask, token_type_ids) differs from its tokenizer's order, so
        # positional inputs would feed token_type_ids into attention_mask.
        torch.onnx.export(
            _QuestionAnsweringLogits(model),
            args=(),
            kwargs=example,
            f=str(output_path),
            input_names=list(input_names),
            output_names=list(OUTPUT_NAMES),
            dynamic_axes=dynamic_axes,
            opset_version=opset,
            do_constant_folding=True,
            dynamo=False,
        )

    _check_graph(output_path, input_names)
    info = ExportInfo(
        family=family,
        input_names=input_names,
        output_names=OUTPUT_NAMES,
        model_max_length=max_sequence_length(model.config, tokenizer),
        onnx_path=output_path,
    )
    logger.info(
        "exported %s (%s) to %s with inputs %s",
        checkpoint_dir,
        family,
        output_path,
        ", ".join(input_names),
    )
    return info


def _check_graph(onnx_path: Path, input_names: tuple[str, ...]) -> None:
    graph_model = onnx.load(str(onnx_path), load_external_data=False)
    graph_inputs = tuple(value.name for value in graph_model.graph.input)
    graph_outputs = tuple(value.name for value in graph_model.graph.output)
    if graph_inputs != input_names or graph_outputs != OUTPUT_NAMES:
        raise ExportError(
            f"exported graph {onnx_path} has inputs {graph_inputs} and outputs "
            f"{graph_outputs}, expected {input_names} and {OUTPUT_NAMES}"
        )
    if any(uses_external_data(tensor) for tensor in graph_model.graph.initializer):
        # NOTE: only models over the 2 GB protobuf limit get here. ONNX Runtime
        # reads external data files relative to the model file.
        logger.warning("%s stores its weights in external data files", onnx_path)


def _pytorch_logits(
    model: PreTrainedModel, inputs: dict[str, np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    tensors = {name: torch.from_numpy(array) for name, array in inputs.items()}
    with torch.no_grad():
        output = model(**tensors, return_dict=True)
    return output.start_logits.numpy(), output.end_logits.numpy()


def verification_batches(
    tokenizer: PreTrainedTokenizerBase, input_names: tuple[str, ...]
) -> list[dict[str, np.ndarray]]:
    """Return a batch of one pair and a padded batch of three pairs of different lengths."""
    batches = []
    for examples in (_VERIFY_EXAMPLES[1:2], _VERIFY_EXAMPLES):
        encoded = tokenizer(
            [question for question, _ in examples],
            [context for _, context in examples],
            padding=True,
            return_tensors="np",
        )
        batches.append({name: encoded[name].astype(np.int64) for name in input_names})
    return batches


def verify_onnx(checkpoint_dir: Path, onnx_path: Path, atol: float = 1e-4) -> float:
    """Compare ONNX Runtime logits with PyTorch on a few question/context pairs.

    Returns the maximum absolute difference over all positions. Raises
    OnnxParityError when it exceeds ``atol``.
    """
    model, tokenizer = load_checkpoint(Path(checkpoint_dir))
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    input_names = tuple(value.name for value in session.get_inputs())

    max_difference = 0.0
    for inputs in verification_batches(tokenizer, input_names):
        expected = _pytorch_logits(model, inputs)
        actual = session.run(list(OUTPUT_NAMES), inputs)
        for name, want, got in zip(OUTPUT_NAMES, expected, actual):
            difference = float(np.max(np.abs(want - got)))
            max_difference = max(max_difference, difference)
            if difference > atol:
                raise OnnxParityError(
                    f"{name} of {onnx_path} differ from PyTorch by {difference:.3g} "
                    f"(tolerance {atol:g}) on a batch of shape "
                    f"{inputs['input_ids'].shape}: check that the file was exported "
                    f"from {checkpoint_dir}, or export it again with export_onnx"
                )
    logger.info("%s matches PyTorch within %.3g", onnx_path, max_difference)
    return max_difference


def _drop_unused_opset_imports(onnx_path: Path) -> None:
    # The optimizer declares every domain that its ONNX Runtime supports, such as
    # ai.onnx.ml 5 and the training domains. Older ONNX Runtime releases may
    # reject those versions, so only the domains that nodes use remain.
    graph_model = onnx.load(str(onnx_path))
    used_domains = {node.domain for node in graph_model.graph.node} | {""}
    used_imports = [op for op in graph_model.opset_import if op.domain in used_domains]
    del graph_model.opset_import[:]
    graph_model.opset_import.extend(used_imports)
    onnx.save(graph_model, str(onnx_path))


def quantize_int8(onnx_path: Path, output_path: Path) -> Path:
    """Fuse transformer subgraphs and quantize the weights to int8 for CPU serving.

    The ONNX Runtime transformer optimizer runs first, with the number of heads
    and the hidden size detected from the graph, then ``quantize_dynamic`` stores
    MatMul weights as QInt8. The result uses ONNX Runtime contrib operators
    (com.microsoft domain) and is meant for the CPU execution provider.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.transformers.optimizer import optimize_model

    output_path = Path(output_path)
    output_path.parent.mkdir(parents=True, exist_ok=True)
    optimized = optimize_model(
        str(onnx_path),
        model_type=ORT_OPTIMIZER_MODEL_TYPE,
        num_heads=0,
        hidden_size=0,
        opt_level=1,
        use_gpu=False,
    )
    with tempfile.TemporaryDirectory(prefix="triton-qa-quantize-") as work_dir:
        optimized_path = Path(work_dir) / "optimized.onnx"
        optimized.save_model_to_file(str(optimized_path))
        quantize_dynamic(
            str(optimized_path),
            str(output_path),
            weight_type=QuantType.QInt8,
            # ONNX shape inference cannot type the outputs of the fused contrib
            # operators (Attention, SkipLayerNormalization), which are float32.
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )
    _drop_unused_opset_imports(output_path)
    logger.info(
        "quantized %s to %s (fused operators: %s)",
        onnx_path,
        output_path,
        optimized.get_fused_operator_statistics(),
    )
    return output_path

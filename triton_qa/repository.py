"""Write a Triton model repository for an exported extractive-QA model.

Each model becomes an ensemble of three steps (tokenize, model, postprocess);
see docs/architecture.md. Two runtimes are supported for the model step:

- `python`: ONNX Runtime inside a Python-backend model, for the tritonserver
  bundled in the `nvidia-pytriton` wheel, which has no ONNX Runtime backend.
- `onnxruntime`: the native ONNX Runtime backend of the NVIDIA tritonserver
  image, optionally with the TensorRT execution accelerator in FP16.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from python_backend import protocol
from python_backend.tokenization import TokenizerInfo

RUNTIMES = ("python", "onnxruntime")

_ENTRY_POINT = '''"""Triton Python-backend entry point of the {step} step.

The implementation is `python_backend.models.{module}` in the triton-qa package.
"""

from python_backend.models.{module} import TritonPythonModel  # noqa: F401
'''


@dataclass(frozen=True)
class RepositoryOptions:
    """Runtime and tuning settings of a generated repository.

    The defaults were chosen by measurement on a 2-core CPU machine; see
    docs/benchmarks.md.
    """

    runtime: str = "python"
    tensorrt: bool = False
    # The model step's max_batch_size: windows per Triton call, and so the
    # chunk size in which the gateway sends long contexts.
    window_batch_size: int = 16
    max_queue_delay_us: int = 2000
    model_instances: int = 1
    intra_op_threads: int = 2
    inter_op_threads: int = 1
    # Padding windows to a multiple of this many tokens lets the native
    # backend batch requests of similar length together.
    pad_to_multiple_of: int = 1
    # The Python model step runs windows whose lengths differ by more than
    # this fraction in separate ONNX Runtime calls, to avoid padding work.
    max_length_growth: float = 0.25
    # Windows per ONNX Runtime call in the Python model step (0: the whole
    # batch). On a 2-core CPU single windows ran 7 to 15 % faster per window
    # than batches of 4 or 8 (docs/benchmarks.md).
    rows_per_run: int = 1
    tokenizer_instances: int = 1
    postprocess_instances: int = 1
    extra: dict = field(default_factory=dict)


def write_repository(
    output: Path,
    model_id: str,
    family: str,
    onnx_path: Path,
    tokenizer_json: Path,
    info: TokenizerInfo,
    options: RepositoryOptions = RepositoryOptions(),
) -> Path:
    """Write the ensemble for one model into `output`, replacing older files.

    Returns the ensemble's folder. Other models in `output` are left alone, so
    several models can share one repository.
    """
    if options.runtime not in RUNTIMES:
        raise ValueError(
            f"runtime {options.runtime!r} is invalid; use one of {RUNTIMES}"
        )
    if options.tensorrt and options.runtime != "onnxruntime":
        raise ValueError("--tensorrt needs the native onnxruntime runtime")
    name = protocol.ensemble_name(model_id)
    steps = protocol.step_names(name)
    for folder in [name, *steps.values()]:
        shutil.rmtree(output / folder, ignore_errors=True)

    tokenize_dir = output / steps["tokenize"]
    _write(
        tokenize_dir / "config.pbtxt", tokenize_config(steps["tokenize"], info, options)
    )
    _write(tokenize_dir / "1" / "model.py", _entry_point("tokenize", "tokenize"))
    shutil.copyfile(tokenizer_json, tokenize_dir / "1" / "tokenizer.json")

    model_dir = output / steps["model"]
    _write(model_dir / "config.pbtxt", model_config(steps["model"], info, options))
    if options.runtime == "python":
        _write(model_dir / "1" / "model.py", _entry_point("model", "onnx_runtime"))
    (model_dir / "1").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(onnx_path, model_dir / "1" / "model.onnx")

    postprocess_dir = output / steps["postprocess"]
    _write(
        postprocess_dir / "config.pbtxt",
        postprocess_config(steps["postprocess"], options),
    )
    _write(
        postprocess_dir / "1" / "model.py", _entry_point("postprocess", "postprocess")
    )

    ensemble_dir = output / name
    _write(
        ensemble_dir / "config.pbtxt",
        ensemble_config(name, model_id, family, info, options),
    )
    (ensemble_dir / "1").mkdir(parents=True, exist_ok=True)
    return ensemble_dir


def tokenize_config(name: str, info: TokenizerInfo, options: RepositoryOptions) -> str:
    outputs = [
        _tensor(protocol.INPUT_IDS, "TYPE_INT64", [-1, -1]),
        _tensor(protocol.ATTENTION_MASK, "TYPE_INT64", [-1, -1]),
    ]
    if protocol.TOKEN_TYPE_IDS in info.input_names:
        outputs.append(_tensor(protocol.TOKEN_TYPE_IDS, "TYPE_INT64", [-1, -1]))
    outputs += [
        _tensor(protocol.OFFSETS, "TYPE_INT32", [-1, -1, 2]),
        _tensor(protocol.WORD_IDS, "TYPE_INT32", [-1, -1]),
        _tensor(protocol.CANDIDATE_MASK, "TYPE_INT8", [-1, -1]),
        _tensor(protocol.NUM_WINDOWS, "TYPE_INT64", [1]),
        _tensor(protocol.WINDOW_START, "TYPE_INT64", [1]),
    ]
    parameters = {
        "model_max_length": info.model_max_length,
        "cls_token_id": "" if info.cls_token_id is None else info.cls_token_id,
        "pad_token_id": info.pad_token_id,
        "input_names": ",".join(info.input_names),
        "window_batch_size": options.window_batch_size,
        "pad_to_multiple_of": options.pad_to_multiple_of,
    }
    return "\n".join(
        [
            f'name: "{name}"',
            'backend: "python"',
            "max_batch_size: 0",
            _tensors(
                "input",
                [_text_tensor(protocol.QUESTION), _text_tensor(protocol.CONTEXT)],
            ),
            _tensors("output", outputs),
            _instances(options.tokenizer_instances, "KIND_CPU"),
            _parameters(parameters),
        ]
    )


def model_config(name: str, info: TokenizerInfo, options: RepositoryOptions) -> str:
    ragged = options.runtime == "python"
    inputs = [
        _tensor(input_name, "TYPE_INT64", [-1], ragged=ragged)
        for input_name in info.input_names
    ]
    outputs = [
        _tensor(protocol.START_LOGITS, "TYPE_FP32", [-1]),
        _tensor(protocol.END_LOGITS, "TYPE_FP32", [-1]),
    ]
    lines = [f'name: "{name}"']
    if options.runtime == "python":
        lines.append('backend: "python"')
    else:
        lines.append('backend: "onnxruntime"')
        lines.append('default_model_filename: "model.onnx"')
    lines += [
        f"max_batch_size: {options.window_batch_size}",
        _tensors("input", inputs),
        _tensors("output", outputs),
        (
            "dynamic_batching {\n"
            f"  max_queue_delay_microseconds: {options.max_queue_delay_us}\n"
            "}"
        ),
    ]
    if options.runtime == "python":
        lines.append(_instances(options.model_instances, "KIND_CPU"))
        lines.append(
            _parameters(
                {
                    "intra_op_threads": options.intra_op_threads,
                    "inter_op_threads": options.inter_op_threads,
                    "allow_spinning": 0,
                    "pad_token_id": info.pad_token_id,
                    "model_max_length": info.model_max_length,
                    "vocab_size": info.vocab_size,
                    "type_vocab_size": info.type_vocab_size,
                    "max_length_growth": options.max_length_growth,
                    "rows_per_run": options.rows_per_run,
                }
            )
        )
    else:
        # No instance kind: Triton places the model on a GPU when one is
        # visible and on the CPU otherwise, so one repository serves both.
        lines.append(
            f"instance_group [\n  {{\n    count: {options.model_instances}\n  }}\n]"
        )
        if options.tensorrt:
            lines.append(_tensorrt_optimization(info, options))
    return "\n".join(lines)


def _tensorrt_optimization(info: TokenizerInfo, options: RepositoryOptions) -> str:
    # TensorRT builds one engine for this range of shapes: 1 to
    # window_batch_size windows of 1 to model_max_length tokens.
    def shapes(rows: int, tokens: int) -> str:
        return ",".join(f"{name}:{rows}x{tokens}" for name in info.input_names)

    typical_length = min(info.model_max_length, protocol.DEFAULT_MAX_SEQ_LEN)
    accelerator = {
        "precision_mode": "FP16",
        "max_workspace_size_bytes": 1 << 30,
        "trt_engine_cache_enable": 1,
        "trt_engine_cache_path": "/tmp/triton-qa-trt-cache",
        "trt_profile_min_shapes": shapes(1, 1),
        "trt_profile_opt_shapes": shapes(options.window_batch_size, typical_length),
        "trt_profile_max_shapes": shapes(
            options.window_batch_size, info.model_max_length
        ),
    }
    entries = "\n".join(
        f'        parameters {{ key: "{key}" value: "{value}" }}'
        for key, value in accelerator.items()
    )
    return (
        "optimization {\n"
        "  execution_accelerators {\n"
        "    gpu_execution_accelerator: [\n"
        "      {\n"
        '        name: "tensorrt"\n'
        f"{entries}\n"
        "      }\n"
        "    ]\n"
        "  }\n"
        "}"
    )


def postprocess_config(name: str, options: RepositoryOptions) -> str:
    inputs = [
        _text_tensor(protocol.CONTEXT),
        _tensor(protocol.START_LOGITS, "TYPE_FP32", [-1, -1]),
        _tensor(protocol.END_LOGITS, "TYPE_FP32", [-1, -1]),
        _tensor(protocol.ATTENTION_MASK, "TYPE_INT64", [-1, -1]),
        _tensor(protocol.CANDIDATE_MASK, "TYPE_INT8", [-1, -1]),
        _tensor(protocol.OFFSETS, "TYPE_INT32", [-1, -1, 2]),
        _tensor(protocol.WORD_IDS, "TYPE_INT32", [-1, -1]),
        _tensor(protocol.NUM_WINDOWS, "TYPE_INT64", [1]),
        _tensor(protocol.WINDOW_START, "TYPE_INT64", [1]),
    ]
    return "\n".join(
        [
            f'name: "{name}"',
            'backend: "python"',
            "max_batch_size: 0",
            _tensors("input", inputs),
            _tensors("output", [_text_tensor(protocol.RESULT)]),
            _instances(options.postprocess_instances, "KIND_CPU"),
        ]
    )


def ensemble_config(
    name: str,
    model_id: str,
    family: str,
    info: TokenizerInfo,
    options: RepositoryOptions,
) -> str:
    steps = protocol.step_names(name)
    tokenizer_outputs = [protocol.INPUT_IDS, protocol.ATTENTION_MASK]
    if protocol.TOKEN_TYPE_IDS in info.input_names:
        tokenizer_outputs.append(protocol.TOKEN_TYPE_IDS)
    tokenizer_outputs += [
        protocol.OFFSETS,
        protocol.WORD_IDS,
        protocol.CANDIDATE_MASK,
        protocol.NUM_WINDOWS,
        protocol.WINDOW_START,
    ]
    logits = [protocol.START_LOGITS, protocol.END_LOGITS]
    postprocess_inputs = [
        protocol.CONTEXT,
        *logits,
        protocol.ATTENTION_MASK,
        protocol.CANDIDATE_MASK,
        protocol.OFFSETS,
        protocol.WORD_IDS,
        protocol.NUM_WINDOWS,
        protocol.WINDOW_START,
    ]
    step_blocks = [
        _step(
            steps["tokenize"], [protocol.QUESTION, protocol.CONTEXT], tokenizer_outputs
        ),
        _step(steps["model"], list(info.input_names), logits),
        _step(steps["postprocess"], postprocess_inputs, [protocol.RESULT]),
    ]
    parameters = {
        protocol.CONFIG_MODEL_ID: model_id,
        protocol.CONFIG_MODEL_FAMILY: family,
        protocol.CONFIG_MODEL_MAX_LENGTH: info.model_max_length,
        protocol.CONFIG_WINDOW_BATCH_SIZE: options.window_batch_size,
    }
    return "\n".join(
        [
            f'name: "{name}"',
            'platform: "ensemble"',
            "max_batch_size: 0",
            _tensors(
                "input",
                [_text_tensor(protocol.QUESTION), _text_tensor(protocol.CONTEXT)],
            ),
            _tensors("output", [_text_tensor(protocol.RESULT)]),
            "ensemble_scheduling {\n  step [\n" + ",\n".join(step_blocks) + "\n  ]\n}",
            _parameters(parameters),
        ]
    )


def _step(model: str, inputs: list[str], outputs: list[str]) -> str:
    lines = ["    {", f'      model_name: "{model}"', "      model_version: -1"]
    lines += [f'      input_map {{ key: "{key}" value: "{key}" }}' for key in inputs]
    lines += [f'      output_map {{ key: "{key}" value: "{key}" }}' for key in outputs]
    lines.append("    }")
    return "\n".join(lines)


def _tensor(name: str, data_type: str, dims: list[int], ragged: bool = False) -> str:
    text = f'  {{\n    name: "{name}"\n    data_type: {data_type}\n    dims: {dims}\n'
    if ragged:
        text += "    allow_ragged_batch: true\n"
    return text + "  }"


def _text_tensor(name: str) -> str:
    return _tensor(name, "TYPE_STRING", [1])


def _tensors(kind: str, tensors: list[str]) -> str:
    return f"{kind} [\n" + ",\n".join(tensors) + "\n]"


def _instances(count: int, kind: str) -> str:
    return f"instance_group [\n  {{\n    count: {count}\n    kind: {kind}\n  }}\n]"


def _parameters(values: dict) -> str:
    return "\n".join(
        f'parameters: {{\n  key: "{key}"\n  value: {{ string_value: {json.dumps(str(value))} }}\n}}'
        for key, value in values.items()
    )


def _entry_point(step: str, module: str) -> str:
    return _ENTRY_POINT.format(step=step, module=module)


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text.rstrip("\n") + "\n", encoding="utf-8")

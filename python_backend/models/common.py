"""Helpers shared by the Python-backend steps."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import triton_python_backend_utils as pb_utils

from python_backend.tokenization import RequestError


def model_parameters(args: dict) -> dict[str, str]:
    """Return the `parameters` of a model's config.pbtxt as plain strings."""
    config = json.loads(args["model_config"])
    return {
        key: value["string_value"]
        for key, value in config.get("parameters", {}).items()
    }


def version_dir(args: dict) -> Path:
    """Return the folder of the model version being loaded."""
    return Path(args["model_repository"]) / args["model_version"]


def read_text(request, name: str) -> str:
    """Read a `[1]` string tensor as text, or raise `RequestError`."""
    tensor = pb_utils.get_input_tensor_by_name(request, name)
    if tensor is None:
        raise RequestError(name.lower(), f"input tensor {name} is missing")
    values = tensor.as_numpy().reshape(-1)
    if values.size != 1:
        raise RequestError(
            name.lower(), f"input tensor {name} must hold one string, not {values.size}"
        )
    value = values[0]
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError as error:
            raise RequestError(
                name.lower(), f"{name.lower()} is not valid UTF-8: {error}"
            )
    return str(value)


def read_array(request, name: str) -> np.ndarray:
    tensor = pb_utils.get_input_tensor_by_name(request, name)
    if tensor is None:
        raise RequestError(name, f"input tensor {name} is missing", "invalid_request")
    return tensor.as_numpy()


def error_response(error: RequestError) -> pb_utils.InferenceResponse:
    return pb_utils.InferenceResponse(
        error=pb_utils.TritonError(
            error.to_triton_message(), pb_utils.TritonError.INVALID_ARG
        )
    )


def internal_error_response(message: str) -> pb_utils.InferenceResponse:
    return pb_utils.InferenceResponse(
        error=pb_utils.TritonError(message, pb_utils.TritonError.INTERNAL)
    )

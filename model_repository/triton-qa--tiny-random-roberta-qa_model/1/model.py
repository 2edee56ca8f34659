"""Triton Python-backend entry point of the model step.

The implementation is `python_backend.models.onnx_runtime` in the triton-qa package.
"""

from python_backend.models.onnx_runtime import TritonPythonModel  # noqa: F401

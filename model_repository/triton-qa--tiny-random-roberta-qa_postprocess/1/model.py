"""Triton Python-backend entry point of the postprocess step.

The implementation is `python_backend.models.postprocess` in the triton-qa package.
"""

from python_backend.models.postprocess import TritonPythonModel  # noqa: F401

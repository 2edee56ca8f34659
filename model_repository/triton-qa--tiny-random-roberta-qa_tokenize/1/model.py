"""Triton Python-backend entry point of the tokenize step.

The implementation is `python_backend.models.tokenize` in the triton-qa package.
"""

from python_backend.models.tokenize import TritonPythonModel  # noqa: F401

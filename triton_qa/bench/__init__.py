"""`triton-qa bench`: the stack against the transformers pipeline and raw ONNX Runtime."""

from triton_qa.bench.command import main

__all__ = ["main"]

"""triton-qa: extractive question answering on NVIDIA Triton Inference Server."""

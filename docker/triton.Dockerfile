# syntax=docker/dockerfile:1
# Triton image of triton-qa: the NVIDIA tritonserver image plus the Python
# packages that the ensembles' Python-backend steps (tokenizer, postprocessing)
# import. Build from the repository root:
#   docker build -f docker/triton.Dockerfile -t REGISTRY/triton-qa-triton:TAG .
# Targets: "runtime" has no model repository; "bundled" (the default) adds one
# at /models, by default the repository's test model; pass
# --build-arg MODEL_REPOSITORY=DIR to bake a repository built by `triton-qa build`.

# Triton 2.51 with Python 3.10. This ARG is the only pin of the base image:
# helm/triton-qa/Chart.yaml records it in the annotation
# triton-qa.io/triton-base-image, and a test keeps the two equal.
ARG TRITON_IMAGE=nvcr.io/nvidia/tritonserver:24.10-py3

FROM ${TRITON_IMAGE} AS runtime

# The Python backend's stub breaks on numpy 2 with TYPE_STRING tensors, so
# numpy stays below 2. onnxruntime runs the model step of repositories built
# with `triton-qa build --runtime python` (the default, and the bundled test
# model); 1.23.2 is its last release with Python 3.10 wheels, so it is older
# than the onnxruntime of requirements/runtime.txt. The numpy and tokenizers
# versions equal those of requirements/*.txt (a test checks them). DL3064 below
# mistakes TOKENIZERS for a secret.
ARG NUMPY_VERSION=1.26.4
# hadolint ignore=DL3064
ARG TOKENIZERS_VERSION=0.22.2
ARG ONNXRUNTIME_VERSION=1.23.2

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# The stub runs the image's system python3, so the packages go into its
# site-packages. The triton-qa package goes in without dependencies: the
# Python steps need only python_backend, numpy, tokenizers and onnxruntime.
WORKDIR /tmp/triton-qa-src
# pyproject.toml names README.md as the package's readme. Without it, setuptools
# 84 only warns but builds a package whose metadata has no description.
COPY pyproject.toml README.md ./
COPY python_backend ./python_backend
RUN python3 -m pip install \
        "numpy==${NUMPY_VERSION}" \
        "tokenizers==${TOKENIZERS_VERSION}" \
        "onnxruntime==${ONNXRUNTIME_VERSION}" \
    && python3 -m pip install --no-deps . \
    && python3 -c "import numpy, onnxruntime, tokenizers, python_backend.decoding" \
    && rm -rf /tmp/triton-qa-src

WORKDIR /opt/tritonserver
# triton-server (UID 1000) is the unprivileged user of the NVIDIA image.
USER 1000:1000
EXPOSE 8000 8001 8002
CMD ["tritonserver", "--model-repository=/models", "--http-port=8000", "--grpc-port=8001", "--metrics-port=8002"]

FROM runtime AS bundled
ARG MODEL_REPOSITORY=model_repository
COPY --chown=1000:1000 ${MODEL_REPOSITORY} /models

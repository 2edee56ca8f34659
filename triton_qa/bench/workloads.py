"""Request sets of the benchmark and the model windows they turn into.

The pairs come from `loadtests/workload.py`, the generator that the Locust
load test uses, so both measure the same kind of traffic.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import sys
from dataclasses import dataclass
from functools import cached_property
from types import ModuleType

import numpy as np

from python_backend import protocol
from python_backend.tokenization import WindowEncoder, resolve_window_params
from triton_qa.build import REPOSITORY_ROOT

logger = logging.getLogger(__name__)

WORKLOADS = ("short", "long", "mix", "full")
WORKLOAD_HELP = {
    "short": "SQuAD-like pairs: contexts of 100 to 200 words",
    "long": "contexts of 2,000 words",
    "mix": "nine short pairs for each long one",
    "full": "short questions with contexts cut so that the one window is "
    "max_seq_len (384) tokens",
}
SHORT_PAIRS = 64
LONG_PAIRS = 4
MIX_PERIOD = 10
WORKLOAD_MODULE = REPOSITORY_ROOT / "loadtests" / "workload.py"


def load_generator() -> ModuleType:
    """Import `loadtests/workload.py`, which is not part of the installed package."""
    name = "triton_qa_loadtests_workload"
    if name in sys.modules:
        return sys.modules[name]
    if not WORKLOAD_MODULE.is_file():
        raise FileNotFoundError(
            f"{WORKLOAD_MODULE} not found: run the benchmark from a triton-qa "
            "source checkout"
        )
    spec = importlib.util.spec_from_file_location(name, WORKLOAD_MODULE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@dataclass(frozen=True)
class Request:
    """One pair with its windows, as the tokenizer step would cut them."""

    question: str
    context: str
    parameters: dict
    windows: dict[str, np.ndarray]

    @property
    def num_windows(self) -> int:
        return int(self.windows[protocol.INPUT_IDS].shape[0])

    @property
    def lengths(self) -> np.ndarray:
        """Unpadded token count of each window."""
        return self.windows[protocol.ATTENTION_MASK].sum(axis=1)

    @cached_property
    def body(self) -> bytes:
        """The JSON request body for the gateway."""
        payload: dict = {"inputs": {"question": self.question, "context": self.context}}
        if self.parameters:
            payload["parameters"] = self.parameters
        return json.dumps(payload).encode("utf-8")


@dataclass(frozen=True)
class Workload:
    name: str
    requests: list[Request]

    @property
    def windows_per_request(self) -> float:
        return sum(r.num_windows for r in self.requests) / len(self.requests)

    @property
    def tokens_per_window(self) -> float:
        lengths = np.concatenate([r.lengths for r in self.requests])
        return float(lengths.mean())

    def summary(self) -> dict:
        return {
            "requests": len(self.requests),
            "windows_per_request": round(self.windows_per_request, 2),
            "tokens_per_window": round(self.tokens_per_window, 1),
            "context_words": round(
                float(np.mean([len(r.context.split()) for r in self.requests])), 1
            ),
        }


def build_workloads(
    names: list[str], encoder: WindowEncoder, long_words: int
) -> dict[str, Workload]:
    """Return the named workloads, with windows cut by `encoder`."""
    generator = load_generator()
    short = generator.squad_pairs(SHORT_PAIRS, seed=0)
    long = generator.long_pairs(LONG_PAIRS, words=long_words, seed=1)
    pairs = {
        "short": short,
        "long": long,
        "mix": _mix(short, long),
        "full": _full_window_pairs(generator, short[:16], encoder),
    }
    workloads = {}
    for name in names:
        requests = [_request(pair, encoder) for pair in pairs[name]]
        workloads[name] = Workload(name, requests)
        logger.info("workload %s: %s", name, workloads[name].summary())
    return workloads


def _mix(short: list, long: list) -> list:
    """Interleave the pairs so that every MIX_PERIOD-th one is long."""
    mixed = []
    for index, pair in enumerate(short[: len(long) * (MIX_PERIOD - 1)]):
        mixed.append(pair)
        if index % (MIX_PERIOD - 1) == MIX_PERIOD - 2:
            mixed.append(long[index // (MIX_PERIOD - 1)])
    return mixed


def _full_window_pairs(generator: ModuleType, short: list, encoder: WindowEncoder):
    """Extend each short context and cut it where its first window ends."""
    window = resolve_window_params({}, encoder.info.model_max_length)
    filler = generator.long_pairs(1, words=600, seed=2)[0].context
    pairs = []
    for pair in short:
        context = pair.context + " " + filler
        first = encoder.encode(pair.question, context, window)[0]
        context_ends = [
            end
            for (start, end), sequence in zip(first.offsets, first.sequence_ids)
            if sequence == 1
        ]
        pairs.append(generator.Pair(pair.question, context[: context_ends[-1]], ""))
    return pairs


def _request(pair, encoder: WindowEncoder) -> Request:
    window = resolve_window_params({}, encoder.info.model_max_length)
    encodings = encoder.encode(pair.question, pair.context, window)
    tensors = encoder.window_tensors(encodings, 0, len(encodings))
    return Request(pair.question, pair.context, {}, tensors)


def window_flops(lengths: np.ndarray, config: dict) -> float:
    """Return the floating-point operations of the encoder for windows of `lengths`.

    Only matrix products count, at 2 FLOPs per multiply-add. Per layer and
    token these are the Q, K, V and output projections (4 h^2), the
    feed-forward layers (2 h i) and the attention scores and weighted sum
    (2 L h). The span head adds 2 h per token. Embeddings, softmax, layer
    norms and the padding that a batch adds are left out.
    """
    hidden = config["hidden_size"]
    inner = config["intermediate_size"]
    layers = config["num_hidden_layers"]
    lengths = np.asarray(lengths, dtype=np.float64)
    per_token = layers * (4 * hidden * hidden + 2 * hidden * inner) + 2 * hidden
    attention = layers * 2 * hidden * lengths
    return float(np.sum(2 * lengths * (per_token + attention)))

"""Split a question and context into model windows, as the transformers pipeline does.

The transformers 4.x `QuestionAnsweringPipeline` tokenizes the pair with the question
first, truncates only the context, and lets consecutive windows overlap by
`doc_stride` tokens. This module reproduces that with the `tokenizers` library
alone, and checks the parameters first, because a bad stride makes the Rust
tokenizer panic (a `BaseException` that takes the process down).
"""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tokenizers import Encoding, Tokenizer

from python_backend import protocol


class RequestError(ValueError):
    """An invalid request, reported to the client as HTTP 422."""

    def __init__(self, field: str, message: str, error_type: str = "invalid_parameter"):
        super().__init__(message)
        self.field = field
        self.message = message
        self.error_type = error_type

    def to_triton_message(self) -> str:
        """Return the message that carries this error through Triton to the gateway."""
        body = {"error": self.message, "error_type": self.error_type, "status": 422}
        return protocol.ERROR_MARKER + json.dumps(body, ensure_ascii=False)


@dataclass(frozen=True)
class WindowParams:
    """Resolved window parameters of one request."""

    max_seq_len: int
    doc_stride: int
    max_question_len: int


@dataclass(frozen=True)
class TokenizerInfo:
    """Facts about a checkpoint's tokenizer that `tokenizer.json` does not hold."""

    model_max_length: int
    cls_token_id: int | None
    pad_token_id: int
    input_names: tuple[str, ...]
    # Rows of the model's token and token type embeddings; 0 when unknown.
    vocab_size: int = 0
    type_vocab_size: int = 0


def resolve_window_params(
    params: dict[str, Any], model_max_length: int
) -> WindowParams:
    """Apply the pipeline's defaults and range checks to the window parameters."""
    max_seq_len = params.get("max_seq_len")
    if max_seq_len is None:
        max_seq_len = min(model_max_length, protocol.DEFAULT_MAX_SEQ_LEN)
    elif max_seq_len > model_max_length:
        raise RequestError(
            "max_seq_len",
            f"max_seq_len={max_seq_len} is larger than this model's maximum of "
            f"{model_max_length} tokens; use a value from 1 to {model_max_length}",
        )
    elif max_seq_len < 1:
        raise RequestError(
            "max_seq_len",
            f"max_seq_len={max_seq_len} is invalid; it must be at least 1",
        )
    doc_stride = params.get("doc_stride")
    if doc_stride is None:
        doc_stride = min(max_seq_len // 2, protocol.DEFAULT_MAX_DOC_STRIDE)
    elif doc_stride < 0:
        raise RequestError(
            "doc_stride", f"doc_stride={doc_stride} is invalid; it must be at least 0"
        )
    max_question_len = params.get(
        "max_question_len", protocol.DEFAULTS["max_question_len"]
    )
    if max_question_len < 1:
        raise RequestError(
            "max_question_len",
            f"max_question_len={max_question_len} is invalid; it must be at least 1",
        )
    return WindowParams(max_seq_len, doc_stride, max_question_len)


class WindowEncoder:
    """Tokenize question and context pairs into overlapping model windows.

    Not thread-safe: the truncation settings live on the shared `Tokenizer`, so
    use one instance per thread, as a Triton Python model instance does.
    """

    def __init__(self, tokenizer: Tokenizer, info: TokenizerInfo, cache_size: int = 8):
        self.tokenizer = tokenizer
        self.info = info
        self.num_special_tokens = tokenizer.num_special_tokens_to_add(is_pair=True)
        # A context longer than one chunk of windows is tokenized once and then
        # served from here for its remaining chunks.
        self._cache: OrderedDict[tuple, list[Encoding]] = OrderedDict()
        self._cache_size = cache_size

    @classmethod
    def from_files(cls, tokenizer_path: Path, info: TokenizerInfo) -> WindowEncoder:
        return cls(Tokenizer.from_file(str(tokenizer_path)), info)

    def truncate_question(self, question: str, max_question_len: int) -> str:
        """Cut the question to at most `max_question_len` tokens.

        The pipeline ignores `max_question_len` with fast tokenizers; this
        service honours it. The cut falls at a token boundary, and the cut
        text is encoded again in case the tokenizer merges differently there.
        """
        self.tokenizer.no_truncation()
        encoding = self.tokenizer.encode(question, add_special_tokens=False)
        if len(encoding.ids) <= max_question_len:
            return question
        for kept_tokens in range(max_question_len, 0, -1):
            shorter = question[: encoding.offsets[kept_tokens - 1][1]]
            shorter_ids = self.tokenizer.encode(shorter, add_special_tokens=False).ids
            if len(shorter_ids) <= max_question_len:
                return shorter
        # Byte-level tokenizers can spend several tokens on one character (an
        # emoji takes four), and a question cannot be cut inside a character.
        raise RequestError(
            "max_question_len",
            f"max_question_len={max_question_len} is too small for this question: "
            f"its first character alone takes more tokens; raise max_question_len",
        )

    def encode(
        self, question: str, context: str, window: WindowParams
    ) -> list[Encoding]:
        """Return the windows of a question and context pair, in context order."""
        key = (question, context, window)
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            return cached
        encodings = self._encode_uncached(question, context, window)
        self._cache[key] = encodings
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return encodings

    def _encode_uncached(
        self, question: str, context: str, window: WindowParams
    ) -> list[Encoding]:
        question = self.truncate_question(question, window.max_question_len)
        self.tokenizer.no_truncation()
        self.tokenizer.no_padding()
        question_tokens = len(
            self.tokenizer.encode(question, add_special_tokens=False).ids
        )
        self._check_window_room(question_tokens, window)

        self.tokenizer.enable_truncation(
            window.max_seq_len,
            stride=window.doc_stride,
            strategy="only_second",
            direction="right",
        )
        first = self.tokenizer.encode(question, context)
        encodings = [first, *first.overflowing]
        if not any(sequence_id == 1 for sequence_id in first.sequence_ids):
            raise RequestError(
                "context",
                "context contains no tokens that the model can read; send a context "
                "with words in it",
            )
        return encodings

    def _check_window_room(self, question_tokens: int, window: WindowParams) -> None:
        """Raise `RequestError` unless each window has room for context tokens.

        The Rust tokenizer panics when `doc_stride` is not below that room.
        """
        if question_tokens == 0:
            raise RequestError(
                "question",
                "question contains no tokens that the model can read; send a question "
                "with words in it",
            )
        room = window.max_seq_len - self.num_special_tokens - question_tokens
        if room < 1:
            raise RequestError(
                "max_seq_len",
                f"max_seq_len={window.max_seq_len} leaves no room for the context after "
                f"the question ({question_tokens} tokens) and {self.num_special_tokens} "
                f"special tokens; raise max_seq_len or lower max_question_len",
            )
        if window.doc_stride >= room:
            raise RequestError(
                "doc_stride",
                f"doc_stride={window.doc_stride} is too large: with max_seq_len="
                f"{window.max_seq_len} and a question of {question_tokens} tokens, each "
                f"window has room for {room} context tokens, so doc_stride must be "
                f"less than {room}",
            )

    def window_tensors(
        self,
        encodings: list[Encoding],
        start: int,
        limit: int,
        pad_to_multiple_of: int = 1,
    ) -> dict[str, np.ndarray]:
        """Stack windows `start` to `start + limit` into padded arrays."""
        chosen = encodings[start : start + limit]
        length = max(len(encoding.ids) for encoding in chosen)
        if pad_to_multiple_of > 1:
            padded = -(-length // pad_to_multiple_of) * pad_to_multiple_of
            length = min(padded, max(length, self.info.model_max_length))

        count = len(chosen)
        input_ids = np.full((count, length), self.info.pad_token_id, dtype=np.int64)
        attention_mask = np.zeros((count, length), dtype=np.int64)
        token_type_ids = np.zeros((count, length), dtype=np.int64)
        offsets = np.zeros((count, length, 2), dtype=np.int32)
        word_ids = np.full((count, length), -1, dtype=np.int32)
        candidate_mask = np.zeros((count, length), dtype=np.int8)

        for row, encoding in enumerate(chosen):
            size = len(encoding.ids)
            ids = np.asarray(encoding.ids, dtype=np.int64)
            input_ids[row, :size] = ids
            attention_mask[row, :size] = encoding.attention_mask
            token_type_ids[row, :size] = encoding.type_ids
            offsets[row, :size] = encoding.offsets
            in_context = np.asarray(
                [sequence_id == 1 for sequence_id in encoding.sequence_ids], dtype=bool
            )
            words = np.asarray(
                [-1 if word is None else word for word in encoding.word_ids],
                dtype=np.int32,
            )
            word_ids[row, :size] = np.where(in_context, words, -1)
            # The pipeline lets context tokens and the CLS token start or end a span.
            allowed = in_context.copy()
            if self.info.cls_token_id is not None:
                allowed |= ids == self.info.cls_token_id
            candidate_mask[row, :size] = allowed

        tensors = {
            protocol.INPUT_IDS: input_ids,
            protocol.ATTENTION_MASK: attention_mask,
            protocol.OFFSETS: offsets,
            protocol.WORD_IDS: word_ids,
            protocol.CANDIDATE_MASK: candidate_mask,
            protocol.NUM_WINDOWS: np.asarray([len(encodings)], dtype=np.int64),
            protocol.WINDOW_START: np.asarray([start], dtype=np.int64),
        }
        if protocol.TOKEN_TYPE_IDS in self.info.input_names:
            tensors[protocol.TOKEN_TYPE_IDS] = token_type_ids
        return tensors


def read_tokenizer_info(checkpoint_dir: Path) -> TokenizerInfo:
    """Read a checkpoint's special token ids, input names and length limit.

    This reads the JSON files that `save_pretrained` writes, so it needs no
    transformers install.
    """
    config = _read_json(checkpoint_dir / "config.json")
    tokenizer_config = _read_json(checkpoint_dir / "tokenizer_config.json")
    tokenizer = Tokenizer.from_file(str(checkpoint_dir / "tokenizer.json"))

    def token_id(name: str) -> int | None:
        token = tokenizer_config.get(name)
        if isinstance(token, dict):
            token = token.get("content")
        if token is None:
            special = _read_json(checkpoint_dir / "special_tokens_map.json").get(name)
            token = special.get("content") if isinstance(special, dict) else special
        return None if token is None else tokenizer.token_to_id(token)

    family = config.get("model_type", "")
    input_names = ["input_ids", "attention_mask"]
    if family == "bert":
        input_names.append("token_type_ids")
    positions = config.get("max_position_embeddings", 512)
    # RoBERTa-style models reserve the first positions after the padding index.
    if family in ("roberta", "xlm-roberta", "camembert"):
        positions -= config.get("pad_token_id", 1) + 1
    model_max_length = tokenizer_config.get("model_max_length") or positions
    if not isinstance(model_max_length, int) or model_max_length > positions:
        model_max_length = positions
    pad_token_id = token_id("pad_token")
    return TokenizerInfo(
        model_max_length=int(model_max_length),
        cls_token_id=token_id("cls_token"),
        pad_token_id=0 if pad_token_id is None else pad_token_id,
        input_names=tuple(input_names),
        vocab_size=int(config.get("vocab_size", 0)),
        type_vocab_size=int(config.get("type_vocab_size", 0)),
    )


def _read_json(path: Path) -> dict:
    if not path.exists():
        return {}
    with path.open(encoding="utf-8") as handle:
        return json.load(handle)

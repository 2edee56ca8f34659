"""Hostile and malformed input against the real stack: bodies, limits, direct calls.

Every request a client can send must get a JSON answer or a JSON error with a 4xx,
502, 503 or 504 status, never a 500. Direct Triton calls must get an error without
taking a Python-backend stub down or failing other requests of the same batch.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import signal
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.grpc.aio as grpcaio
from tokenizers import Tokenizer
from tritonclient.utils import InferenceServerException

from tests.conftest import free_port
from tests.integration.gateway_processes import gateway_process
from tests.reference import assert_contract_items
from triton_qa.build import BUNDLED_REPOSITORY
from triton_qa.tritonserver import TritonPorts, TritonProcess, wait_for_http

pytestmark = pytest.mark.integration

ENSEMBLE = "triton-qa--tiny-random-roberta-qa"
TOKENIZE_STEP = f"{ENSEMBLE}_tokenize"
MODEL_STEP = f"{ENSEMBLE}_model"
POSTPROCESS_STEP = f"{ENSEMBLE}_postprocess"
TOKENIZER_JSON = BUNDLED_REPOSITORY / TOKENIZE_STEP / "1" / "tokenizer.json"
MODEL_MAX_LENGTH = 512
MAX_BODY_BYTES = 1_048_576
MAX_INT_PARAMETER = 2**31 - 1
# RoBERTa adds <s> question </s></s> context </s> to a pair.
PAIR_SPECIAL_TOKENS = 4

QUESTION = "Who was the first librarian?"
CONTEXT = "Its first librarian was a retired pilot named Edda Vossberg."
SMALL_BODY = {"inputs": {"question": "Who?", "context": "Edda is here."}}


def request_body(question=QUESTION, context=CONTEXT, **parameters) -> dict:
    body = {"inputs": {"question": question, "context": context}}
    if parameters:
        body["parameters"] = parameters
    return body


def encoded(body: dict) -> bytes:
    return json.dumps(body).encode()


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def question_tokens(question: str) -> int:
    tokenizer = Tokenizer.from_file(str(TOKENIZER_JSON))
    return len(tokenizer.encode(question, add_special_tokens=False).ids)


def assert_error(response: httpx.Response, status: int, error_type: str | None):
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    payload = response.json()
    assert set(payload) == {"error", "error_type"}, payload
    if error_type is not None:
        assert payload["error_type"] == error_type, payload


def answers_of(response: httpx.Response) -> list[dict]:
    payload = response.json()
    return payload if isinstance(payload, list) else [payload]


# (id, raw body, status, error_type)
BAD_BODIES = [
    ("truncated-json", b"{", 400, "invalid_json"),
    ("empty", b"", 400, "invalid_json"),
    ("only-whitespace", b" \n\t ", 400, "invalid_json"),
    ("array", b"[]", 400, "invalid_body"),
    ("string", b'"inputs"', 400, "invalid_body"),
    ("null", b"null", 400, "invalid_body"),
    ("number", b"1", 400, "invalid_body"),
    ("nested-lists-100k", nested(100_000).encode(), 400, "invalid_json"),
    (
        "nested-objects-100k",
        b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
        400,
        "invalid_json",
    ),
    ("invalid-utf8", b'{"inputs": {"question": "who\xff", "context": "a"}}', 400, None),
    ("integer-5000-digits", b'{"inputs": 1' + b"0" * 5000 + b"}", 400, None),
    (
        "nan-top-k",
        b'{"inputs": {"question": "q", "context": "c"}, "parameters": {"top_k": NaN}}',
        422,
        "validation_error",
    ),
    (
        "minus-infinity",
        (
            b'{"inputs": {"question": "q", "context": "c"}, '
            b'"parameters": {"max_answer_len": -Infinity}}'
        ),
        422,
        "validation_error",
    ),
    (
        "top-k-1e400",
        b'{"inputs": {"question": "q", "context": "c"}, "parameters": {"top_k": 1e400}}',
        422,
        "validation_error",
    ),
    ("top-k-2-pow-70", encoded(request_body(top_k=2**70)), 422, "validation_error"),
    (
        "top-k-above-int32",
        encoded(request_body(top_k=MAX_INT_PARAMETER + 1)),
        422,
        None,
    ),
    ("top-k-float", encoded(request_body(top_k=2.0)), 422, "validation_error"),
    ("top-k-bool", encoded(request_body(top_k=True)), 422, "validation_error"),
    ("top-k-string", encoded(request_body(top_k="3")), 422, "validation_error"),
    ("align-string", encoded(request_body(align_to_words="false")), 422, None),
    ("align-number", encoded(request_body(align_to_words=1)), 422, None),
    ("doc-stride-negative", encoded(request_body(doc_stride=-1)), 422, None),
    ("max-seq-len-zero", encoded(request_body(max_seq_len=0)), 422, None),
    (
        "lone-surrogate-question",
        b'{"inputs": {"question": "\\ud800", "context": "abc"}}',
        422,
        "validation_error",
    ),
    (
        "lone-surrogate-context",
        b'{"inputs": {"question": "who", "context": "abc \\udfff def"}}',
        422,
        "validation_error",
    ),
    (
        "lone-surrogate-value",
        b'{"inputs": {"question": "q", "context": "c"}, "parameters": {"top_k": "\\ud800"}}',
        422,
        "validation_error",
    ),
    (
        "lone-surrogate-top-level-key",
        b'{"inputs": {"question": "q", "context": "c"}, "\\ud800": 1}',
        422,
        "validation_error",
    ),
    ("inputs-empty-list", b'{"inputs": []}', 422, "validation_error"),
    (
        "inputs-empty-columns",
        b'{"inputs": {"question": [], "context": []}}',
        422,
        "validation_error",
    ),
    (
        "inputs-33-pairs",
        encoded({"inputs": [request_body()["inputs"]] * 33}),
        422,
        "validation_error",
    ),
    (
        "inputs-nested-column",
        encoded({"inputs": {"question": [[QUESTION]], "context": [CONTEXT]}}),
        422,
        "validation_error",
    ),
    ("parameters-array", encoded({**request_body(), "parameters": [1]}), 422, None),
    ("options-array", encoded({**request_body(), "options": [1]}), 422, None),
]


@pytest.mark.parametrize(
    ("content", "status", "error_type"),
    [case[1:] for case in BAD_BODIES],
    ids=[case[0] for case in BAD_BODIES],
)
def test_bad_body_gets_error_envelope(stack, content, status, error_type):
    response = httpx.post(stack.url, content=content, timeout=60)
    assert_error(response, status, error_type)


def test_gzip_body_is_not_json(stack):
    content = gzip.compress(encoded(request_body()))
    headers = {"Content-Encoding": "gzip", "Content-Type": "application/json"}
    response = httpx.post(stack.url, content=content, headers=headers, timeout=60)
    assert_error(response, 400, "invalid_json")


def test_bad_pair_in_batch_names_its_index(stack):
    pairs = [
        request_body()["inputs"],
        {"question": QUESTION, "context": " "},
        request_body()["inputs"],
    ]
    response = httpx.post(stack.url, json={"inputs": pairs}, timeout=60)
    assert_error(response, 422, "validation_error")
    assert response.json()["error"].startswith("inputs[1]")


ACCEPTED_BODIES = [
    (
        "duplicate-keys-last-wins",
        (
            b'{"inputs": {"question": "", "question": "Who?", '
            b'"context": "xxx", "context": "Edda is here."}}'
        ),
        "Edda is here.",
    ),
    (
        "utf16-body",
        json.dumps(request_body()).encode("utf-16"),
        CONTEXT,
    ),
    (
        "utf8-bom",
        b"\xef\xbb\xbf" + encoded(request_body()),
        CONTEXT,
    ),
    (
        "nul-characters",
        encoded(
            request_body(question="Who\u0000?", context="Edda\u0000 is here.\u0000")
        ),
        "Edda\u0000 is here.\u0000",
    ),
]


@pytest.mark.parametrize(
    ("content", "context"),
    [case[1:] for case in ACCEPTED_BODIES],
    ids=[case[0] for case in ACCEPTED_BODIES],
)
def test_unusual_valid_body_is_answered(stack, content, context):
    response = httpx.post(stack.url, content=content, timeout=60)
    assert response.status_code == 200, response.text
    assert_contract_items(answers_of(response), context, 1)


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; b=x"],
)
def test_content_type_is_not_checked(stack, content_type):
    response = httpx.post(
        stack.url,
        content=encoded(request_body()),
        headers={"Content-Type": content_type},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    assert_contract_items(answers_of(response), CONTEXT, 1)


def _body_of_size(size: int) -> bytes:
    empty = request_body(question="Who is Edda?", context="")
    room = size - len(encoded(empty))
    sentence = "Edda Vossberg was a librarian in the town. "
    context = (sentence * (room // len(sentence) + 1))[:room]
    content = encoded(request_body(question="Who is Edda?", context=context))
    assert len(content) == size
    return content


def _chunks(content: bytes, size: int = 65_536):
    for start in range(0, len(content), size):
        yield content[start : start + size]


@pytest.mark.slow
def test_body_at_size_limit_is_answered(stack):
    content = _body_of_size(MAX_BODY_BYTES)
    response = httpx.post(stack.url, content=content, timeout=120)
    assert response.status_code == 200, response.text
    context = json.loads(content)["inputs"]["context"]
    assert_contract_items(answers_of(response), context, 1)


def test_body_over_size_limit_is_413(stack):
    content = _body_of_size(MAX_BODY_BYTES + 1)
    declared = httpx.post(stack.url, content=content, timeout=60)
    chunked = httpx.post(stack.url, content=_chunks(content), timeout=60)
    assert_error(declared, 413, "payload_too_large")
    assert_error(chunked, 413, "payload_too_large")
    assert "Content-Length" not in chunked.request.headers


def test_window_parameter_edges(stack):
    room_question = question_tokens(QUESTION) + PAIR_SPECIAL_TOKENS
    room = 20
    max_seq_len = room_question + room

    def post(**parameters) -> httpx.Response:
        return httpx.post(stack.url, json=request_body(**parameters), timeout=60)

    for too_small in (1, 2, 3, room_question):
        assert_error(post(max_seq_len=too_small), 422, "invalid_parameter")
    assert post(max_seq_len=room_question + 1, doc_stride=0).status_code == 200
    assert post(max_seq_len=MODEL_MAX_LENGTH).status_code == 200
    assert_error(post(max_seq_len=MODEL_MAX_LENGTH + 1), 422, "validation_error")
    assert post(max_seq_len=max_seq_len, doc_stride=0).status_code == 200
    assert post(max_seq_len=max_seq_len, doc_stride=room - 1).status_code == 200
    stride_error = post(max_seq_len=max_seq_len, doc_stride=room)
    assert_error(stride_error, 422, "invalid_parameter")
    assert f"less than {room}" in stride_error.json()["error"]


def test_extreme_answer_parameters(stack):
    long_question = " ".join(["Who was the first librarian of the harbour?"] * 200)
    cases = [
        ({"question": long_question, "max_question_len": 1}, 1),
        ({"max_answer_len": MAX_INT_PARAMETER, "top_k": 5}, 5),
        ({"top_k": MAX_INT_PARAMETER}, MAX_INT_PARAMETER),
        ({"max_question_len": MAX_INT_PARAMETER}, 1),
    ]
    for parameters, top_k in cases:
        question = parameters.pop("question", QUESTION)
        body = request_body(question=question, **parameters)
        response = httpx.post(stack.url, json=body, timeout=60)
        assert response.status_code == 200, (parameters, response.text)
        assert_contract_items(answers_of(response), CONTEXT, top_k)


@pytest.mark.parametrize(
    "content",
    [
        b'{"inputs": {"question": "q", "context": "c"}, "parameters": {"\\ud800": 1}}',
        b'{"inputs": {"question": "q", "context": "c"}, "parameters": {"top\\udc00": 1}}',
        b'{"inputs": [{"question": "q", "context": "c", "\\ud800": 1}]}',
    ],
    ids=["parameter-name", "parameter-name-suffix", "batch-item-key"],
)
def test_key_with_lone_surrogate_is_422(stack, content):
    response = httpx.post(stack.url, content=content, timeout=60)
    assert_error(response, 422, "validation_error")


NESTED_FIELDS = {
    "batch-item": '{{"inputs": [{value}]}}',
    "parameter": '{{"inputs": {{"question": "q", "context": "c"}}, '
    '"parameters": {{"top_k": {value}}}}}',
    "question-column": '{{"inputs": {{"question": [{value}], "context": ["c"]}}}}',
}


@pytest.mark.parametrize("template", NESTED_FIELDS.values(), ids=NESTED_FIELDS.keys())
def test_deep_field_value_is_never_500(stack, template):
    # The gap lies a few levels below the interpreter's recursion limit of 1000,
    # where it depends on the stack depth of the request handler.
    statuses = {}
    with httpx.Client(timeout=30) as http:
        for depth in range(880, 1000):
            content = template.format(value=nested(depth))
            response = http.post(stack.url, content=content)
            statuses[depth] = response.status_code
    server_errors = [depth for depth, status in statuses.items() if status >= 500]
    assert server_errors == [], server_errors


def _raw_request(url: str, head: bytes, body: bytes = b"") -> bytes:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(head + body)
        data = b""
        while chunk := sock.recv(65_536):
            data += chunk
    return data


def test_auth_header_variants(stack, tmp_path):
    tokens = ("rotate-old-7f3a", "rotate-new-91c2")
    env = {"TRITON_QA_API_TOKENS": ",".join(tokens)}
    cases = [
        ("Bearer rotate-old-7f3a", 200),
        ("bearer rotate-new-91c2", 200),
        ("BEARER rotate-new-91c2", 200),
        ("Bearer ROTATE-OLD-7F3A", 401),
        ("Bearer rotate-old-7f3a,rotate-new-91c2", 401),
        ("Bearer rotate-old", 401),
        ("Bearer rotate-old-7f3ax", 401),
        ("Basic cm90YXRlLW9sZC03ZjNh", 401),
        ("rotate-old-7f3a", 401),
        ("Bearer " + "a" * 30_000, 401),
    ]
    content = encoded(SMALL_BODY)
    with gateway_process(stack.triton_grpc, tmp_path, env) as gateway:
        results = [
            httpx.post(
                gateway.url,
                content=content,
                headers={"Authorization": value},
                timeout=30,
            )
            for value, _ in cases
        ]
        in_query = httpx.post(
            f"{gateway.url}/?access_token={tokens[0]}", content=content, timeout=30
        )
        spaced = _raw_request(
            gateway.url,
            b"POST / HTTP/1.1\r\nHost: test\r\nConnection: close\r\n"
            + f"Authorization:   Bearer    {tokens[1]}   \r\n".encode()
            + f"Content-Length: {len(content)}\r\n\r\n".encode(),
            content,
        )
        log = gateway.log_text()
    for (value, status), response in zip(cases, results):
        assert response.status_code == status, (value[:40], response.text)
        if status == 401:
            assert_error(response, 401, "unauthorized")
            assert response.headers["www-authenticate"] == "Bearer"
    assert_error(in_query, 401, "unauthorized")
    assert spaced.startswith(b"HTTP/1.1 200 "), spaced[:200]
    for token in tokens:
        assert token not in log


def _infer_input(name: str, array: np.ndarray, datatype: str, module=grpcclient):
    tensor = module.InferInput(name, list(array.shape), datatype)
    tensor.set_data_from_numpy(array)
    return tensor


def _text(name: str, *values: bytes):
    return _infer_input(name, np.array(values, dtype=np.object_), "BYTES")


def _postprocess_inputs(**replace) -> list:
    width = 6
    arrays = {
        "CONTEXT": (np.array([b"Edda is here."], dtype=np.object_), "BYTES"),
        "start_logits": (np.zeros((1, width), np.float32), "FP32"),
        "end_logits": (np.zeros((1, width), np.float32), "FP32"),
        "attention_mask": (np.ones((1, width), np.int64), "INT64"),
        "CANDIDATE_MASK": (np.ones((1, width), np.int8), "INT8"),
        "OFFSETS": (np.zeros((1, width, 2), np.int32), "INT32"),
        "WORD_IDS": (np.zeros((1, width), np.int32), "INT32"),
        "NUM_WINDOWS": (np.array([1], np.int64), "INT64"),
        "WINDOW_START": (np.array([0], np.int64), "INT64"),
    }
    arrays.update(replace)
    return [_infer_input(name, *value) for name, value in arrays.items()]


def _model_inputs(ids: np.ndarray, module=grpcclient) -> list:
    return [
        _infer_input("input_ids", ids, "INT64", module),
        _infer_input("attention_mask", np.ones_like(ids), "INT64", module),
    ]


GOOD_PAIR = (_text("QUESTION", b"Who?"), _text("CONTEXT", b"Edda is here."))


def _direct_calls() -> list[tuple[str, str, list, dict | None]]:
    question, context = GOOD_PAIR
    rows = 2
    return [
        ("missing-context", ENSEMBLE, [question], None),
        ("two-questions", ENSEMBLE, [_text("QUESTION", b"a", b"b"), context], None),
        ("empty-question-tensor", ENSEMBLE, [_text("QUESTION"), context], None),
        (
            "question-not-utf8",
            ENSEMBLE,
            [_text("QUESTION", b"\xff\xfe"), context],
            None,
        ),
        (
            "context-surrogate-bytes",
            ENSEMBLE,
            [question, _text("CONTEXT", b"abc \xed\xa0\x80")],
            None,
        ),
        ("context-empty", ENSEMBLE, [question, _text("CONTEXT", b"")], None),
        ("window-start-past-end", ENSEMBLE, [question, context], {"window_start": 5}),
        ("window-start-negative", ENSEMBLE, [question, context], {"window_start": -1}),
        ("window-limit-zero", ENSEMBLE, [question, context], {"window_limit": 0}),
        ("top-k-string", ENSEMBLE, [question, context], {"top_k": "3"}),
        ("top-k-float", ENSEMBLE, [question, context], {"top_k": 1.5}),
        ("max-seq-len-huge", ENSEMBLE, [question, context], {"max_seq_len": 2**62}),
        ("doc-stride-huge", ENSEMBLE, [question, context], {"doc_stride": 2**62}),
        ("bool-as-int", ENSEMBLE, [question, context], {"align_to_words": 1}),
        (
            "tokenize-window-limit-zero",
            TOKENIZE_STEP,
            [question, context],
            {"window_limit": 0},
        ),
        (
            "model-token-id-out-of-vocabulary",
            MODEL_STEP,
            _model_inputs(np.array([[0, 10**9, 6, 2]], np.int64)),
            None,
        ),
        (
            "model-longer-than-positions",
            MODEL_STEP,
            _model_inputs(np.ones((1, MODEL_MAX_LENGTH + 100), np.int64)),
            None,
        ),
        (
            "model-batch-above-max",
            MODEL_STEP,
            _model_inputs(np.ones((17, 4), np.int64)),
            None,
        ),
        (
            "postprocess-empty-attention",
            POSTPROCESS_STEP,
            _postprocess_inputs(attention_mask=(np.zeros((1, 6), np.int64), "INT64")),
            None,
        ),
        (
            "postprocess-offsets-fewer-rows",
            POSTPROCESS_STEP,
            _postprocess_inputs(
                start_logits=(np.zeros((rows, 6), np.float32), "FP32"),
                end_logits=(np.zeros((rows, 6), np.float32), "FP32"),
                attention_mask=(np.ones((rows, 6), np.int64), "INT64"),
                CANDIDATE_MASK=(np.ones((rows, 6), np.int8), "INT8"),
            ),
            None,
        ),
        (
            "postprocess-context-not-utf8",
            POSTPROCESS_STEP,
            _postprocess_inputs(
                CONTEXT=(np.array([b"\xff"], dtype=np.object_), "BYTES")
            ),
            None,
        ),
    ]


def _good_direct_calls() -> list[tuple[str, list]]:
    return [
        (ENSEMBLE, list(GOOD_PAIR)),
        (TOKENIZE_STEP, list(GOOD_PAIR)),
        (MODEL_STEP, _model_inputs(np.array([[0, 5, 6, 2]], np.int64))),
        (POSTPROCESS_STEP, _postprocess_inputs()),
    ]


def test_direct_triton_errors_spare_stubs(stack):
    client = grpcclient.InferenceServerClient(stack.triton_grpc)
    accepted = []
    for name, model, inputs, parameters in _direct_calls():
        try:
            client.infer(model, inputs, parameters=parameters, client_timeout=60)
        except InferenceServerException:
            continue
        accepted.append(name)
    for model, inputs in _good_direct_calls():
        client.infer(model, inputs, client_timeout=60)
    client.close()
    after = httpx.post(stack.url, json=request_body(), timeout=60)
    assert accepted == []
    assert after.status_code == 200, after.text


def test_model_step_isolates_bad_request_in_batch(stack):
    async def call(client, bad: bool) -> bool:
        token = 10**9 if bad else 7
        ids = np.array([[0, token, 6, 2]], np.int64)
        try:
            await client.infer(
                MODEL_STEP, _model_inputs(ids, grpcaio), client_timeout=60
            )
        except InferenceServerException:
            return False
        return True

    async def rounds() -> list[bool]:
        client = grpcaio.InferenceServerClient(stack.triton_grpc)
        outcomes = []
        for _ in range(3):
            calls = [call(client, bad=index % 4 == 0) for index in range(48)]
            results = await asyncio.gather(*calls)
            outcomes += [ok for index, ok in enumerate(results) if index % 4]
        await client.close()
        return outcomes

    good_outcomes = asyncio.run(rounds())
    assert len(good_outcomes) == 108
    assert all(good_outcomes), f"{good_outcomes.count(False)} good requests failed"


def _rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"process {pid} has no VmRSS")


class PeakMemory:
    """Peak resident memory of a process, sampled in a thread until stopped."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = _rss_bytes(pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, _rss_bytes(self.pid))

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


@pytest.mark.slow
def test_many_window_request_stays_bounded(stack, tmp_path):
    # 100 kB of context with 2-token windows and stride 1 needs 58,142 windows,
    # so 3,634 chunk calls of 16 windows, each carrying the whole context.
    question = "Who is Edda?"
    room = 2
    max_seq_len = question_tokens(question) + PAIR_SPECIAL_TOKENS + room
    sentence = "Edda Vossberg was a librarian in the town. "
    context = (sentence * 2400)[:100_000]
    heavy = request_body(
        question=question, context=context, max_seq_len=max_seq_len, doc_stride=1
    )
    with gateway_process(stack.triton_grpc, tmp_path) as gateway:
        assert httpx.post(gateway.url, json=SMALL_BODY, timeout=60).status_code == 200
        baseline = _rss_bytes(gateway.process.pid)
        memory = PeakMemory(gateway.process.pid)
        outcome = {}

        def send_heavy() -> None:
            outcome["response"] = httpx.post(gateway.url, json=heavy, timeout=180)

        sender = threading.Thread(target=send_heavy)
        sender.start()
        time.sleep(0.5)
        live_s, small_s = [], []
        while sender.is_alive():
            started = time.monotonic()
            httpx.get(f"{gateway.url}/health/live", timeout=120)
            live_s.append(time.monotonic() - started)
            started = time.monotonic()
            small = httpx.post(gateway.url, json=SMALL_BODY, timeout=120)
            small_s.append(time.monotonic() - started)
            assert small.status_code == 200, small.text
            time.sleep(0.2)
        sender.join()
        peak = memory.stop()
    growth_mb = (peak - baseline) / 2**20
    assert outcome["response"].status_code == 200, outcome["response"].text
    assert growth_mb < 300, f"gateway memory grew by {growth_mb:.0f} MB"
    assert max(live_s, default=0.0) < 1.0, f"/health/live took {max(live_s):.1f} s"
    assert max(small_s, default=0.0) < 3.0, f"a small request took {max(small_s):.1f} s"


@dataclass(frozen=True)
class Stub:
    """A Python-backend stub process and its shared-memory region."""

    pid: int
    shm_region: str


def _triton_stubs(pid: int) -> dict[str, Stub]:
    """Map each Python-backend model name to its stub process."""
    stubs = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            arguments = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
            if len(arguments) < 3 or not arguments[1].endswith(b"model.py"):
                continue
            model_name = Path(arguments[1].decode()).parent.parent.name
            stubs[model_name] = Stub(int(child), arguments[2].decode())
    return stubs


@pytest.fixture
def own_triton(tmp_path):
    """A tritonserver serving the bundled model, stopped with all its stubs."""
    ports = TritonPorts(free_port(), free_port(), free_port())
    triton = TritonProcess(
        BUNDLED_REPOSITORY, ports, tmp_path / "cache", log_path=tmp_path / "triton.log"
    )
    triton.start()
    triton.wait_ready(120)
    stubs = _triton_stubs(triton.process.pid)
    yield ports, triton, stubs
    triton.stop()
    # A stub whose server was killed can outlive it, and a killed stub leaves
    # its region in /dev/shm. Both are removed here, each process only after
    # checking that its id still belongs to the stub.
    for name, stub in stubs.items():
        try:
            arguments = Path(f"/proc/{stub.pid}/cmdline").read_bytes()
        except FileNotFoundError:
            arguments = b""
        if name.encode() in arguments:
            os.kill(stub.pid, signal.SIGKILL)
        Path("/dev/shm", stub.shm_region).unlink(missing_ok=True)


def test_killed_stub_turns_gateway_not_ready(own_triton, tmp_path):
    ports, _, stubs = own_triton
    env = {"TRITON_QA_HEALTH_CHECK_INTERVAL_S": "2"}
    with gateway_process(f"127.0.0.1:{ports.grpc}", tmp_path, env) as gateway:
        assert httpx.post(gateway.url, json=SMALL_BODY, timeout=60).status_code == 200
        os.kill(stubs[POSTPROCESS_STEP].pid, signal.SIGKILL)
        killed_at = time.monotonic()
        failed = httpx.post(gateway.url, json=SMALL_BODY, timeout=60)
        ready = httpx.get(f"{gateway.url}/health/ready", timeout=30)
        while ready.status_code == 200 and time.monotonic() - killed_at < 30:
            time.sleep(0.5)
            ready = httpx.get(f"{gateway.url}/health/ready", timeout=30)
        not_ready_after_s = time.monotonic() - killed_at
    assert_error(failed, 502, "triton_error")
    assert_error(ready, 503, "not_ready")
    assert "canary" in ready.json()["error"]
    assert not_ready_after_s < 2 * 2 + 5
    # Triton itself still reports live, so only the canary shows the crash.
    wait_for_http(f"http://127.0.0.1:{ports.http}/v2/health/live", 5, None, "triton")

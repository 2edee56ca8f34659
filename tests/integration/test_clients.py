"""The real Hugging Face clients against the running stack.

Python: `huggingface_hub` 0.36.2 from the project's environment and 2.4.0 from
an environment that a session fixture creates, each with `InferenceClient` and
`AsyncInferenceClient`, pointed at the gateway with `base_url=` and with
`model=`. JavaScript: `@huggingface/inference` 4.13.30 with `endpointUrl`,
installed by a session fixture. `tests/clients.py` has the install commands.

Every answer is compared with the transformers pipeline on the bundled model,
and every error with the gateway's own `error` message for the same request.
"""

from __future__ import annotations

import contextlib
import math
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.clients import (
    HUB2_VERSION,
    HUB_VERSION,
    JS_CLIENT_VERSION,
    installed_js_version,
    run_js_client,
    run_python_client,
)
from tests.conftest import BUNDLED_MODEL_ID, free_port
from tests.integration.gateway_processes import GatewayProcess, gateway_process
from tests.reference import assert_matches_reference, expected_answers

pytestmark = pytest.mark.integration

QUESTION = "Who was the first librarian?"
CONTEXT = (
    "The old harbour library of Quillmere opened in 1901 beside the river. Its first "
    "librarian was a retired pilot named Edda Vossberg, who kept the reading room open "
    "until 1934. The building was later used as a customs office, then as a school "
    "for sailors, and it became a library again in 1987."
)
TOKEN = "client-token-91c2"
MAX_BODY_BYTES = 1_048_576  # The gateway's default max_body_bytes.
NOT_READY_DELAY_S = 0.5  # The gateway's default not_ready_delay_s.
# The max_question_len used below must not truncate QUESTION, so that the
# pipeline, which ignores max_question_len, is a valid reference.
PARAMETER_SETS = {
    "no_parameters": {},
    "top_k_1": {"top_k": 1},
    "top_k_3": {"top_k": 3},
    "all_parameters_top_k_1": {
        "top_k": 1,
        "doc_stride": 16,
        "max_answer_len": 5,
        "max_seq_len": 48,
        "max_question_len": 16,
        "handle_impossible_answer": True,
        "align_to_words": False,
    },
    "all_parameters_top_k_3": {
        "top_k": 3,
        "doc_stride": 8,
        "max_answer_len": 4,
        "max_seq_len": 40,
        "max_question_len": 20,
        "handle_impossible_answer": False,
        "align_to_words": True,
    },
}
HUB_CLIENT_CLASSES = {False: "InferenceClient", True: "AsyncInferenceClient"}


# Fixtures


@pytest.fixture(scope="module")
def reference(pipelines) -> dict[str, list[dict]]:
    """The pipeline's answers to QUESTION on CONTEXT for each parameter set."""
    pipeline = pipelines["roberta"]
    question_tokens = len(
        pipeline.tokenizer(QUESTION, add_special_tokens=False).input_ids
    )
    answers = {}
    for name, parameters in PARAMETER_SETS.items():
        assert question_tokens <= parameters.get("max_question_len", 64), name
        answers[name] = expected_answers(pipeline, QUESTION, CONTEXT, parameters)
    return answers


@pytest.fixture(params=[HUB_VERSION, HUB2_VERSION], ids=lambda v: f"hub-{v}")
def hub_python(request) -> tuple[str, Path]:
    """A huggingface_hub version and the interpreter that has it installed."""
    if request.param == HUB_VERSION:
        return request.param, Path(sys.executable)
    return request.param, request.getfixturevalue("hub2_python")


@pytest.fixture(scope="module")
def token_gateway(stack, tmp_path_factory) -> Iterator[GatewayProcess]:
    """A second gateway on the stack's tritonserver that requires TOKEN."""
    log_dir = tmp_path_factory.mktemp("token-gateway")
    env = {"TRITON_QA_API_TOKENS": TOKEN}
    with gateway_process(stack.triton_grpc, log_dir, env) as gateway:
        yield gateway


@pytest.fixture(scope="module")
def unready_gateway(tmp_path_factory) -> Iterator[GatewayProcess]:
    """A gateway whose Triton never responds, so inference requests get 503."""
    log_dir = tmp_path_factory.mktemp("unready-gateway")
    dead = f"127.0.0.1:{free_port()}"
    with gateway_process(dead, log_dir, wait_path="/health/live") as gateway:
        yield gateway


# Helpers


def model_url(stack) -> str:
    return f"{stack.url}/models/{BUNDLED_MODEL_ID}"


def hub_call(
    url: str,
    parameters: dict,
    *,
    target: str = "base_url",
    use_async: bool = False,
    token: str | None = None,
    question: str = QUESTION,
    context: str = CONTEXT,
) -> dict:
    return {
        "target": target,
        "url": url,
        "token": token,
        "question": question,
        "context": context,
        "parameters": parameters,
        "async": use_async,
    }


def js_call(
    url: str,
    parameters: dict,
    *,
    token: str | None = None,
    options: dict | None = None,
) -> dict:
    args = {"inputs": {"question": QUESTION, "context": CONTEXT}}
    if parameters:
        args["parameters"] = parameters
    return {"url": url, "token": token, "args": args, "options": options or {}}


def describe_hub_call(call: dict) -> str:
    client = HUB_CLIENT_CLASSES[call["async"]]
    return f"{client}({call['target']}={call['url']}) {call['parameters']}"


def gateway_response(url: str, token: str | None, body: dict) -> httpx.Response:
    """Send `body` straight to the gateway, as the clients send it."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.post(url, json=body, headers=headers, timeout=120)


def hub_answers(result: dict, top_k: int) -> list[dict]:
    """Return a Python client's answers as a list, after checking their shape."""
    assert "error" not in result, result
    output = result["output"]
    if top_k == 1:
        assert isinstance(output, dict), output
        assert result["output_type"] == "QuestionAnsweringOutputElement"
        return [output]
    assert isinstance(output, list), output
    assert set(result["output_type"]) == {"QuestionAnsweringOutputElement"}
    return output


def mask_body_size(message: str) -> str:
    # Each client encodes JSON with its own separators, so the Content-Length
    # in a 413 message differs by client.
    return re.sub(r"Content-Length is \d+ bytes", "Content-Length is N bytes", message)


def count_requests(url: str, status: str) -> float:
    """Return the gateway's triton_qa_requests_total for `status`, over all labels."""
    text = httpx.get(f"{url}/metrics", timeout=30).text
    total = 0.0
    for family in text_string_to_metric_families(text):
        if family.name != "triton_qa_requests":
            continue
        for sample in family.samples:
            if sample.name.endswith("_total") and sample.labels["status"] == status:
                total += sample.value
    return total


# Answers


def test_python_client_answers_match_pipeline(
    stack, hub_python, client_home, reference, subtests
):
    version, python = hub_python
    targets = {"base_url": stack.url, "model": model_url(stack)}
    named_calls = [
        (name, hub_call(url, parameters, target=target, use_async=use_async))
        for target, url in targets.items()
        for use_async in (False, True)
        for name, parameters in PARAMETER_SETS.items()
    ]
    calls = [call for _, call in named_calls]

    output = run_python_client(python, calls, client_home)

    assert output["version"] == version
    for (name, call), result in zip(named_calls, output["results"], strict=True):
        with subtests.test(msg=describe_hub_call(call)):
            top_k = call["parameters"].get("top_k", 1)
            answers = hub_answers(result, top_k)
            assert_matches_reference(answers, reference[name], top_k)


def test_reference_top_k_3_has_several(reference):
    # Otherwise the list shape of the top_k 3 answers would go unchecked.
    assert len(reference["top_k_3"]) >= 2
    assert len(reference["all_parameters_top_k_3"]) >= 2


def test_js_client_answers_match_pipeline(
    stack, js_node_modules, client_home, reference, subtests
):
    urls = [stack.url, model_url(stack)]
    named_calls = [
        (name, js_call(url, parameters))
        for url in urls
        for name, parameters in PARAMETER_SETS.items()
    ]
    calls = [call for _, call in named_calls]

    output = run_js_client(js_node_modules, calls, client_home)

    assert installed_js_version() == JS_CLIENT_VERSION
    for (name, call), result in zip(named_calls, output["results"], strict=True):
        with subtests.test(msg=f"{call['url']} {name}"):
            assert "error" not in result, result
            served = gateway_response(call["url"], None, call["args"]).json()
            first = served[0] if isinstance(served, list) else served
            # The JS client returns only the first item of a list.
            assert result["output"] == first
            assert_matches_reference([result["output"]], reference[name][:1], 1)


def test_python_client_accepts_right_token(
    token_gateway, hub_python, client_home, reference
):
    _, python = hub_python
    calls = [
        hub_call(
            token_gateway.url, PARAMETER_SETS[name], use_async=use_async, token=TOKEN
        )
        for use_async in (False, True)
        for name in ("top_k_1", "top_k_3")
    ]

    results = run_python_client(python, calls, client_home)["results"]

    for call, result in zip(calls, results, strict=True):
        top_k = call["parameters"]["top_k"]
        answers = hub_answers(result, top_k)
        assert_matches_reference(answers, reference[f"top_k_{top_k}"], top_k)


def test_js_client_accepts_right_token(
    token_gateway, js_node_modules, client_home, reference
):
    calls = [
        js_call(token_gateway.url, PARAMETER_SETS[name], token=TOKEN)
        for name in ("top_k_1", "top_k_3")
    ]

    results = run_js_client(js_node_modules, calls, client_home)["results"]

    for call, result in zip(calls, results, strict=True):
        assert "error" not in result, (call, result)
        top_k = call["args"]["parameters"]["top_k"]
        expected = reference[f"top_k_{top_k}"][:1]
        assert_matches_reference([result["output"]], expected, 1)


# Errors


@dataclass
class ErrorCase:
    """A request that the gateway rejects, and the status it must get."""

    name: str
    url: str
    status: int
    parameters: dict
    question: str = QUESTION
    context: str = CONTEXT
    token: str | None = None
    extra_fields: dict = field(default_factory=dict)

    def body(self) -> dict:
        request = {"inputs": {"question": self.question, "context": self.context}}
        if self.parameters:
            request["parameters"] = self.parameters
        return {**request, **self.extra_fields}

    def gateway_error(self) -> str:
        """Return the gateway's `error` message for this request, sent directly."""
        response = gateway_response(self.url, self.token, self.body())
        assert response.status_code == self.status, (self.name, response.text)
        assert response.headers["content-type"] == "application/json"
        return response.json()["error"]


def error_cases(stack, token_gateway) -> list[ErrorCase]:
    oversized = "The harbour library opened in 1901. " * (MAX_BODY_BYTES // 36 + 100)
    return [
        ErrorCase("top_k_zero", stack.url, 422, {"top_k": 0}),
        ErrorCase("blank_question", stack.url, 422, {}, question="   "),
        ErrorCase("unknown_model", f"{stack.url}/models/acme/none", 404, {}),
        ErrorCase("oversized_body", stack.url, 413, {}, context=oversized),
        ErrorCase("missing_token", token_gateway.url, 401, {}),
        ErrorCase("wrong_token", token_gateway.url, 401, {}, token="wrong-token"),
    ]


# The JS client passes unknown parameter names and extra top-level fields
# through to the gateway. The Python clients cannot send them, because
# question_answering takes only the named pipeline parameters.
def js_only_error_cases(stack) -> list[ErrorCase]:
    return [
        ErrorCase("unknown_parameter_topk", stack.url, 422, {"topk": 3}),
        ErrorCase(
            "unknown_field_temperature",
            stack.url,
            422,
            {},
            extra_fields={"temperature": 0.5},
        ),
    ]


def test_python_client_errors_show_gateway_message(
    stack, token_gateway, hub_python, client_home, subtests
):
    version, python = hub_python
    cases = error_cases(stack, token_gateway)
    messages = {case.name: case.gateway_error() for case in cases}
    case_calls = [
        (
            case,
            hub_call(
                case.url,
                case.parameters,
                target=target,
                use_async=use_async,
                token=case.token,
                question=case.question,
                context=case.context,
            ),
        )
        for case in cases
        for target, use_async in (("base_url", False), ("model", True))
    ]
    calls = [call for _, call in case_calls]

    results = run_python_client(python, calls, client_home)["results"]

    for (case, call), result in zip(case_calls, results, strict=True):
        with subtests.test(msg=f"{case.name}: {describe_hub_call(call)}"):
            error = result.get("error")
            assert error is not None, result
            assert error["status"] == case.status, error
            expected = mask_body_size(messages[case.name])
            if version == HUB_VERSION and call["async"]:
                # huggingface_hub 0.x's AsyncInferenceClient raises aiohttp's
                # error, whose text is only the status line. The gateway's
                # message is in its response_error_payload.
                assert error["type"] == "ClientResponseError", error
                assert error["payload"] is not None, error
                assert mask_body_size(error["payload"]["error"]) == expected
                continue
            assert "HfHubHTTPError" in error["classes"], error
            # huggingface_hub raises BadRequestError for 400 only.
            assert "BadRequestError" not in error["classes"], error
            assert expected in mask_body_size(error["message"]), error


def test_js_client_errors_show_gateway_message(
    stack, token_gateway, js_node_modules, client_home, subtests
):
    cases = error_cases(stack, token_gateway) + js_only_error_cases(stack)
    messages = {case.name: case.gateway_error() for case in cases}
    calls = [
        {"url": case.url, "token": case.token, "args": case.body(), "options": {}}
        for case in cases
    ]

    results = run_js_client(js_node_modules, calls, client_home)["results"]

    for case, result in zip(cases, results, strict=True):
        with subtests.test(msg=case.name):
            error = result.get("error")
            assert error is not None, result
            assert error["className"] == "InferenceClientProviderApiError", error
            assert error["status"] == case.status, error
            expected = "Failed to perform inference: " + messages[case.name]
            assert mask_body_size(error["message"]) == mask_body_size(expected)


# The JS client's 503 retry loop


class GatewayWatcher:
    """Polls a gateway's /health/live and 503 count in a thread until stopped."""

    def __init__(self, url: str, interval_s: float = 0.2) -> None:
        self.url = url
        self.interval_s = interval_s
        self.live_statuses: list[int] = []
        self.live_latencies_s: list[float] = []
        self.counts: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    @contextlib.contextmanager
    def running(self) -> Iterator[GatewayWatcher]:
        self._thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            self._thread.join(30)

    def _poll(self) -> None:
        with httpx.Client(timeout=10) as client:
            while not self._stop.is_set():
                started = time.monotonic()
                response = client.get(f"{self.url}/health/live")
                self.live_latencies_s.append(time.monotonic() - started)
                self.live_statuses.append(response.status_code)
                self.counts.append((time.monotonic(), count_requests(self.url, "503")))
                self._stop.wait(self.interval_s)

    def max_requests_per_second(self) -> float:
        """Return the largest 503 count increase within any one-second span."""
        largest = 0.0
        for index, (start, first) in enumerate(self.counts):
            for moment, count in self.counts[index:]:
                if moment - start <= 1.0:
                    largest = max(largest, count - first)
        return largest


def test_js_retry_loop_is_paced(unready_gateway, js_node_modules, client_home):
    storm_s = 3.0
    process = psutil.Process(unready_gateway.process.pid)
    memory_before = process.memory_info().rss
    cpu_before = process.cpu_times()
    count_before = count_requests(unready_gateway.url, "503")
    call = js_call(unready_gateway.url, {})

    with GatewayWatcher(unready_gateway.url).running() as watcher:
        started = time.monotonic()
        # With default options the client retries 503 without end, so the
        # subprocess is stopped after storm_s.
        with pytest.raises(subprocess.TimeoutExpired):
            run_js_client(js_node_modules, [call], client_home, timeout_s=storm_s)
        elapsed_s = time.monotonic() - started

    cpu_after = process.cpu_times()
    cpu_s = (cpu_after.user + cpu_after.system) - (cpu_before.user + cpu_before.system)
    memory_growth = process.memory_info().rss - memory_before
    retries = count_requests(unready_gateway.url, "503") - count_before
    allowed_per_second = math.ceil(1 / NOT_READY_DELAY_S) + 1
    # The JS client retried: more than one request in the span.
    assert retries >= 2
    assert retries <= elapsed_s / NOT_READY_DELAY_S + 1
    assert watcher.max_requests_per_second() <= allowed_per_second
    assert watcher.live_statuses
    assert set(watcher.live_statuses) == {200}
    assert max(watcher.live_latencies_s) < 1.0
    # The limit leaves room for the watcher's own requests.
    assert cpu_s / elapsed_s < 0.5
    assert memory_growth < 50 * 2**20
    assert process.is_running()


def test_js_without_retry_gets_503_message(
    unready_gateway, js_node_modules, client_home
):
    call = js_call(unready_gateway.url, {}, options={"retry_on_error": False})
    served = gateway_response(call["url"], None, call["args"])
    count_before = count_requests(unready_gateway.url, "503")

    result = run_js_client(js_node_modules, [call], client_home, timeout_s=30)
    error = result["results"][0]["error"]

    assert served.status_code == 503
    assert error["className"] == "InferenceClientProviderApiError"
    assert error["status"] == 503
    assert error["message"] == "Failed to perform inference: " + served.json()["error"]
    # One request, answered after the gateway's pacing delay.
    assert count_requests(unready_gateway.url, "503") - count_before == 1
    assert result["results"][0]["elapsed_s"] < NOT_READY_DELAY_S + 2.0

"""Locust load test for any triton-qa deployment.

Traffic: SQuAD-like questions with several `top_k` values, long contexts,
batch requests (`inputs` as a list of pairs) and a few invalid requests. Each
invalid request must fail with its expected status, and then counts as a
success under its own name. Any other failure counts against the threshold
that sets the exit code.

    locust -f loadtests/locustfile.py --headless --host http://127.0.0.1:8080 \\
        -u 8 -r 8 -t 1m --qa-arrival constant-throughput --qa-rate 20

Options (after Locust's own):
    --qa-token TOKEN           bearer token (default: $TRITON_QA_TOKEN)
    --qa-model MODEL_ID        post to /models/MODEL_ID instead of /
    --qa-arrival MODE          closed (no wait), constant-pacing or
                               constant-throughput (default closed)
    --qa-rate N                with constant-*: requests per second over all users
    --qa-max-failure-ratio R   exit 1 when more than this share of the
                               requests fail unexpectedly (default 0.01)
    --qa-long-words N          words per long context (default 2000)

Each response's `Server-Timing` stages (parse, triton, total) are reported as
entries of type "stage", so their percentiles appear beside the requests.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import random

# Locust puts this file's folder first on sys.path while it imports the file.
import workload
from locust import FastHttpUser, events, task
from locust.env import Environment

logger = logging.getLogger(__name__)

STAGE_REQUEST_TYPE = "stage"
ARRIVAL_MODES = ("closed", "constant-pacing", "constant-throughput")
TOP_K_VALUES = (1, 1, 1, 2, 3, 5)
BATCH_SIZE = 4
SHORT_PAIRS = workload.squad_pairs(256, seed=0)
_user_ids = itertools.count()


@events.init_command_line_parser.add_listener
def add_options(parser) -> None:
    parser.add_argument(
        "--qa-token",
        default=os.environ.get("TRITON_QA_TOKEN", ""),
        help="bearer token sent to the gateway (default: $TRITON_QA_TOKEN)",
    )
    parser.add_argument(
        "--qa-model", default="", help="model id to post to; default: POST /"
    )
    parser.add_argument(
        "--qa-arrival",
        choices=ARRIVAL_MODES,
        default="closed",
        help="closed: each user sends its next request at once; constant-pacing "
        "and constant-throughput: users together start --qa-rate requests per "
        "second, whatever the latency",
    )
    parser.add_argument(
        "--qa-rate",
        type=float,
        default=10.0,
        help="requests per second over all users, for the constant-* modes",
    )
    parser.add_argument(
        "--qa-max-failure-ratio",
        type=float,
        default=0.01,
        help="largest share of unexpected failures that still exits 0",
    )
    parser.add_argument(
        "--qa-long-words", type=int, default=2000, help="words per long context"
    )


def unexpected_failures(environment: Environment) -> tuple[int, int]:
    """Return (failures, requests) over the request entries, stages left out."""
    failures = requests = 0
    for (_, method), entry in environment.stats.entries.items():
        if method == STAGE_REQUEST_TYPE:
            continue
        failures += entry.num_failures
        requests += entry.num_requests
    return failures, requests


@events.quitting.add_listener
def set_exit_code(environment: Environment, **_kwargs) -> None:
    failures, requests = unexpected_failures(environment)
    limit = environment.parsed_options.qa_max_failure_ratio
    ratio = failures / requests if requests else 1.0
    if ratio > limit:
        logger.error(
            "%d of %d requests failed (%.1f%%, limit %.1f%%); exit code 1",
            failures,
            requests,
            100.0 * ratio,
            100.0 * limit,
        )
        environment.process_exit_code = 1
    else:
        environment.process_exit_code = 0


class QuestionAnsweringUser(FastHttpUser):
    """One client of the question-answering API."""

    def on_start(self) -> None:
        options = self.environment.parsed_options
        user_id = next(_user_ids)
        self.rng = random.Random(user_id)
        self.path = f"/models/{options.qa_model}" if options.qa_model else "/"
        self.headers = {"Content-Type": "application/json"}
        if options.qa_token:
            self.headers["Authorization"] = f"Bearer {options.qa_token}"
        self.long_pairs = workload.long_pairs(
            2, words=options.qa_long_words, seed=1000 + user_id
        )
        self.invalid = workload.invalid_requests(SHORT_PAIRS[user_id % 256])
        self._pacing = _pacing(options)

    def wait_time(self) -> float:
        return self._pacing(self) if self._pacing else 0.0

    @task(12)
    def squad(self) -> None:
        pair = self.rng.choice(SHORT_PAIRS)
        top_k = self.rng.choice(TOP_K_VALUES)
        parameters = {"top_k": top_k} if top_k > 1 else None
        name = f"squad top_k={top_k}"
        self._answer(name, pair.body(parameters), [pair.context], top_k)

    @task(1)
    def long_context(self) -> None:
        pair = self.rng.choice(self.long_pairs)
        self._answer("long context", pair.body(), [pair.context], 1)

    @task(2)
    def batch(self) -> None:
        pairs = self.rng.sample(SHORT_PAIRS, BATCH_SIZE)
        body = workload.batch_body(pairs, {"top_k": 2})
        contexts = [pair.context for pair in pairs]
        self._answer(f"batch of {BATCH_SIZE}", body, contexts, 2, batched=True)

    @task(1)
    def invalid(self) -> None:
        case = self.rng.choice(self.invalid)
        with self.client.post(
            self.path,
            data=case.body,
            headers=self.headers,
            name=f"invalid: {case.name}",
            catch_response=True,
        ) as response:
            if response.status_code != case.status:
                response.failure(
                    f"expected HTTP {case.status}, got {response.status_code}: "
                    f"{(response.text or '')[:200]}"
                )
                return
            problem = _error_envelope_problem(response.text)
            if problem:
                response.failure(problem)
            else:
                response.success()

    def _answer(
        self,
        name: str,
        body: dict,
        contexts: list[str],
        top_k: int,
        batched: bool = False,
    ) -> None:
        with self.client.post(
            self.path,
            data=json.dumps(body),
            headers=self.headers,
            name=name,
            catch_response=True,
        ) as response:
            if response.status_code != 200:
                response.failure(
                    f"HTTP {response.status_code}: {(response.text or '')[:200]}"
                )
                return
            problem = _answer_problem(response.text, contexts, top_k, batched)
            if problem:
                response.failure(problem)
                return
            response.success()
            self._report_stages(response.headers.get("Server-Timing", ""))

    def _report_stages(self, header: str) -> None:
        for stage, milliseconds in workload.parse_server_timing(header).items():
            self.environment.events.request.fire(
                request_type=STAGE_REQUEST_TYPE,
                name=stage,
                response_time=milliseconds,
                response_length=0,
                exception=None,
                context={},
            )


def _pacing(options):
    """Return the wait-time function of the arrival mode, or None for closed."""
    if options.qa_arrival == "closed":
        return None
    from locust import constant_pacing, constant_throughput

    if options.qa_rate <= 0:
        raise ValueError(f"--qa-rate must be positive, got {options.qa_rate}")
    users = max(int(getattr(options, "num_users", None) or 1), 1)
    per_user = options.qa_rate / users
    if options.qa_arrival == "constant-pacing":
        return constant_pacing(1.0 / per_user)
    return constant_throughput(per_user)


def _answer_problem(
    text: str, contexts: list[str], top_k: int, batched: bool
) -> str | None:
    """Return the first problem found in a response body, or None if it is valid."""
    try:
        body = json.loads(text)
    except ValueError:
        return f"response is not JSON: {text[:200]!r}"
    results = body if batched else [body]
    if not isinstance(results, list) or len(results) != len(contexts):
        return f"expected {len(contexts)} results, got {text[:200]!r}"
    for result, context in zip(results, contexts):
        answers = result if top_k > 1 else [result]
        if not isinstance(answers, list) or not 1 <= len(answers) <= top_k:
            return f"expected 1 to {top_k} answers, got {result!r:.200}"
        for answer in answers:
            problem = _span_problem(answer, context)
            if problem:
                return problem
    return None


def _span_problem(answer: object, context: str) -> str | None:
    if not isinstance(answer, dict) or set(answer) != {
        "answer",
        "score",
        "start",
        "end",
    }:
        return f"answer must have answer, score, start and end: {answer!r:.200}"
    start, end = answer["start"], answer["end"]
    if not (isinstance(start, int) and isinstance(end, int) and 0 <= start <= end):
        return f"invalid span {start!r}..{end!r}"
    if context[start:end] != answer["answer"]:
        return f"answer {answer['answer']!r:.80} is not context[{start}:{end}]"
    return None


def _error_envelope_problem(text: str) -> str | None:
    try:
        body = json.loads(text)
    except ValueError:
        return f"error response is not JSON: {text[:200]!r}"
    if not isinstance(body, dict) or not {"error", "error_type"} <= set(body):
        return f"error response lacks error and error_type: {text[:200]!r}"
    return None

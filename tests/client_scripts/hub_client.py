"""Make question-answering calls with huggingface_hub's inference clients.

Reads `{"calls": [...]}` as JSON on stdin and writes `{"version": ...,
"results": [...]}` as JSON on stdout, one result per call, in order. Each call
is an object with:

- `target`: `"base_url"` or `"model"`, the client argument that gets `url`;
- `url`, `token` (null for none), `question`, `context`, `parameters`;
- `async`: true to use `AsyncInferenceClient` instead of `InferenceClient`.

A result is `{"output", "output_type", "elapsed_s"}` or
`{"error": {"type", "classes", "message", "status", "payload"}, "elapsed_s"}`.

The script imports nothing from this project, so any interpreter with any
version of huggingface_hub installed can run it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sys
import time

import huggingface_hub
from huggingface_hub import AsyncInferenceClient, InferenceClient


def client_arguments(call: dict) -> dict:
    return {call["target"]: call["url"], "token": call["token"]}


def sync_call(call: dict):
    client = InferenceClient(**client_arguments(call))
    return client.question_answering(
        question=call["question"], context=call["context"], **call["parameters"]
    )


async def async_call(call: dict):
    async with AsyncInferenceClient(**client_arguments(call)) as client:
        return await client.question_answering(
            question=call["question"], context=call["context"], **call["parameters"]
        )


def describe_output(output) -> dict:
    if isinstance(output, list):
        return {
            "output": [dataclasses.asdict(item) for item in output],
            "output_type": [type(item).__name__ for item in output],
        }
    return {"output": dataclasses.asdict(output), "output_type": type(output).__name__}


def describe_error(error: BaseException) -> dict:
    # HfHubHTTPError carries the response. huggingface_hub 0.x's async client
    # raises aiohttp.ClientResponseError instead, with the status and the
    # parsed JSON error body in response_error_payload.
    response = getattr(error, "response", None)
    status = getattr(response, "status_code", None)
    if status is None:
        status = getattr(error, "status", None)
    payload = getattr(error, "response_error_payload", None)
    return {
        "type": type(error).__name__,
        "classes": [cls.__name__ for cls in type(error).__mro__],
        "message": str(error),
        "status": status,
        "payload": payload if isinstance(payload, dict) else None,
    }


def run_call(call: dict) -> dict:
    started = time.monotonic()
    try:
        if call["async"]:
            output = asyncio.run(async_call(call))
        else:
            output = sync_call(call)
        result = describe_output(output)
    # The caller checks which error the client raised, so every kind is reported.
    except Exception as error:  # noqa: BLE001
        result = {"error": describe_error(error)}
    result["elapsed_s"] = time.monotonic() - started
    return result


def main() -> None:
    request = json.load(sys.stdin)
    results = [run_call(call) for call in request["calls"]]
    json.dump({"version": huggingface_hub.__version__, "results": results}, sys.stdout)


if __name__ == "__main__":
    main()

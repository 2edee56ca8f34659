"""The curl examples of README.md and docs/api.md, run against the running stack.

Every `curl` command in a fenced code block of those files runs with the real
curl binary, after two substitutions:

- `localhost:8080`, where `make serve` listens, becomes the test stack's
  address, because the tests start the stack on a free port;
- `/models/deepset/roberta-base-squad2` becomes `/models/<bundled model id>`,
  because the tests run offline and serve only the bundled model.

Each command must get HTTP 200 with an answer that equals the transformers
pipeline's answer on the bundled model.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess

import pytest

from tests.conftest import BUNDLED_MODEL_ID, ROOT
from tests.reference import (
    assert_contract_items,
    assert_matches_reference,
    expected_answers,
)

pytestmark = pytest.mark.integration

DOCUMENTS = ("README.md", "docs/api.md")
DOCUMENTED_ADDRESS = "localhost:8080"
DOCUMENTED_MODEL_PATH = "/models/deepset/roberta-base-squad2"
DATA_OPTIONS = ("-d", "--data", "--data-raw", "--data-binary")
FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
STATUS_MARKER = "\nstatus="


def logical_lines(block: str) -> list[tuple[int, str]]:
    """Join backslash-continued lines into (offset in block, text) pairs."""
    lines: list[tuple[int, str]] = []
    pending = ""
    pending_line = 0
    for number, line in enumerate(block.splitlines()):
        if not pending:
            pending_line = number
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        lines.append((pending_line, pending + line))
        pending = ""
    if pending:
        lines.append((pending_line, pending))
    return lines


def curl_commands(document: str) -> list[tuple[str, str]]:
    """Return (location, command) for each curl command in the fenced blocks."""
    text = (ROOT / document).read_text(encoding="utf-8")
    commands = []
    for match in FENCE.finditer(text):
        first_line = text.count("\n", 0, match.start(1)) + 1
        for offset, line in logical_lines(match.group(1)):
            if line.lstrip().startswith("curl "):
                commands.append((f"{document}:{first_line + offset}", line.strip()))
    return commands


COMMANDS = [command for document in DOCUMENTS for command in curl_commands(document)]


def localize(arguments: list[str], stack) -> list[str]:
    """Point documented arguments at the test stack and the bundled model."""
    address = stack.url.removeprefix("http://")
    model_path = f"/models/{BUNDLED_MODEL_ID}"
    return [
        argument.replace(DOCUMENTED_ADDRESS, address).replace(
            DOCUMENTED_MODEL_PATH, model_path
        )
        for argument in arguments
    ]


def request_body(arguments: list[str]) -> dict:
    for index, argument in enumerate(arguments[:-1]):
        if argument in DATA_OPTIONS:
            return json.loads(arguments[index + 1])
    raise AssertionError(f"no request body in {arguments}")


def test_readme_has_curl_examples():
    documents = {location.split(":")[0] for location, _ in COMMANDS}
    assert "README.md" in documents


@pytest.mark.parametrize(
    "command", [command for _, command in COMMANDS], ids=[loc for loc, _ in COMMANDS]
)
def test_documented_curl_command(stack, pipelines, command):
    curl = shutil.which("curl")
    assert curl is not None, "the README examples need the curl binary"
    arguments = localize(shlex.split(command, comments=True), stack)
    assert arguments[0] == "curl"
    # The status goes after the body, on a line of its own.
    extra = ["--max-time", "60", "--write-out", STATUS_MARKER + "%{http_code}"]

    result = subprocess.run(
        [curl, *arguments[1:], *extra],
        check=False,
        capture_output=True,
        text=True,
        timeout=90,
    )

    assert result.returncode == 0, result.stderr
    body_text, _, status = result.stdout.rpartition(STATUS_MARKER)
    assert status == "200", body_text
    body = json.loads(body_text)
    request = request_body(arguments)
    inputs = request["inputs"]
    parameters = request.get("parameters") or {}
    top_k = parameters.get("top_k", 1)
    if top_k == 1:
        assert isinstance(body, dict), body
        answers = [body]
    else:
        assert isinstance(body, list), body
        answers = body
    assert_contract_items(answers, inputs["context"], top_k)
    expected = expected_answers(
        pipelines["roberta"], inputs["question"], inputs["context"], parameters
    )
    assert_matches_reference(answers, expected, top_k)

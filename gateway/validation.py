"""Parse a request body into question-context pairs and pipeline parameters.

Every rejection names the field, the value and what is allowed, because the
Hugging Face clients show only that one message to their users.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import annotated_types
from pydantic import BaseModel, ValidationError

from gateway.errors import ErrorKind, GatewayError
from gateway.schemas import QAInput, QAParameters
from python_backend import protocol

TOP_LEVEL_FIELDS = ("inputs", "parameters", "options")
TEXT_RULE = "a string that is not empty or only whitespace"
_MAX_SHOWN_CHARS = 60
_MAX_LISTED_ERRORS = 5
_JSON_TYPE_NAMES = {
    dict: "object",
    list: "array",
    str: "string",
    bool: "boolean",
    int: "number",
    float: "number",
}


@dataclass(frozen=True)
class ParsedRequest:
    """A valid request: its pairs and the parameters the client set."""

    pairs: list[QAInput]
    parameters: dict[str, int | bool]
    batched: bool

    @property
    def top_k(self) -> int:
        """Number of answers requested."""
        return int(self.parameters.get("top_k", protocol.DEFAULTS["top_k"]))

    @property
    def handle_impossible_answer(self) -> bool:
        """Whether the null answer may be returned."""
        default = protocol.DEFAULTS["handle_impossible_answer"]
        return bool(self.parameters.get("handle_impossible_answer", default))


def parse_request(
    body: bytes, *, max_batch_inputs: int, model_max_length: int, model_id: str
) -> ParsedRequest:
    """Parse and validate a request body; raise GatewayError (400 or 422)."""
    data = _load_json(body)
    if not isinstance(data, dict):
        raise GatewayError(
            ErrorKind.INVALID_BODY,
            "request body must be a JSON object with an inputs field, "
            f"got {_show(data)}",
        )
    _reject_unknown(data, TOP_LEVEL_FIELDS, ())
    if "inputs" not in data:
        raise _invalid(
            'inputs is missing; send {"inputs": {"question": ..., "context": ...}}'
        )
    options = data.get("options")
    if options is not None and not isinstance(options, dict):
        raise _invalid(f"options must be an object, got {_show(options)}")

    parameters = parse_parameters(data.get("parameters"))
    max_seq_len = parameters.get("max_seq_len")
    if max_seq_len is not None and max_seq_len > model_max_length:
        raise _invalid(
            f"parameters.max_seq_len must be at most {model_max_length}, the "
            f"model_max_length of {model_id}, got {max_seq_len}"
        )
    pairs, batched = parse_inputs(data["inputs"], max_batch_inputs)
    return ParsedRequest(pairs=pairs, parameters=parameters, batched=batched)


def parse_parameters(raw: Any) -> dict[str, int | bool]:
    """Return the parameters that are set, checked for type and range."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise _invalid(f"parameters must be an object, got {_show(raw)}")
    values = _validate(QAParameters, raw, ("parameters",))
    return values.model_dump(exclude_none=True)


def parse_inputs(raw: Any, max_batch_inputs: int) -> tuple[list[QAInput], bool]:
    """Return the pairs of `inputs` and whether the request is a batch."""
    if isinstance(raw, list):
        _check_batch_size(len(raw), max_batch_inputs)
        pairs = [
            _validate(QAInput, item, ("inputs", index))
            for index, item in enumerate(raw)
        ]
        return pairs, True
    if not isinstance(raw, dict):
        raise _invalid(
            "inputs must be an object with question and context strings, or a "
            f"list of such objects, got {_show(raw)}"
        )
    _reject_unknown(raw, ("question", "context"), ("inputs",))
    question, context = raw.get("question"), raw.get("context")
    if isinstance(question, list) or isinstance(context, list):
        return _parse_columns(question, context, max_batch_inputs), True
    return [_validate(QAInput, raw, ("inputs",))], False


def _parse_columns(question: Any, context: Any, max_batch_inputs: int) -> list[QAInput]:
    if not (isinstance(question, list) and isinstance(context, list)):
        raise _invalid(
            "inputs.question and inputs.context must both be strings or both be "
            f"lists, got {_json_type(question)} and {_json_type(context)}"
        )
    if len(question) != len(context):
        raise _invalid(
            "inputs.question and inputs.context must be lists of equal length, "
            f"got {len(question)} and {len(context)} items"
        )
    _check_batch_size(len(question), max_batch_inputs)
    pairs = []
    for index, pair in enumerate(zip(question, context, strict=True)):
        raw = {"question": pair[0], "context": pair[1]}
        pairs.append(_validate(QAInput, raw, ("inputs",), item_index=index))
    return pairs


def _check_batch_size(count: int, max_batch_inputs: int) -> None:
    if count == 0:
        raise _invalid("inputs must contain at least one question-context pair")
    if count > max_batch_inputs:
        raise _invalid(
            f"inputs has {count} question-context pairs, more than the limit of "
            f"{max_batch_inputs} per request; split it into smaller requests"
        )


def _load_json(body: bytes) -> Any:
    if not body.strip():
        raise GatewayError(ErrorKind.INVALID_JSON, "request body is empty; send JSON")
    try:
        return json.loads(body)
    except RecursionError:
        raise GatewayError(
            ErrorKind.INVALID_JSON, "request body is not valid JSON: nested too deeply"
        ) from None
    except ValueError as error:
        raise GatewayError(
            ErrorKind.INVALID_JSON, f"request body is not valid JSON: {error}"
        ) from None


def _validate(
    model: type[BaseModel],
    raw: Any,
    prefix: tuple[str | int, ...],
    item_index: int | None = None,
) -> Any:
    if not isinstance(raw, dict):
        raise _invalid(
            f"{_format_loc(prefix)} must be an object with question and context "
            f"strings, got {_show(raw)}"
        )
    try:
        return model.model_validate(raw)
    except ValidationError as error:
        messages = [
            _describe(model, item, prefix, item_index)
            for item in error.errors(include_url=False)[:_MAX_LISTED_ERRORS]
        ]
        raise _invalid("; ".join(messages)) from None


def _describe(
    model: type[BaseModel],
    error: Any,
    prefix: tuple[str | int, ...],
    item_index: int | None,
) -> str:
    if not error["loc"]:
        # Pydantic reports some failures, such as a key that is not valid
        # Unicode, on the object itself rather than on a field.
        return f"{_format_loc(prefix)} is invalid: {_shorten(error['msg'])}"
    name = error["loc"][0]
    loc = prefix + tuple(error["loc"])
    if item_index is not None:
        loc = loc + (item_index,)
    path = _format_loc(loc)
    kind = error["type"]
    if kind == "missing":
        return f"{path} is missing"
    if kind == "extra_forbidden":
        return _unknown_field_message(path, model.model_fields)
    if kind == "invalid_unicode":
        return f"{path} must be valid Unicode text, but it has an {error['msg']}"
    return f"{path} must be {_rule(model, name)}, got {_show(error['input'])}"


def _rule(model: type[BaseModel], name: str) -> str:
    if model is QAInput:
        return TEXT_RULE
    field = model.model_fields[name]
    if field.annotation == bool | None:
        return "a boolean (true or false)"
    low = next(m.ge for m in field.metadata if isinstance(m, annotated_types.Ge))
    high = next(m.le for m in field.metadata if isinstance(m, annotated_types.Le))
    return f"an integer from {low} to {high}"


def _reject_unknown(
    data: dict, allowed: tuple[str, ...], prefix: tuple[str | int, ...]
) -> None:
    unknown = [key for key in data if key not in allowed]
    if unknown:
        path = _format_loc(prefix + (unknown[0],))
        raise _invalid(_unknown_field_message(path, allowed))


def _unknown_field_message(path: str, allowed: Any) -> str:
    kind = "parameter" if path.startswith("parameters.") else "field"
    return f"{path} is not a valid {kind}; valid {kind}s: {', '.join(allowed)}"


def _format_loc(loc: tuple[str | int, ...]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            part = _shorten(part)
            text += f".{part}" if text else part
    return text or "request body"


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    return _JSON_TYPE_NAMES.get(type(value), type(value).__name__)


def _show(value: Any) -> str:
    """Render a JSON value for a message, shortened, with its JSON type."""
    if value is None:
        return "null"
    try:
        text = _shorten(json.dumps(value, ensure_ascii=False))
    except RecursionError:
        # json.loads accepts deeper nesting than json.dumps can write back.
        text = "a deeply nested value"
    return f"{text} ({_json_type(value)})"


def _shorten(text: str) -> str:
    """Cut text for a message and escape lone surrogates, which UTF-8 cannot encode."""
    if len(text) > _MAX_SHOWN_CHARS:
        text = text[:_MAX_SHOWN_CHARS] + "..."
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _invalid(message: str) -> GatewayError:
    return GatewayError(ErrorKind.VALIDATION_ERROR, message)

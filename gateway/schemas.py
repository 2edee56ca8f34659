"""Request and response models, used for validation and for the OpenAPI page.

The request models run in strict mode, so `"3"` and `2.0` are not integers and
`"false"` is not a boolean, as in the JSON the clients send.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic_core import PydanticCustomError

# Integer parameters go to Triton as int64 request parameters. This bound keeps
# them inside the int32 range that the Python-backend steps index with.
MAX_INT_PARAMETER = 2**31 - 1


def _check_text(value: str) -> str:
    if not value.strip():
        raise PydanticCustomError("blank_text", "blank text")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as error:
        raise PydanticCustomError(
            "invalid_unicode",
            "unpaired surrogate at index {index}",
            {"index": error.start},
        ) from None
    return value


Text = Annotated[str, AfterValidator(_check_text)]

_STRICT = ConfigDict(strict=True, extra="forbid")


class QAInput(BaseModel):
    """One question and the context to find its answer in."""

    model_config = ConfigDict(
        **_STRICT,
        json_schema_extra={
            "examples": [
                {
                    "question": "Who was the first librarian?",
                    "context": "Its first librarian was a retired pilot named "
                    "Edda Vossberg.",
                }
            ]
        },
    )

    question: Text = Field(description="The question; not empty or only whitespace.")
    context: Text = Field(
        description="The text that contains the answer; not empty or only whitespace."
    )


class QAColumns(BaseModel):
    """Several pairs as two equal-length lists: pair i is question[i], context[i]."""

    model_config = _STRICT

    question: list[Text] = Field(min_length=1)
    context: list[Text] = Field(min_length=1)


def _int_parameter(minimum: int, description: str) -> Any:
    return Field(None, ge=minimum, le=MAX_INT_PARAMETER, description=description)


class QAParameters(BaseModel):
    """The seven parameters of the transformers question-answering pipeline.

    Each one is optional; `null` means the same as leaving it out.
    """

    model_config = _STRICT

    top_k: int | None = _int_parameter(
        1,
        "Number of answers to return, best first. Default 1. With 1 the response "
        "is one object, above 1 a list of 1 to top_k objects.",
    )
    doc_stride: int | None = _int_parameter(
        0,
        "Overlap of consecutive context windows, in tokens. Default "
        "min(max_seq_len // 2, 128). It must leave room for context in each window "
        "after the question and special tokens.",
    )
    max_answer_len: int | None = _int_parameter(
        1, "Longest answer, in tokens. Default 15."
    )
    max_seq_len: int | None = _int_parameter(
        1,
        "Window length in tokens, question and special tokens included. Default "
        "min(384, the model's model_max_length); at most model_max_length.",
    )
    max_question_len: int | None = _int_parameter(
        1,
        "Longest question, in tokens; longer questions are truncated. Default 64.",
    )
    handle_impossible_answer: bool | None = Field(
        None,
        description="Whether the empty answer (no answer in the context) may be "
        "returned. Default false.",
    )
    align_to_words: bool | None = Field(
        None,
        description="Whether answers are widened to whole words of the tokenizer. "
        "Default true.",
    )


class QARequest(BaseModel):
    """The request body; only `inputs` is required."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "inputs": {
                        "question": "Who was the first librarian?",
                        "context": "Its first librarian was a retired pilot named "
                        "Edda Vossberg.",
                    },
                    "parameters": {"top_k": 2},
                }
            ]
        },
    )

    inputs: QAInput | list[QAInput] | QAColumns = Field(
        description="One pair, a list of pairs, or two equal-length lists. For a list "
        "the response is a list with one result per pair, in order."
    )
    parameters: QAParameters | None = None
    options: dict[str, Any] | None = Field(
        None,
        description="Accepted for compatibility with older Hugging Face clients "
        "(`wait_for_model`, `use_cache`) and ignored.",
    )


class Answer(BaseModel):
    """One answer: `context[start:end] == answer`, offsets in Unicode code points."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"answer": "Edda Vossberg", "score": 0.91, "start": 45, "end": 58}
            ]
        }
    )

    answer: str
    score: float
    start: int
    end: int


class ErrorBody(BaseModel):
    """The body of every error response."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "error": "parameters.top_k must be an integer from 1 to "
                    '2147483647, got "3" (string)',
                    "error_type": "validation_error",
                }
            ]
        }
    )

    error: str = Field(description="What failed, naming the field and the value.")
    error_type: str = Field(description="Kind of error, such as validation_error.")


class ModelEntry(BaseModel):
    """A served model."""

    model_id: str
    ensemble: str = Field(description="Name of the Triton ensemble.")
    model_family: str
    model_max_length: int = Field(description="Largest max_seq_len accepted.")
    window_batch_size: int = Field(description="Windows per Triton call.")
    ready: bool
    default: bool = Field(description="Whether `POST /` serves this model.")


class ModelList(BaseModel):
    """The models that Triton serves."""

    default_model: str | None
    models: list[ModelEntry]


class HealthStatus(BaseModel):
    """A successful health check."""

    status: str
    models: dict[str, Any] = Field(default_factory=dict)


# A response is one result per pair, and a result is one answer or a list.
QAResult = Answer | list[Answer]
QAResponse = QAResult | list[QAResult]

"""Names and defaults shared by the Triton models and the gateway.

The ensemble takes the question and context as UTF-8 string tensors and the API
parameters as Triton request parameters. The steps pass window tensors between
them, and the postprocessing step returns one JSON string.
"""

QUESTION = "QUESTION"
CONTEXT = "CONTEXT"
RESULT = "RESULT"

# Tokenizer step outputs, in the order the ensemble wires them.
INPUT_IDS = "input_ids"
ATTENTION_MASK = "attention_mask"
TOKEN_TYPE_IDS = "token_type_ids"
OFFSETS = "OFFSETS"
WORD_IDS = "WORD_IDS"
CANDIDATE_MASK = "CANDIDATE_MASK"
NUM_WINDOWS = "NUM_WINDOWS"
WINDOW_START = "WINDOW_START"

# Model step outputs.
START_LOGITS = "start_logits"
END_LOGITS = "end_logits"

# API parameters, with the defaults of the transformers 4.x question-answering
# pipeline. `max_seq_len` defaults to min(model_max_length, 384) and
# `doc_stride` to min(max_seq_len // 2, 128), so both are resolved per model.
INT_PARAMETERS = (
    "top_k",
    "doc_stride",
    "max_answer_len",
    "max_seq_len",
    "max_question_len",
)
BOOL_PARAMETERS = ("handle_impossible_answer", "align_to_words")
API_PARAMETERS = INT_PARAMETERS + BOOL_PARAMETERS
DEFAULTS = {
    "top_k": 1,
    "max_answer_len": 15,
    "max_question_len": 64,
    "handle_impossible_answer": False,
    "align_to_words": True,
}
DEFAULT_MAX_SEQ_LEN = 384
DEFAULT_MAX_DOC_STRIDE = 128

# Window selection: which windows of the context one ensemble call runs.
WINDOW_PARAMETERS = ("window_start", "window_limit")

# A Python-backend step reports an invalid request with a TritonError whose
# message contains this marker followed by a JSON error object.
ERROR_MARKER = "triton-qa-error:"

# Ensemble config parameters that describe the served model to the gateway.
CONFIG_MODEL_ID = "model_id"
CONFIG_WINDOW_BATCH_SIZE = "window_batch_size"
CONFIG_MODEL_MAX_LENGTH = "model_max_length"
CONFIG_MODEL_FAMILY = "model_family"


def step_names(ensemble_name: str) -> dict[str, str]:
    """Return the names of the three steps of an ensemble."""
    return {
        "tokenize": f"{ensemble_name}_tokenize",
        "model": f"{ensemble_name}_model",
        "postprocess": f"{ensemble_name}_postprocess",
    }


def ensemble_name(model_id: str) -> str:
    """Return the Triton model name for a Hugging Face model id.

    Triton model names are folder names, so the slash of `owner/name` becomes
    two dashes, as in the Hugging Face cache layout.
    """
    return model_id.strip("/").replace("/", "--")

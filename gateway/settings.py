"""Gateway settings, read from `TRITON_QA_*` environment variables and CLI flags."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

logger = logging.getLogger(__name__)

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]


class Settings(BaseSettings):
    """Every setting of the gateway, with its default.

    Environment variables are the field names in upper case with the prefix
    `TRITON_QA_` (`TRITON_QA_PORT`). Flags of `python -m gateway` use the same
    names in kebab case (`--port`) and override the environment.
    """

    model_config = SettingsConfigDict(
        env_prefix="TRITON_QA_",
        cli_kebab_case=True,
        cli_implicit_flags=True,
        cli_prog_name="python -m gateway",
        extra="ignore",
    )

    host: str = Field(
        "127.0.0.1",
        description="Address the HTTP server binds to. Use 0.0.0.0 in a container.",
    )
    port: int = Field(8080, ge=1, le=65535, description="HTTP port.")
    triton_grpc_url: str = Field(
        "127.0.0.1:8001", description="Triton gRPC endpoint, as host:port."
    )
    default_model: str | None = Field(
        None,
        description="Model id that `POST /` serves. When unset, `POST /` serves the "
        "only model Triton serves, and returns 404 when there are several.",
    )
    api_tokens: SecretStr | None = Field(
        None,
        description="Comma-separated bearer tokens that clients may send. When no "
        "token is set here or in `api_tokens_file`, requests need no token. Several "
        "tokens allow rotation without downtime.",
    )
    api_tokens_file: Path | None = Field(
        None,
        description="File with one bearer token per line (blank lines and lines "
        "starting with # are skipped). Reread when its modification time changes.",
    )
    metrics_require_auth: bool = Field(
        False,
        description="Require a bearer token for `GET /metrics` when tokens are set.",
    )
    max_body_bytes: int = Field(
        1_048_576,
        ge=1,
        description="Largest request body accepted, in bytes; larger bodies get 413. "
        "This is also the largest context that can be answered.",
    )
    request_timeout_s: float = Field(
        60.0,
        gt=0,
        description="Time limit for one request, from reading the body to the last "
        "Triton call, in seconds. Slower requests get 504, and their chunks not yet "
        "sent are dropped; chunks already queued in Triton still run to the end.",
    )
    max_in_flight: int = Field(
        64,
        ge=1,
        description="Inference requests processed at once. Further requests get 429 "
        "with Retry-After at once instead of waiting in a queue.",
    )
    max_batch_inputs: int = Field(
        32,
        ge=1,
        description="Most question-context pairs in one request; more get 422.",
    )
    retry_after_s: int = Field(
        2,
        ge=0,
        description="Value of the Retry-After header on 429 and 503 responses, in "
        "seconds.",
    )
    not_ready_delay_s: float = Field(
        0.5,
        ge=0,
        description="Delay before an inference request gets 503 while models load, "
        "in seconds. It paces clients that retry 503 at once in a loop, such as the "
        "@huggingface/inference JS client.",
    )
    model_refresh_interval_s: float = Field(
        10.0,
        gt=0,
        description="Interval between reads of Triton's model repository index, in "
        "seconds. Until the first successful read, the gateway retries every second.",
    )
    health_check_interval_s: float = Field(
        10.0,
        gt=0,
        description="Interval between readiness checks of Triton and its models, "
        "each with one canary inference per model, in seconds.",
    )
    canary_max_age_s: float = Field(
        35.0,
        gt=0,
        description="Readiness requires a successful canary inference per model "
        "within this many seconds.",
    )
    max_chunks_in_flight: int = Field(
        4,
        ge=1,
        description="Window chunks of one long context sent to Triton at once. Each "
        "chunk carries the whole context, so this bounds the memory of a long "
        "request and leaves room in Triton's queue for other clients.",
    )
    triton_timeout_s: float = Field(
        5.0,
        gt=0,
        description="Time limit for Triton health, index, config and canary calls, "
        "in seconds.",
    )
    log_level: LogLevel = Field(
        "INFO", description="Log level: DEBUG, INFO, WARNING, ERROR or CRITICAL."
    )
    log_json: bool = Field(False, description="Write logs as JSON lines.")
    log_request_bodies: bool = Field(
        False,
        description="Log the question and context of each request at DEBUG level. "
        "They may contain personal data, so this is off by default.",
    )

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_case_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    def tokens(self) -> list[str]:
        """Return the tokens set in `api_tokens`, without blanks."""
        if self.api_tokens is None:
            return []
        raw = self.api_tokens.get_secret_value().split(",")
        return [token.strip() for token in raw if token.strip()]

    def non_default_items(self) -> dict[str, object]:
        """Return the settings that differ from their defaults, secrets redacted."""
        items: dict[str, object] = {}
        for name, field in type(self).model_fields.items():
            value = getattr(self, name)
            if value == field.default:
                continue
            if isinstance(value, SecretStr):
                value = "**********"
            items[name] = value
        return items


def log_settings(settings: Settings) -> None:
    """Log the settings that differ from their defaults, secrets redacted."""
    items = settings.non_default_items()
    if not items:
        logger.info("Settings: all defaults")
        return
    text = ", ".join(f"{name}={value}" for name, value in sorted(items.items()))
    logger.info("Settings (non-default): %s", text)


def configuration_table() -> str:
    """Return the Markdown table of all settings, as docs/configuration.md has it."""
    rows = [
        "| setting | environment variable | flag | default | description |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, field in Settings.model_fields.items():
        variable = f"TRITON_QA_{name.upper()}"
        flag = "--" + name.replace("_", "-")
        if field.annotation is bool:
            flag = f"{flag}` / `--no-{flag[2:]}"
        rows.append(
            f"| `{name}` | `{variable}` | `{flag}` | {_format_default(field.default)} "
            f"| {field.description} |"
        )
    return "\n".join(rows) + "\n"


def _format_default(value: object) -> str:
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    return f"`{value}`"

"""Discovery of the served models from Triton's repository index.

A served model is an ensemble (platform `ensemble`) whose config has the
`model_id` parameter. Its other config parameters tell the gateway how to call
it: `window_batch_size`, `model_max_length` and `model_family`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from tritonclient.utils import InferenceServerException

from gateway.errors import ErrorKind, GatewayError
from python_backend import protocol

logger = logging.getLogger(__name__)

READY_STATE = "READY"


@dataclass(frozen=True)
class ModelInfo:
    """One served model and how to call its ensemble."""

    model_id: str
    ensemble: str
    window_batch_size: int
    model_max_length: int
    model_family: str
    steps: tuple[str, ...]


class ModelRegistry:
    """The served models, refreshed from Triton by `refresh`."""

    def __init__(self, client: Any, default_model: str | None, timeout_s: float):
        self._client = client
        self._default_model = default_model.strip("/") if default_model else None
        self._timeout_s = timeout_s
        self._models: dict[str, ModelInfo] = {}
        self._ready: dict[str, bool] = {}
        self._states: dict[str, str] = {}
        self.discovered = False

    @property
    def models(self) -> list[ModelInfo]:
        """Every model found so far, ready or not, sorted by model id."""
        return [self._models[key] for key in sorted(self._models)]

    def is_ready(self, model_id: str) -> bool:
        """Return whether the model's ensemble was READY at the last refresh."""
        return self._ready.get(model_id, False)

    def default_model_id(self) -> str | None:
        """Return the model id that `POST /` serves, if there is one."""
        if self._default_model:
            return self._default_model
        if len(self._models) == 1:
            return next(iter(self._models))
        return None

    async def refresh(self) -> None:
        """Read the repository index and the config of each new ensemble.

        Raises InferenceServerException when Triton cannot be reached. The
        models found before then keep their state, so that requests reach Triton
        and fail with 502 (unreachable) rather than 503 (loading).
        """
        index = await self._client.get_model_repository_index(
            as_json=True, client_timeout=self._timeout_s
        )
        states = {
            entry["name"]: entry.get("state", "")
            for entry in index.get("models", [])
            if "name" in entry
        }
        ensembles = {info.ensemble: info for info in self._models.values()}
        for name, state in sorted(states.items()):
            if state == READY_STATE and name not in ensembles:
                await self._inspect(name)
        for model_id, info in list(self._models.items()):
            if info.ensemble not in states:
                logger.info("Model %s left the model repository", model_id)
                del self._models[model_id]
        self._states = states
        self._ready = {
            model_id: states.get(info.ensemble) == READY_STATE
            for model_id, info in self._models.items()
        }
        if not self.discovered:
            logger.info(
                "Found %d served models: %s",
                len(self._models),
                ", ".join(sorted(self._models)) or "none",
            )
        self.discovered = True

    def resolve(self, model_id: str | None) -> ModelInfo:
        """Return the model for a request, or raise GatewayError (404 or 503)."""
        if model_id is None:
            model_id = self.default_model_id()
            if model_id is None:
                raise self._no_default_model()
        model_id = model_id.strip("/")
        if not model_id:
            raise GatewayError(
                ErrorKind.MODEL_NOT_FOUND,
                "the path names no model; send the request to /models/<model_id>; "
                f"available models: {self._available_text()}",
            )
        info = self._models.get(model_id)
        if info is not None and self.is_ready(model_id):
            return info
        if info is not None or self._is_loading(model_id) or not self.discovered:
            raise GatewayError(
                ErrorKind.NOT_READY,
                f"model {model_id} is not ready yet; retry later",
            )
        raise GatewayError(
            ErrorKind.MODEL_NOT_FOUND,
            f"model {model_id} is not served here; available models: "
            f"{self._available_text()}",
        )

    def _no_default_model(self) -> GatewayError:
        if not self.discovered or not self._models:
            return GatewayError(
                ErrorKind.NOT_READY, "no model is ready yet; retry later"
            )
        return GatewayError(
            ErrorKind.MODEL_NOT_FOUND,
            "no default model is set and several models are served; send the "
            "request to /models/<model_id> or set TRITON_QA_DEFAULT_MODEL; "
            f"available models: {self._available_text()}",
        )

    def _is_loading(self, model_id: str) -> bool:
        state = self._states.get(protocol.ensemble_name(model_id))
        return state is not None and state != READY_STATE

    def _available_text(self) -> str:
        return ", ".join(sorted(self._models)) or "none"

    async def _inspect(self, name: str) -> None:
        try:
            response = await self._client.get_model_config(
                name, as_json=True, client_timeout=self._timeout_s
            )
        except InferenceServerException as error:
            logger.warning("Cannot read the config of model %s: %s", name, error)
            return
        config = response.get("config", response)
        if config.get("platform") != "ensemble":
            return
        info = model_info_from_config(config)
        if info is None:
            return
        self._models[info.model_id] = info
        logger.info(
            "Serving model %s with ensemble %s (window_batch_size=%d, "
            "model_max_length=%d)",
            info.model_id,
            info.ensemble,
            info.window_batch_size,
            info.model_max_length,
        )


def model_info_from_config(config: dict[str, Any]) -> ModelInfo | None:
    """Build ModelInfo from an ensemble's config as JSON; None if not served."""
    name = config.get("name", "")
    parameters = {
        key: value.get("string_value", "")
        for key, value in config.get("parameters", {}).items()
    }
    model_id = parameters.get(protocol.CONFIG_MODEL_ID)
    if not model_id:
        return None
    try:
        window_batch_size = int(parameters[protocol.CONFIG_WINDOW_BATCH_SIZE])
        model_max_length = int(parameters[protocol.CONFIG_MODEL_MAX_LENGTH])
    except (KeyError, ValueError) as error:
        logger.warning(
            "Ensemble %s has model_id %s but an invalid or missing config "
            "parameter (%s); it is not served",
            name,
            model_id,
            error,
        )
        return None
    if window_batch_size < 1 or model_max_length < 1:
        logger.warning(
            "Ensemble %s has window_batch_size %d and model_max_length %d; both "
            "must be at least 1, so it is not served",
            name,
            window_batch_size,
            model_max_length,
        )
        return None
    steps = config.get("ensemble_scheduling", {}).get("step", [])
    return ModelInfo(
        model_id=model_id,
        ensemble=name,
        window_batch_size=window_batch_size,
        model_max_length=model_max_length,
        model_family=parameters.get(protocol.CONFIG_MODEL_FAMILY, ""),
        steps=tuple(step["model_name"] for step in steps if "model_name" in step),
    )

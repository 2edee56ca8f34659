"""Bearer-token authentication with several valid tokens, for rotation."""

from __future__ import annotations

import hmac
import logging
from pathlib import Path

from gateway.errors import ErrorKind, GatewayError

logger = logging.getLogger(__name__)


class TokenStore:
    """The accepted tokens: from the settings and, optionally, a file.

    The file is reread when its modification time changes, so a mounted secret
    can be rotated without a restart.
    """

    def __init__(self, tokens: list[str], path: Path | None = None) -> None:
        self._fixed = [token.encode("utf-8") for token in tokens]
        self._path = path
        self._file_tokens: list[bytes] = []
        self._file_mtime: float | None = None
        if path is not None:
            self._read_file(path)

    @property
    def enabled(self) -> bool:
        """Whether requests need a token."""
        return bool(self._fixed or self._file_tokens)

    def reload_if_changed(self) -> None:
        """Reread the token file if it changed; keep the old tokens on failure."""
        if self._path is None:
            return
        try:
            mtime = self._path.stat().st_mtime
        except OSError as error:
            logger.warning("Cannot read api_tokens_file %s: %s", self._path, error)
            return
        if mtime != self._file_mtime:
            self._read_file(self._path)

    def check(self, authorization: str | None) -> None:
        """Raise GatewayError(401) unless `authorization` carries a valid token."""
        if not self.enabled:
            return
        if not authorization:
            raise GatewayError(
                ErrorKind.UNAUTHORIZED,
                "missing Authorization header; send 'Authorization: Bearer <token>'",
            )
        scheme, _, candidate = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not candidate.strip():
            raise GatewayError(
                ErrorKind.UNAUTHORIZED,
                "Authorization header must use the Bearer scheme: "
                "'Authorization: Bearer <token>'",
            )
        if not self._matches(candidate.strip().encode("utf-8")):
            raise GatewayError(ErrorKind.UNAUTHORIZED, "invalid bearer token")

    def _matches(self, candidate: bytes) -> bool:
        # Compare with every token, without stopping early, so the time taken
        # does not reveal which token or how many tokens matched.
        matched = False
        for token in self._fixed + self._file_tokens:
            matched |= hmac.compare_digest(candidate, token)
        return matched

    def _read_file(self, path: Path) -> None:
        mtime = path.stat().st_mtime
        lines = path.read_text(encoding="utf-8").splitlines()
        tokens = [line.strip() for line in lines]
        self._file_tokens = [
            token.encode("utf-8") for token in tokens if token and token[0] != "#"
        ]
        self._file_mtime = mtime
        logger.info(
            "Read %d API tokens from api_tokens_file %s", len(self._file_tokens), path
        )

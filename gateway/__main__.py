"""Run the gateway: `python -m gateway [--flag value ...]`.

Every setting can be given as a flag or as a `TRITON_QA_*` environment
variable; flags override the environment. `python -m gateway --help` lists them.
"""

from __future__ import annotations

import logging
import sys

import uvicorn
from pydantic_settings import CliApp

from gateway.app import create_app
from gateway.logs import configure_logging
from gateway.settings import Settings, log_settings

logger = logging.getLogger(__name__)


def load_settings(argv: list[str]) -> Settings:
    """Read the settings from the environment, overridden by the flags in `argv`."""
    return CliApp.run(Settings, cli_args=argv)


def main(argv: list[str] | None = None) -> None:
    """Parse the settings, set up logging and serve until stopped."""
    settings = load_settings(sys.argv[1:] if argv is None else argv)
    configure_logging(settings.log_level, settings.log_json)
    log_settings(settings)
    app = create_app(settings)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        log_level=settings.log_level.lower(),
    )


if __name__ == "__main__":
    main()

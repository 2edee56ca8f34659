"""Settings: environment, CLI flags, startup log and the documented table."""

from __future__ import annotations

import logging
import re
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from gateway.__main__ import load_settings
from gateway.settings import Settings, configuration_table, log_settings

ROOT = Path(__file__).resolve().parents[2]


def test_defaults():
    settings = Settings()
    assert settings.host == "127.0.0.1"
    assert settings.port == 8080
    assert settings.triton_grpc_url == "127.0.0.1:8001"
    assert settings.api_tokens is None
    assert settings.metrics_require_auth is False
    assert settings.log_request_bodies is False
    assert settings.tokens() == []


def test_environment_is_read(monkeypatch):
    monkeypatch.setenv("TRITON_QA_PORT", "9100")
    monkeypatch.setenv("TRITON_QA_LOG_JSON", "true")
    monkeypatch.setenv("TRITON_QA_LOG_LEVEL", "debug")
    monkeypatch.setenv("TRITON_QA_API_TOKENS", " a , b ,, ")
    settings = Settings()
    assert settings.port == 9100
    assert settings.log_json is True
    assert settings.log_level == "DEBUG"
    assert settings.tokens() == ["a", "b"]


def test_false_string_is_false(monkeypatch):
    monkeypatch.setenv("TRITON_QA_METRICS_REQUIRE_AUTH", "0")
    assert Settings().metrics_require_auth is False


def test_flags_override_environment(monkeypatch):
    monkeypatch.setenv("TRITON_QA_PORT", "9100")
    monkeypatch.setenv("TRITON_QA_DEFAULT_MODEL", "env/model")
    settings = load_settings(["--port", "9200", "--log-json", "--max-in-flight", "3"])
    assert settings.port == 9200
    assert settings.log_json is True
    assert settings.max_in_flight == 3
    assert settings.default_model == "env/model"


@pytest.mark.parametrize(
    "values",
    [
        {"port": 0},
        {"max_body_bytes": 0},
        {"max_in_flight": 0},
        {"request_timeout_s": 0},
        {"log_level": "LOUD"},
    ],
)
def test_invalid_settings_rejected(values):
    with pytest.raises(ValidationError):
        Settings(**values)


def test_startup_log_lists_only_non_defaults(caplog):
    caplog.set_level(logging.INFO)
    log_settings(Settings(port=9000, api_tokens="hunter2-token"))
    assert "port=9000" in caplog.text
    assert "api_tokens=**********" in caplog.text
    assert "hunter2-token" not in caplog.text
    assert "host=" not in caplog.text


def test_startup_log_with_all_defaults(caplog):
    caplog.set_level(logging.INFO)
    log_settings(Settings())
    assert "Settings: all defaults" in caplog.text


def test_configuration_doc_is_up_to_date():
    text = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    match = re.search(
        r"<!-- settings-table:start -->\n(.*)<!-- settings-table:end -->",
        text,
        re.DOTALL,
    )
    assert match is not None
    assert match.group(1) == configuration_table()


def test_every_setting_has_description():
    for name, field in Settings.model_fields.items():
        assert field.description, name


def test_help_lists_flags():
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "--help"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=True,
    )
    for name in Settings.model_fields:
        assert "--" + name.replace("_", "-") in result.stdout

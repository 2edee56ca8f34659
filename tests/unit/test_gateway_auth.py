"""Bearer-token authentication, token rotation, and tokens kept out of output."""

from __future__ import annotations

import logging
import os

import pytest

from gateway.auth import TokenStore
from gateway.errors import GatewayError
from gateway.settings import Settings, log_settings
from tests.unit.gateway_fakes import (  # noqa: F401
    FakeTriton,
    anyio_backend,
    qa_body,
    running_gateway,
)

pytestmark = pytest.mark.anyio

TOKEN = "tok-7f3a9c1e5b"
OLD_TOKEN = "tok-old-22d4b6"


@pytest.mark.parametrize(
    ("headers", "fragment"),
    [
        ({}, "missing Authorization header"),
        ({"Authorization": "Bearer wrong-token"}, "invalid bearer token"),
        ({"Authorization": f"Basic {TOKEN}"}, "must use the Bearer scheme"),
        ({"Authorization": "Bearer"}, "must use the Bearer scheme"),
        ({"Authorization": "Bearer "}, "must use the Bearer scheme"),
        ({"Authorization": TOKEN}, "must use the Bearer scheme"),
        ({"Authorization": f"Bearer {TOKEN}x"}, "invalid bearer token"),
    ],
)
async def test_rejected_credentials(headers, fragment):
    fake = FakeTriton()
    async with running_gateway(fake, api_tokens=TOKEN) as (client, _):
        response = await client.post("/", json=qa_body(), headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["error_type"] == "unauthorized"
    assert fragment in response.json()["error"]
    assert TOKEN not in response.text
    assert fake.client_calls == []


@pytest.mark.parametrize(
    "header",
    [f"Bearer {TOKEN}", f"bearer {TOKEN}", f"BEARER {TOKEN}", f"  Bearer   {TOKEN}  "],
)
async def test_accepted_credentials(header):
    async with running_gateway(api_tokens=TOKEN) as (client, _):
        response = await client.post(
            "/", json=qa_body(), headers={"authorization": header}
        )
    assert response.status_code == 200


async def test_several_tokens_all_accepted():
    async with running_gateway(api_tokens=f"{OLD_TOKEN}, {TOKEN}") as (client, _):
        old = await client.post("/", json=qa_body(), headers=_bearer(OLD_TOKEN))
        new = await client.post("/", json=qa_body(), headers=_bearer(TOKEN))
    assert old.status_code == 200
    assert new.status_code == 200


async def test_token_file_rotation(tmp_path):
    path = tmp_path / "tokens"
    path.write_text(f"# current tokens\n{OLD_TOKEN}\n\n", encoding="utf-8")
    store = TokenStore([], path)
    store.check(f"Bearer {OLD_TOKEN}")
    path.write_text(f"{TOKEN}\n", encoding="utf-8")
    stat = path.stat()
    os.utime(path, (stat.st_atime, stat.st_mtime + 5))
    store.reload_if_changed()
    store.check(f"Bearer {TOKEN}")
    with pytest.raises(GatewayError):
        store.check(f"Bearer {OLD_TOKEN}")


def test_comment_line_is_not_a_token(tmp_path):
    path = tmp_path / "tokens"
    path.write_text("# note\n", encoding="utf-8")
    store = TokenStore([], path)
    assert not store.enabled


async def test_no_tokens_means_open():
    async with running_gateway() as (client, _):
        response = await client.post("/", json=qa_body())
    assert response.status_code == 200


async def test_model_list_needs_token():
    async with running_gateway(api_tokens=TOKEN) as (client, _):
        denied = await client.get("/models")
        allowed = await client.get("/models", headers=_bearer(TOKEN))
    assert denied.status_code == 401
    assert allowed.status_code == 200


async def test_health_is_open():
    async with running_gateway(api_tokens=TOKEN) as (client, _):
        live = await client.get("/health/live")
        ready = await client.get("/health/ready")
    assert live.status_code == 200
    assert ready.status_code in (200, 503)
    assert ready.status_code != 401


@pytest.mark.parametrize(("require", "status"), [(False, 200), (True, 401)])
async def test_metrics_auth_is_configurable(require, status):
    settings = {"api_tokens": TOKEN, "metrics_require_auth": require}
    async with running_gateway(**settings) as (client, _):
        response = await client.get("/metrics")
        with_token = await client.get("/metrics", headers=_bearer(TOKEN))
    assert response.status_code == status
    assert with_token.status_code == 200


async def test_token_absent_from_logs_and_openapi(caplog):
    caplog.set_level(logging.DEBUG)
    log_settings(Settings(api_tokens=f"{TOKEN},{OLD_TOKEN}"))
    async with running_gateway(api_tokens=TOKEN, log_request_bodies=True) as (
        client,
        _,
    ):
        await client.post("/", json=qa_body(), headers=_bearer(TOKEN))
        await client.post("/", json=qa_body(), headers=_bearer(OLD_TOKEN))
        await client.post("/", json=qa_body(top_k=0), headers=_bearer(TOKEN))
        openapi = await client.get("/openapi.json")
        docs = await client.get("/docs")
    assert "api_tokens=**********" in caplog.text
    assert TOKEN not in caplog.text
    assert OLD_TOKEN not in caplog.text
    assert TOKEN not in openapi.text
    assert TOKEN not in docs.text
    assert (
        openapi.json()["components"]["securitySchemes"]["bearerAuth"]["scheme"]
        == "bearer"
    )


def test_settings_repr_hides_token():
    settings = Settings(api_tokens=TOKEN)
    assert TOKEN not in repr(settings)
    assert TOKEN not in str(settings.non_default_items())
    assert settings.tokens() == [TOKEN]


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}

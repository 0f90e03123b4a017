"""Backend URLs from an SSM path (moto), cached and refreshed: a backend moves without a
redeploy; the *_SERVICE_URL settings fill the gaps; an SSM outage keeps the last URLs."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

import boto3
import pytest
from aws_lambda_powertools.utilities import parameters
from aws_lambda_powertools.utilities.parameters import base as parameters_base
from moto import mock_aws

from lucid.errors import ServiceUnavailableError
from lucid.proxy import Proxy
from lucid.proxy.discovery import BackendDirectory
from lucid.proxy.routing import BLOCKCHAIN, NODE, SESSION
from tests.shared.proxy.conftest import proxy_request, proxy_settings
from tests.shared.proxy.proxy_backends import BackendServer, running_backend

PATH = "/lucid/test/backends"


@pytest.fixture
def ssm(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str, str], None]]:
    """moto's SSM; `put(name, url)` sets PATH/name."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    parameters_base.DEFAULT_PROVIDERS.clear()
    parameters.clear_caches()
    with mock_aws():
        client = boto3.client("ssm", region_name="us-east-1")

        def put(name: str, url: str) -> None:
            client.put_parameter(Name=f"{PATH}/{name}", Value=url, Type="String", Overwrite=True)

        yield put
    parameters_base.DEFAULT_PROVIDERS.clear()
    parameters.clear_caches()


@pytest.fixture
def second_backend() -> Iterator[BackendServer]:
    with running_backend() as server:
        yield server


def test_a_backend_moves_without_a_redeploy(
    ssm: Callable[[str, str], None],
    backend: BackendServer,
    second_backend: BackendServer,
    make_proxy: Callable[..., Proxy],
) -> None:
    # GIVEN the blockchain backend's URL in SSM and a stale one in the settings
    ssm("blockchain", backend.url)
    settings = proxy_settings(
        BACKEND_PARAMETER_PATH=PATH, BLOCKCHAIN_SERVICE_URL="http://127.0.0.1:9"
    )
    proxy = make_proxy(settings)
    # WHEN a request is proxied THEN it reaches the URL SSM names
    assert proxy.forward(proxy_request(remainder="info")).status == 200
    assert [r.path for r in backend.received] == ["/chain/info"]
    # WHEN the operator moves the backend in SSM THEN, once the cache lapses, the next request
    # goes to the new place (no redeploy, same warm proxy)
    ssm("blockchain", second_backend.url)
    assert proxy.forward(proxy_request(remainder="info")).status == 200
    assert len(second_backend.received) == 0  # still cached (max_age)
    parameters.clear_caches()
    assert proxy.forward(proxy_request(remainder="info")).status == 200
    assert [r.path for r in second_backend.received] == ["/chain/info"]


def test_names_the_path_lacks_come_from_the_settings(ssm: Callable[[str, str], None]) -> None:
    ssm("session", "http://sessions.internal:8085")
    directory = BackendDirectory(
        proxy_settings(BACKEND_PARAMETER_PATH=PATH, BLOCKCHAIN_SERVICE_URL="http://chain:8084")
    )
    assert str(directory.base_url(SESSION)) == "http://sessions.internal:8085"
    assert str(directory.base_url(BLOCKCHAIN)) == "http://chain:8084"
    # and a backend named nowhere is a 503 naming both places to set it
    with pytest.raises(ServiceUnavailableError) as caught:
        directory.base_url(NODE)
    assert caught.value.detail == (
        f"the node backend is not configured: set {PATH}/node or NODE_SERVICE_URL"
    )
    assert caught.value.extensions == {"backend": "node", "setting": "NODE_SERVICE_URL"}


def test_when_ssm_cannot_be_read_the_last_urls_serve_and_it_is_asked_again_later(
    ssm: Callable[[str, str], None],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    ssm("blockchain", "http://chain-from-ssm:8084")
    directory = BackendDirectory(
        proxy_settings(BACKEND_PARAMETER_PATH=PATH, BLOCKCHAIN_SERVICE_URL="http://fallback:1")
    )
    assert str(directory.base_url(BLOCKCHAIN)) == "http://chain-from-ssm:8084"
    # WHEN SSM fails (here: the credentials stop working) after the cache lapsed
    parameters.clear_caches()
    parameters_base.DEFAULT_PROVIDERS.clear()
    asked: list[str] = []

    def failing(path: str, **_: object) -> dict[str, str]:
        asked.append(path)
        raise parameters.GetParameterError("An error occurred (AccessDeniedException)")

    monkeypatch.setattr(parameters, "get_parameters", failing)
    with caplog.at_level(logging.ERROR, logger="lucid.proxy.discovery"):
        urls = [str(directory.base_url(BLOCKCHAIN)) for _ in range(3)]
    # THEN the URLs last read keep serving, SSM is asked once per max_age, the log says why
    assert urls == ["http://chain-from-ssm:8084"] * 3
    assert asked == [PATH]
    (record,) = caplog.records
    assert "ssm:GetParametersByPath" in record.getMessage()
    assert "keeping the last URLs read" in record.getMessage()


def test_with_nothing_read_yet_an_ssm_failure_falls_back_to_the_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def failing(path: str, **_: object) -> dict[str, str]:
        raise parameters.GetParameterError("unreachable")

    monkeypatch.setattr(parameters, "get_parameters", failing)
    directory = BackendDirectory(
        proxy_settings(BACKEND_PARAMETER_PATH=PATH, NODE_SERVICE_URL="http://nodes:8086")
    )
    assert str(directory.base_url(NODE)) == "http://nodes:8086"


def test_without_a_path_ssm_is_never_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    def unexpected(path: str, **_: object) -> dict[str, str]:
        raise AssertionError("SSM was asked")

    monkeypatch.setattr(parameters, "get_parameters", unexpected)
    directory = BackendDirectory(proxy_settings(BLOCKCHAIN_SERVICE_URL="http://chain:8084/api"))
    assert str(directory.base_url(BLOCKCHAIN)) == "http://chain:8084/api"
    with pytest.raises(ServiceUnavailableError, match=r"set SESSION_SERVICE_URL$"):
        directory.base_url(SESSION)

"""An https backend: its certificate is verified at the handshake, against certifi's CAs by
default, and reading those CAs is left to the first handshake (not the cold start).

The backend is a real https server on 127.0.0.1 with a self-signed certificate
(tests/utils/tls.py); the proxy that should reach it trusts that certificate, the process's
default one trusts only certifi's CAs.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest

from lucid.errors import BadGatewayError, ServiceUnavailableError
from lucid.proxy import BreakerState, Proxy
from lucid.proxy.client import build_store
from lucid.proxy.transport import connection_pool, verified_context
from tests.shared.proxy.conftest import proxy_request, proxy_settings
from tests.shared.proxy.proxy_backends import BackendServer, running_backend
from tests.utils.tls import self_signed_certificate


@pytest.fixture
def https_backend(tmp_path: Path) -> Iterator[tuple[BackendServer, Path]]:
    """A running https backend and the certificate a client must trust to reach it."""
    cert_file, key_file = self_signed_certificate(tmp_path)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert_file, key_file)
    with running_backend(tls=tls) as server:
        yield server, cert_file


def _proxy(url: str, trusted: Path | None = None, retries: int = 0) -> Proxy:
    settings = proxy_settings(BLOCKCHAIN_SERVICE_URL=url, PROXY_RETRIES=retries)
    if trusted is None:  # the process's pool: certifi's CAs
        return Proxy(settings, connection_pool(4, 2), build_store(None))

    def trusting() -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(trusted))

    return Proxy(settings, connection_pool(4, 2, tls_context=trusting), build_store(None))


def test_an_https_backend_is_reached_over_verified_tls(
    https_backend: tuple[BackendServer, Path],
) -> None:
    backend, certificate = https_backend
    # GIVEN a proxy whose TLS trusts the backend's certificate
    proxy = _proxy(backend.url, trusted=certificate)
    try:
        # WHEN it forwards two requests
        answers = [proxy.forward(proxy_request("GET", "chain", "info")) for _ in range(2)]
    finally:
        proxy.close()
    # THEN both reached the backend over one kept-alive TLS connection
    assert [answer.status for answer in answers] == [200, 200]
    assert len(backend.received) == 2
    assert backend.connections == 1


def test_a_certificate_no_trusted_ca_signed_is_refused_before_any_request(
    https_backend: tuple[BackendServer, Path],
) -> None:
    backend, _ = https_backend
    verified_context.cache_clear()
    # GIVEN the process's proxy pool (certifi's CAs), which has made no TLS handshake yet, and
    # has therefore not read certifi's CAs
    proxy = _proxy(backend.url)
    assert verified_context.cache_info().currsize == 0
    try:
        # WHEN it forwards to a backend whose certificate is self-signed
        with pytest.raises(BadGatewayError) as refusal:
            proxy.forward(proxy_request("GET", "chain", "info"))
    finally:
        proxy.close()
    # THEN the caller gets a 502 saying the certificate did not verify, the backend never saw
    # the request, and the CAs were read for that first handshake
    assert refusal.value.status == 502
    assert refusal.value.detail == (
        "the blockchain backend's TLS certificate did not verify against the trusted CAs"
    )
    assert backend.received == []
    assert verified_context.cache_info().currsize == 1


def test_a_certificate_that_did_not_verify_is_not_retried_but_opens_the_breaker(
    https_backend: tuple[BackendServer, Path],
) -> None:
    backend, _ = https_backend
    # GIVEN the process's proxy pool, which retries an idempotent request's refused connection
    # twice, and a backend whose certificate no trusted CA signed
    proxy = _proxy(backend.url, retries=2)
    try:
        # WHEN four GETs are forwarded (the breaker's minimum of calls), then a fifth
        refusals = []
        for _ in range(4):
            with pytest.raises(BadGatewayError) as refusal:
                proxy.forward(proxy_request("GET", "chain", "info"))
            refusals.append(refusal.value.detail)
        with pytest.raises(ServiceUnavailableError) as open_breaker:
            proxy.forward(proxy_request("GET", "chain", "info"))
    finally:
        proxy.close()
    # THEN each GET was one handshake, not three (a new one would not verify either), each a
    # 502 saying why, and the four failures opened the backend's breaker
    assert backend.accepted == 4
    assert set(refusals) == {
        "the blockchain backend's TLS certificate did not verify against the trusted CAs"
    }
    assert proxy.breakers["blockchain"].state is BreakerState.OPEN
    assert open_breaker.value.extensions == {"backend": "blockchain", "breaker": "open"}
    assert backend.received == []

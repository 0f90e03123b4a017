"""The proxy function's fixtures: real backends, and the function served with a proxy built from
test settings (the wiring stays real)."""

from collections.abc import Callable, Iterator

import pytest

from lucid.proxy import Proxy
from lucid.web.proxy import current_proxy
from tests.shared.proxy.conftest import make_proxy, proxy_settings
from tests.shared.proxy.proxy_backends import BackendServer, running_backend
from tests.utils.functions import load_module

__all__ = ["backend", "make_proxy", "proxied", "use_proxy"]


@pytest.fixture
def backend() -> Iterator[BackendServer]:
    with running_backend() as server:
        yield server


@pytest.fixture
def use_proxy() -> Iterator[Callable[[Proxy], None]]:
    """Serve the function with a proxy built from test settings (the wiring stays real)."""
    app = load_module("proxy").app

    def use(proxy: Proxy) -> None:
        app.dependency_overrides[current_proxy] = lambda: proxy

    yield use
    app.dependency_overrides.clear()


@pytest.fixture
def proxied(
    backend: BackendServer, make_proxy: Callable[..., Proxy], use_proxy: Callable[[Proxy], None]
) -> Proxy:
    """Every backend URL pointing at the test backend."""
    proxy = make_proxy(
        proxy_settings(
            BLOCKCHAIN_SERVICE_URL=backend.url,
            SESSION_SERVICE_URL=backend.url,
            NODE_SERVICE_URL=backend.url,
        )
    )
    use_proxy(proxy)
    return proxy

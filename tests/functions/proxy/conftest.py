"""The proxy layer's fixtures, for the function tests too."""

from tests.shared.proxy.conftest import make_proxy

__all__ = ["make_proxy"]

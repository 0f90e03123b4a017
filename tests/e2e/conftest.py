"""End-to-end fixtures: a module that serves an `edge` fixture gets an HTTP `client` on it and
two users signed in through it with real wallets, `alice` and `bob`."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.flows import Account, sign_in
from tests.e2e.subprocess_edge import SubprocessEdge


@pytest.fixture
def client(edge: SubprocessEdge) -> Iterator[httpx.Client]:
    """A keep-alive client on the module's edge, closed after the test."""
    with edge.client() as http:
        yield http


@pytest.fixture
def alice(client: httpx.Client) -> Account:
    return sign_in(client)


@pytest.fixture
def bob(client: httpx.Client) -> Account:
    return sign_in(client)

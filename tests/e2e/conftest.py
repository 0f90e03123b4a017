"""End-to-end fixtures: a module that serves an `edge` fixture gets an HTTP `client` on it and
two users signed in through it with real wallets, `alice` and `bob`.

`ON_A_NAMED_STAGE` runs a test a second time against the real template deployed on the named
stage `dev` (ApiStageName=dev): the API then serves only under `/dev`, as on AWS, and the client's
base URL carries the stage, so tests keep their relative paths. Such a module serves two
module-scoped fixtures, `default_edge` and `dev_edge`, and its `edge` is `on_stage(request)`:
each edge starts once, whatever order pytest runs the tests in.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.e2e.flows import Account, sign_in
from tests.e2e.subprocess_edge import SubprocessEdge

NAMED_STAGE = "dev"
ON_A_NAMED_STAGE = pytest.mark.parametrize(
    "edge", ["$default", NAMED_STAGE], indirect=True, ids=["stage-$default", "stage-dev"]
)


def on_stage(request: pytest.FixtureRequest) -> Any:
    """The module's `dev_edge` for a test run on the named stage, else its `default_edge`."""
    named = getattr(request, "param", "$default") == NAMED_STAGE
    return request.getfixturevalue("dev_edge" if named else "default_edge")


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

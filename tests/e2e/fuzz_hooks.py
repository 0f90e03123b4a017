"""Schemathesis hooks for the fuzz run (`SCHEMATHESIS_HOOKS=tests.e2e.fuzz_hooks`, loaded by the
schemathesis command that tests/e2e/test_fuzz.py starts).

Signed in: with LUCID_FUZZ_EDGE and LUCID_FUZZ_KEY set, every request carries the access token
of that wallet, signed in over HTTP like any client. The run itself revokes it now and then (it
calls POST /auth/logout and DELETE /users/me like any other operation), so the wallet signs in
again every RENEW_SECONDS and the rest of the run keeps testing as a signed-in caller.

Degraded, not failed: the functions answer 503 problem+json (service-unavailable) when Redis or
MongoDB does not answer within its timeout (Redis: 50 ms), which a loaded 2-core machine running
the edge, its stores and the fuzzer at once sometimes causes. That documented degradation is not
counted as a server error; each one is written to LUCID_FUZZ_DEGRADED, and the test fails when
they are more than a few (a store that is really down makes every request degrade). Any other
5xx fails, a 503 of API Gateway's own (a function timing out) included.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import httpx
import schemathesis
from schemathesis.core.failures import ServerError

from tests.e2e.subprocess_edge import sign_in
from tests.utils.wallets import Wallet

RENEW_SECONDS = 2
SIGN_IN_ATTEMPTS = 5
_EDGE = os.environ.get("LUCID_FUZZ_EDGE")
_KEY = os.environ.get("LUCID_FUZZ_KEY")
_DEGRADED_LOG = os.environ.get("LUCID_FUZZ_DEGRADED")
_UNAVAILABLE = "https://lucid.dev/problems/service-unavailable"

if _EDGE and _KEY:
    # retry_on=[]: a 401 here is often the answer to a token in the body (POST /auth/verify),
    # not to the caller's, and must not make the run sign in again and replay.
    @schemathesis.auth(refresh_interval=RENEW_SECONDS, retry_on=[])
    class SignedIn:
        """The wallet's access token, renewed every RENEW_SECONDS."""

        def get(self, case: Any, context: Any) -> str:
            # Like any client, retry a sign-in the gateway answered 503 (Redis too slow under
            # the run's load, which the 50 ms Redis timeout turns into "unavailable").
            with httpx.Client(base_url=str(_EDGE), timeout=10) as client:
                for attempt in range(1, SIGN_IN_ATTEMPTS + 1):
                    try:
                        return sign_in(client, Wallet(str(_KEY)))
                    except AssertionError:
                        if attempt == SIGN_IN_ATTEMPTS:
                            raise
                        time.sleep(0.2 * attempt)
            raise AssertionError("unreachable")

        def set(self, case: Any, data: str, context: Any) -> None:
            case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


def _degraded(response: Any) -> str | None:
    """The problem's detail when `response` is a function's 503 problem (a dependency that did
    not answer in time); None for anything else."""
    content_type = (response.headers.get("content-type") or [""])[0]
    if response.status_code != 503 or not content_type.startswith("application/problem+json"):
        return None
    try:
        problem = json.loads(response.content)
    except ValueError:
        return None
    return str(problem.get("detail")) if problem.get("type") == _UNAVAILABLE else None


@schemathesis.hook
def filter_failure(context: Any, failure: Any, case: Any, response: Any) -> bool:
    """Every failure but a dependency's timeout under load (see the module's docstring)."""
    detail = _degraded(response) if isinstance(failure, ServerError) else None
    if detail is None:
        return True
    if _DEGRADED_LOG:
        with open(_DEGRADED_LOG, "a", encoding="utf-8") as log:
            log.write(json.dumps({"operation": case.operation.label, "detail": detail}) + "\n")
    return False

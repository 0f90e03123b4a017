"""Run in a fresh interpreter by tests/infra/test_observability_contract.py, with only the
environment the template gives a function: invoke the real meta handler (GET /health, through
Mangum) and then, through `lucid.observability.instrument`, invocations that count each event
named on the command line, as the functions' code does. What they print (the EMF lines among
the log lines) goes to stdout, as it would go to CloudWatch Logs.

    python -m tests.infra.emf_probe CircuitRejected RateLimitFallback
"""

from __future__ import annotations

import sys
from typing import Any

from lucid.observability import count, instrument
from tests.utils.events import http_event, lambda_context
from tests.utils.functions import load_handler

# The name CloudFormation gives a function of a stack: <stack>-<logical id>-<suffix>.
FUNCTION_NAME = "lucid-api-gateway-prod-ProxyFunction-Q2xYz7AbC1"


def main() -> None:
    context = lambda_context(FUNCTION_NAME)
    load_handler("meta")(http_event("GET", "/health"), context)
    for name in sys.argv[1:]:

        @instrument
        def counting(event: dict[str, Any], context: Any, name: str = name) -> None:
            count(name)

        counting(http_event("GET", "/chain/info"), context)


if __name__ == "__main__":
    main()

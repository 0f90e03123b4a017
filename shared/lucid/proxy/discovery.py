"""Where each backend is: the serverless form of service discovery.

With BACKEND_PARAMETER_PATH set (e.g. `/lucid/dev/backends`), the SSM parameters under it name
the backends' base URLs, one per backend name:

    /lucid/dev/backends/blockchain   http://chain.internal:8084
    /lucid/dev/backends/session      http://sessions.internal:8085
    /lucid/dev/backends/node         http://nodes.internal:8086

read together with one GetParametersByPath through Powertools Parameters and cached for
BACKEND_DISCOVERY_MAX_AGE_SECONDS: moving a backend is `aws ssm put-parameter --overwrite
--cli-input-json '{"Name": ..., "Value": "https://..."}'` (a URL given as `--value` is fetched by
AWS CLI v1, which stores the page: README "Build and deploy"), seen by every warm function
within that time, with no redeploy. A name the path does not hold falls
back to its *_SERVICE_URL setting. When SSM cannot be read the last URLs read stay in use (a
backend that answered a minute ago most likely still does), and the failure is logged once per
refresh; with nothing read yet the settings serve, and a backend with no URL at all answers
503 naming both places.

Without BACKEND_PARAMETER_PATH nothing here touches AWS (nor imports boto3).
"""

from __future__ import annotations

import logging
import time

from lucid.config import Settings
from lucid.errors import ServiceUnavailableError
from lucid.proxy.routing import Backend, Url, parse_url

logger = logging.getLogger("lucid.proxy.discovery")


class BackendDirectory:
    """The base URL of each backend: SSM parameters under a path, then the settings."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._path = (settings.BACKEND_PARAMETER_PATH or "").rstrip("/")
        self._max_age = settings.BACKEND_DISCOVERY_MAX_AGE_SECONDS
        self._known: dict[str, str] = {}
        self._retry_at = 0.0

    def base_url(self, backend: Backend) -> Url:
        """The backend's base URL; 503 naming where to set it when nothing names one."""
        discovered = self._discovered().get(backend.name)
        if discovered:
            return parse_url(discovered)
        try:
            return backend.base_url(self._settings)
        except ServiceUnavailableError as error:
            if not self._path:
                raise
            raise ServiceUnavailableError(
                f"the {backend.name} backend is not configured: set "
                f"{self._path}/{backend.name} or {backend.setting}",
                extensions=error.extensions,
            ) from None

    def _discovered(self) -> dict[str, str]:
        if not self._path or time.monotonic() < self._retry_at:
            return self._known
        # Imported here: it imports boto3, which a function without a path never needs.
        from aws_lambda_powertools.utilities import parameters

        try:
            # Powertools' cache: one GetParametersByPath per max_age, a dict lookup otherwise.
            values = parameters.get_parameters(
                self._path, max_age=self._max_age, recursive=False, decrypt=True
            )
        except parameters.GetParameterError as error:
            # A failure is not cached by Powertools: wait max_age before asking SSM again.
            self._retry_at = time.monotonic() + self._max_age
            kept = "keeping the last URLs read" if self._known else "using *_SERVICE_URL"
            # AWS's message names the role and the path; it holds no URL.
            logger.error(
                "backend URLs under %s could not be read (the role needs "
                "ssm:GetParametersByPath on that path): %s; %s",
                self._path,
                error,
                kept,
            )
            return self._known
        self._known = {name: str(url) for name, url in values.items() if url}
        return self._known

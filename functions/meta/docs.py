"""GET /meta/openapi.json, /meta/docs and /meta/docs/{asset}: the gateway's API, described.

- openapi.json beside this module is the gateway's one OpenAPI document, generated from the
  template and the functions' apps by `lucid openapi --write` (a test keeps it in step): the
  deployed function has no template to read.
- Swagger UI's files come from the `swagger-ui-bundle-v2` wheel (requirements.txt: `sam build`
  installs it into this function, make into the virtualenv), served by the gateway itself, so
  the page needs no CDN and works offline. The page and its script are in static/.

Nothing is read at import: a cold start that answers /health reads no file it does not need.
Every URL the page uses is relative, so it works at the API's root, under a named stage
(/dev/meta/docs) and behind a custom domain's base path.
"""

# No `from __future__ import annotations` here: FastAPI reads these signatures when it builds
# the routes, and would compile each string annotation anew for every route using it
# (README, "Cold start of the built artifact").

import functools
import gzip
from pathlib import Path
from typing import Annotated, Any

from fastapi import Header, Response
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ConfigDict

from lucid.errors import NotFoundError
from lucid.web.app import FunctionRouter
from lucid.web.openapi import header, problems

HERE = Path(__file__).parent
DOCUMENT = HERE / "openapi.json"
PAGE = HERE / "static" / "index.html"
# What the page loads: name -> (content type, whose file). Nothing else is served.
ASSETS = {
    "swagger-ui.css": ("text/css; charset=utf-8", "swagger-ui"),
    "swagger-ui-bundle.js": ("text/javascript; charset=utf-8", "swagger-ui"),
    "favicon-32x32.png": ("image/png", "swagger-ui"),
    "init.js": ("text/javascript; charset=utf-8", "ours"),
}
# The files change only with a new deployment; an hour keeps a reload cheap without pinning.
CACHE_CONTROL = "public, max-age=3600"
# The page runs only its own files and talks only to its own origin: an injected script or a
# framing page cannot read the bearer token a reader pastes into "Authorize". Swagger UI's icons
# are data: SVG images; it needs no inline script or style (tests/e2e/test_docs_browser.py fails
# on any violation Chromium reports).
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data:; connect-src 'self'; font-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)

router = FunctionRouter(rate_limited=False)


@functools.cache
def _document() -> bytes:
    return DOCUMENT.read_bytes()


def swagger_ui_folder() -> Path:
    """Where the installed Swagger UI keeps its files."""
    # Imported here, not at the top: only a request for an asset pays for it.
    import swagger_ui_bundle

    return Path(swagger_ui_bundle.swagger_ui_path)


@functools.cache
def _asset(name: str, compressed: bool) -> bytes:
    _, owner = ASSETS[name]
    folder = PAGE.parent if owner == "ours" else swagger_ui_folder()
    data = (folder / name).read_bytes()
    return gzip.compress(data, mtime=0) if compressed else data


def _accepts_gzip(accept_encoding: str | None) -> bool:
    for coding in (accept_encoding or "").split(","):
        name, _, parameters = coding.strip().partition(";")
        if name.strip().lower() in ("gzip", "*"):
            return parameters.replace(" ", "").lower() not in ("q=0", "q=0.0", "q=0.00", "q=0.000")
    return False


class OpenApiDocument(BaseModel):
    """An OpenAPI 3.1 document (https://spec.openapis.org/oas/v3.1.0)."""

    model_config = ConfigDict(extra="allow")

    openapi: str
    info: dict[str, Any]
    paths: dict[str, Any]


@router.get(
    "/meta/openapi.json",
    response_class=Response,
    responses={
        200: {
            "model": OpenApiDocument,
            "description": "The gateway's OpenAPI document: the one this reference shows",
        }
    },
)
async def openapi_document() -> Response:
    """The gateway's OpenAPI document: every route the template serves."""
    return Response(_document(), media_type="application/json")


@router.get("/meta/docs", response_class=HTMLResponse)
async def docs() -> HTMLResponse:
    """The API reference: Swagger UI on the gateway's document, served by the gateway."""
    return HTMLResponse(
        PAGE.read_bytes(),
        headers={
            "Cache-Control": CACHE_CONTROL,
            "Content-Security-Policy": CONTENT_SECURITY_POLICY,
            "Referrer-Policy": "no-referrer",
        },
    )


@router.get(
    "/meta/docs/{asset}",
    response_class=Response,
    responses={
        200: {
            "description": "The file",
            "content": {
                media: {} for media in sorted({kind.split(";")[0] for kind, _ in ASSETS.values()})
            },
            "headers": {
                "Cache-Control": header(CACHE_CONTROL, required=True),
                "Content-Encoding": header("`gzip` when the request accepts it"),
            },
        },
        **problems(404, descriptions={404: "No such file"}),
    },
)
async def docs_asset(
    asset: str,
    accept_encoding: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Response:
    """A file of the API reference page (its style sheet, scripts and icon)."""
    if asset not in ASSETS:
        raise NotFoundError(f"no file {asset!r} in the API reference")
    compressed = _accepts_gzip(accept_encoding)
    headers = {"Cache-Control": CACHE_CONTROL, "Vary": "Accept-Encoding"}
    if compressed:
        headers["Content-Encoding"] = "gzip"
    return Response(_asset(asset, compressed), media_type=ASSETS[asset][0], headers=headers)

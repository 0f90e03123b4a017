"""uvicorn's HTTP protocol (httptools), with a Date on the answers uvicorn writes itself.

The edge turns uvicorn's `date_header` off: uvicorn would put its Date beside the one a function's
result carries, and the edge adds one only to a response without it (`lucid_edge.responses`,
note (9)). uvicorn still answers a request it cannot parse itself (400 "Invalid HTTP request
received.", before the app sees anything), from its default headers alone; RFC 9110 section
6.6.1 has an origin server with a clock send Date in every 4xx, so that answer gets the edge's.
"""

from __future__ import annotations

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from lucid_edge.responses import http_date


class EdgeHttpProtocol(HttpToolsProtocol):
    """httptools' protocol whose own 400 carries a Date (uvicorn's `date_header` being off)."""

    def send_400_response(self, msg: str) -> None:
        state = self.server_state
        defaults = state.default_headers
        # Synchronous, on the event loop's one thread: no other connection writes meanwhile.
        state.default_headers = [*defaults, (b"date", http_date())]
        try:
            super().send_400_response(msg)
        finally:
            state.default_headers = defaults

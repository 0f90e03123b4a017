"""A function's cold start without garbage collections of what it imports.

Each function's `app.py` imports and builds everything inside `with cold_start():`. Importing
FastAPI, pydantic, the drivers and our modules leaves 80,000-120,000 objects that live as long
as the function's instance, and CPython's cyclic collector walks them again and again while
they are being created (each collection of the oldest generation walks every object): 34-38 ms
of the CPU of a built FastAPI function's cold start, more than a tenth of it (the authorizer's
8-10 ms), to find ~660 objects (0.35 MB) of cyclic garbage (`make bench coldstart`; README,
"Cold start of the built artifact"). So the collector is off during the block, and at its end
everything alive is moved to the permanent generation (`gc.freeze()`), which no later
collection walks; the collector is then on again for what requests create. This is the pattern
the Python documentation gives for `gc.freeze()` (off early, frozen once the long-lived objects
exist), and the one the local edge's workers use (`lucid_edge.server`). The price: that
import-time garbage, 0.35 MB, is never freed. A full collection before freezing would free it
for 24 ms of CPU, most of the saving, so none is made.

Standard library only: it runs before anything else is imported.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def cold_start() -> Iterator[None]:
    """Import and build a function's code with the cyclic collector off, then freeze it.

    The collector is restored to the state it was in (on, unless someone turned it off), also
    when the block raises: an instance whose start failed is discarded by Lambda anyway. Off
    the main thread the block runs as it is, collector and freeze untouched.
    """
    if threading.current_thread() is not threading.main_thread():
        # A re-import beside threads that serve (the local edge's `--reload`): turning the
        # collector off would stop it for them, and freezing would keep the code being
        # replaced, and their garbage, forever. Lambda imports on the main thread.
        yield
        return
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()

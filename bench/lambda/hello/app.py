"""Hello world: the smallest FastAPI + Mangum function, the cold-start benchmark's baseline.

Built by the same rule as our functions (infra/Makefile `build-%Function`), with FastAPI and
Mangum in its own task root instead of a layer.
"""

from fastapi import FastAPI
from mangum import Mangum

app = FastAPI()


@app.get("/health")
async def health() -> dict[str, str]:
    """Liveness."""
    return {"status": "ok"}


handler = Mangum(app, lifespan="off")

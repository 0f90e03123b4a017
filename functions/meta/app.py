"""Meta function: liveness, service info and dependency health. Wiring only."""

from routes import router

from lucid.web.app import create_app, lambda_handler

app = create_app("meta", router, rate_limited=False)
handler = lambda_handler(app)

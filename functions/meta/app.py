"""Meta function: liveness, service info, dependency health and the API reference. Wiring only."""

from lucid.coldstart import cold_start

with cold_start():  # the collector off while importing, then the imports frozen (lucid.coldstart)
    from docs import router as docs_router
    from routes import router

    from lucid.web.app import create_app, lambda_handler

    app = create_app("meta", router, docs_router, rate_limited=False)
    handler = lambda_handler(app)

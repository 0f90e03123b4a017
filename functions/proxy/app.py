"""Proxy function: /chain, /manifests, /trust and /nodes forwarded to the backends. Wiring only."""

from lucid.coldstart import cold_start

with cold_start():  # the collector off while importing, then the imports frozen (lucid.coldstart)
    from routes import router

    from lucid.web.app import create_app, lambda_handler

    app = create_app("proxy", router)
    handler = lambda_handler(app)

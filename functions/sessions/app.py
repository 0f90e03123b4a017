"""Sessions function: create, read, list, update and end sessions. Wiring only."""

from lucid.coldstart import cold_start

with cold_start():  # the collector off while importing, then the imports frozen (lucid.coldstart)
    from routes import router

    from lucid.web.app import create_app, lambda_handler

    app = create_app("sessions", router)
    handler = lambda_handler(app)

"""Sessions function: create, read, list, update and end sessions. Wiring only."""

from routes import router

from lucid.web.app import create_app, lambda_handler

app = create_app("sessions", router)
handler = lambda_handler(app)

"""Users function: the caller's profile and user administration. Wiring only."""

from routes import router

from lucid.web.app import create_app, lambda_handler

app = create_app("users", router)
handler = lambda_handler(app)

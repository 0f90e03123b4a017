"""Auth function: TRON wallet sign-in and the JWT lifecycle. Wiring only."""

from routes import router

from lucid.auth.keys import get_key_ring
from lucid.web.app import create_app, lambda_handler

# Cold start: refuse to start with unusable keys (short HS key from AWS, bad PEM, ...).
get_key_ring().keys()

app = create_app("auth", router)
handler = lambda_handler(app)

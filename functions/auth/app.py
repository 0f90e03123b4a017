"""Auth function: TRON wallet sign-in and the JWT lifecycle. Wiring only."""

from lucid.coldstart import cold_start

with cold_start():  # the collector off while importing, then the imports frozen (lucid.coldstart)
    from routes import router

    from lucid.auth.keys import check_keys_at_cold_start
    from lucid.auth.signin import check_admin_addresses
    from lucid.config import get_settings
    from lucid.web.app import create_app, lambda_handler

    # Cold start: refuse to start with unusable keys (short HS key from AWS, bad PEM, ...) or
    # an ADMIN_ADDRESSES entry that can match no sign-in.
    check_keys_at_cold_start()
    check_admin_addresses(get_settings())

    app = create_app("auth", router)
    handler = lambda_handler(app)

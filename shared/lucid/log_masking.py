"""Tokens and secrets masked in the lines we do not write ourselves: a library's, and exceptions'.

Our own lines never carry a token or a secret; the text of an exception and a library's line
are written by others. A library's exception can quote what it was given: urllib.parse's
ValueError quotes a port that is not a number ("Port could not be cast to integer value as
'…'"), which is the password of a URI that lost its "@"; an exception escaping the authorizer
is logged with its traceback (`lucid.observability`, "invocation failed"), and the authorizer's
input is a bearer token. So each record that carries an exception, and each line of a logger
outside `lucid.*` and the service's own, is written with every JWT-shaped string and every
secret value this process was configured with or has read from AWS since (the JWT keys, the
password of REDIS_URI and MONGODB_URI) replaced by MASK. The traceback is kept: an exception
whose text holds one is replaced, for the log only, by a `MaskedError` with the same traceback
and the masked text.

Pydantic's validation errors echo inputs of every kind, not only tokens: `lucid.web.redaction`
removes those in the FastAPI functions (the authorizer imports no pydantic).
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterable
from urllib.parse import unquote

__all__ = [
    "MASK",
    "MaskSecrets",
    "MaskedError",
    "masked_exception",
    "remember",
    "rewritten_chain",
    "secret_values",
    "shown_cause",
]

MASK = "<redacted>"
# A JWT (header.payload.signature, base64url; its header always starts `{"`, which is `eyJ`).
JWT = re.compile(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
# Shorter values are not masked: a 3-character password would mask that text in every line.
MIN_SECRET_LENGTH = 4
_SECRET_SETTINGS = ("JWT_SECRET_KEY", "JWT_PREVIOUS_SECRET_KEY", "JWT_PRIVATE_KEY")
_URI_SETTINGS = ("REDIS_URI", "MONGODB_URI")


class MaskedError(Exception):
    """Stands for an exception in a logged traceback; its message is the original's, masked."""


def _password(uri: str) -> str | None:
    # By hand, not urlsplit: a URI its driver refuses is the one most likely to be quoted.
    _, _, rest = uri.partition("://")
    userinfo, at, _ = rest.rpartition("@")
    if not at:
        return None
    _, colon, password = userinfo.partition(":")
    return password if colon else None


def _texts(setting: str, value: str) -> set[str]:
    # How the value of `setting` could appear in a text: a JWT key whole; a store URI's password
    # as written and percent-decoded (the rest of a URI is no secret); nothing for another one.
    if setting in _URI_SETTINGS:
        password = _password(value)
        return {password, unquote(password)} if password else set()
    return {value} if setting in _SECRET_SETTINGS else set()


def _longest_first(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted((v for v in values if len(v) >= MIN_SECRET_LENGTH), key=len, reverse=True))


def secret_values(settings: object) -> list[str]:
    """The secret values `settings` holds, as they could appear in a text: each JWT key, and the
    password of each store URI (as written and percent-decoded)."""
    values: set[str] = set()
    for name in (*_SECRET_SETTINGS, *_URI_SETTINGS):
        secret = getattr(settings, name, None)
        if secret is not None:
            values |= _texts(name, secret.get_secret_value())
    return list(_longest_first(values))


# Values read from AWS after the process started (a deployed function's JWT key and store URIs
# come from Secrets Manager or SSM, never its environment): `lucid.secret_store` tells them here.
_read: set[str] = set()
_read_lock = threading.Lock()
_read_values: tuple[str, ...] = ()


def remember(setting: str, value: str | bytes | None) -> None:
    """Mask, from now on, the secret texts of `value`, the value of `setting` read from AWS."""
    global _read_values  # replaced whole: `mask` reads it without the lock
    if not isinstance(value, str):
        return  # a binary secret is never one of ours (lucid.secret_store.read_text refuses it)
    texts = _texts(setting, value)
    if texts <= _read:
        return
    with _read_lock:
        _read.update(texts)
        _read_values = _longest_first(_read)


def shown_cause(error: BaseException) -> BaseException | None:
    """The exception a traceback prints before `error` (`raise ... from None` shows none)."""
    if error.__cause__ is not None:
        return error.__cause__
    return None if error.__suppress_context__ else error.__context__


class MaskSecrets(logging.Filter):
    """Masks JWTs and `secrets` in library lines and in any record's exception (see module)."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets = tuple(secrets)

    def mask(self, text: str) -> str:
        """`text` with each JWT and secret (given, or `remember`ed since) replaced by MASK."""
        for secret in (*self.secrets, *_read_values):
            if secret in text:
                text = text.replace(secret, MASK)
        return JWT.sub(MASK, text)

    def filter(self, record: logging.LogRecord) -> bool:
        exc_info = record.exc_info
        if not exc_info and not _library(record.name):
            return True  # our own line without an exception: nothing written by others
        try:
            message: str | None = record.getMessage()
        except Exception:  # a library's malformed call: logging's handler reports
            message = None  # it (Handler.handleError); raised here, it would reach the caller
        if message is not None:
            shown = self.mask(message)
            if shown != message:
                record.msg, record.args = shown, None
        if exc_info and exc_info[1] is not None:
            error = masked_exception(exc_info[1], self.mask)
            if error is not exc_info[1]:
                record.exc_info = (type(error), error, error.__traceback__)
                record.exc_text = None
        return True


def _library(name: str) -> bool:
    # `lucid.*` are the layer's loggers; the service's Powertools logger is named after it
    # (SERVICE_NAME, "lucid-api-gateway" by default) and is ours too.
    return not (name == "lucid" or name.startswith(("lucid.", "lucid-")))


def rewritten_chain(
    error: BaseException,
    text_for: Callable[[BaseException], str | None],
    stand_in: type[Exception],
    _seen: frozenset[int] = frozenset(),
) -> BaseException:
    """`error` as a log may show it: each link of its chain for which `text_for` gives a text, or
    whose cause was replaced, replaced in turn by a `stand_in` with that text (else the link's
    own) and the same traceback; `error` itself when no link needs it. The originals stay as they
    were for whoever else holds them. Shared by this module and `lucid.web.redaction`."""
    cause = shown_cause(error)
    if cause is not None and id(cause) in _seen | {id(error)}:
        cause = None  # a cycle in the chain: shown once, as traceback does
    shown = rewritten_chain(cause, text_for, stand_in, _seen | {id(error)}) if cause else None
    text = text_for(error)
    if text is None and shown is cause:
        return error
    link: BaseException = stand_in(text or f"{type(error).__qualname__}: {error}")
    link.__traceback__ = error.__traceback__
    link.__cause__ = shown
    link.__suppress_context__ = True
    return link


def masked_exception(error: BaseException, mask: Callable[[str], str]) -> BaseException:
    """`error` as a log may show it: each link of its chain whose text `mask` changes replaced by
    a `MaskedError` with the same traceback; `error` itself when no link needs it."""

    def masked(link: BaseException) -> str | None:
        text = str(link)
        shown = mask(text)
        return None if shown == text else f"{type(link).__qualname__}: {shown}"

    return rewritten_chain(error, masked, MaskedError)

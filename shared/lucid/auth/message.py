"""The sign-in message: EIP-4361 ("Sign-In with Ethereum") adapted to TRON, built and parsed.

    {domain} wants you to sign in with your TRON account:
    {address}

    {statement}

    URI: {uri}
    Version: 1
    Chain ID: {chain_id}
    Nonce: {nonce}
    Issued At: {issued_at}
    Expiration Time: {expiration_time}

`domain` is the authority (host[:port]) of AUTH_SERVICE_URL, `uri` is AUTH_SERVICE_URL itself,
times are ISO 8601 UTC with a `Z`. Parsing is a full match of that exact layout: the wallet signs
these bytes, so anything else is not one of our messages.
"""

# No `from __future__ import annotations` here: typing.NamedTuple compiles each string
# annotation of its fields into a ForwardRef at import (README, "Cold start of the built
# artifact").

import re
from datetime import UTC, datetime
from typing import NamedTuple
from urllib.parse import urlsplit

from lucid.errors import ForeignMessageError, MalformedMessageError

STATEMENT = (
    "Sign in to Lucid with this TRON account. "
    "This request will not trigger a blockchain transaction or cost any fees."
)
VERSION = "1"
MAX_MESSAGE_LENGTH = 2048

_LAYOUT = re.compile(
    r"(?P<domain>[^\s/]+) wants you to sign in with your TRON account:\n"
    r"(?P<address>[1-9A-HJ-NP-Za-km-z]{25,64})\n"
    r"\n"
    r"(?P<statement>[^\n]+)\n"
    r"\n"
    r"URI: (?P<uri>\S+)\n"
    r"Version: (?P<version>\S+)\n"
    r"Chain ID: (?P<chain_id>\S+)\n"
    r"Nonce: (?P<nonce>[0-9A-Za-z]{8,64})\n"
    r"Issued At: (?P<issued_at>\S+)\n"
    r"Expiration Time: (?P<expiration_time>\S+)"
)


class SignInMessage(NamedTuple):
    """The fields of one sign-in message."""

    domain: str
    address: str
    statement: str
    uri: str
    version: str
    chain_id: str
    nonce: str
    issued_at: str
    expiration_time: str

    def text(self) -> str:
        """The exact text a wallet signs."""
        return (
            f"{self.domain} wants you to sign in with your TRON account:\n"
            f"{self.address}\n\n{self.statement}\n\n"
            f"URI: {self.uri}\nVersion: {self.version}\nChain ID: {self.chain_id}\n"
            f"Nonce: {self.nonce}\nIssued At: {self.issued_at}\n"
            f"Expiration Time: {self.expiration_time}"
        )

    def expires(self) -> datetime:
        """The expiration time as an aware datetime."""
        return _parse_time(self.expiration_time)


def iso_utc(moment: datetime) -> str:
    """`moment` as ISO 8601 UTC to the second with a `Z` suffix."""
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def domain_of(service_url: str) -> str:
    """The message domain for AUTH_SERVICE_URL: its authority (host, and port if any)."""
    return urlsplit(service_url).netloc


def build_message(
    *,
    service_url: str,
    chain_id: str,
    address: str,
    nonce: str,
    issued_at: datetime,
    expires_at: datetime,
) -> SignInMessage:
    """The message we issue for `address` with `nonce`, valid from issued_at to expires_at."""
    return SignInMessage(
        domain=domain_of(service_url),
        address=address,
        statement=STATEMENT,
        uri=service_url,
        version=VERSION,
        chain_id=chain_id,
        nonce=nonce,
        issued_at=iso_utc(issued_at),
        expiration_time=iso_utc(expires_at),
    )


def parse_message(text: str) -> SignInMessage:
    """The fields of `text`; `MalformedMessageError` if it is not laid out as we issue them."""
    match = _LAYOUT.fullmatch(text)
    if match is None:
        raise MalformedMessageError("the message is not a TRON sign-in message")
    message = SignInMessage(**match.groupdict())
    if message.version != VERSION:
        raise MalformedMessageError(f"the message version must be {VERSION}")
    _parse_time(message.issued_at)
    _parse_time(message.expiration_time)
    return message


def check_ours(message: SignInMessage, *, service_url: str, chain_id: str) -> None:
    """`ForeignMessageError` unless domain, URI, chain and statement are this service's."""
    if message.domain != domain_of(service_url):
        raise ForeignMessageError("the message is for another domain")
    if message.uri != service_url:
        raise ForeignMessageError("the message is for another URI")
    if message.chain_id != chain_id:
        raise ForeignMessageError("the message is for another chain")
    if message.statement != STATEMENT:
        raise ForeignMessageError("the message statement is not ours")


def _parse_time(value: str) -> datetime:
    if not value.endswith("Z"):
        raise MalformedMessageError("message times must be ISO 8601 UTC ending in Z")
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise MalformedMessageError("message times must be ISO 8601 UTC ending in Z") from None

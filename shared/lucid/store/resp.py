"""The layer's Redis client: connections, a blocking pool and the commands the gateway sends.

Why our own: redis-py 8's `import redis` alone costs 50-60 ms of a cold start's CPU (its package
`__init__` imports the asyncio client, cluster, sentinel, keyspace notifications, observability,
...: 61 modules), about 0.14x of a hello-world function, and issue 9 asks each function to start
within 1.3x of one. The gateway sends a dozen commands, so only connection handling is ours: the
wire protocol (RESP2) is parsed by `hiredis.Reader` and requests are packed by
`hiredis.pack_command`, Redis's own C parser (hiredis-py 3.x) that redis-py uses too when it is
installed.

What it keeps of redis-py's behaviour as the layer configured it (redis 8.1, connection.py and
client.py), so that every caller degrades where it did:
- URIs: `redis://[[user]:password@]host[:port][/db]`, `rediss://` (TLS, the server's certificate
  verified against the system's CAs or `ssl_ca_certs`, its host name checked) and `unix://path`;
  query parameters `db`, `client_name`, `ssl_ca_certs`, `ssl_cert_reqs` (none, optional,
  required) and `ssl_check_hostname`. Anything else is refused with a ValueError, as redis-py
  refuses a scheme it does not know or a port that is not a number (`lucid.store.unusable`).
- AUTH with the user and password of the URI (or the password alone, or the user with an empty
  password; `parse_url` unquotes both), CLIENT SETNAME, then SELECT of a database other than 0,
  on every new connection (`AbstractConnection.on_connect_check_health`), RESP2 only.
- The TCP connect and the TLS handshake are bounded by the connect timeout, every later socket
  wait by the command timeout (`socket.settimeout`): a timeout is `TimeoutError`.
- The exception tree: `RedisError` > `ConnectionError` (refused, reset, closed, no connection
  free in the pool within its wait) > `AuthenticationError` (WRONGPASS, NOAUTH); `TimeoutError`;
  `ResponseError` (an error reply) > `NoScriptError`, `NoPermissionError` (NOPERM). An error
  reply maps as redis-py's `_parsers/base.py` EXCEPTION_CLASSES does for the classes that change
  a caller's path (LOADING and "max number of clients reached" are connection errors there, so
  retried).
- A command whose connection fails is sent once more at once on a fresh dial (the layer's
  `Retry(NoBackoff(), 1, supported_errors=(ConnectionError,))`); a timeout is not retried. Any
  failure other than an error reply closes the connection, so a half-read reply is never taken
  for the next command's.
- A refusal of the URI's credentials (WRONGPASS, NOAUTH, NOPERM: `refused_credentials`) is
  also logged, once per client and cause, at ERROR on the `lucid.store` logger,
  saying what to check in REDIS_URI or the user's ACL (never the server's words: Redis 7's
  NOPERM names the user); callers then degrade as for a Redis that is down. A NOPERM of INFO,
  which costs only the detection of a restored Redis, is a WARNING saying so (`_DISPENSABLE`),
  and so is INFO unknown (renamed in the server's configuration).
- The pool blocks (queues) a caller for at most its wait when every connection is in use
  (`BlockingConnectionPool`), then raises ConnectionError("No connection available.").
"""

# No `from __future__ import annotations` here: typing.NamedTuple compiles each string
# annotation of its fields into a ForwardRef at import (README, "Cold start of the built
# artifact").

import builtins
import contextlib
import functools
import hashlib
import logging
import queue
import re
import socket
import ssl
import threading
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, Self, TypeVar
from urllib.parse import parse_qs, unquote, urlsplit

import hiredis

_T = TypeVar("_T")
logger = logging.getLogger("lucid.store")


class RedisError(Exception):
    """Any failure of a Redis command (the class callers catch to degrade)."""


class ConnectionError(RedisError):  # redis-py's name, on purpose
    """No usable connection: refused, reset, closed, or none free in the pool in time."""


class AuthenticationError(ConnectionError):
    """The server refused the URI's user or password."""


class TimeoutError(RedisError):  # redis-py's name, on purpose
    """A socket wait outlived its bound (connect, or a command's)."""


class ResponseError(RedisError):
    """Redis answered the command with an error reply; the connection is still in step."""


class NoScriptError(ResponseError):
    """EVALSHA of a script the server does not have (restarted, SCRIPT FLUSH)."""


class NoPermissionError(ResponseError):
    """NOPERM: an ACL rule forbids the URI's user the command, or a key or channel it names."""


class InvalidResponseError(RedisError):
    """Bytes that are not RESP came back (something that is not Redis answered)."""


# Error replies that say the connection, not the command, failed (redis-py 8.1,
# _parsers/base.py EXCEPTION_CLASSES): retried, as redis-py retries them.
_CONNECTION_REPLIES: tuple[tuple[str, type[RedisError]], ...] = (
    ("WRONGPASS", AuthenticationError),
    ("NOAUTH", AuthenticationError),
    ("ERR invalid password", AuthenticationError),
    ("ERR Client sent AUTH, but no password is set", AuthenticationError),
    ("ERR AUTH <password> called without any password configured", AuthenticationError),
    ("LOADING", ConnectionError),
    ("ERR max number of clients reached", ConnectionError),
)
# AUTH with a user name sent to a Redis older than 6 (redis-py then sends the password alone).
_AUTH_ARGUMENTS = "ERR wrong number of arguments for 'auth' command"
_NOT_ENOUGH_DATA = object()
_CERT_REQS = {"none": ssl.CERT_NONE, "optional": ssl.CERT_OPTIONAL, "required": ssl.CERT_REQUIRED}
# The query parameters named otherwise in `Address`.
_OPTION_NAMES = {
    "ssl_ca_certs": "ca_certs",
    "ssl_cert_reqs": "cert_reqs",
    "ssl_check_hostname": "check_hostname",
}
_TRUE = ("1", "true", "yes", "y", "on")
_FALSE = ("0", "false", "no", "n", "off")
_CHECK_URI = "check the user name and password in REDIS_URI (percent-escaped)"
# Error replies refusing the URI's credentials: (the reply's start, the cause logged, what to
# check). Redis 6+ answers a wrong password, an unknown or disabled user WRONGPASS; Redis 5
# "ERR invalid password"; AUTH to a server with no password is refused with the last two.
_REFUSALS: tuple[tuple[str, str, str], ...] = (
    ("WRONGPASS", "WRONGPASS", f"{_CHECK_URI}, and that the user is enabled (ACL LIST)"),
    ("ERR invalid password", "WRONGPASS", _CHECK_URI),
    ("NOAUTH", "NOAUTH", "the server asks for a password: put it (and the user) in REDIS_URI"),
    (
        "ERR Client sent AUTH, but no password is set",
        "NOPASS",
        "the server has no password set: remove the password from REDIS_URI",
    ),
    (
        "ERR AUTH <password> called without any password configured",
        "NOPASS",
        "the server has no password set: remove the password from REDIS_URI",
    ),
    (
        "NOPERM",
        "NOPERM",
        "check the ACL rules of REDIS_URI's user (ACL GETUSER): it needs every command the "
        "gateway sends, on every key",
    ),
)
# What NOPERM refused: Redis 6.2 "...to run the 'get' command or its subcommand", Redis 7
# "NOPERM User <name> has no permissions to run the 'get' command" (acl.c, getAclErrorMessage);
# a key or channel otherwise.
_REFUSED_COMMAND = re.compile(r"run the '([A-Za-z0-9_|:-]+)' command")
# Refusals that cost one feature, not requests: a WARNING saying what is lost, not the ERROR of
# credentials refused. INFO is asked only for the server's run_id
# (`lucid.store.kept_connection.server_run_id`); without it every server process looks alike
# (README, "What this does not cover"). The 30 s is lucid.auth.revocation.SYNC_SECONDS (the
# test of this line checks it; this module imports nothing of the layer above it).
_WITHOUT_INFO = (
    "a Redis restart that restores older data (a snapshot, a replica that lagged) cannot be "
    "told from the server that loaded the revocation copy, so revocations the restored copy "
    "lacks may go unseen until its next reload (at most 30 s); nothing else is lost."
)
_DISPENSABLE = {
    "NOPERM INFO": (
        f"Redis refuses INFO to REDIS_URI's user (NOPERM INFO): {_WITHOUT_INFO} Allow it with "
        "ACL SETUSER <user> +info"
    ),
    "unknown INFO": (
        f"Redis does not know INFO (ERR unknown command: renamed in its configuration): "
        f"{_WITHOUT_INFO} Remove the rename-command of INFO from the server's configuration"
    ),
}
# A command renamed away (`rename-command INFO ""`) is unknown: "ERR unknown command `INFO`,
# with args beginning with: ..." from Redis 6.2 (the embedded server's, checked), with single
# quotes from 7.0 (server.c, commandCheckExistence).
_UNKNOWN_INFO = re.compile(r"ERR unknown command [`']INFO[`']", re.IGNORECASE)


def _reply_error(message: str) -> RedisError:
    # hiredis.Reader calls this for each error reply and returns what it makes as the reply, in
    # an array too, without raising it; a protocol error it raises (hiredis-py's README, "Reply
    # parser"; checked with hiredis 3.5.0: `-ERR x` alone and inside `*2`).
    if message.startswith("NOSCRIPT"):
        return NoScriptError(message)
    if message.startswith("NOPERM"):  # redis-py 8.1, _parsers/base.py: NoPermissionError
        return NoPermissionError(message)
    for prefix, error in _CONNECTION_REPLIES:
        if message.startswith(prefix):
            return error(message)
    return ResponseError(message)


def encode(value: object) -> bytes:
    """One argument as Redis gets it: as redis-py's Encoder does (`repr` of numbers)."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, bool):
        raise TypeError("a bool is not a Redis argument; send 1/0 or a string")
    if isinstance(value, (int, float)):
        return repr(value).encode()
    raise TypeError(f"{type(value).__name__} is not a Redis argument")


def pack(args: Sequence[object]) -> bytes:
    """One command in RESP, packed by hiredis."""
    return hiredis.pack_command(tuple(encode(arg) for arg in args))  # type: ignore[arg-type,no-any-return]


class Address(NamedTuple):
    """Where a connection goes and what it says first (from a URI: `parse_uri`).

    A NamedTuple, not a frozen dataclass: on Python 3.11 the dataclass machinery compiles its
    generated methods with `exec` at every cold start, ~1.8 ms of CPU here against ~0.3 ms for
    this (README, "Cold start of the built artifact").
    """

    host: str = "localhost"
    port: int = 6379
    path: str | None = None  # unix://
    db: int = 0
    username: str | None = None
    password: str | None = None
    client_name: str | None = None
    tls: bool = False
    ca_certs: str | None = None
    cert_reqs: ssl.VerifyMode = ssl.CERT_REQUIRED
    check_hostname: bool = True

    def tls_context(self) -> ssl.SSLContext:
        """The TLS settings of every connection to this address (built once: `_tls_context`)."""
        return _tls_context(self)


@functools.cache
def _tls_context(address: Address) -> ssl.SSLContext:
    # Made on the first TLS dial to an address, then shared by every connection to it (a
    # function's process has one): the CA file is read once.
    # As redis-py's SSLConnection._wrap_socket_with_ssl builds it.
    context = ssl.create_default_context()
    context.check_hostname = address.check_hostname and address.cert_reqs != ssl.CERT_NONE
    context.verify_mode = address.cert_reqs
    if address.ca_certs is not None:
        context.load_verify_locations(cafile=address.ca_certs)
    return context


def parse_uri(uri: str) -> Address:
    """The address a `redis://`, `rediss://` or `unix://` URI names; ValueError otherwise."""
    parts = urlsplit(uri)
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise ValueError("a Redis URI starts with redis://, rediss:// or unix://")
    options: dict[str, Any] = {}
    for name, values in parse_qs(parts.query).items():
        options[_OPTION_NAMES.get(name, name)] = _query_option(name, values[0])
    if parts.scheme == "unix":
        if not parts.path:
            raise ValueError("a unix:// Redis URI names the socket's path")
        options["path"] = unquote(parts.path)
    else:
        if parts.hostname:
            options["host"] = unquote(parts.hostname)
        try:
            port = parts.port
        except ValueError:  # urllib's message quotes the port: a URI without "@" makes it
            raise ValueError("the Redis URI's port is not a number up to 65535") from None
        if port:
            options["port"] = port
        if parts.path and "db" not in options:
            # As redis-py's parse_url: a path that is not a number is ignored.
            digits = unquote(parts.path).replace("/", "")
            if digits.isdigit():
                options["db"] = int(digits)
        options["tls"] = parts.scheme == "rediss"
    if parts.username:
        options["username"] = unquote(parts.username)
    if parts.password:
        options["password"] = unquote(parts.password)
    return Address(**options)


def _query_option(name: str, value: str) -> object:
    # The query parameters a gateway URI may carry; the error never quotes the value.
    if name == "db" and value.isdigit():
        return int(value)
    if name == "client_name":
        return value
    if name == "ssl_ca_certs":
        return value
    if name == "ssl_cert_reqs" and value.lower() in _CERT_REQS:
        return _CERT_REQS[value.lower()]
    if name == "ssl_check_hostname" and value.lower() in (*_TRUE, *_FALSE):
        return value.lower() in _TRUE
    raise ValueError(f"the Redis URI's query parameter {name!r} is unknown or not valid")


def refused_credentials(error: BaseException) -> bool:
    """True when Redis refused the URI's credentials: its user or password (WRONGPASS,
    NOAUTH, ...: `AuthenticationError`), or a command or key to its user (NOPERM)."""
    return isinstance(error, AuthenticationError | NoPermissionError)


def refusal_cause(error: BaseException) -> str | None:
    """Which refusal of the credentials `error` is (WRONGPASS, NOAUTH, NOPASS: AUTH to a server
    without a password, NOPERM), or None when it is none."""
    if not refused_credentials(error):
        return None
    refusal = _refusal(str(error))
    return refusal[0].split()[0] if refusal else None


def _refusal(message: str) -> tuple[str, str] | None:
    # (the cause, the ERROR line) of an error reply refusing the credentials, or of INFO
    # unknown (its line is a WARNING: `_DISPENSABLE`); None otherwise.
    if _UNKNOWN_INFO.match(message):
        return "unknown INFO", _DISPENSABLE["unknown INFO"]
    found = next((refusal for refusal in _REFUSALS if message.startswith(refusal[0])), None)
    if found is None:
        return None
    _, cause, check = found
    if cause == "NOPERM":
        if command := _REFUSED_COMMAND.search(message):
            cause = f"NOPERM {command.group(1).upper()}"
        else:
            cause = "NOPERM " + ("channel" if "channel" in message else "key")
    return cause, f"Redis refused the gateway's credentials ({cause}): {check}"


class Connection:
    """One socket to Redis, dialled on first use and again after any failure."""

    def __init__(
        self,
        address: Address,
        timeout: float,
        connect_timeout: float,
        refusals: set[str] | None = None,
    ) -> None:
        self.address = address
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        # The refusals of the credentials already logged, shared by the connections of one
        # pool (one client per process: `lucid.store.redis_client.get_redis`), so that each
        # cause is one ERROR line.
        self._refusals: set[str] = set() if refusals is None else refusals
        # None while not connected; a new object at each dial (kept_connection relies on it).
        self.sock: socket.socket | None = None
        self._reader: hiredis.Reader | None = None

    def __del__(self) -> None:
        # A connection dropped with its pool closes its socket (no ResourceWarning, and Redis
        # drops the client), as redis-py's AbstractConnection.__del__ does.
        if getattr(self, "sock", None) is not None:
            self.disconnect()

    def connect(self) -> None:
        """Dial (TCP, then TLS) within the connect timeout, then AUTH / SETNAME / SELECT."""
        if self.sock is not None:
            return
        address = self.address
        where = address.path or f"{address.host}:{address.port}"
        try:
            sock = self._dial()
        except builtins.TimeoutError:  # socket.timeout
            raise TimeoutError(f"Timeout connecting to {where}") from None
        except OSError as error:
            raise ConnectionError(f"Error {error.errno} connecting to {where}.") from None
        self.sock = sock
        self._reader = hiredis.Reader(
            protocolError=InvalidResponseError,
            replyError=_reply_error,
            notEnoughData=_NOT_ENOUGH_DATA,
        )
        try:
            self._introduce()
        except BaseException:
            self.disconnect()
            raise

    def _dial(self) -> socket.socket:
        address = self.address
        if address.path is not None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.settimeout(self.connect_timeout)
                sock.connect(address.path)
            except BaseException:
                sock.close()
                raise
        else:
            sock = socket.create_connection(
                (address.host, address.port), timeout=self.connect_timeout
            )
        try:
            if address.path is None:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if address.tls:
                # The handshake runs under the connect timeout set above; commands then wait
                # at most the command timeout.
                sock = address.tls_context().wrap_socket(sock, server_hostname=address.host)
            sock.settimeout(self.timeout)
        except BaseException:
            sock.close()
            raise
        return sock

    def _introduce(self) -> None:
        address = self.address
        # As redis-py 8.1 (connection.py, on_connect_check_health; credentials.py,
        # UsernamePasswordCredentialProvider.get_credentials): AUTH when the URI names a user or
        # a password; a user without a password (`redis://user@host`) is `AUTH user ""`, which
        # an ACL user with `nopass` accepts, so the connection is that user, never `default`.
        if address.username or address.password:
            password = address.password or ""
            try:
                self.call(
                    ("AUTH", address.username, password) if address.username else ("AUTH", password)
                )
            except ResponseError as error:
                if not address.username or not str(error).startswith(_AUTH_ARGUMENTS):
                    raise
                self.call(("AUTH", password))
        if address.client_name:
            self.call(("CLIENT", "SETNAME", address.client_name))
        if address.db:
            self.call(("SELECT", address.db))

    def call(self, args: Sequence[object]) -> Any:
        """Send one command and read its reply (dialling first when not connected)."""
        self.send(pack(args))
        return self.read()

    def send(self, data: bytes) -> None:
        """Write packed commands, dialling first when not connected."""
        self.connect()
        assert self.sock is not None  # connect() set it or raised
        try:
            self.sock.sendall(data)
        except BaseException as error:
            raise self._failed(error, "writing to") from None

    def read(self) -> Any:
        """The next reply; an error reply raised as its class (ResponseError, ...)."""
        sock, reader = self.sock, self._reader
        if sock is None or reader is None:
            raise ConnectionError("not connected")
        try:
            reply = reader.gets()
            while reply is _NOT_ENOUGH_DATA:
                data = sock.recv(65536)
                if not data:
                    raise ConnectionError("Connection closed by server.")
                reader.feed(data)
                reply = reader.gets()
        except BaseException as error:
            raise self._failed(error, "reading from") from None
        if isinstance(reply, RedisError):
            if isinstance(reply, ConnectionError):
                self.disconnect()
            if refused_credentials(reply) or _UNKNOWN_INFO.match(str(reply)):
                self._report_refusal(str(reply))
            raise reply
        return reply

    def _report_refusal(self, message: str) -> None:
        refusal = _refusal(message)
        if refusal is None or refusal[0] in self._refusals:
            return
        # A set's add is atomic under the GIL: two threads at once may both log, never none.
        self._refusals.add(refusal[0])
        if (lost := _DISPENSABLE.get(refusal[0])) is not None:
            logger.warning("%s", lost, extra={"store": "redis", "code": refusal[0]})
            return
        logger.error("%s", refusal[1], extra={"store": "redis", "code": refusal[0]})

    def _failed(self, error: BaseException, doing: str) -> BaseException:
        # Any failure mid-command leaves the connection closed (a reply half read must never be
        # taken for the next command's); a socket's error becomes redis-py's class for it.
        self.disconnect()
        if isinstance(error, builtins.TimeoutError):  # socket.timeout
            return TimeoutError(f"Timeout {doing} socket")
        if isinstance(error, OSError):
            return ConnectionError(f"Error {error.errno} {doing} socket.")
        return error

    def disconnect(self) -> None:
        """Close the socket (the next command dials again)."""
        sock, self.sock, self._reader = self.sock, None, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()


def call_with_retry(
    connection: Connection, run: Callable[[Connection, _T], Any], what: _T, again: _T | None = None
) -> Any:
    """`run(connection, what)`, once more on a fresh dial (with `again` when given) when the
    connection failed; a timeout or an error reply is not retried. Any failure but an error
    reply leaves the connection closed: a reply half read must never be taken for the next."""
    try:
        try:
            return run(connection, what)
        except ConnectionError:
            connection.disconnect()
            return run(connection, what if again is None else again)
    except ResponseError:
        raise  # Redis answered (NOSCRIPT, WRONGTYPE, ...): the connection is in step
    except BaseException:
        connection.disconnect()
        raise


def call(connection: Connection, args: Sequence[object]) -> Any:
    """`connection.call(args)`: one command and its reply (for `call_with_retry`)."""
    return connection.call(args)


class ConnectionPool:
    """At most `max_connections` connections; a caller waits up to `timeout` s for a free one."""

    def __init__(
        self,
        address: Address,
        *,
        max_connections: int,
        timeout: float,
        socket_timeout: float,
        connect_timeout: float,
        connection_class: type[Connection] = Connection,
    ) -> None:
        self.address = address
        self.max_connections = max_connections
        self.timeout = timeout
        self._make = functools.partial(
            connection_class, address, socket_timeout, connect_timeout, refusals=set()
        )
        # LIFO, as redis-py's BlockingConnectionPool: the most recently used connection first.
        # A None is a place for a connection not made yet.
        self._free: queue.LifoQueue[Connection | None] = queue.LifoQueue(max_connections)
        for _ in range(max_connections):
            self._free.put_nowait(None)
        self._made: list[Connection] = []
        self._lock = threading.Lock()

    def get_connection(self) -> Connection:
        """A connection for one caller, waiting at most `timeout` s for one to be free."""
        try:
            place = self._free.get(timeout=self.timeout)
        except queue.Empty:
            raise ConnectionError("No connection available.") from None
        return self._connection(place)

    def get_connection_now(self) -> Connection | None:
        """A connection when one is free at once, else None (never waiting)."""
        try:
            place = self._free.get_nowait()
        except queue.Empty:
            return None
        return self._connection(place)

    def _connection(self, place: Connection | None) -> Connection:
        if place is not None:
            return place
        connection = self._make()
        with self._lock:
            self._made.append(connection)
        return connection

    def release(self, connection: Connection) -> None:
        """Give a connection back (only put into the queue: never waits on a lock)."""
        self._free.put_nowait(connection)

    def disconnect(self) -> None:
        """Close every connection the pool made (they dial again on their next use)."""
        with self._lock:
            made = list(self._made)
        for connection in made:
            connection.disconnect()


class Script:
    """A Lua script sent by EVALSHA, and by EVAL when the server does not have it."""

    def __init__(self, client: "Redis", script: str) -> None:
        self._client = client
        self.script = script
        self.sha = hashlib.sha1(script.encode(), usedforsecurity=False).hexdigest()

    def __call__(self, keys: Sequence[object] = (), args: Sequence[object] = ()) -> Any:
        """The script's reply (EVALSHA, then EVAL on NOSCRIPT)."""
        try:
            return self._client.execute_command("EVALSHA", self.sha, len(keys), *keys, *args)
        except NoScriptError:
            return self._client.execute_command("EVAL", self.script, len(keys), *keys, *args)


class Redis:
    """The commands the gateway sends, each on a connection of the pool."""

    def __init__(self, connection_pool: ConnectionPool) -> None:
        self.connection_pool = connection_pool

    def execute_command(self, *args: object) -> Any:
        """The reply to one command (retried once on a fresh dial after a connection error)."""
        pool = self.connection_pool
        connection = pool.get_connection()
        try:
            return call_with_retry(connection, call, args)
        finally:
            pool.release(connection)

    def pipeline(self, *commands: Sequence[object]) -> list[Any]:
        """The replies to `commands`, sent in one write (not a transaction, as redis-py's
        `pipeline(transaction=False)`); the first error reply is raised after all are read."""
        pool = self.connection_pool
        connection = pool.get_connection()
        try:
            replies: list[Any] = call_with_retry(connection, _pipeline, commands)
        finally:
            pool.release(connection)
        for reply in replies:
            if isinstance(reply, RedisError):
                raise reply
        return replies

    def ping(self) -> bool:
        """True when the server answers PONG."""
        return bool(self.execute_command("PING") == b"PONG")

    def get(self, name: str) -> bytes | None:
        """GET: the value, or None."""
        reply: bytes | None = self.execute_command("GET", name)
        return reply

    def getdel(self, name: str) -> bytes | None:
        """GETDEL: the value (now deleted), or None."""
        reply: bytes | None = self.execute_command("GETDEL", name)
        return reply

    def set(
        self,
        name: str,
        value: str | bytes,
        *,
        ex: int | None = None,
        px: int | None = None,
        nx: bool = False,
    ) -> bool | None:
        """SET: True when set, None when NX found the key (redis-py's answers)."""
        args: list[object] = ["SET", name, value]
        if ex is not None:
            args += ("EX", ex)
        if px is not None:
            args += ("PX", px)
        if nx:
            args.append("NX")
        return True if self.execute_command(*args) == b"OK" else None

    def delete(self, *names: str) -> int:
        """DEL: how many of the keys existed."""
        return int(self.execute_command("DEL", *names))

    def eval(self, script: str, numkeys: int, *keys_and_args: object) -> Any:
        """EVAL of a script sent whole."""
        return self.execute_command("EVAL", script, numkeys, *keys_and_args)

    def register_script(self, script: str) -> Script:
        """`script`, callable as `script(keys=[...], args=[...])`."""
        return Script(self, script)

    def close(self) -> None:
        """Close the pool's connections."""
        self.connection_pool.disconnect()

    @classmethod
    def from_url(
        cls,
        uri: str,
        *,
        timeout: float,
        connect_timeout: float,
        max_connections: int,
        pool_timeout: float,
    ) -> Self:
        """A client of a blocking pool for `uri` (ValueError when the URI is not usable)."""
        pool = ConnectionPool(
            parse_uri(uri),
            max_connections=max_connections,
            timeout=pool_timeout,
            socket_timeout=timeout,
            connect_timeout=connect_timeout,
        )
        return cls(pool)


def _pipeline(connection: Connection, commands: Sequence[Sequence[object]]) -> list[Any]:
    connection.send(b"".join(pack(command) for command in commands))
    replies: list[Any] = []
    for _ in commands:
        try:
            replies.append(connection.read())
        except ResponseError as error:  # the connection is in step: read the others
            replies.append(error)
    return replies

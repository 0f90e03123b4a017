"""The layer's own Redis client (`lucid.store.resp`) against the real embedded redis-server, and
against real sockets for the faults a server cannot be asked to make: one that accepts and never
answers, a port nobody listens on, a server restarted between two commands."""

from __future__ import annotations

import contextlib
import gc
import shutil
import socket
import ssl
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hiredis
import pytest
import redis

from lucid.auth.revocation import RevocationList
from lucid.config import Settings
from lucid.store import resp
from lucid.store.redis_client import build_redis
from lucid.store.unusable import StoreUnusableError
from lucid_edge.local import EmbeddedRedis, free_port
from tests.utils.layer_redis import layer_redis
from tests.utils.tied import start_redis

KEY = "k" * 32


class _Silent:
    """A TCP server on 127.0.0.1 that accepts every connection and never answers (a hung
    Redis): counts the connections it accepted."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.1)
        self.port = self.listener.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                self.accepted.append(self.listener.accept()[0])

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        for connection in self.accepted:
            connection.close()
        self.listener.close()


class _Answering(_Silent):
    """A TCP server that answers every read with one fixed reply (what no real Redis can be
    made to say on cue: LOADING, too many clients), counting its connections."""

    def __init__(self, reply: bytes) -> None:
        self.reply = reply
        super().__init__()

    def _accept(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                connection = self.listener.accept()[0]
                self.accepted.append(connection)
                threading.Thread(target=self._answer, args=(connection,), daemon=True).start()

    def _answer(self, connection: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while connection.recv(65536):
                connection.sendall(self.reply)


class _Scripted(_Answering):
    """A TCP server that reads whole commands (hiredis) and answers each from `replies`, else
    nil: what an older or a cluster-mode Redis says to AUTH and SELECT. Keeps the commands."""

    def __init__(self, replies: dict[tuple[bytes, ...], bytes]) -> None:
        self.replies = replies
        self.commands: list[tuple[bytes, ...]] = []
        super().__init__(b"")

    def _answer(self, connection: socket.socket) -> None:
        reader = hiredis.Reader()
        with contextlib.suppress(OSError):
            while data := connection.recv(65536):
                reader.feed(data)
                while (command := reader.gets()) is not False:
                    self.commands.append(tuple(command))
                    connection.sendall(self.replies.get(tuple(command), b"$-1\r\n"))


@pytest.fixture
def silent() -> Iterator[_Silent]:
    server = _Silent()
    yield server
    server.close()


@pytest.fixture
def own_redis() -> Iterator[EmbeddedRedis]:
    """A redis-server of the test's own, to stop and start."""
    server = start_redis()
    yield server
    server.stop()


# --- replies ----------------------------------------------------------------------------------


def test_replies_of_every_kind_come_back_as_redis_py_gave_them(
    store_redis: resp.Redis, redis_client: redis.Redis
) -> None:
    # WHEN commands answer a status, a bulk string, nil, an integer and nested arrays
    assert store_redis.set("k", "v") is True
    assert store_redis.set("k", "w", nx=True) is None  # NX found the key: nil
    assert store_redis.get("k") == b"v"
    assert store_redis.set("k", "x") is True  # without NX it overwrites
    assert store_redis.get("missing") is None
    assert store_redis.getdel("k") == b"x"
    assert redis_client.exists("k") == 0
    nested = "return {1, 'two', {3, {'four'}}, redis.call('GET', KEYS[1])}"
    # THEN each is what the callers read (GET's nil is Lua's false, a nil reply in the array)
    assert store_redis.eval(nested, 1, "missing") == [1, b"two", [3, [b"four"]], None]
    assert store_redis.execute_command("INCRBY", "n", 41) == 41
    assert store_redis.delete("n", "nothing") == 1
    assert store_redis.ping() is True


def test_arguments_are_sent_as_redis_py_sent_them(
    store_redis: resp.Redis, redis_client: redis.Redis
) -> None:
    # Floats by repr (the revocation copy's timestamps keep every digit), ints, str and bytes
    store_redis.execute_command("RPUSH", "args", 1733312345.123456, 7, "é", b"\x00\xff")
    assert redis_client.lrange("args", 0, -1) == [
        b"1733312345.123456",
        b"7",
        "é".encode(),
        b"\x00\xff",
    ]
    # A bool or None is a caller's mistake, refused before anything is sent (as redis-py's
    # Encoder refuses them: DataError), never written as "True" or "None"
    for mistake in (True, None):
        with pytest.raises(TypeError):
            store_redis.execute_command("SET", "flag", mistake)
    assert redis_client.exists("flag") == 0


def test_a_value_of_a_megabyte_round_trips(
    store_redis: resp.Redis, redis_client: redis.Redis
) -> None:
    value = bytes(range(256)) * 4096  # 1 MiB, every byte value
    assert store_redis.set("big", value, ex=60) is True
    assert store_redis.get("big") == value
    assert 0 < redis_client.ttl("big") <= 60


def test_closing_a_client_closes_its_connections(
    redis_server: EmbeddedRedis, redis_client: redis.Redis
) -> None:
    def named() -> int:
        return len([c for c in redis_client.client_list() if c["name"] == "closed"])

    client = layer_redis(f"{redis_server.uri}?client_name=closed")
    assert client.ping() is True
    assert named() == 1
    # WHEN it is closed (still referred to) THEN Redis sees its connection closed
    client.close()
    deadline = time.monotonic() + 5
    while named() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert named() == 0
    # AND it dials again when used again
    assert client.ping() is True
    client.close()


def test_a_client_dropped_without_closing_closes_its_connections(
    redis_server: EmbeddedRedis, redis_client: redis.Redis
) -> None:
    def named() -> int:
        return len([c for c in redis_client.client_list() if c["name"] == "dropped"])

    client = layer_redis(f"{redis_server.uri}?client_name=dropped")
    assert client.ping() is True
    assert named() == 1
    # WHEN nothing refers to the client any more THEN Redis sees its connection closed
    del client
    gc.collect()
    deadline = time.monotonic() + 5
    while named() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert named() == 0


def test_an_error_reply_is_a_response_error_and_the_connection_stays_in_step(
    store_redis: resp.Redis,
) -> None:
    store_redis.set("text", "abc")
    with pytest.raises(resp.ResponseError, match="not an integer"):
        store_redis.execute_command("INCR", "text")
    # the next command reads its own reply, on the same connection
    connection = store_redis.connection_pool.get_connection()
    sock = connection.sock
    store_redis.connection_pool.release(connection)
    assert store_redis.get("text") == b"abc"
    assert connection.sock is sock is not None


def test_a_pipeline_reads_every_reply_then_raises_the_first_error(
    store_redis: resp.Redis,
) -> None:
    store_redis.set("text", "abc", px=60_000)
    ttl, exists = store_redis.pipeline(("PTTL", "text"), ("EXISTS", "nothing"))
    assert 0 < ttl <= 60_000
    assert exists == 0
    with pytest.raises(resp.ResponseError):
        store_redis.pipeline(("INCR", "text"), ("SET", "after", "1"))
    # both commands ran (not a transaction) and the connection is in step
    assert store_redis.get("after") == b"1"
    assert store_redis.ping() is True


def test_a_flushed_script_is_sent_whole_again(
    store_redis: resp.Redis, redis_client: redis.Redis
) -> None:
    script = store_redis.register_script("return ARGV[1] .. KEYS[1]")
    assert script(keys=["k"], args=["v"]) == b"vk"
    redis_client.script_flush()
    with pytest.raises(resp.NoScriptError):
        store_redis.execute_command("EVALSHA", script.sha, 1, "k", "v")
    assert script(keys=["k"], args=["w"]) == b"wk"
    assert redis_client.script_exists(script.sha) == [True]


# --- URIs -------------------------------------------------------------------------------------


def test_a_uri_names_its_database_user_and_password(
    redis_server: EmbeddedRedis, redis_client: redis.Redis
) -> None:
    # GIVEN an ACL user whose password needs escaping, and database 3
    redis_client.acl_setuser(
        "lucid+user", enabled=True, passwords=["+p@ss:w/rd"], keys=["*"], commands=["+@all"]
    )
    host_port = redis_server.uri.removeprefix("redis://").split("/")[0]
    client = layer_redis(f"redis://lucid%2Buser:p%40ss%3Aw%2Frd@{host_port}/3")
    try:
        # WHEN it writes THEN it is that user, in that database
        assert client.set("in-three", "1") is True
        assert client.execute_command("ACL", "WHOAMI") == b"lucid+user"
        assert redis.Redis.from_url(f"redis://{host_port}/3").get("in-three") == b"1"
        assert redis_client.get("in-three") is None
    finally:
        client.close()
        redis.Redis.from_url(f"redis://{host_port}/3").flushdb()
        redis_client.acl_deluser("lucid+user")


def test_the_query_parameters_a_uri_may_carry() -> None:
    address = resp.parse_uri(
        "rediss://:pw@cache.example:6380/2?ssl_cert_reqs=none&ssl_check_hostname=false"
        "&client_name=gw"
    )
    assert (address.host, address.port, address.db, address.password) == (
        "cache.example",
        6380,
        2,
        "pw",
    )
    assert (address.tls, address.client_name, address.check_hostname) == (True, "gw", False)
    assert resp.parse_uri("redis://h/0?db=5").db == 5
    assert resp.parse_uri("redis://h").tls is False
    assert resp.parse_uri("unix:///run/redis.sock?db=1").path == "/run/redis.sock"
    # Each value the README names, in any case; the boolean words of ssl_check_hostname
    assert [
        resp.parse_uri(f"rediss://h?ssl_cert_reqs={value}").cert_reqs
        for value in ("none", "Optional", "REQUIRED")
    ] == [ssl.CERT_NONE, ssl.CERT_OPTIONAL, ssl.CERT_REQUIRED]
    for words, checked in [
        (("1", "true", "YES", "y", "On"), True),
        (("0", "false", "NO", "n", "Off"), False),
    ]:
        for word in words:
            address = resp.parse_uri(f"rediss://h?ssl_check_hostname={word}")
            assert address.check_hostname is checked
    assert resp.parse_uri("redis://h/0?client_name=required").client_name == "required"
    # As redis-py's parse_url (redis 8.1, connection.py): no host is localhost, no port 6379, a
    # path that is not a number is no database, and a repeated parameter's first value counts
    assert (resp.parse_uri("redis:///0").host, resp.parse_uri("redis://h").port) == (
        "localhost",
        6379,
    )
    assert resp.parse_uri("redis://h/cache").db == 0
    assert resp.parse_uri("redis://h/0?db=1&db=2").db == 1


@pytest.mark.parametrize(
    "uri",
    [
        "http://127.0.0.1:6379/0",
        "redis://127.0.0.1:hunter2/0",
        "redis://127.0.0.1:70000/0",
        "redis://127.0.0.1:6379/0?socket_timeout=5",
        "redis://127.0.0.1:6379/0?db=two",
        "redis://127.0.0.1:6379/0?db=-1",
        "redis://127.0.0.1:6379/0?db=none",
        "redis://127.0.0.1:6379/0?socket_timeout=1",
        "rediss://127.0.0.1:6379/0?ssl_cert_reqs=maybe",
        "rediss://127.0.0.1:6379/0?ssl_cert_reqs=2",
        "rediss://127.0.0.1:6379/0?ssl_cert_reqs=yes",
        "rediss://127.0.0.1:6379/0?ssl_check_hostname=maybe",
        "unix://",
    ],
)
def test_a_uri_the_client_cannot_use_is_the_stores_503(uri: str) -> None:
    with pytest.raises(StoreUnusableError) as refused:
        build_redis(Settings(JWT_SECRET_KEY=KEY, REDIS_URI=uri))
    assert isinstance(refused.value.cause, ValueError)
    assert "hunter2" not in str(refused.value.cause)


# --- authentication ---------------------------------------------------------------------------


def test_a_wrong_password_or_user_is_an_authentication_error_and_callers_degrade(
    redis_server: EmbeddedRedis, redis_client: redis.Redis
) -> None:
    redis_client.acl_setuser("lucid-acl", enabled=True, passwords=["+right"], keys=["*"])
    host_port = redis_server.uri.removeprefix("redis://").split("/")[0]
    asked: list[str] = []

    class Record:
        def is_revoked(self, sid: str) -> bool:
            asked.append(sid)
            return False

        def revoked_since(self, since: Any) -> dict[str, Any]:
            return {}

    try:
        for userinfo in ("lucid-acl:wrong", "nobody:right", ":wrong"):
            client = layer_redis(f"redis://{userinfo}@{host_port}/0")
            try:
                # WHEN a command is sent THEN it is refused as a connection error
                with pytest.raises(resp.AuthenticationError) as refused:
                    client.ping()
                assert isinstance(refused.value, resp.ConnectionError)
                # AND a caller degrades as for an unreachable Redis: the record answers
                revocations = RevocationList(client, Record, token_lifetime_seconds=900)
                assert revocations.is_revoked(userinfo) is False
            finally:
                client.close()
        assert asked == ["lucid-acl:wrong", "nobody:right", ":wrong"]
    finally:
        redis_client.acl_deluser("lucid-acl")


def test_a_server_asking_for_a_password_is_an_authentication_error(
    store_redis: resp.Redis,
) -> None:
    with start_redis(config=["--requirepass", "right-pw"]) as server:
        client = layer_redis(server.uri)  # no password in the URI
        try:
            with pytest.raises(resp.AuthenticationError, match="NOAUTH"):
                client.get("k")
        finally:
            client.close()


@pytest.fixture
def password_redis() -> Iterator[EmbeddedRedis]:
    """A redis-server with a password and no ACL user of ours (`requirepass`), also listening
    on a unix socket (`socket` in its working directory)."""
    workdir = Path(tempfile.mkdtemp(prefix="lucid-redis-unix-"))
    config = ["--requirepass", "right-pw", "--unixsocket", str(workdir / "socket")]
    with start_redis(data_dir=workdir, config=[*config, "--unixsocketperm", "700"]) as server:
        yield server
    shutil.rmtree(workdir, ignore_errors=True)


def _whoami(uri: str) -> bytes:
    client = layer_redis(uri)
    try:
        reply: bytes = client.execute_command("ACL", "WHOAMI")
        return reply
    finally:
        client.close()


def test_a_password_alone_signs_in_as_the_default_user(password_redis: EmbeddedRedis) -> None:
    # GIVEN a server with `requirepass` only: AUTH takes the password alone
    host_port = f"127.0.0.1:{password_redis.port}"
    # WHEN the URI gives the password without a user THEN commands run, as `default`
    assert _whoami(f"redis://:right-pw@{host_port}/0") == b"default"
    # AND a wrong one is refused as a wrong password
    with pytest.raises(resp.AuthenticationError, match="WRONGPASS"):
        _whoami(f"redis://:wrong-pw@{host_port}/0")


def test_an_acl_user_signs_in_beside_requirepass(password_redis: EmbeddedRedis) -> None:
    admin = redis.Redis(port=password_redis.port, password="right-pw")
    admin.acl_setuser(
        "lucid-acl", enabled=True, passwords=["+acl-pw"], keys=["*"], commands=["+@all"]
    )
    try:
        # WHEN the URI names the user and its password THEN AUTH user password signs in as it
        assert (
            _whoami(f"redis://lucid-acl:acl-pw@127.0.0.1:{password_redis.port}/0") == b"lucid-acl"
        )
    finally:
        admin.close()


def test_a_user_without_a_password_is_that_user_as_redis_py_makes_it(
    redis_server: EmbeddedRedis, redis_client: redis.Redis
) -> None:
    # GIVEN an ACL user that needs no password, and one that does
    redis_client.acl_setuser(
        "lucid-nopass", enabled=True, nopass=True, keys=["*"], commands=["+@all"]
    )
    redis_client.acl_setuser(
        "lucid-pw", enabled=True, passwords=["+pw"], keys=["*"], commands=["+@all"]
    )
    host_port = redis_server.uri.removeprefix("redis://").split("/")[0]
    try:
        # WHEN a URI names a user and no password (redis://user@host) THEN the client signs in as
        # that user, with an empty password (redis-py: `AUTH user ""`), never as `default`
        assert _whoami(f"redis://lucid-nopass@{host_port}/0") == b"lucid-nopass"
        # AND a user whose password the URI lacks is refused, not let in as `default`
        with pytest.raises(resp.AuthenticationError, match="WRONGPASS"):
            _whoami(f"redis://lucid-pw@{host_port}/0")
    finally:
        redis_client.acl_deluser("lucid-nopass", "lucid-pw")


def test_a_unix_socket_uri_dials_the_socket_with_its_password_and_database(
    password_redis: EmbeddedRedis,
) -> None:
    socket_path = password_redis.workdir / "socket"
    # GIVEN a unix:// URI with the password and database 2 WHEN the client writes
    client = layer_redis(f"unix://:right-pw@{socket_path}?db=2&client_name=over-unix")
    try:
        assert client.set("on-unix", "1") is True
        # THEN it went over the socket (Redis reports the peer as the socket's path), into db 2
        admin = redis.Redis(port=password_redis.port, password="right-pw", db=2)
        try:
            assert admin.get("on-unix") == b"1"
            ours = [c for c in admin.client_list() if c["name"] == "over-unix"]
            assert [c["addr"] for c in ours] == [f"{socket_path}:0"]
        finally:
            admin.close()
    finally:
        client.close()
    # AND a socket nobody listens on is a connection error, as a refused port is
    with pytest.raises(resp.ConnectionError):
        layer_redis(f"unix://{password_redis.workdir}/nothing").ping()


@pytest.mark.parametrize(
    "reply",
    [
        b"-ERR invalid password\r\n",
        b"-ERR Client sent AUTH, but no password is set\r\n",
        b"-ERR AUTH <password> called without any password configured for the default user\r\n",
    ],
    ids=["redis-5-wrong", "redis-5-none-set", "redis-6-none-set"],
)
def test_an_older_redis_refusing_the_password_is_an_authentication_error(reply: bytes) -> None:
    # GIVEN a server that refuses the URI's password in an older Redis's words
    server = _Answering(reply)
    client = layer_redis(f"redis://:secret-pw@127.0.0.1:{server.port}/0")
    try:
        # WHEN a command is sent THEN it is the wrong password it is (callers degrade as for an
        # unreachable Redis), not an error of the command's own
        with pytest.raises(resp.AuthenticationError):
            client.get("k")
    finally:
        client.close()
        server.close()


_ARGUMENTS = b"-ERR wrong number of arguments for 'auth' command\r\n"


@pytest.mark.parametrize(
    ("userinfo", "replies", "sent", "answer"),
    [
        # Redis 5 takes AUTH <password> only: redis-py then sends the password alone
        (
            "lucid:pw",
            {(b"AUTH", b"lucid", b"pw"): _ARGUMENTS, (b"AUTH", b"pw"): b"+OK\r\n"},
            [(b"AUTH", b"lucid", b"pw"), (b"AUTH", b"pw"), (b"GET", b"k")],
            None,
        ),
        # any other refusal of AUTH is the command's answer, the password not sent again
        (
            "lucid:pw",
            {(b"AUTH", b"lucid", b"pw"): b"-ERR unknown command 'AUTH'\r\n"},
            [(b"AUTH", b"lucid", b"pw")],
            "unknown command",
        ),
        (":pw", {(b"AUTH", b"pw"): _ARGUMENTS}, [(b"AUTH", b"pw")], "wrong number"),
        # database 0 is never SELECTed: a cluster-mode server refuses SELECT
        (
            "",
            {(b"SELECT", b"0"): b"-ERR SELECT is not allowed in cluster mode\r\n"},
            [(b"GET", b"k")],
            None,
        ),
    ],
    ids=["redis-5-user", "auth-refused", "no-user-not-retried", "cluster-db-0"],
)
def test_a_new_connection_authenticates_and_selects_as_redis_py_did(
    userinfo: str,
    replies: dict[tuple[bytes, ...], bytes],
    sent: list[tuple[bytes, ...]],
    answer: str | None,
) -> None:
    server = _Scripted(replies)
    auth = f"{userinfo}@" if userinfo else ""
    client = layer_redis(f"redis://{auth}127.0.0.1:{server.port}/0")
    try:
        if answer is None:
            assert client.get("k") is None
        else:
            with pytest.raises(resp.ResponseError, match=answer):
                client.get("k")
        assert server.commands == sent
    finally:
        client.close()
        server.close()


def test_a_database_the_server_lacks_refuses_every_command_never_falling_back_to_0(
    redis_server: EmbeddedRedis, redis_client: redis.Redis
) -> None:
    # GIVEN a URI naming database 99 of a server that has 16
    client = layer_redis(f"{redis_server.uri.rsplit('/', 1)[0]}/99")
    try:
        # WHEN commands are sent THEN each is refused: the connection whose SELECT failed was
        # closed, so the next one dials and SELECTs again rather than write to database 0
        for _ in range(2):
            with pytest.raises(resp.ResponseError, match="DB index is out of range"):
                client.set("in-99", "1")
        assert redis_client.exists("in-99") == 0
    finally:
        client.close()


def test_a_unix_uri_reaches_the_server_over_its_socket_in_the_database_it_names(
    tmp_path: Path,
) -> None:
    path = tmp_path / "redis.sock"
    with start_redis(config=["--unixsocket", str(path), "--unixsocketperm", "700"]) as server:
        client = layer_redis(f"unix://{path}?db=2")
        try:
            assert client.set("over-unix", "1") is True
            tcp = redis.Redis.from_url(f"{server.uri.rsplit('/', 1)[0]}/2")
            assert tcp.get("over-unix") == b"1"
            tcp.close()
        finally:
            client.close()
    # AND a path nobody listens on is a connection error
    nobody = layer_redis(f"unix://{tmp_path}/nobody.sock")
    try:
        with pytest.raises(resp.ConnectionError):
            nobody.ping()
    finally:
        nobody.close()
    # AND so, at once, is a socket whose server accepts nothing more (its backlog full): the
    # connect is bounded (a blocking one would wait for the server for ever), and Linux answers
    # a bounded connect to a full unix socket with EAGAIN at once
    full_path = str(tmp_path / "full.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(full_path)
    listener.listen(0)
    waiting = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    waiting.connect(full_path)
    full = layer_redis(f"unix://{full_path}", timeout=5, connect_timeout=5)
    outcome: list[BaseException] = []

    def ping() -> None:
        try:
            full.ping()
        except resp.RedisError as error:
            outcome.append(error)

    pinging = threading.Thread(target=ping, daemon=True)
    try:
        pinging.start()
        pinging.join(timeout=3)
        assert [type(error) for error in outcome] == [resp.ConnectionError]
    finally:
        full.close()
        waiting.close()
        listener.close()
        pinging.join(timeout=5)


@pytest.mark.parametrize(
    "reply",
    [
        b"-LOADING Redis is loading the dataset in memory\r\n",
        b"-ERR max number of clients reached\r\n",
    ],
    ids=["loading", "full"],
)
def test_a_server_that_cannot_serve_yet_is_a_connection_error_tried_twice(reply: bytes) -> None:
    # GIVEN a server answering every command so (as redis-py reads these replies)
    server = _Answering(reply)
    client = layer_redis(f"redis://127.0.0.1:{server.port}/0")
    try:
        # WHEN a command is sent THEN it is a connection error, after one retry on a new dial
        with pytest.raises(resp.ConnectionError) as refused:
            client.get("k")
        assert not isinstance(refused.value, resp.AuthenticationError)
        assert len(server.accepted) == 2
        # AND an error reply of the command's own is not retried
        server.reply = b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"
        with pytest.raises(resp.ResponseError, match="WRONGTYPE"):
            client.get("k")
        assert len(server.accepted) == 3  # the failed connection was closed: one new dial
    finally:
        client.close()
        server.close()


# --- faults -----------------------------------------------------------------------------------


def test_a_server_that_never_answers_times_out_within_the_bound_once(silent: _Silent) -> None:
    client = layer_redis(f"redis://127.0.0.1:{silent.port}/0", timeout=0.2)
    try:
        started = time.monotonic()
        with pytest.raises(resp.TimeoutError):
            client.get("k")
        elapsed = time.monotonic() - started
        # THEN one command bound was waited (not retried: a second dial would wait another)
        assert 0.15 <= elapsed < 0.38
        assert len(silent.accepted) == 1
        # AND the connection was closed: the next command dials again
        with pytest.raises(resp.TimeoutError):
            client.get("k")
        assert len(silent.accepted) == 2
    finally:
        client.close()


def test_a_server_that_stops_reading_is_a_write_timeout_within_the_bound_once() -> None:
    # GIVEN a hung Redis that accepts and never reads, with a 4 KiB receive window, and a
    # command bigger than the window and both kernels' buffers can hold (16 MiB)
    server = _Silent()
    server.listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    client = layer_redis(f"redis://127.0.0.1:{server.port}/0", timeout=0.2)
    try:
        # WHEN the command is sent THEN the write is what times out, said so (not a read
        # waiting for a reply to a command never sent whole), on the one connection
        with pytest.raises(resp.TimeoutError) as raised:
            client.set("k", b"v" * (16 << 20))
        assert str(raised.value) == "Timeout writing to socket"
        assert len(server.accepted) == 1
    finally:
        client.close()
        server.close()


def test_a_port_nobody_listens_on_is_a_connection_error_at_once() -> None:
    client = layer_redis(f"redis://127.0.0.1:{free_port()}/0", timeout=5, connect_timeout=5)
    try:
        started = time.monotonic()
        with pytest.raises(resp.ConnectionError):
            client.ping()
        assert time.monotonic() - started < 1
    finally:
        client.close()


def test_a_connect_that_is_never_accepted_times_out_within_the_connect_bound() -> None:
    # GIVEN a listener whose accept queue is full (backlog 0, one connection waiting): Linux
    # drops the next SYN, so a connect hangs as to a server behind a black-holing firewall
    listener = socket.create_server(("127.0.0.1", 0), backlog=0)
    waiting = socket.create_connection(listener.getsockname())
    client = layer_redis(
        f"redis://127.0.0.1:{listener.getsockname()[1]}/0", timeout=5, connect_timeout=0.2
    )
    try:
        started = time.monotonic()
        with pytest.raises(resp.TimeoutError):
            client.ping()
        # THEN the connect bound, not the command one, is what was waited (and not retried)
        assert 0.15 <= time.monotonic() - started < 0.38
    finally:
        client.close()
        waiting.close()
        listener.close()


def test_a_server_restarted_between_two_commands_costs_one_retry_unnoticed(
    own_redis: EmbeddedRedis,
) -> None:
    client = layer_redis(own_redis.uri)
    try:
        assert client.set("before", "1") is True
        connection = client.connection_pool.get_connection()
        old = connection.sock
        client.connection_pool.release(connection)
        # WHEN the server restarts (the pooled connection is dead) THEN the next command works
        own_redis.stop()
        with start_redis(port=own_redis.port):
            assert client.get("before") is None  # a fresh server
            assert connection.sock is not None
            assert connection.sock is not old
    finally:
        client.close()


def test_a_server_that_drops_every_connection_is_tried_twice_then_refused(
    silent: _Silent,
) -> None:
    # GIVEN a server that closes each connection as soon as a command comes
    def drop() -> None:
        while not silent._stop.is_set():
            for connection in list(silent.accepted):
                with contextlib.suppress(OSError):
                    connection.settimeout(0.01)
                    if connection.recv(1):
                        connection.close()
            time.sleep(0.005)

    dropper = threading.Thread(target=drop, daemon=True)
    dropper.start()
    client = layer_redis(f"redis://127.0.0.1:{silent.port}/0", timeout=2)
    try:
        with pytest.raises(resp.ConnectionError):
            client.ping()
        # THEN the command was sent on two dials: the first and one retry, no more
        assert len(silent.accepted) == 2
    finally:
        client.close()


def test_a_full_pool_queues_a_caller_then_refuses_it_at_the_wait_bound(
    redis_server: EmbeddedRedis,
) -> None:
    client = layer_redis(redis_server.uri, max_connections=1, pool_timeout=0.5)
    pool = client.connection_pool
    try:
        # GIVEN the pool's only connection in use, given back 0.2 s later
        held = pool.get_connection()
        threading.Timer(0.2, pool.release, args=(held,)).start()
        # WHEN a command is sent THEN it waits for it (queues), then answers
        started = time.monotonic()
        assert client.ping() is True
        assert 0.15 <= time.monotonic() - started < 0.45
        # WHEN the connection is held longer than the wait bound THEN the command is refused
        held = pool.get_connection()
        started = time.monotonic()
        with pytest.raises(resp.ConnectionError, match="No connection available"):
            client.ping()
        assert 0.45 <= time.monotonic() - started < 1.5
        pool.release(held)
        assert client.ping() is True
        # AND a pipeline gives the connection back too: the next ones find it free
        for _ in range(2):
            assert client.pipeline(("PING",), ("EXISTS", "nothing")) == [b"PONG", 0]
        assert client.ping() is True
    finally:
        client.close()

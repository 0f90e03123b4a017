"""Redis refusing the gateway's credentials (WRONGPASS, NOAUTH, NOPERM), against the real
embedded redis-server: callers degrade as for a Redis that is down, but the function's log says
once what to check, and the 503s say the credentials were refused."""

from __future__ import annotations

import json

import pytest
import redis

from lucid.store import resp
from lucid_edge.local import EmbeddedRedis
from tests.utils.layer_redis import WRONG_PASSWORD, layer_redis, refused_uri
from tests.utils.logs import logged_lines
from tests.utils.tied import start_redis


def _errors(lines: list[dict[str, object]]) -> list[tuple[object, object, object]]:
    return [
        (line["store"], line["code"], line["message"]) for line in lines if line["level"] == "ERROR"
    ]


def test_a_wrong_password_is_one_error_line_per_client_naming_what_to_check(
    redis_server: EmbeddedRedis, redis_client: redis.Redis
) -> None:
    # GIVEN a REDIS_URI whose password Redis refuses (an ACL user it has, another password)
    with refused_uri(redis_client, redis_server.uri) as uri, logged_lines() as lines:
        client = layer_redis(uri)
        try:
            # WHEN commands are sent again and again
            for _ in range(3):
                with pytest.raises(resp.AuthenticationError):
                    client.ping()
        finally:
            client.close()
        # AND another client (another process's) meets the same refusal
        other = layer_redis(uri)
        try:
            with pytest.raises(resp.AuthenticationError):
                other.get("k")
        finally:
            other.close()
    # THEN each client logs it once, at ERROR, naming the store, the refusal and what to check
    line = (
        "redis",
        "WRONGPASS",
        "Redis refused the gateway's credentials (WRONGPASS): check the user name and password "
        "in REDIS_URI (percent-escaped), and that the user is enabled (ACL LIST)",
    )
    assert _errors(lines) == [line, line]
    # AND never the password
    assert WRONG_PASSWORD not in json.dumps(lines)


def test_a_command_an_acl_forbids_is_one_error_line_per_command(
    redis_server: EmbeddedRedis, redis_client: redis.Redis
) -> None:
    # GIVEN REDIS_URI's user may not GET or EVAL (its password is right)
    with refused_uri(redis_client, redis_server.uri, "-get", "-eval") as uri:
        client = layer_redis(uri)
        try:
            with logged_lines() as lines:
                # WHEN it is refused GET twice, EVAL once, and may SET
                for _ in range(2):
                    with pytest.raises(resp.NoPermissionError):
                        client.get("k")
                with pytest.raises(resp.NoPermissionError):
                    client.eval("return 1", 0)
                assert client.set("refusals:k", "v") is True
        finally:
            client.delete("refusals:k")
            client.close()
    # THEN each refused command is one ERROR line, naming the command, not the user
    check = "check the ACL rules of REDIS_URI's user (ACL GETUSER)"
    assert [(code, check in str(message)) for _, code, message in _errors(lines)] == [
        ("NOPERM GET", True),
        ("NOPERM EVAL", True),
    ]
    assert "lucid-refused" not in json.dumps(lines)


def test_a_server_asking_for_a_password_the_uri_lacks_says_so() -> None:
    with start_redis(config=["--requirepass", "right-pw"]) as server:
        client = layer_redis(server.uri)  # no password in the URI
        try:
            with logged_lines() as lines, pytest.raises(resp.AuthenticationError):
                client.get("k")
        finally:
            client.close()
    assert _errors(lines) == [
        (
            "redis",
            "NOAUTH",
            "Redis refused the gateway's credentials (NOAUTH): the server asks for a password: "
            "put it (and the user) in REDIS_URI",
        )
    ]


def test_an_unreachable_redis_logs_no_refusal() -> None:
    server = start_redis()
    client = layer_redis(server.uri)
    server.stop()
    try:
        with logged_lines() as lines, pytest.raises(resp.ConnectionError) as failed:
            client.ping()
    finally:
        client.close()
    assert not resp.refused_credentials(failed.value)
    assert _errors(lines) == []

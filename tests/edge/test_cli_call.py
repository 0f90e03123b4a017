"""`lucid call`: headers, status and body as a user of the sessions API needs them, and what it
does when the gateway refuses (API Gateway's 403 for a token vs a function's 403), against the
real template served on 127.0.0.1 on a free port."""

from __future__ import annotations

import json
import time
from pathlib import Path

import jwt
import pytest

from lucid.auth.keys import get_key_ring
from lucid.auth.tokens import TokenService
from lucid.config import get_settings
from lucid.identity import Role
from lucid_edge.cli import main
from lucid_edge.cli_call import parse_headers
from lucid_edge.cli_config import CommandError, Credentials, load_credentials, save_credentials
from tests.edge.harness import RunningEdge
from tests.utils.metrics import without_metrics


def _out(capsys: pytest.CaptureFixture[str]) -> str:
    return without_metrics(capsys.readouterr().out)


def _head(output: str) -> tuple[str, dict[str, str], str]:
    """Status line, headers and body of `lucid call -i` output."""
    head, _, body = output.partition("\n\n")
    status, *lines = head.splitlines()
    headers = dict(line.split(": ", 1) for line in lines)
    return status, headers, body


def test_a_sessions_whole_life_with_headers(
    signed_in: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a new session created with an idempotency key, status and headers shown
    create = ["call", "POST", "/sessions", "--data", '{"name": "first"}', "-i"]
    create += ["-H", "Idempotency-Key: cli-key-1"]
    assert main(create) == 0
    status, headers, body = _head(_out(capsys))
    assert status == "HTTP/1.1 201 Created"
    session = json.loads(body)
    assert headers["location"] == f"/sessions/{session['id']}"
    assert headers["etag"] == '"1"'
    # WHEN the same key is sent again THEN the first answer is replayed: no second session
    assert main(create) == 0
    assert json.loads(_head(_out(capsys))[2])["id"] == session["id"]
    # WHEN activating with the current ETag THEN it moves and the ETag follows the version
    path = f"/sessions/{session['id']}"
    activate = ["call", "PATCH", path, "--data", '{"status": "active"}', "-i"]
    assert main([*activate, "-H", 'If-Match: "1"']) == 0
    status, headers, body = _head(_out(capsys))
    assert (status, headers["etag"], json.loads(body)["status"]) == (
        "HTTP/1.1 200 OK",
        '"2"',
        "active",
    )
    # WHEN writing with the stale ETag THEN 412 names the current one, exit status 1
    assert main(["call", "PATCH", path, "--data", '{"name": "x"}', "-H", 'If-Match: "1"']) == 1
    problem = json.loads(_out(capsys))
    assert (problem["status"], problem["current_etag"]) == (412, '"2"')
    # WHEN ending it THEN a 204 prints nothing at all, and only the status and headers with -i
    assert main(["call", "DELETE", path]) == 0
    assert _out(capsys) == ""
    assert main(["call", "DELETE", path, "-i"]) == 0
    output = _out(capsys)
    assert output.startswith("HTTP/1.1 204 No Content\n")
    assert "\n\n" not in output
    # THEN the session is still there, ended: DELETE ends, it does not remove
    assert main(["call", "GET", path]) == 0
    assert json.loads(_out(capsys))["status"] == "ended"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (["If-Match"], "-H takes 'Name: value'"),
        (["Bad Name: x"], "-H takes 'Name: value'"),
        (["Authorization: Bearer x"], "leave out -H Authorization"),
        # httpx sends ASCII header values only (a traceback before); a line break would end
        # the field ("cannot reach the gateway" before)
        (["X-Name: Zoë"], "-H X-Name: the value must be printable ASCII"),
        (["X-Name: a\nX-Other: b"], "-H X-Name: the value must be printable ASCII"),
        (["X-Name: a\x00"], "-H X-Name: the value must be printable ASCII"),
    ],
)
def test_malformed_headers_are_refused_before_anything_is_sent(
    values: list[str], message: str
) -> None:
    with pytest.raises(CommandError, match=message):
        parse_headers(values)


@pytest.mark.parametrize("method", ["BAD", "GE T", "CONNECT", "ANY", ""])
def test_a_method_the_gateway_cannot_route_is_a_usage_error_before_any_request(
    signed_in: Path, capsys: pytest.CaptureFixture[str], method: str
) -> None:
    # GIVEN a signed-in user WHEN they call with a method HTTP APIs do not route
    with pytest.raises(SystemExit) as exited:
        main(["call", method, "/users/me"])
    # THEN it is argparse's usage error (exit 2), naming the methods, and nothing was sent:
    # no answer of the gateway's (uvicorn's plain-text 400) is printed
    assert exited.value.code == 2
    captured = capsys.readouterr()
    assert f"{method!r} is not an HTTP method" in captured.err
    assert "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS" in captured.err
    assert captured.out == ""


def test_a_method_in_lower_case_is_sent_in_upper_case(
    signed_in: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["call", "get", "/users/me"]) == 0
    assert "address" in json.loads(_out(capsys))


def test_a_path_with_a_control_character_is_refused_naming_the_path_not_the_gateway(
    signed_in: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # (before: "'http://127.0.0.1:…' (the gateway you signed in to) is not a URL")
    assert main(["call", "GET", "/users/me\nX-Evil: 1"]) == 1
    err = capsys.readouterr().err
    assert "lucid: the path '/users/me\\nX-Evil: 1' holds a control character" in err
    assert "is not a URL" not in err


def test_header_values_keep_their_colons_and_quotes() -> None:
    assert parse_headers(['If-Match: "1", "2"', "X-At: 12:30"]) == {
        "If-Match": '"1", "2"',
        "X-At": "12:30",
    }


def test_data_must_be_json_unless_a_content_type_is_given(
    signed_in: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["call", "POST", "/sessions", "--data", "{nope"]) == 1
    assert "--data is not valid JSON" in capsys.readouterr().err
    # with a Content-Type of its own the text goes as it is: the function says what is wrong
    text = ["call", "POST", "/sessions", "--data", "name=x", "-H", "Content-Type: text/plain"]
    assert main(text) == 1
    assert json.loads(_out(capsys))["status"] == 422


def test_a_functions_403_is_the_answer_not_a_reason_to_refresh(
    signed_in: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a signed-in user who is not an admin
    before = load_credentials()
    # WHEN calling an admin route THEN the function's 403 problem is shown as it is
    assert main(["call", "GET", "/users"]) == 1
    problem = json.loads(_out(capsys))
    assert (problem["status"], problem["title"]) == (403, "Forbidden")
    # THEN no refresh happened: the refresh token is still the one from login
    after = load_credentials()
    assert after is not None
    assert before is not None
    assert after.refresh_token == before.refresh_token


def test_an_expired_token_gets_the_gateways_403_and_is_refreshed_once(
    gateway: RunningEdge, signed_in: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN stored credentials whose access token expired an hour ago (same user, same sign-in,
    # same key)
    stored = json.loads((signed_in / "credentials.json").read_text())
    claims = jwt.decode(stored["access_token"], options={"verify_signature": False})
    an_hour_ago = time.time() - 3600
    expired = TokenService(get_settings(), get_key_ring(), clock=lambda: an_hour_ago).issue(
        claims["sub"], claims["addr"], Role(claims["role"]), claims["sid"]
    )
    # AND the gateway answers it with API Gateway's own 403 (the authorizer said no)
    refused = gateway.client.get("/users/me", headers={"Authorization": f"Bearer {expired.token}"})
    assert refused.status_code == 403
    assert refused.json() == {"message": "Forbidden"}
    stored["access_token"] = expired.token
    (signed_in / "credentials.json").write_text(json.dumps(stored))
    # WHEN calling THEN the CLI refreshes once and the call succeeds with a new pair stored
    assert main(["call", "GET", "/users/me"]) == 0
    assert json.loads(_out(capsys))["address"] == claims["addr"]
    renewed = load_credentials()
    assert renewed is not None
    assert renewed.access_token != expired.token
    assert renewed.refresh_token != stored["refresh_token"]


def test_stored_tokens_never_go_to_another_gateway(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a sign-in at one gateway and LUCID_URL naming another (a capture server would do)
    save_credentials(Credentials("https://gateway-a.example", "TXyz", "ACCESS", "REFRESH"))
    monkeypatch.setenv("LUCID_URL", "http://127.0.0.1:9")
    # WHEN a command that sends the tokens runs THEN it refuses before connecting anywhere
    assert main(["call", "GET", "/users/me"]) != 0
    error = capsys.readouterr().err
    assert "signed in to https://gateway-a.example, not http://127.0.0.1:9" in error
    assert "ACCESS" not in error
    assert "REFRESH" not in error

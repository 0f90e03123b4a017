"""The app factory: every failure becomes problem+json, nothing leaks, the request id flows."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
import redis
from fastapi import APIRouter, Response
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException

from lucid import errors
from lucid.config import Settings
from lucid.errors import ConflictError, LucidError, RateLimitedError, ServiceUnavailableError
from lucid.store.documents import new_id
from lucid.store.mongo import build_database
from lucid.store.redis_client import get_redis
from lucid.web.app import create_app, lambda_handler
from lucid.web.deps import (
    AdminCaller,
    Caller,
    OptionalCaller,
    SourceIp,
    revocations_on,
)
from lucid.web.stores import PROCESS_STORES, Stores, stores_of_app, use_stores
from lucid_edge.local import free_port, in_memory_database
from tests.utils.events import http_event
from tests.utils.layer_redis import unreachable_redis
from tests.utils.logs import logged_lines

router = APIRouter()
SECRET_SIGNATURE = "0x" + "ab" * 65


class Login(BaseModel):
    address: str = Field(max_length=34)
    signature: str = Field(max_length=132)


@router.post("/login")
async def login(body: Login) -> dict[str, str]:
    return {"address": body.address}


@router.get("/boom")
async def boom() -> None:
    raise RuntimeError("database password is hunter2")


@router.get("/conflict")
async def conflict() -> None:
    raise ConflictError("already ended", extensions={"allowed": ["active"]})


@router.get("/slow-down")
async def slow_down() -> None:
    raise RateLimitedError("slow down", headers={"Retry-After": "7"})


@router.get("/me")
async def me(caller: Caller, ip: SourceIp) -> dict[str, Any]:
    return {"user_id": caller.user_id, "admin": caller.is_admin, "ip": ip}


@router.get("/maybe")
async def maybe(caller: OptionalCaller) -> dict[str, Any]:
    return {"user_id": caller.user_id if caller else None}


@router.get("/admin")
async def admin(caller: AdminCaller) -> dict[str, str]:
    return {"user_id": caller.user_id}


@router.get("/http/{status}")
async def http_error(status: int) -> None:
    raise HTTPException(status)  # as Starlette and FastAPI raise them (no detail of ours)


@router.get("/http-detail")
async def http_error_with_detail() -> None:
    raise HTTPException(400, "There was an error parsing the body")  # as FastAPI words one


@router.get("/unavailable")
async def unavailable() -> None:
    raise ServiceUnavailableError("the sessions store is unavailable")


@router.get("/unclassified")
async def unclassified() -> None:
    raise LucidError("the ledger answered nonsense")


# The error tree as a client sees it (errors.py's docstring): class -> status, title, `type`
# slug. The type is a problem's identifier (RFC 9457 section 3.1.1: "the primary identifier for
# the problem type"): a client tells an expired challenge from a bad signature by it alone.
ERROR_TREE: dict[type[LucidError], tuple[int, str, str]] = {
    errors.LucidError: (500, "Internal Server Error", "internal"),
    errors.BadRequestError: (400, "Bad Request", "bad-request"),
    errors.UnsafePathError: (400, "Bad Request", "unsafe-path"),
    errors.ValidationFailedError: (422, "Unprocessable Content", "validation"),
    errors.AuthenticationError: (401, "Unauthorized", "unauthorized"),
    errors.MalformedMessageError: (401, "Unauthorized", "malformed-sign-in-message"),
    errors.ForeignMessageError: (401, "Unauthorized", "foreign-sign-in-message"),
    errors.UnknownNonceError: (401, "Unauthorized", "unknown-nonce"),
    errors.ExpiredChallengeError: (401, "Unauthorized", "expired-challenge"),
    errors.NonceAddressMismatchError: (401, "Unauthorized", "nonce-address-mismatch"),
    errors.BadSignatureError: (401, "Unauthorized", "bad-signature"),
    errors.SignerMismatchError: (401, "Unauthorized", "signer-mismatch"),
    errors.InvalidAddressError: (401, "Unauthorized", "invalid-address"),
    errors.InvalidTokenError: (401, "Unauthorized", "invalid-token"),
    errors.RefreshTokenReuseError: (401, "Unauthorized", "refresh-token-reuse"),
    errors.ForbiddenError: (403, "Forbidden", "forbidden"),
    errors.NotFoundError: (404, "Not Found", "not-found"),
    errors.ConflictError: (409, "Conflict", "conflict"),
    errors.PreconditionFailedError: (412, "Precondition Failed", "precondition-failed"),
    errors.PayloadTooLargeError: (413, "Content Too Large", "payload-too-large"),
    errors.RateLimitedError: (429, "Too Many Requests", "rate-limited"),
    errors.BadGatewayError: (502, "Bad Gateway", "bad-gateway"),
    errors.ServiceUnavailableError: (503, "Service Unavailable", "service-unavailable"),
    errors.GatewayTimeoutError: (504, "Gateway Timeout", "gateway-timeout"),
}


@router.get("/raise/{name}")
async def raise_bare(name: str) -> None:
    (error_class,) = [cls for cls in ERROR_TREE if cls.__name__ == name]
    raise error_class()


app = create_app("test", router)
handler = lambda_handler(app)
USER_ID = new_id()
USER = {
    "user_id": USER_ID,
    "address": "TX",
    "role": "user",
    "tier": "authenticated",
    "jti": "j1",
    "sid": new_id(),
}


def call(method: str, path: str, **kwargs: Any) -> tuple[int, dict[str, str], Any]:
    # No context: Mangum only hands it on in the ASGI scope, and these routes never read it.
    result = handler(http_event(method, path, **kwargs), None)  # type: ignore[arg-type]
    headers = {k.lower(): v for k, v in result["headers"].items()}
    assert result["isBase64Encoded"] is False
    return result["statusCode"], headers, json.loads(result["body"])


def test_validation_failure_is_422_problem_naming_the_field_without_echoing_input(
    capsys: pytest.CaptureFixture[str],
) -> None:
    status, headers, body = call(
        "POST", "/login", body={"address": "T" * 40, "signature": SECRET_SIGNATURE}
    )
    assert status == 422
    assert headers["content-type"] == "application/problem+json"
    assert body["title"] == "Unprocessable Content"
    assert body["detail"] == "invalid address"  # every error listed: no "and N more"
    assert "errors_omitted" not in body
    assert body["errors"][0]["loc"] == ["body", "address"]
    assert SECRET_SIGNATURE not in json.dumps(body)
    assert SECRET_SIGNATURE not in capsys.readouterr().out


def test_malformed_json_is_a_422_problem_not_a_500() -> None:
    status, _, body = call(
        "POST", "/login", body="{not json", headers={"content-type": "application/json"}
    )
    assert status == 422
    assert body["status"] == 422


def test_unexpected_exception_is_a_generic_500_problem_that_leaks_nothing() -> None:
    status, headers, body = call("GET", "/boom")
    assert status == 500
    assert headers["content-type"] == "application/problem+json"
    assert "hunter2" not in json.dumps(body)
    assert body["instance"] == "/boom"
    # AND even this answer, made outside every middleware of the app, says nosniff and no-store
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["cache-control"] == "no-store"


@router.get("/cached")
async def cached(response: Response) -> dict[str, str]:
    response.headers["Cache-Control"] = "max-age=60"
    response.headers["X-Content-Type-Options"] = "whatever"
    return {}


def test_a_route_may_choose_its_caching_but_never_sniffing() -> None:
    _, headers, _ = call("GET", "/cached")
    assert headers["cache-control"] == "max-age=60"
    assert headers["x-content-type-options"] == "nosniff"


def test_domain_errors_carry_extensions_and_headers() -> None:
    status, _, body = call("GET", "/conflict")
    assert (status, body["allowed"], body["type"]) == (
        409,
        ["active"],
        "https://lucid.dev/problems/conflict",
    )
    status, headers, _ = call("GET", "/slow-down")
    assert status == 429
    assert headers["retry-after"] == "7"


def test_the_error_tree_is_every_error_class_of_the_layer() -> None:
    # A class added to lucid.errors is added to the table above, with the answer it gives
    declared = {
        value
        for value in vars(errors).values()
        if isinstance(value, type) and issubclass(value, LucidError)
    }
    assert declared == set(ERROR_TREE)


@pytest.mark.parametrize("error_class", list(ERROR_TREE), ids=lambda cls: cls.__name__)
def test_each_error_class_is_its_own_status_title_and_type(error_class: type[LucidError]) -> None:
    # WHEN a route raises the error without a detail of its own
    status, headers, body = call("GET", f"/raise/{error_class.__name__}")
    # THEN the answer is its status, problem+json with its title and type; the detail is the
    # title (never empty), and nothing else is in the body
    expected_status, title, slug = ERROR_TREE[error_class]
    assert (status, headers["content-type"]) == (expected_status, "application/problem+json")
    assert body == {
        "type": f"https://lucid.dev/problems/{slug}",
        "title": title,
        "status": expected_status,
        "detail": title,
        "instance": f"/raise/{error_class.__name__}",
    }
    # AND the exception's text (what a log or the Lambda runtime shows) is that detail
    assert str(error_class()) == title


@pytest.mark.parametrize("member", ["type", "title", "status", "detail", "instance"])
def test_an_extension_may_not_redefine_a_standard_member(member: str) -> None:
    # GIVEN an extension named like an RFC 9457 member, which the body would silently overwrite
    # THEN the error refuses it where it is raised, so no test can pass with the member lost
    with pytest.raises(ValueError, match=member):
        ConflictError("clash", extensions={member: "x"})


@pytest.mark.parametrize(
    ("status", "title"),
    [
        (400, "Bad Request"),
        (401, "Unauthorized"),
        (403, "Forbidden"),
        (404, "Not Found"),
        (405, "Method Not Allowed"),
        (406, "Not Acceptable"),
        (413, "Content Too Large"),
        (415, "Unsupported Media Type"),
        (418, "Error"),  # one we never name: a generic title, never a wrong one
    ],
)
def test_a_framework_http_error_is_a_problem_titled_by_its_status(status: int, title: str) -> None:
    answered, headers, body = call("GET", f"/http/{status}")
    assert answered == status
    assert headers["content-type"] == "application/problem+json"
    assert (body["status"], body["title"], body["type"]) == (status, title, "about:blank")


def test_a_framework_http_errors_own_detail_is_kept() -> None:
    status, _, body = call("GET", "/http-detail")
    assert (status, body["title"]) == (400, "Bad Request")
    assert body["detail"] == "There was an error parsing the body"


def test_a_handled_degradation_is_one_info_line_naming_it() -> None:
    # GIVEN a route whose store is down (a 503 the layer raises, counted where it happens)
    with logged_lines() as lines:
        status, _, body = call("GET", "/unavailable")
    # THEN the answer is the 503 problem, and the log has one INFO line naming it, no warning
    assert (status, body["detail"]) == (503, "the sessions store is unavailable")
    failed = [line for line in lines if line["message"].startswith("request failed")]
    assert [(line["level"], line["message"]) for line in failed] == [
        ("INFO", "request failed: service-unavailable the sessions store is unavailable")
    ]


def test_an_unclassified_error_of_ours_is_a_500_logged_and_a_client_error_is_not() -> None:
    # GIVEN a route that raises our base error (500: nothing more specific applies), and one
    # that answers a 409
    with logged_lines() as lines:
        status, _, body = call("GET", "/unclassified")
        conflict, _, _ = call("GET", "/conflict")
    # THEN the 500 problem is answered and logged as the 503s are; the client's 409 is not
    assert (status, body["title"], conflict) == (500, "Internal Server Error", 409)
    failed = [line for line in lines if line["message"].startswith("request failed")]
    assert [(line["level"], line["message"]) for line in failed] == [
        ("INFO", "request failed: internal the ledger answered nonsense")
    ]


def test_an_unknown_path_is_a_404_problem() -> None:
    status, headers, body = call("GET", "/nowhere")
    assert status == 404
    assert headers["content-type"] == "application/problem+json"
    assert (body["title"], body["instance"]) == ("Not Found", "/nowhere")


def test_wrong_method_is_a_405_problem() -> None:
    status, _, body = call("DELETE", "/me", authorizer=USER)
    assert status == 405
    assert body["title"] == "Method Not Allowed"


def test_identity_comes_from_the_authorizer_context_and_ip_from_the_connection() -> None:
    status, _, body = call(
        "GET",
        "/me",
        authorizer=USER,
        source_ip="203.0.113.9",
        headers={"x-user-id": "admin", "x-forwarded-for": "10.0.0.1"},
    )
    assert status == 200
    assert body == {"user_id": USER_ID, "admin": False, "ip": "203.0.113.9"}


def test_protected_route_without_authorizer_context_is_401() -> None:
    status, _, body = call("GET", "/me", headers={"x-user-id": "u1"})
    assert status == 401
    assert body["type"] == "https://lucid.dev/problems/unauthorized"


def test_optional_caller_is_none_for_anonymous_requests() -> None:
    assert call("GET", "/maybe")[2] == {"user_id": None}
    assert call("GET", "/maybe", authorizer=USER)[2] == {"user_id": USER_ID}


def test_a_revoked_or_sign_in_less_context_is_401_and_no_store_to_ask_is_503(
    redis_client: redis.Redis,
) -> None:
    # GIVEN the caller's sign-in was revoked (in the record and in the Redis copy)
    revoked = {**USER, "sid": new_id()}
    database = in_memory_database()
    revoke = {"_id": new_id(), "family_id": revoked["sid"], "revoked_at": datetime.now(UTC)}
    database["tokens"].insert_one(revoke)
    use_stores(app, Stores(database=lambda: database))
    dead = unreachable_redis(free_port())
    dead_database = build_database(
        Settings(MONGODB_URI=f"mongodb://127.0.0.1:{free_port()}", MONGODB_TIMEOUT_MS=100)
    )
    try:
        # THEN its calls are 401 naming the revocation
        status, _, body = call("GET", "/me", authorizer=revoked)
        assert (status, body["detail"]) == (401, "this sign-in was revoked; sign in again")
        # AND a context without a sign-in (cached before the upgrade) is 401 too
        status, _, body = call("GET", "/me", authorizer={**USER, "sid": ""})
        assert (status, body["detail"]) == (401, "the token names no sign-in; sign in again")
        # WHEN neither Redis nor MongoDB answers THEN it is a 503, never a pass
        use_stores(app, Stores(redis=lambda: dead, database=lambda: dead_database))
        status, _, body = call("GET", "/me", authorizer={**USER, "sid": new_id()})
        assert status == 503
    finally:
        use_stores(app, PROCESS_STORES)
        dead.close()
        dead_database.client.close()


@pytest.mark.usefixtures("redis_client")
def test_a_sign_in_revoked_between_two_calls_is_refused_at_the_second_on_any_stores() -> None:
    # GIVEN a live sign-in, admitted, on the process's Redis and a database of the app's own
    live = {**USER, "sid": new_id()}
    database = in_memory_database()
    use_stores(app, Stores(database=lambda: database))
    dead = unreachable_redis(free_port())
    dead_database = build_database(
        Settings(MONGODB_URI=f"mongodb://127.0.0.1:{free_port()}", MONGODB_TIMEOUT_MS=100)
    )
    try:
        assert call("GET", "/me", authorizer=live)[0] == 200
        # WHEN it is revoked (the record, then the Redis copy, as sign-out does)
        revoked_at = datetime.now(UTC)
        database["tokens"].insert_one(
            {"_id": new_id(), "family_id": live["sid"], "revoked_at": revoked_at}
        )
        revocations_on(get_redis(), lambda: database).remember({live["sid"]: revoked_at})
        # THEN the very next call is refused, and the one after
        for _ in range(2):
            status, _, body = call("GET", "/me", authorizer=live)
            assert (status, body["detail"]) == (401, "this sign-in was revoked; sign in again")
        # AND stores given to the app later are the ones asked: neither answers, a 503
        use_stores(app, Stores(redis=lambda: dead, database=lambda: dead_database))
        assert call("GET", "/me", authorizer={**USER, "sid": new_id()})[0] == 503
        # AND given back, the first stores answer again
        use_stores(app, Stores(database=lambda: database))
        assert call("GET", "/me", authorizer={**USER, "sid": new_id()})[0] == 200
    finally:
        use_stores(app, PROCESS_STORES)
        dead.close()
        dead_database.client.close()


def test_admin_route_admits_only_who_is_admin_in_storage_now() -> None:
    # GIVEN the user is an admin where roles are stored
    database = in_memory_database()
    database["users"].insert_one({"_id": USER_ID, "role": "admin"})
    use_stores(app, Stores(database=lambda: database))
    try:
        # THEN a token that says user is refused, one that says admin admitted
        assert call("GET", "/admin", authorizer=USER)[0] == 403
        status, _, body = call("GET", "/admin", authorizer={**USER, "role": "admin"})
        assert (status, body) == (200, {"user_id": USER_ID})
        # WHEN the stored role becomes user THEN the admin token is refused at its next call
        database["users"].update_one({"_id": USER_ID}, {"$set": {"role": "user"}})
        assert call("GET", "/admin", authorizer={**USER, "role": "admin"})[0] == 403
        # AND on other routes it acts as the user it now is
        me = call("GET", "/me", authorizer={**USER, "role": "admin"})
        assert (me[0], me[2]["admin"]) == (200, False)
        # AND a user id that is none of ours is nobody's admin
        assert (
            call("GET", "/admin", authorizer={**USER, "role": "admin", "user_id": "u1"})[0] == 403
        )
    finally:
        use_stores(app, PROCESS_STORES)


def test_each_request_logs_one_structured_json_line() -> None:
    with logged_lines() as lines:
        call("GET", "/me", authorizer=USER, headers={"x-request-id": "req-42"})
    (line,) = [line for line in lines if line["message"] == "request"]
    assert line["level"] == "INFO"
    assert line["request_id"] == "req-42"
    assert line["correlation_id"]  # API Gateway's own id, on every line of the invocation
    assert line["status"] == 200
    assert line["user_id"] == USER_ID
    assert line["path"] == "/me"
    assert line["duration_ms"] >= 0


def test_an_app_uses_the_stores_it_is_given_and_the_process_stores_otherwise() -> None:
    # GIVEN two apps, one pointed at its own database where the caller's account is an admin
    database = in_memory_database()
    database["users"].insert_one({"_id": USER_ID, "role": "admin"})
    other = create_app("other", router)
    previous = use_stores(app, Stores(database=lambda: database))
    try:
        # THEN that app's admin check reads it, and the other app still serves the process's
        assert previous is PROCESS_STORES
        assert call("GET", "/admin", authorizer={**USER, "role": "admin"})[0] == 200
        assert stores_of_app(other) is PROCESS_STORES
    finally:
        # AND putting the previous stores back takes the database away again
        assert use_stores(app, previous).database() is database
    assert stores_of_app(app) is PROCESS_STORES

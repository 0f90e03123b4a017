"""`lucid openapi`: the gateway's one OpenAPI document, generated from the template and the
functions' apps, committed beside the meta function and kept in step with both."""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from openapi_spec_validator import OpenAPIV31SpecValidator

from lucid_edge.cli import main
from lucid_edge.model import Template, Throttle
from lucid_edge.openapi import DOCUMENT, OpenApiError, build_document, render
from lucid_edge.openapi.document import METHODS, load_function_documents, unserved_operations
from lucid_edge.openapi.gateway import gateway_answers
from lucid_edge.template import load_template
from tests.edge.harness import RunningEdge
from tests.utils.cli import run_lucid, without_a_jwt_key

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "infra" / "template.yaml"
PROBLEM = "application/problem+json"
GATEWAY_MESSAGE = {"$ref": "#/components/schemas/GatewayMessage"}


@pytest.fixture(scope="module")
def template() -> Template:
    return load_template(TEMPLATE)


@pytest.fixture(scope="module")
def functions(template: Template) -> dict[str, dict[str, Any]]:
    """Each routed function's own document (`app.openapi()`)."""
    return load_function_documents(template)


@pytest.fixture(scope="module")
def document(template: Template, functions: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return build_document(template, functions)


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, item[method])
        for path, item in document["paths"].items()
        for method in METHODS
        if method in item
    ]


def _response(document: dict[str, Any], response: dict[str, Any]) -> dict[str, Any]:
    """`response`, its `$ref` to components.responses followed."""
    ref = response.get("$ref")
    if ref is None:
        return response
    found: dict[str, Any] = document["components"]["responses"][ref.rsplit("/", 1)[1]]
    return found


def test_the_committed_document_is_what_the_code_and_template_generate(
    document: dict[str, Any],
) -> None:
    # GIVEN the document the meta function serves (functions/meta/openapi.json)
    # THEN it is exactly what the template and the functions generate; if not, run
    # `lucid openapi --write`
    assert (ROOT / DOCUMENT).read_text(encoding="utf-8") == render(document)


def test_lucid_openapi_on_the_local_stage_says_nothing_of_a_jwt_key() -> None:
    # GIVEN a developer's shell on the local stage with no JWT key (the document signs nothing)
    # WHEN they print the document
    done = run_lucid("openapi", env={**without_a_jwt_key(), "STAGE": "local"}, timeout=120)
    # THEN stdout is the committed document and stderr is empty: no warning that a random JWT
    # key is used (it printed "JWT_SECRET_KEY is unset: using a random key ...")
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout == (ROOT / DOCUMENT).read_text(encoding="utf-8")


def test_the_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    errors = [error.message for error in OpenAPIV31SpecValidator(document).iter_errors()]
    assert errors == []
    assert document["openapi"] == "3.1.0"


def test_it_describes_every_route_of_the_template_and_nothing_else(
    document: dict[str, Any], template: Template
) -> None:
    described = {op["x-lucid-route"] for _, _, op in _operations(document)}
    assert described == {route.route_key for route in template.api.routes}
    for method, path, operation in _operations(document):
        route_method, route_path = operation["x-lucid-route"].split(" ", 1)
        assert path == route_path
        assert route_method in (method, "ANY")


def test_each_method_is_its_own_route_and_none_is_options(document: dict[str, Any]) -> None:
    # the template routes each method on its own (an ANY route behind the authorizer would
    # take CORS preflights away from API Gateway): no OPTIONS operation reaches a function
    paths = document["paths"]
    assert set(paths["/users/me"]) == {"get", "patch", "delete"}
    assert set(paths["/sessions"]) == {"get", "post"}
    greedy = paths["/chain/{proxy+}"]
    assert set(greedy) == {"description", "get", "post", "put", "patch", "delete"}
    assert set(paths["/chain"]) == {"get", "post"}
    assert "slashes included" in greedy["description"]
    assert set(paths["/chain/info"]) == {"get"}  # GET only: other methods go to {proxy+}


def test_what_a_method_no_route_lists_answers_is_what_the_document_says(
    gateway: RunningEdge,
) -> None:
    # GIVEN the committed document, which lists PUT on neither /users/me, /sessions/{id} nor
    # /nodes (each method is a route of its own, none is ANY)
    committed = json.loads((ROOT / DOCUMENT).read_text(encoding="utf-8"))
    description = committed["info"]["description"]
    for path in ("/users/me", "/sessions/abc", "/nodes"):
        # WHEN a client sends it to the real edge, signed in or not
        reply = gateway.client.put(path, headers={"Authorization": "Bearer x"}, json={})
        # THEN API Gateway answers 404 as for an unknown path, and the document says so
        assert (reply.status_code, reply.json()) == (404, {"message": "Not Found"})
    assert "answers API Gateway's 404" in description
    assert "405" not in description


def test_every_route_the_readme_names_is_one_the_template_serves(template: Template) -> None:
    # GIVEN every `METHOD /path` the README names (a body after the path left out)
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    named = set(re.findall(r"`((?:GET|POST|PUT|PATCH|DELETE) /[^`\s]*)", readme))
    # THEN each is a route of the template, but for the edge's own endpoint and the one the
    # README names as unrouted (its 404)
    served = {route.route_key for route in template.api.routes}
    assert named - served == {"GET /metrics", "PUT /users/me"}
    assert len(named & served) > 20


def test_an_any_route_lists_the_methods_its_function_serves(
    template: Template, functions: dict[str, dict[str, Any]]
) -> None:
    # GIVEN a template whose /users/me is one ANY route
    me = [route for route in template.api.routes if route.path == "/users/me"]
    routes = [route for route in template.api.routes if route.path != "/users/me"]
    routes.append(dataclasses.replace(me[0], method="ANY"))
    api = dataclasses.replace(template.api, routes=tuple(routes))
    # WHEN the document is built
    paths = build_document(dataclasses.replace(template, api=api), functions)["paths"]
    # THEN the path lists each method the function serves, and says what the others answer
    assert set(paths["/users/me"]) == {"description", "get", "patch", "delete"}
    assert "405" in paths["/users/me"]["description"]
    assert paths["/users/me"]["get"]["x-lucid-route"] == "ANY /users/me"


def test_paths_and_parameters_carry_the_template_s_names(document: dict[str, Any]) -> None:
    # GIVEN the users function's /users/{user_id} and the proxy's /chain/{rest:...}
    # THEN the document uses the template's /users/{id} and /chain/{proxy+}, parameters too
    text = json.dumps(document["paths"])
    for function_name in ("user_id", "session_id", '"rest"', "{rest}"):
        assert function_name not in text
    read_user = document["paths"]["/users/{id}"]["get"]
    assert [(p["name"], p["in"]) for p in read_user["parameters"]] == [("id", "path")]
    greedy = document["paths"]["/nodes/{proxy+}"]["post"]["parameters"]
    assert [(p["name"], p["in"], p["required"]) for p in greedy] == [("proxy+", "path", True)]


def test_protected_operations_need_the_bearer_token_and_public_ones_do_not(
    document: dict[str, Any], template: Template
) -> None:
    authorizer = {route.route_key: route.authorizer for route in template.api.routes}
    scheme = document["components"]["securitySchemes"]["LucidAuthorizer"]
    assert (scheme["type"], scheme["scheme"], scheme["bearerFormat"]) == ("http", "bearer", "JWT")
    for method, path, operation in _operations(document):
        name = authorizer[operation["x-lucid-route"]]
        if name is not None:
            assert operation["security"] == [{name: []}], f"{method} {path}"
        elif (method, path) == ("GET", "/auth/status"):
            # public, but reads a token when one is sent: anonymous or bearer
            assert operation["security"] == [{}, {"LucidAuthorizer": []}]
            assert "parameters" not in operation  # no Authorization parameter (OpenAPI's rule)
        else:
            assert operation["security"] == [], f"{method} {path}"


def test_operation_ids_are_unique(document: dict[str, Any]) -> None:
    ids = [operation["operationId"] for _, _, operation in _operations(document)]
    assert len(ids) == len(set(ids))
    # one per method of the proxy's greedy routes; the route's name for our functions
    assert {"read_user", "proxy_chain_get", "proxy_chain_post", "proxy_nodes_delete"} <= set(ids)


def test_every_error_is_problem_json_or_api_gateway_s_own_message(
    document: dict[str, Any],
) -> None:
    problems = {"#/components/schemas/Problem", "#/components/schemas/ValidationProblem"}
    for method, path, operation in _operations(document):
        for status, declared in operation["responses"].items():
            if status[:1] not in "45":
                continue
            content = _response(document, declared).get("content", {})
            where = f"{method} {path} {status}"
            assert content, where
            assert set(content) <= {PROBLEM, "application/json"}, where
            if PROBLEM in content:
                assert content[PROBLEM]["schema"]["$ref"] in problems, where
            if "application/json" in content:
                assert content["application/json"]["schema"] == GATEWAY_MESSAGE, where
    assert "HTTPValidationError" not in document["components"]["schemas"]


def test_api_gateway_s_own_answers_are_described_where_it_gives_them(
    document: dict[str, Any],
) -> None:
    def gateway(method: str, path: str, status: str) -> dict[str, Any] | None:
        response = document["paths"][path][method]["responses"].get(status)
        if response is None:
            return None
        media: dict[str, Any] | None = (
            _response(document, response).get("content", {}).get("application/json")
        )
        return media

    # the authorizer: no token 401, refused 403 (a function's own 401 sits beside it)
    logout_401 = gateway("post", "/auth/logout", "401")
    assert logout_401 is not None
    assert logout_401["example"] == {"message": "Unauthorized"}
    assert gateway("post", "/auth/logout", "403") is not None
    assert gateway("post", "/auth/login", "403") is None  # public: no authorizer
    # the stage throttle, an unrouted path, a failed or timed-out function
    assert gateway("get", "/health", "429") is not None
    assert gateway("get", "/users/{id}", "404") is not None
    assert gateway("get", "/health", "404") is None  # no parameter, no other path
    assert gateway("post", "/sessions", "413") is not None
    assert gateway("get", "/health", "413") is None  # no body
    for status in ("500", "503"):
        assert gateway("get", "/health", status) is not None


def test_api_gateway_s_answers_follow_the_route_s_settings(template: Template) -> None:
    # GIVEN a public route without throttling, and a protected one with its own
    api = dataclasses.replace(template.api, default_throttle=None)
    (health,) = [r for r in api.routes if r.route_key == "GET /health"]
    throttled = dataclasses.replace(
        next(r for r in api.routes if r.route_key == "POST /auth/logout"),
        throttle=Throttle(burst=1, rate=1.0),
    )
    # THEN API Gateway only fails or times out the first; the second adds the authorizer and
    # its throttle, and says the authorizer may be what failed
    quiet = gateway_answers(health, api, path_parameters=False, body=False)
    assert [a.status for a in quiet] == [500, 503]
    guarded = gateway_answers(throttled, api, path_parameters=False, body=True)
    assert [a.status for a in guarded] == [401, 403, 413, 429, 500, 503]
    assert guarded[4].when.startswith("the authorizer or function failed")


def test_function_answers_carry_the_request_id_and_rate_limit_headers(
    document: dict[str, Any],
) -> None:
    headers = document["components"]["headers"]
    assert headers["X-Request-ID"]["required"] is True
    me = document["paths"]["/users/me"]["get"]["responses"]["200"]["headers"]
    assert me["X-Request-ID"] == {"$ref": "#/components/headers/X-Request-ID"}
    assert {"X-RateLimit-Limit", "X-RateLimit-Remaining", "RateLimit", "RateLimit-Policy"} <= set(
        me
    )
    throttled = _response(document, document["paths"]["/users/me"]["get"]["responses"]["429"])
    assert "Retry-After" in throttled["headers"]
    # where API Gateway may answer instead, the function's headers cannot be required
    assert all(ref["$ref"].endswith(".optional") for ref in throttled["headers"].values()), (
        throttled["headers"]
    )
    created = document["paths"]["/sessions"]["post"]["responses"]["201"]["headers"]
    assert {"Location", "ETag", "Idempotent-Replayed"} <= set(created)


def test_every_answer_a_rate_limited_function_gives_lists_the_rate_limit_headers(
    document: dict[str, Any],
) -> None:
    # GIVEN every operation of a rate-limited function (all but the meta function's)
    limited = [
        operation
        for item in document["paths"].values()
        for method, operation in item.items()
        if method in METHODS and operation["x-lucid-function"] != "MetaFunction"
    ]
    assert len(limited) > 30
    for operation in limited:
        for status, reference in operation["responses"].items():
            response = _response(document, reference)
            if response["description"].startswith("API Gateway's own answer"):
                continue  # no function involved: none of its headers
            # THEN each answer a function gives, whatever its status, lists the limiter's
            # headers, as shared components
            headers = response["headers"]
            names = {"X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"}
            names |= {"RateLimit-Policy", "RateLimit"}
            assert names <= set(headers), (operation["operationId"], status)
            assert all("$ref" in headers[name] for name in names)


def test_functions_declare_no_route_the_template_does_not_send_them(
    template: Template, functions: dict[str, dict[str, Any]]
) -> None:
    assert unserved_operations(template, functions) == []


def test_a_route_its_function_does_not_serve_is_refused(
    template: Template, functions: dict[str, dict[str, Any]]
) -> None:
    # GIVEN the users function without its /users/{user_id}/role operation
    broken = copy.deepcopy(functions)
    del broken["UsersFunction"]["paths"]["/users/{user_id}/role"]
    # THEN the document cannot be built, naming the route and the function
    with pytest.raises(OpenApiError, match=r"'PUT /users/\{id\}/role': UsersFunction declares"):
        build_document(template, broken)
    assert unserved_operations(template, broken) == []


def test_an_operation_no_route_sends_is_reported(
    template: Template, functions: dict[str, dict[str, Any]]
) -> None:
    extra = copy.deepcopy(functions)
    extra["UsersFunction"]["paths"]["/users/{user_id}/avatar"] = {"get": {"responses": {}}}
    assert unserved_operations(template, extra) == ["UsersFunction: GET /users/{user_id}/avatar"]


def test_two_operations_with_one_id_are_refused(
    template: Template, functions: dict[str, dict[str, Any]]
) -> None:
    clashing = copy.deepcopy(functions)
    clashing["SessionsFunction"]["paths"]["/sessions"]["get"]["operationId"] = "read_me"
    with pytest.raises(
        OpenApiError, match="operationId 'read_me' of GET /sessions is also GET /users/me's"
    ):
        build_document(template, clashing)


def test_two_functions_defining_one_schema_differently_are_refused(
    template: Template, functions: dict[str, dict[str, Any]]
) -> None:
    clashing = copy.deepcopy(functions)
    clashing["SessionsFunction"]["components"]["schemas"]["User"] = {"type": "string"}
    with pytest.raises(OpenApiError, match="schema 'User' differs between UsersFunction and"):
        build_document(template, clashing)


def test_a_handler_that_is_not_a_fastapi_app_cannot_be_described(template: Template) -> None:
    # GIVEN a template routing /health to the authorizer's code, a plain Lambda handler
    authorizer = template.functions["AuthorizerFunction"]
    meta = dataclasses.replace(template.functions["MetaFunction"], code_uri=authorizer.code_uri)
    odd = dataclasses.replace(template, functions={**template.functions, "MetaFunction": meta})
    # THEN it cannot be described, and the error names the function and its handler
    with pytest.raises(OpenApiError, match=r"MetaFunction: its handler 'app\.handler' does not"):
        load_function_documents(odd)


def test_lucid_openapi_prints_the_document(capsys: pytest.CaptureFixture[str]) -> None:
    with mock.patch.dict(os.environ):  # the command exports the template's environment
        assert main(["openapi", "--template", str(TEMPLATE)]) == 0
    assert json.loads(capsys.readouterr().out)["info"]["title"] == "Lucid API Gateway"


def test_lucid_openapi_write_updates_the_meta_function_s_copy(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "infra", tmp_path / "infra")
    shutil.copytree(ROOT / "functions", tmp_path / "functions")
    (tmp_path / DOCUMENT).write_text("{}", encoding="utf-8")
    with mock.patch.dict(os.environ):
        assert (
            main(["openapi", "--template", str(tmp_path / "infra/template.yaml"), "--write"]) == 0
        )
    assert (tmp_path / DOCUMENT).read_text(encoding="utf-8") == (ROOT / DOCUMENT).read_text(
        encoding="utf-8"
    )

"""`lucid db init` against a real MongoDB wire server (the in-memory one, through pymongo)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pymongo
import pytest

from lucid.config import Settings
from lucid.store.mongo import build_database
from lucid_edge.cli import main
from lucid_edge.local import EmbeddedMongo, free_port, start_mongo_server
from tests.utils.aws import moto_server
from tests.utils.cli import run_lucid, without_a_jwt_key

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def mongo(monkeypatch: pytest.MonkeyPatch) -> Iterator[EmbeddedMongo]:
    with start_mongo_server() as server:
        database = build_database(Settings(MONGODB_URI=server.uri, MONGODB_DATABASE="dbinit"))
        monkeypatch.setattr("lucid_edge.cli_db.get_database", lambda: database)
        yield server
        database.client.close()


def test_db_init_creates_every_index_and_is_idempotent(
    mongo: EmbeddedMongo, capsys: pytest.CaptureFixture[str]
) -> None:
    # WHEN `lucid db init` runs twice
    assert main(["db", "init"]) == 0
    assert main(["db", "init"]) == 0
    out = capsys.readouterr().out
    # THEN each run says which indexes each collection has, by name
    assert out.splitlines() == 2 * [
        "dbinit.users: address_unique, role_created, created",
        "dbinit.sessions: owner_created, status",
        "dbinit.tokens: expires_ttl, family, user, revoked, signin_nonce_unique",
    ]
    # AND a second client sees the unique address index and the refresh-token TTL index
    with pymongo.MongoClient[dict[str, Any]](mongo.uri) as client:
        users = client["dbinit"]["users"].index_information()
        tokens = client["dbinit"]["tokens"].index_information()
    assert users["address_unique"]["unique"] is True
    assert tokens["expires_ttl"]["expireAfterSeconds"] == 0


def test_db_init_drops_the_index_earlier_releases_made_on_the_access_jti(
    mongo: EmbeddedMongo, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a database prepared by a release that indexed each refresh token's access jti
    with pymongo.MongoClient[dict[str, Any]](mongo.uri) as client:
        client["dbinit"]["tokens"].create_index("access_jti", name="access_jti")
    # WHEN `lucid db init` runs THEN it drops that index, which nothing reads, and says so
    assert main(["db", "init"]) == 0
    assert "dropped dbinit.tokens.access_jti (no longer used)" in capsys.readouterr().out
    with pymongo.MongoClient[dict[str, Any]](mongo.uri) as client:
        tokens = client["dbinit"]["tokens"].index_information()
    assert "access_jti" not in tokens
    assert tokens["expires_ttl"]["expireAfterSeconds"] == 0
    # AND a second run has nothing left to drop
    assert main(["db", "init"]) == 0
    assert "dropped" not in capsys.readouterr().out


def _init_with(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> int:
    """`lucid db init` on the database `settings` name, its client closed afterwards."""
    database = build_database(settings)
    monkeypatch.setattr("lucid_edge.cli_db.get_database", lambda: database)
    try:
        return main(["db", "init"])
    finally:
        database.client.close()


def test_db_init_on_a_down_database_exits_1_with_a_clear_message(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a MONGODB_URI naming a port nothing listens on
    port = free_port()
    settings = Settings(MONGODB_URI=f"mongodb://127.0.0.1:{port}/", MONGODB_TIMEOUT_MS=100)
    # WHEN `lucid db init` runs THEN it exits 1, its one line naming the server and why
    assert _init_with(monkeypatch, settings) == 1
    err = capsys.readouterr().err
    assert err.startswith(
        f"lucid db init: the database store is unavailable: 127.0.0.1:{port}: "
        "[Errno 111] Connection refused"
    )
    assert err.count("\n") == 1
    assert "Topology" not in err


def test_db_init_without_mongodb_uri_says_how_to_set_one(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN no MONGODB_URI (the layer never falls back to a store of its own)
    monkeypatch.setattr(
        "lucid_edge.cli_db.get_database", lambda: build_database(Settings(MONGODB_URI=None))
    )
    # WHEN `lucid db init` runs THEN it exits 2 naming the variable, with nothing created
    assert main(["db", "init"]) == 2
    assert "lucid db init: MONGODB_URI is unset" in capsys.readouterr().err


def test_db_init_names_a_hand_made_index_that_lacks_our_options(
    mongo: EmbeddedMongo, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN an index on the refresh tokens' expiry made by hand without a TTL (a real server
    # refuses ours beside it: the same signature, other options)
    with pymongo.MongoClient[dict[str, Any]](mongo.uri) as client:
        client["dbinit"]["tokens"].create_index("expires_at")
    # WHEN `lucid db init` runs THEN it exits 1 naming the index and how to fix it
    assert main(["db", "init"]) == 1
    err = capsys.readouterr().err
    assert "tokens: index 'expires_at_1' holds the key of 'expires_ttl'" in err
    assert "dropIndex('expires_at_1')" in err


def test_db_init_refuses_a_hand_made_unique_signin_nonce_index_that_is_not_sparse(
    mongo: EmbeddedMongo, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a unique index on the sign-in nonce made by hand, not sparse: every refresh token
    # but a sign-in's first lacks the field, so it refuses the second as a duplicate null
    with pymongo.MongoClient[dict[str, Any]](mongo.uri) as client:
        client["dbinit"]["tokens"].create_index("signin_nonce", unique=True)
    # WHEN `lucid db init` runs THEN it exits 1 naming the index and how to fix it
    assert main(["db", "init"]) == 1
    err = capsys.readouterr().err
    assert "index 'signin_nonce_1' is unique on the key of 'signin_nonce_unique' but not" in err
    assert "dropIndex('signin_nonce_1')" in err


@pytest.mark.parametrize(
    ("uri", "problem"),
    [
        ("mongodb://lucid:Pw-s3cr@t@127.0.0.1:1/lucid", "Username and password must be escaped"),
        ("mongodb://lucid:Pw-s3cret@127.0.0.1:99999/lucid", "Port must be an integer"),
        ("http://lucid:Pw-s3cret@127.0.0.1/lucid", "Invalid URI scheme"),
    ],
)
def test_db_init_with_a_malformed_uri_says_what_is_wrong_without_quoting_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], uri: str, problem: str
) -> None:
    # GIVEN a MONGODB_URI pymongo refuses (the layer builds its client from it)
    monkeypatch.setattr(
        "lucid_edge.cli_db.get_database", lambda: build_database(Settings(MONGODB_URI=uri))
    )
    # WHEN the operator runs `lucid db init` THEN it exits 2 with one line, no traceback,
    # naming the problem and never the password
    assert main(["db", "init"]) == 2
    out, err = capsys.readouterr()
    assert err.startswith("lucid db init: MONGODB_URI is not a usable MongoDB URI: " + problem)
    assert err.count("\n") == 1
    assert out == ""
    assert "Pw-s3c" not in err


def test_db_init_on_a_server_that_refuses_it_exits_1_in_one_line(
    monkeypatch: pytest.MonkeyPatch, mongo: EmbeddedMongo, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a MONGODB_URI with credentials the server refuses to sign in with (18
    # AuthenticationFailed, as a real server answers a user it does not have; 13 Unauthorized
    # would be a user without createIndex)
    uri = mongo.uri.replace("mongodb://", "mongodb://lucid:Pw-s3cret@")
    # WHEN the operator runs `lucid db init` THEN it exits 1 with one line naming the server's
    # refusal and its code, no traceback, never the password
    assert _init_with(monkeypatch, Settings(MONGODB_URI=uri, MONGODB_DATABASE="dbinit")) == 1
    err = capsys.readouterr().err
    assert err == "lucid db init: MongoDB refused it: Authentication failed. (code 18)\n"


def test_the_readmes_deploy_time_db_init_works_as_written(mongo: EmbeddedMongo) -> None:
    # GIVEN the README's `lucid db init` of "Build and deploy", and the SSM SecureString it
    # names holding the database's URI (moto's server standing in for AWS)
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    deploy = readme.split("\n## Build and deploy\n", 1)[1].split("\n## ", 1)[0]
    [line] = [
        line for line in re.findall(r"```sh\n(.*?)```", deploy, re.DOTALL) if "db init" in line
    ]
    *assignments, program, group, command = shlex.split(line)
    assert (program, group, command) == (".venv/bin/lucid", "db", "init")
    variables = dict(assignment.split("=", 1) for assignment in assignments)
    with moto_server() as aws:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("MONGODB_", "AWS_"))},
            "AWS_ENDPOINT_URL": f"http://{aws}",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
        }
        ssm = boto3.client(
            "ssm",
            endpoint_url=env["AWS_ENDPOINT_URL"],
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        ssm.put_parameter(Name=variables["MONGODB_URI_PARAM"], Type="SecureString", Value=mongo.uri)
        # WHEN it runs as written, from the repository
        done = run_lucid(group, command, env={**env, **variables}, program=ROOT / program)
    # THEN it creates the indexes in the database the functions use, and says nothing else
    assert (done.returncode, done.stderr) == (0, "")
    assert "lucid.users: address_unique" in done.stdout
    with pymongo.MongoClient[dict[str, Any]](mongo.uri) as client:
        assert client["lucid"]["users"].index_information()["address_unique"]["unique"] is True


def test_db_init_on_the_local_stage_says_nothing_of_a_jwt_key(mongo: EmbeddedMongo) -> None:
    # GIVEN a developer's shell on the local stage with no JWT key (db init signs no token)
    env = {**without_a_jwt_key(), "STAGE": "local", "MONGODB_URI": mongo.uri}
    # WHEN they run `lucid db init`
    done = run_lucid("db", "init", env=env)
    # THEN it creates the indexes and prints nothing else: no warning that a random JWT key is
    # used (it printed "JWT_SECRET_KEY is unset: using a random key for this process only")
    assert (done.returncode, done.stderr) == (0, "")
    assert "lucid.users: address_unique" in done.stdout


def test_db_init_run_by_an_operator_prints_only_its_own_line_for_a_refused_uri() -> None:
    # GIVEN an operator's shell whose MONGODB_URI pymongo refuses
    env = {**without_a_jwt_key(), "MONGODB_URI": "mongodb://lucid:Pw-s3cret@127.0.0.1:99999/lucid"}
    # WHEN they run `lucid db init` (a process of its own: its logging as the shell has it)
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from lucid_edge.cli import main; sys.exit(main())",
            "db",
            "init",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    # THEN it exits 2 with its one line: the layer's ERROR line for a function's log (logger
    # lucid.store, which the command silences) is not printed beside it
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == (
        "lucid db init: MONGODB_URI is not a usable MongoDB URI: "
        "Port must be an integer between 0 and 65535\n"
    )

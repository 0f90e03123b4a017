"""RS256/ES256 keys in Lambda, as the README's "Signing keys" section says to deploy them.

The default layer leaves `cryptography` out; the functions that hold keys (auth signs, the
authorizer verifies) get it from their own requirements.txt, which `sam build` installs into
their task root by the same make rule. Both sides are checked on built artifacts: the authorizer
with `cryptography` in its requirements verifies an ES256 token, and without it refuses to start,
naming what to add.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from bench.artifact import ROOT, Artifact, make_build, sam_build
from bench.probes import invoke_cold
from lucid.auth.keys import KeyRing
from lucid.auth.tokens import TokenService
from lucid.config import Settings
from lucid.identity import Role
from lucid_edge.local import EmbeddedRedis
from tests.utils.auth_flow import authorizer_event

BUILDS = ROOT / ".aws-sam" / "tests"
FUNCTION = "AuthorizerFunction"


@pytest.fixture(scope="module")
def es256_keys() -> tuple[str, str]:
    """A P-256 key pair as (private PEM, public PEM)."""
    key = ec.generate_private_key(ec.SECP256R1())
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public.decode()


@pytest.fixture(scope="module")
def artifact() -> Artifact:
    return sam_build()


@pytest.fixture(scope="module")
def authorizer_with_cryptography() -> Path:
    """functions/authorizer built with `cryptography` added to its requirements.txt."""
    source = BUILDS / "sources" / FUNCTION
    shutil.rmtree(source, ignore_errors=True)
    shutil.copytree(ROOT / "functions" / "authorizer", source)
    (source / "requirements.txt").write_text("cryptography>=42\n", encoding="utf-8")
    return make_build(source, FUNCTION, BUILDS / "builds")


def _es256_env(public_pem: str, redis: EmbeddedRedis) -> dict[str, str]:
    # MongoDB too: the authorizer reloads Redis's copy of the revoked sign-ins from it
    return {
        "JWT_ALGORITHM": "ES256",
        "JWT_PUBLIC_KEY": public_pem,
        "REDIS_URI": redis.uri,
        "MONGODB_URI": os.environ["MONGODB_URI"],
    }


def _token(private_pem: str) -> str:
    settings = Settings(STAGE="dev", JWT_ALGORITHM="ES256", JWT_PRIVATE_KEY=private_pem)
    service = TokenService(settings, KeyRing(settings))
    return service.issue("u1", "TMVQGm1qAQYVdetCeGRRkTWYYrLXuHK2HC", Role.USER, "s1").token


@pytest.mark.usefixtures("redis_client")
def test_the_authorizer_verifies_es256_with_cryptography_in_its_task_root(
    artifact: Artifact,
    authorizer_with_cryptography: Path,
    es256_keys: tuple[str, str],
    redis_server: EmbeddedRedis,
) -> None:
    # GIVEN the authorizer built with cryptography in its requirements, on the default layer
    private, public = es256_keys
    event = authorizer_event(f"Bearer {_token(private)}")
    # WHEN it cold starts with an ES256 public key and gets a token signed by the private key
    report: dict[str, Any] = invoke_cold(
        [authorizer_with_cryptography, artifact.layer],
        "app.handler",
        event,
        extra_env=_es256_env(public, redis_server),
    )
    # THEN it lets the caller through, with the token's claims as context
    assert report["answer"]["isAuthorized"] is True, report["answer"]
    assert report["answer"]["context"]["user_id"] == "u1"
    assert "cryptography" in report["packages"]


def test_on_the_default_layer_alone_es256_stops_the_cold_start_naming_the_package(
    artifact: Artifact, es256_keys: tuple[str, str], redis_server: EmbeddedRedis
) -> None:
    (authorizer,) = [f for f in artifact.functions if f.name == FUNCTION]
    event = authorizer_event("Bearer x.y.z")
    with pytest.raises(RuntimeError, match="need the `cryptography` package"):
        invoke_cold(
            [authorizer.task_root, artifact.layer],
            authorizer.handler,
            event,
            extra_env=_es256_env(es256_keys[1], redis_server),
        )

"""Secret values reach `lucid env-json` and `lucid localstack seed` without going on the command
line (lucid_edge.cli_secrets): from a file, standard input or a LUCID_* variable. No message
quotes them; the old `--x VALUE` still works, hidden from --help, with a warning."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lucid_edge.cli import main

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "infra" / "template.yaml"
LUCID = Path(sys.executable).parent / "lucid"  # the console script `make` installs
PASSWORD = "Pw-" + "7kQ" * 6
REDIS = f"redis://:{PASSWORD}@cache.internal:6379/0"
MONGODB = f"mongodb://lucid:{PASSWORD}x@db.internal:27017/lucid"


def env_json(output: Path, *extra: str) -> list[str]:
    return ["env-json", "--template", str(TEMPLATE), "--output", str(output), *extra]


def shown_argv(pid: int) -> bytes:
    """/proc/<pid>/cmdline, readable by every user (what `ps` prints); read once the new
    program's arguments are in place (right after the exec it can still read empty)."""
    deadline = time.monotonic() + 10
    while not (argv := Path(f"/proc/{pid}/cmdline").read_bytes()) and time.monotonic() < deadline:
        time.sleep(0.01)
    return argv


def written(output: Path) -> dict[str, str]:
    values: dict[str, str] = json.loads(output.read_text())["Parameters"]
    return values


def test_env_json_reads_the_uris_from_stdin_and_the_environment_never_from_argv(
    tmp_path: Path,
) -> None:
    # GIVEN the Redis URI piped in and the MongoDB URI in the environment, both with a password
    output = tmp_path / "env.json"
    command = [str(LUCID), *env_json(output, "--redis-uri-file", "-")]
    with subprocess.Popen(
        command,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "LUCID_MONGODB_URI": MONGODB},
        text=True,
    ) as process:
        # WHEN the command runs (waiting for its standard input), as `ps` shows it to any user
        cmdline = shown_argv(process.pid)
        out, err = process.communicate(REDIS + "\n", timeout=60)
    # THEN its argv holds neither password
    assert b"--redis-uri-file" in cmdline
    assert PASSWORD.encode() not in cmdline
    # AND the file holds both URIs as given (the piped line's newline dropped), nothing printed
    assert process.returncode == 0, err
    assert written(output)["REDIS_URI"] == REDIS
    assert written(output)["MONGODB_URI"] == MONGODB
    assert PASSWORD not in out + err


def test_a_file_wins_over_the_environment_and_the_defaults_stay(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LUCID_REDIS_URI", "redis://from-the-environment:6379/0")
    monkeypatch.delenv("LUCID_MONGODB_URI", raising=False)
    secret_file = tmp_path / "redis-uri"
    secret_file.write_text(REDIS + "\r\n")
    output = tmp_path / "env.json"
    assert main(env_json(output, "--redis-uri-file", str(secret_file))) == 0
    assert written(output)["REDIS_URI"] == REDIS
    assert written(output)["MONGODB_URI"] == "mongodb://host.docker.internal:27017/lucid"


def test_the_old_flag_works_hidden_and_warns_without_the_value(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # WHEN a script still passes the URI as an argument
    output = tmp_path / "env.json"
    assert main(env_json(output, "--redis-uri", REDIS)) == 0
    # THEN it is used, with a warning on stderr that names the safe ways and not the value
    assert written(output)["REDIS_URI"] == REDIS
    printed = capsys.readouterr()
    assert "warning: --redis-uri puts the Redis URI where other users can read it" in printed.err
    assert "--redis-uri-file or LUCID_REDIS_URI" in printed.err
    assert PASSWORD not in printed.out + printed.err
    # AND --help shows only the safe ways
    with pytest.raises(SystemExit):
        main(["env-json", "--help"])
    shown = capsys.readouterr().out
    assert "--redis-uri-file PATH" in shown
    assert "LUCID_REDIS_URI" in shown
    assert "--redis-uri " not in shown.replace("\n", " ")


@pytest.mark.parametrize(
    ("content", "arguments", "environment", "message"),
    [
        (None, [], {"LUCID_REDIS_URI": PASSWORD}, "the Redis URI from LUCID_REDIS_URI does not "
         "start with any of redis://, rediss://, unix://"),
        (f"http://u:{PASSWORD}@db/x", ["--mongodb-uri-file", "{file}"], {},
         "the MongoDB URI from --mongodb-uri-file does not start with any of mongodb://, "
         "mongodb+srv://"),
        # What the drivers refuse, which the functions would answer 503 to (lucid.store.unusable)
        (None, [], {"LUCID_REDIS_URI": f"redis://127.0.0.1:{PASSWORD}/0"},
         "the Redis URI from LUCID_REDIS_URI is refused by the functions' Redis client "
         "(ValueError): check the "
         "scheme, host and port, and that the user name and password are percent-escaped"),
        (f"mongodb://u:{PASSWORD}@x@db/lucid", ["--mongodb-uri-file", "{file}"], {},
         "the MongoDB URI from --mongodb-uri-file is refused by pymongo (InvalidURI): check "
         "the scheme, host and port, and that the user name and password are percent-escaped"),
        ("\n", ["--redis-uri-file", "{file}"], {}, "the Redis URI from --redis-uri-file is empty"),
        (None, ["--redis-uri-file", "{file}"], {},
         "cannot read the Redis URI from {file}: No such file or directory"),
        (b"\xff" + PASSWORD.encode(), ["--redis-uri-file", "{file}"], {},
         "the Redis URI in {file} is not UTF-8 text"),
        (None, ["--redis-uri-file", "-", "--mongodb-uri-file", "-"], {},
         "--redis-uri-file and --mongodb-uri-file cannot both read standard input: give one of "
         "them a file"),
    ],
)  # fmt: skip
def test_a_value_that_cannot_be_used_is_refused_without_quoting_it(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    content: str | bytes | None,
    arguments: list[str],
    environment: dict[str, str],
    message: str,
) -> None:
    secret_file = tmp_path / "secret"
    if isinstance(content, bytes):
        secret_file.write_bytes(content)
    elif content is not None:
        secret_file.write_text(content)
    for name in ("LUCID_REDIS_URI", "LUCID_MONGODB_URI"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    output = tmp_path / "env.json"
    arguments = [a.replace("{file}", str(secret_file)) for a in arguments]
    # WHEN env-json is given it THEN it fails in one line naming the source, not the value
    assert main(env_json(output, *arguments)) == 1
    printed = capsys.readouterr()
    assert printed.err == f"lucid env-json: {message.replace('{file}', str(secret_file))}\n"
    assert PASSWORD not in printed.out + printed.err
    assert not output.exists()


def test_a_value_given_twice_is_refused_by_the_parser_without_quoting_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text(REDIS)
    arguments = env_json(tmp_path / "o.json", "--redis-uri", REDIS, "--redis-uri-file", "x")
    with pytest.raises(SystemExit) as exited:
        main(arguments)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "argument --redis-uri-file: not allowed with argument --redis-uri" in err
    assert PASSWORD not in err

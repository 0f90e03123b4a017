"""The `lucid` command line: subcommands and loud start-up failures."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from lucid.auth.keys import get_key_ring
from lucid.config import get_settings
from lucid_edge import serve
from lucid_edge.cli import build_parser, main
from lucid_edge.template import load_template
from tests.edge.harness import FIXTURES

REAL_TEMPLATE = Path(__file__).resolve().parents[2] / "infra" / "template.yaml"


def test_serve_is_a_subcommand_with_its_defaults() -> None:
    args = build_parser().parse_args(["serve"])
    assert (args.host, args.port, args.workers, args.concurrency) == ("127.0.0.1", 8080, 2, 32)
    assert args.template == Path("infra/template.yaml")
    assert args.reload is False


def test_serve_help_shows_every_options_default(capsys: pytest.CaptureFixture[str]) -> None:
    # WHEN a user asks `lucid serve --help`
    with pytest.raises(SystemExit) as exited:
        main(["serve", "--help"])
    assert exited.value.code == 0
    # THEN each option's entry says its default, the parser's own (argparse wraps lines)
    options = " ".join(capsys.readouterr().out.split("options:", 1)[1].split())
    entries = {e.split(" ", 1)[0]: e for e in re.split(r" (?=--[a-z-]+ )", options)}
    defaults = build_parser().parse_args(["serve"])
    for option, default in (
        ("--template", defaults.template),
        ("--host", defaults.host),
        ("--port", defaults.port),
        ("--workers", defaults.workers),
        ("--concurrency", defaults.concurrency),
        ("--metrics-path", defaults.metrics_path),
    ):
        assert entries[option].endswith(f"(default: {default})"), entries[option]
    assert entries["--reload"].endswith("(default: off)")
    assert entries["--parameter-overrides"].endswith("(default: the template's)")


def test_the_start_check_names_the_function_and_the_setting_it_refuses(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN the environment a worker would get, with a setting the layer refuses (a copy: the
    # check exports the template's environment into it)
    monkeypatch.setattr(os, "environ", {**os.environ, "RATE_LIMIT_FAIL_MODE": "bogus"})
    get_settings.cache_clear()  # the layer reads its settings (and keys) once per process
    try:
        # WHEN the check's own process body runs on the real template THEN it fails in one line
        assert serve._start_functions(str(REAL_TEMPLATE), "{}") == 1
        assert capsys.readouterr().out == (
            "MetaFunction cannot start: 1 invalid setting: RATE_LIMIT_FAIL_MODE: must be one of "
            "open, closed (got 'bogus')\n"
        )
        # AND with the setting fixed every function starts
        monkeypatch.setattr(os, "environ", {**os.environ, "RATE_LIMIT_FAIL_MODE": "open"})
        assert serve._start_functions(str(REAL_TEMPLATE), "{}") == 0
    finally:
        get_settings.cache_clear()
        get_key_ring.cache_clear()


def test_serve_refuses_an_unsupported_template(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "t.yaml"
    bad.write_text("Resources:\n  R:\n    Type: AWS::Serverless::Api\n")
    assert main(["serve", "--template", str(bad)]) == 2
    assert "Resources.R.Type" in capsys.readouterr().err


def test_serve_refuses_a_missing_handler_and_bad_counts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    template = tmp_path / "t.yaml"
    template.write_text(
        (FIXTURES / "throttled.yaml").read_text().replace("functions/faulty/", str(tmp_path))
    )
    assert main(["serve", "--template", str(template)]) == 2
    assert "FaultyFunction.Properties.Handler: no app.py" in capsys.readouterr().err
    throttled = str(FIXTURES / "throttled.yaml")
    assert main(["serve", "--template", throttled, "--workers", "0"]) == 2
    assert main(["serve", "--template", throttled, "--parameter-overrides", "X"]) == 2


def test_serve_refuses_a_metrics_path_that_would_hide_a_route(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # GIVEN the edge's own metrics endpoint asked to sit on a template route THEN it refuses
    throttled = str(FIXTURES / "throttled.yaml")
    assert main(["serve", "--template", throttled, "--metrics-path", "/own"]) == 2
    assert "a template route answers GET /own" in capsys.readouterr().err
    assert build_parser().parse_args(["serve"]).metrics_path == "/metrics"


def test_no_subcommand_is_a_usage_error() -> None:
    with pytest.raises(SystemExit):
        main([])


def test_the_served_url_names_a_reachable_address() -> None:
    with serve.listen("127.0.0.1", 0) as sock:
        port = sock.getsockname()[1]
        assert serve.served_url(sock) == f"http://127.0.0.1:{port}"
        # The same port again: refused, naming it.
        with pytest.raises(serve.PortInUseError, match=f"127.0.0.1 port {port}"):
            serve.listen("127.0.0.1", port)
    with serve.listen("0.0.0.0", 0) as sock:
        assert serve.served_url(sock).startswith("http://127.0.0.1:")


@pytest.mark.parametrize(
    ("shell", "overrides", "follows"),
    [
        (None, {}, True),  # the template's default names no served address: replaced
        ("https://api.lucid.example", {}, False),  # chosen in the shell
        (None, {"AuthServiceUrl": "https://api.lucid.example"}, False),  # chosen by override
        (None, {"LogLevel": "DEBUG"}, True),  # other overrides change nothing
    ],
)
def test_the_sign_in_url_follows_the_edge_unless_someone_chose_one(
    monkeypatch: pytest.MonkeyPatch, shell: str | None, overrides: dict[str, str], follows: bool
) -> None:
    if shell is None:
        monkeypatch.delenv("AUTH_SERVICE_URL", raising=False)
    else:
        monkeypatch.setenv("AUTH_SERVICE_URL", shell)
    template = load_template(REAL_TEMPLATE, overrides)
    assert serve.service_url_is_default(template, overrides) is follows


@pytest.mark.parametrize(
    ("arguments", "code", "message"),
    [
        (["routes", "--template", "{tmp}/missing.yaml"], 2,
         "lucid routes: cannot read template {tmp}/missing.yaml: "),
        (["routes", "--template", "{tmp}/list.yaml"], 2,
         "lucid routes: template {tmp}/list.yaml is not a mapping"),
        (["openapi", "--template", "{tmp}/missing.yaml"], 2,
         "lucid openapi: cannot read template {tmp}/missing.yaml: "),
        (["requirements", "--pyproject", "{tmp}/missing.toml"], 2,
         "lucid requirements: cannot read {tmp}/missing.toml: No such file or directory"),
        (["requirements", "--pyproject", "{tmp}/list.yaml"], 2,
         "lucid requirements: {tmp}/list.yaml is not usable: "),
        (["requirements", "--pyproject", "{tmp}/empty.toml"], 2,
         "lucid requirements: {tmp}/empty.toml declares no [project] dependencies"),
        (["keygen", "--out", "{tmp}/list.yaml/key"], 1,
         "lucid: cannot write the key file {tmp}/list.yaml/key: {tmp}/list.yaml is a file, not a "
         "folder"),
        (["keygen", "--out", "{tmp}/list.yaml/deeper/key"], 1,
         "lucid: cannot write the key file {tmp}/list.yaml/deeper/key: Not a directory"),
        (["env-json", "--template", str(REAL_TEMPLATE), "--output", "{tmp}/list.yaml/env.json"], 1,
         "lucid env-json: cannot write {tmp}/list.yaml/env.json: {tmp}/list.yaml is a file, not "
         "a folder"),
    ],
)  # fmt: skip
def test_a_command_given_a_bad_file_says_so_in_one_line(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    arguments: list[str],
    code: int,
    message: str,
) -> None:
    # GIVEN files a command cannot use: missing, a YAML list, a TOML file without [project]
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    (tmp_path / "empty.toml").write_text("[tool]\n")
    # WHEN the operator runs the command on one
    status = main([a.replace("{tmp}", str(tmp_path)) for a in arguments])
    # THEN it exits non-zero with one line naming the file and the problem, no traceback
    err = capsys.readouterr().err
    assert status == code
    assert err.startswith(message.replace("{tmp}", str(tmp_path)))
    assert err.count("\n") == 1


@pytest.mark.parametrize("port", ["65536", "-1", "http"])
def test_serve_refuses_a_port_that_is_not_one(
    capsys: pytest.CaptureFixture[str], port: str
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["serve", "--port", port])
    assert exited.value.code == 2
    assert f"argument --port: '{port}' is not a port (0-65535)" in capsys.readouterr().err


def test_a_reader_that_leaves_early_ends_the_command_quietly() -> None:
    # GIVEN `lucid routes` writing into a pipe whose reader has already gone (`lucid routes |
    # head -1`, where head exits after its line)
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess.run(
            [str(Path(sys.executable).with_name("lucid")), "routes"],
            stdout=write_end,
            stderr=subprocess.PIPE,
            cwd=REAL_TEMPLATE.parents[1],
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        os.close(write_end)
    # THEN it stops with a failure status and no traceback, as a Unix tool does
    assert (done.returncode, done.stderr) == (1, "")

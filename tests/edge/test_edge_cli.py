"""The `lucid` command line: subcommands and loud start-up failures."""

from __future__ import annotations

from pathlib import Path

import pytest

from lucid_edge.cli import build_parser, main
from tests.edge.harness import FIXTURES


def test_serve_is_a_subcommand_with_its_defaults() -> None:
    args = build_parser().parse_args(["serve"])
    assert (args.host, args.port, args.workers, args.concurrency) == ("127.0.0.1", 8080, 2, 4)
    assert args.template == Path("infra/template.yaml")
    assert args.reload is False


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


def test_no_subcommand_is_a_usage_error() -> None:
    with pytest.raises(SystemExit):
        main([])

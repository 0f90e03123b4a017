"""`--reload`: a changed function answers with its new code without restarting the edge."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from tests.edge.harness import FIXTURES, running_edge

pytestmark = pytest.mark.e2e

TEMPLATE = """\
Transform: AWS::Serverless-2016-10-31
Resources:
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      Runtime: python3.11
      CodeUri: fn/
      Handler: app.handler
      Timeout: 1
      Events:
        Hello:
          Type: HttpApi
          Properties: {Method: GET, Path: /hello}
"""


def test_changed_function_code_is_served_without_restart(tmp_path: Path) -> None:
    shutil.copytree(FIXTURES / "functions" / "faulty", tmp_path / "fn")
    (tmp_path / "template.yaml").write_text(TEMPLATE)
    with running_edge(tmp_path / "template.yaml", reload=True) as edge:
        assert edge.client.get("/hello").text == "faulty-app"
        source = tmp_path / "fn" / "app.py"
        source.write_text(source.read_text().replace('"faulty-app"', '"new code here"'))
        deadline = time.monotonic() + 5
        while edge.client.get("/hello").text != "new code here":
            assert time.monotonic() < deadline, "the edge did not reload the function"
            time.sleep(0.1)

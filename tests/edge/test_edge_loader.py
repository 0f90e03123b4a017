"""Handlers load from CodeUri + Handler, each function isolated from the others' modules."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from lucid_edge.loader import HandlerLoadError, Reloader, load_function_module, load_handler
from tests.edge.harness import FIXTURES

FUNCTIONS = FIXTURES / "functions"


def _event(path: str) -> dict[str, object]:
    return {"rawPath": path}


def test_two_functions_named_app_load_side_by_side() -> None:
    # GIVEN two function folders that both hold a module called `app`
    echo = load_handler(FUNCTIONS / "echo", "app.handler")
    faulty = load_handler(FUNCTIONS / "faulty", "app.handler")
    # THEN each keeps its own module and neither leaks into sys.modules
    assert echo.modules["app"] is not faulty.modules["app"]
    assert "app" not in sys.modules
    assert faulty.handler(_event("/x/other"), None)["body"] == "faulty-app"
    assert hasattr(echo.modules["app"], "app")  # the FastAPI app, not the faulty module
    # AND the layer stays shared: the echo app's fastapi is the process's fastapi
    assert echo.modules["app"].FastAPI is sys.modules["fastapi"].FastAPI


def test_a_module_of_the_same_name_elsewhere_is_restored() -> None:
    placeholder = type(sys)("app")
    sys.modules["app"] = placeholder
    try:
        module = load_function_module(FUNCTIONS / "faulty", "app")
        assert module is not placeholder
        assert sys.modules["app"] is placeholder
    finally:
        del sys.modules["app"]


@pytest.mark.parametrize(
    ("code_uri", "handler", "message"),
    [
        (FUNCTIONS / "missing", "app.handler", "is not a folder"),
        (FUNCTIONS / "faulty", "nothing.handler", "cannot import 'nothing'"),
        (FUNCTIONS / "faulty", "app.missing", "'missing' is not callable"),
        (FUNCTIONS / "faulty", "app._SIX_MB", "'_SIX_MB' is not callable"),
    ],
)
def test_bad_handlers_fail_loudly(code_uri: Path, handler: str, message: str) -> None:
    with pytest.raises(HandlerLoadError, match=message):
        load_handler(code_uri, handler)


def test_reload_picks_up_changed_code_and_survives_a_broken_edit(tmp_path: Path) -> None:
    code = tmp_path / "fn"
    shutil.copytree(FUNCTIONS / "faulty", code)
    function = load_handler(code, "app.handler")
    reloader = Reloader([function])
    assert reloader.check_once() == []
    assert not function.changed()
    source = code / "app.py"
    source.write_text(source.read_text().replace('"faulty-app"', '"reloaded-app!"'))
    assert reloader.check_once() == [function]
    assert function.handler(_event("/x/y"), None)["body"] == "reloaded-app!"
    # A syntax error keeps the previous code serving.
    source.write_text("def handler(:\n")
    assert reloader.check_once() == []
    assert function.handler(_event("/x/y"), None)["body"] == "reloaded-app!"
    reloader.start()
    reloader.stop()

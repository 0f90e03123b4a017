"""monitoring/: the Prometheus configuration, alert rules and Grafana dashboard, checked by the
real promtool (Debian's `prometheus` package, which `make test` installs) and against what the
edge exports."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import yaml

from tests.monitoring.exports import (
    MONITORING,
    alert_rules,
    dashboard_expressions,
    exported_names,
    metric_names,
)

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None,
    reason="promtool missing: Debian's prometheus package could not be installed "
    "(`make test` runs apt-get install prometheus; see its output)",
)


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run(
        [PROMTOOL, *args], cwd=MONITORING, capture_output=True, text=True, timeout=60, check=False
    )


@needs_promtool
def test_promtool_accepts_the_configuration_and_its_rules() -> None:
    config = promtool("check", "config", "prometheus.yml")
    assert config.returncode == 0, config.stdout + config.stderr
    assert "1 rule files found" in config.stdout
    rules = promtool("check", "rules", "alerts.yml")
    assert rules.returncode == 0, rules.stdout + rules.stderr
    assert f"{len(alert_rules())} rules found" in rules.stdout


@needs_promtool
def test_every_alert_passes_its_unit_tests() -> None:
    result = promtool("test", "rules", "tests/alerts_test.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_has_a_case_that_fires_it_and_one_that_stays_quiet() -> None:
    tests = yaml.safe_load((MONITORING / "tests" / "alerts_test.yml").read_text())["tests"]
    cases = [case for test in tests for case in test["alert_rule_test"]]
    for rule in alert_rules():
        name = rule["alert"]
        mine = [case for case in cases if case["alertname"] == name]
        assert any(case["exp_alerts"] for case in mine), f"{name}: nothing shows it firing"
        assert any(not case["exp_alerts"] for case in mine), f"{name}: nothing shows it quiet"


def test_the_scrape_target_is_the_edge_make_run_starts() -> None:
    config = yaml.safe_load((MONITORING / "prometheus.yml").read_text())
    (job,) = config["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    assert job["static_configs"] == [{"targets": ["127.0.0.1:8080"]}]  # the Makefile's HOST:PORT


def test_every_metric_the_rules_and_the_dashboard_read_is_one_the_edge_exports() -> None:
    exported = exported_names()
    queries = [(rule["alert"], rule["expr"]) for rule in alert_rules()]
    queries += list(dashboard_expressions())
    for where, expression in queries:
        names = metric_names(expression)
        assert names, f"{where}: reads no metric of the edge: {expression}"
        assert names <= exported, f"{where}: {sorted(names - exported)} not exported"


def test_the_check_itself_tells_a_missing_metric() -> None:
    # GIVEN an expression naming a series the edge does not export THEN it is told apart
    assert metric_names("rate(lucid_requests_totl[1m])") - exported_names() == {
        "lucid_requests_totl"
    }

"""A real Prometheus (Debian's package) scraping a running edge with monitoring/'s alert rules,
and its HTTP API, for the end-to-end tests."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from lucid_edge.local import free_port
from tests.monitoring.exports import MONITORING

PROMETHEUS = shutil.which("prometheus")
WAIT_SECONDS = 30.0


class Prometheus:
    """Prometheus's HTTP API."""

    def __init__(self, url: str) -> None:
        self.url = url

    def get(self, path: str, **params: str) -> Any:
        response = httpx.get(self.url + path, params=params, timeout=5)
        response.raise_for_status()
        body = response.json()
        assert body["status"] == "success", body
        return body["data"]

    def value(self, query: str) -> float | None:
        """The single value of an instant query (None while it has none)."""
        result = self.get("/api/v1/query", query=query)["result"]
        return float(result[0]["value"][1]) if result else None

    def eventually(self, query: str, accept: Any = lambda v: True) -> float:
        """Poll `query` until it has a value `accept` takes (scrapes come every second)."""
        deadline = time.monotonic() + WAIT_SECONDS
        while time.monotonic() < deadline:
            value = self.value(query)
            if value is not None and value == value and accept(value):  # NaN != NaN
                return value
            time.sleep(0.5)
        raise AssertionError(f"{query}: last value {self.value(query)}")


@contextmanager
def running_prometheus(edge_url: str, scrape_interval: str = "1s") -> Iterator[Prometheus]:
    """Prometheus scraping `edge_url` (every second unless told) with the alert rules loaded
    (evaluated every second); skips the test where the package could not be installed."""
    if PROMETHEUS is None:
        pytest.skip(
            "prometheus missing: Debian's prometheus package could not be installed "
            "(`make test` runs apt-get install prometheus; see its output)"
        )
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="lucid-prometheus-") as tmp:
        # monitoring/prometheus.yml with the test edge's address and a faster scrape
        config = yaml.safe_load((MONITORING / "prometheus.yml").read_text())
        config["global"] = {"scrape_interval": scrape_interval, "evaluation_interval": "1s"}
        config["rule_files"] = [str(MONITORING / "alerts.yml")]
        config["scrape_configs"][0]["static_configs"] = [{"targets": [edge_url[len("http://") :]]}]
        (Path(tmp) / "prometheus.yml").write_text(yaml.safe_dump(config))
        with open(Path(tmp) / "prometheus.log", "wb") as log:
            process = subprocess.Popen(
                [
                    PROMETHEUS,
                    f"--config.file={tmp}/prometheus.yml",
                    f"--storage.tsdb.path={tmp}/data",
                    f"--web.listen-address=127.0.0.1:{port}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            try:
                url = f"http://127.0.0.1:{port}"
                deadline = time.monotonic() + WAIT_SECONDS
                while True:
                    assert process.poll() is None, (Path(tmp) / "prometheus.log").read_text()
                    try:
                        if httpx.get(url + "/-/ready", timeout=1).status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    assert time.monotonic() < deadline, "prometheus did not get ready"
                    time.sleep(0.2)
                yield Prometheus(url)
            finally:
                process.terminate()
                process.wait(timeout=15)

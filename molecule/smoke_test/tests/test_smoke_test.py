"""What the smoke_test role promises: a pass when the host serves the expected release, a
failure naming the failed check otherwise, and no change on the host."""

from __future__ import annotations

import json

import pytest
from molecule_helpers import ephemeral_dir

testinfra_hosts = ["app"]


@pytest.fixture
def results(host) -> dict:
    path = ephemeral_dir() / f"smoke-{host.backend.get_hostname()}.json"
    return json.loads(path.read_text())


def _checks(result: dict) -> dict[str, dict]:
    return {check["name"]: check for check in result["checks"]}


def _version(host) -> str:
    return "1.0.0" if host.backend.get_hostname().startswith("blue") else "1.1.0"


def test_the_deployed_release_passes(host, results: dict) -> None:
    result = results["pass"]
    assert result["result"] == "passed", result
    checks = _checks(result)
    assert list(checks) == ["health", "version", "root page", "latency"]
    assert all(check["ok"] for check in checks.values()), checks
    assert 0 <= int(result["latency_ms"]) <= 2000
    assert "(5 answered 200; budget 2000 ms)" in checks["latency"]["detail"]


def test_a_wrong_version_fails_only_the_version_check(host, results: dict) -> None:
    result = results["wrong_version"]
    assert result["result"] == "failed"
    checks = _checks(result)
    assert checks["health"]["ok"] is True
    assert checks["version"]["ok"] is False
    assert checks["version"]["detail"] == f"expected 9.9.9, got {_version(host)}"


def test_an_unreachable_app_fails_the_health_check(results: dict) -> None:
    result = results["no_app"]
    assert result["result"] == "failed"
    checks = _checks(result)
    assert checks["health"]["ok"] is False
    assert "did not answer 200" in checks["health"]["detail"]
    assert checks["version"]["ok"] is False
    assert checks["latency"]["ok"] is False
    assert "(0 answered 200;" in checks["latency"]["detail"]


def test_a_failure_fails_the_host_by_default(results: dict) -> None:
    assert results["raised"] is True


def test_the_smoke_test_changed_nothing(host) -> None:
    assert host.service("app").is_running
    release = json.loads(host.file("/srv/app/release.json").content_string)
    assert release["version"] == _version(host)
    assert release["run_id"] == "molecule-prepare"

"""The quick benchmark (1 host per pool) end to end, as CI runs it: it must keep working and
turnout must drop no request across its deploy and rollback. Correctness only, never timing.

Its own lab: TURNOUT_TEST_BENCH_LAB / TURNOUT_TEST_BENCH_SUBNET (default 'tq' on
10.231.19.0/24), so it runs beside the session lab.
"""

from __future__ import annotations

import json
import os

import pytest

from tests.conftest import invoke, require_lab_support
from turnout import bench

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def quick_results(tmp_path_factory):
    require_lab_support()
    out = tmp_path_factory.mktemp("bench")
    proc = invoke("bench", "--quick", "--output", str(out),
                  "--name", os.environ.get("TURNOUT_TEST_BENCH_LAB", "tq"),
                  "--subnet", os.environ.get("TURNOUT_TEST_BENCH_SUBNET", "10.231.19.0/24"),
                  timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    files = sorted(out.glob("*-quick.json"))
    assert len(files) == 1, list(out.iterdir())
    return files[0], json.loads(files[0].read_text())


def test_results_file_is_valid_with_its_summary_and_plot(quick_results):
    path, data = quick_results
    assert bench.validate_results(data) == []
    assert data["quick"] is True and data["sizes"] == [1]
    assert path.with_suffix(".md").read_text().startswith("# turnout benchmark")
    assert path.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_turnout_drops_no_request_across_deploy_and_rollback(quick_results):
    _, data = quick_results
    for action in ("deploy", "rollback"):
        counted = data["load"][action]["load"]
        assert counted["requests"] > 0, counted
        assert counted["failed"] == 0, counted
    assert data["flip"]["failed"] == 0, data["flip"]


def test_baselines_ran_on_the_same_hosts(quick_results):
    _, data = quick_results
    for name in ("inplace", "rolling"):
        assert data["baselines"][name]["rc"] == 0, data["baselines"][name]
        assert data["baselines"][name]["load"]["requests"] > 0

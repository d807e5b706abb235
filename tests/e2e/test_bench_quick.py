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
    # the rollback recorded when traffic reached the old pool, inside the command's run
    rollback = data["load"]["rollback"]
    assert 0 < rollback["traffic_moved_s"] < rollback["seconds"], rollback


def test_baselines_ran_on_the_same_hosts(quick_results):
    _, data = quick_results
    for name in ("inplace", "rolling"):
        assert data["baselines"][name]["rc"] == 0, data["baselines"][name]
        assert data["baselines"][name]["load"]["requests"] > 0


def test_deploy_cost_is_counted_per_host_and_per_cgroup(quick_results):
    """The cost model's inputs are real counts: the target host ran tasks and got SSH commands
    and an upload, the controller's and the hosts' cgroups used CPU, the ansible-playbook
    process reported its own CPU (a part of the controller's)."""
    _, data = quick_results
    (row,) = data["deploy_scaling"]
    assert row["rc"] == 0 and row["hosts_per_pool"] == 1
    (target,) = row["tasks_by_host"]
    assert row["tasks_by_host"][target] == row["tasks_per_target_host"] > 0
    assert row["ssh_by_host"][target]["ssh"] == row["ssh_per_target_host"] > 0
    assert 0 < row["ssh_by_host"][target]["module"] == row["modules_per_target_host"] \
        <= row["ssh_per_target_host"]
    assert row["ssh_by_host"][target]["sftp"] >= 1  # the artifact went up
    # the deploy path's budget per target host (read, stage, activate; the stage probes for
    # the artifact first): every task run here is paid on every host of a large fleet, so a
    # new one must earn its place (docs/performance.md)
    assert row["tasks_per_target_host"] <= 3, row["first_target_tasks"]
    assert row["modules_per_target_host"] <= 4, row["ssh_by_host"][target]
    assert row["controller_cpu_s"] > 0 and row["lab_cpu_s"] > 0 and row["target_hosts_cpu_s"] > 0
    assert 0 < row["main_cpu_s"] < row["controller_cpu_s"]
    assert data["scaling_model"]["tasks_per_target_host"] == row["tasks_per_target_host"]
    assert data["scaling_model"]["projection"] == []  # one size: nothing to fit

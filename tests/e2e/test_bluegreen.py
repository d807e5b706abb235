"""The whole story on the lab, as a user runs it: deploy, deploy again, roll back, a broken
release, --check, reloads, bad input — with a concurrent client counting every response.

Tests in this module run in order and build on each other (one fleet, one history).
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from datetime import datetime
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO, invoke
from turnout.haproxy import parse_show_stat
from turnout.lab.config import ssh_options
from turnout.probe import TrafficProbe

pytestmark = pytest.mark.e2e

V1, V2, BROKEN = "1.0.0-e2e", "2.0.0-e2e", "3.0.0-e2e"
LB_PORT = 80


@pytest.fixture(scope="module")
def fleet(lab):
    """A provisioned lab with the three test artifacts built."""
    for version, extra in ((V1, []), (V2, []), (BROKEN, ["--broken", "unhealthy"])):
        invoke("build", "--version", version, *extra, check=True)
    invoke("provision", "--env", lab.env_name, env=lab.environ, check=True)
    return lab


def lb_address(lab) -> str:
    return lab.config.host("lb1").address


def ssh(lab, host: str, command: str, timeout: float = 30) -> str:
    address = lab.config.host(host).address
    proc = subprocess.run(["ssh", *ssh_options(lab.config), f"root@{address}", command],
                          capture_output=True, text=True, timeout=timeout, check=False)
    assert proc.returncode == 0, f"{host}: {command}: {proc.stderr}"
    return proc.stdout


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as response:
        assert response.status == 200
        return json.loads(response.read())


def lb_versions(lab, count: int = 20) -> set[str]:
    """Versions reported by `count` fresh requests through the LB (each must be a 200)."""
    return {get_json(f"http://{lb_address(lab)}:{LB_PORT}/version")["version"]
            for _ in range(count)}


def host_version(lab, host: str) -> str:
    return get_json(f"http://{lab.config.host(host).address}:8080/version")["version"]


def manifest(lab) -> dict:
    return yaml.safe_load((lab.env_dir / "manifest.yml").read_text())


def deploy(lab, version: str, *extra: str):
    return invoke("deploy", "--env", lab.env_name, "--version", version, *extra,
                  env=lab.environ)


def snapshot(lab) -> dict[str, str]:
    """Everything a deploy could change: manifest bytes, each host's release, every LB's map
    and its copy of the fleet's release state."""
    path = lab.env_dir / "manifest.yml"
    state = {"manifest": path.read_text() if path.exists() else "<absent>"}
    for host in ("blue1", "blue2", "green1", "green2"):
        state[host] = ssh(lab, host, "cat /srv/app/release.json 2>/dev/null; "
                          "readlink /srv/app/current; ls /srv/app/releases 2>/dev/null; "
                          "systemctl show app.service -p ActiveEnterTimestamp,MainPID")
    for lb in (h.name for h in lab.config.hosts() if h.group == "lb"):
        state[lb] = ssh(lab, lb, "cat /etc/haproxy/pool.map; md5sum /etc/haproxy/haproxy.cfg;"
                        " echo 'show map /etc/haproxy/pool.map' | "
                        "socat stdio /run/haproxy/admin.sock; "
                        "cat /var/lib/turnout/fleet-state.json 2>/dev/null || true")
    return state


def test_check_on_empty_fleet_plans_blue_and_changes_nothing(fleet):
    before = snapshot(fleet)
    proc = deploy(fleet, V1, "--check")
    assert proc.returncode == 0, proc.stderr
    assert "empty fleet" in proc.stdout and "stage on       blue: blue1, blue2" in proc.stdout
    assert snapshot(fleet) == before


def test_first_deploy_goes_live_on_blue(fleet):
    proc = deploy(fleet, V1)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert lb_versions(fleet) == {V1}
    data = manifest(fleet)
    assert data["live_pool"] == "blue"
    assert data["pools"]["blue"]["version"] == V1
    assert data["history"][-1]["action"] == "deploy"
    assert data["history"][-1]["result"] == "success"


def test_second_deploy_flips_to_green_under_load_with_zero_failures(fleet):
    with TrafficProbe(lb_address(fleet), LB_PORT, workers=4, max_seconds=600) as probe:
        probe.wait_for(50)
        proc = deploy(fleet, V2)
        probe.wait_for(probe.result.total + 50)
    result = probe.result
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert result.failures == [], result.summary()
    assert set(result.versions) == {V1, V2}, result.summary()  # the flip happened under load
    assert lb_versions(fleet) == {V2}
    # the old pool is still warm with the previous release
    assert host_version(fleet, "blue1") == V1 and host_version(fleet, "blue2") == V1
    data = manifest(fleet)
    assert data["live_pool"] == "green" and data["pools"]["blue"]["version"] == V1
    entry = data["history"][-1]
    assert entry["from"]["version"] == V1 and entry["to"]["version"] == V2
    assert set(entry["smoke"]) == {"green1", "green2"}
    assert all(s["result"] == "passed" for s in entry["smoke"].values())


def test_check_leaves_manifest_hosts_and_lb_byte_for_byte_unchanged(fleet):
    before = snapshot(fleet)
    proc = deploy(fleet, BROKEN, "--check")
    assert proc.returncode == 0, proc.stderr
    assert "stage on       blue: blue1, blue2" in proc.stdout
    assert "live pool      green" in proc.stdout and "from version   " + V2 in proc.stdout
    assert snapshot(fleet) == before


def test_deploying_the_live_version_does_nothing(fleet):
    before = snapshot(fleet)
    proc = deploy(fleet, V2)
    assert proc.returncode == 0, proc.stderr
    assert "already live" in proc.stdout + proc.stderr
    after = snapshot(fleet)
    for key in before:
        if key != "manifest":
            assert after[key] == before[key], key


def lbs(lab) -> list[str]:
    return [h.name for h in lab.config.hosts() if h.group == "lb"]


def server_status(lab, lb: str, backend: str, server: str) -> str | None:
    stats = parse_show_stat(ssh(lab, lb, "echo 'show stat' | socat stdio /run/haproxy/admin.sock"))
    return (((stats.get("servers") or {}).get(backend) or {}).get(server) or {}).get("status")


def wait_status(lab, backend: str, server: str, up: bool, deadline_s: float = 30) -> None:
    """Poll every LB's show stat until ``server`` is UP there (or, ``up=False``, not UP)."""
    deadline = time.monotonic() + deadline_s
    while True:
        seen = {lb: server_status(lab, lb, backend, server) for lb in lbs(lab)}
        if all((status == "UP") == up for status in seen.values()):
            return
        assert time.monotonic() < deadline, f"{backend}/{server} still {seen}"
        time.sleep(0.5)


def rollback_under_load(fleet):
    """`invoke rollback` under the probe's load through the LB: (the process, what it saw)."""
    with TrafficProbe(lb_address(fleet), LB_PORT, workers=4, max_seconds=600) as probe:
        probe.wait_for(50)
        proc = invoke("rollback", "--env", fleet.env_name, env=fleet.environ)
        probe.wait_for(probe.result.total + 50)
    return proc, probe.result


def test_rollback_flips_back_under_load_with_zero_failures(fleet):
    """The quick check from the LBs: no full smoke, traffic moved and the instant recorded."""
    proc, result = rollback_under_load(fleet)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert result.failures == [], result.summary()
    assert lb_versions(fleet) == {V1}
    data = manifest(fleet)
    assert data["live_pool"] == "blue"
    entry = data["history"][-1]
    assert entry["action"] == "rollback" and entry["result"] == "success"
    assert entry["check"] == "quick"
    moved = datetime.fromisoformat(entry["traffic_moved_at"])
    assert datetime.fromisoformat(entry["started_at"]).timestamp() - 1 <= moved.timestamp() \
        <= datetime.fromisoformat(entry["finished_at"]).timestamp() + 1, entry
    # what the quick check proved, per idle host: UP on every LB and answering the release
    assert set(entry["smoke"]) == {"blue1", "blue2"}
    for smoke in entry["smoke"].values():
        assert smoke["result"] == "passed"
        assert {c["name"] for c in smoke["checks"]} >= {"up", "version"}


def test_a_refused_quick_check_falls_back_to_the_full_smoke_test(fleet):
    """An idle host whose app is stopped: the quick check refuses, the full smoke test decides
    and refuses too (no flip). A release map that disagrees: the quick check refuses, the full
    smoke test passes and the rollback flips."""
    proc = deploy(fleet, V2)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert lb_versions(fleet) == {V2}
    ssh(fleet, "blue1", "systemctl stop app.service")
    try:
        wait_status(fleet, "be_blue", "blue1", up=False)
        refused, result = rollback_under_load(fleet)
        out = refused.stdout + refused.stderr
        assert refused.returncode == 1, out
        assert "Traceback" not in refused.stderr
        assert result.failures == [], result.summary()
        assert set(result.versions) == {V2}, result.summary()
        assert lb_versions(fleet) == {V2}
        entry = manifest(fleet)["history"][-1]
        assert (entry["action"], entry["result"], entry["phase"]) == ("rollback", "failed",
                                                                       "smoke"), entry
        assert entry["check"] == "full" and "traffic_moved_at" not in entry
        assert entry["smoke"]["blue1"]["result"] == "failed"
        assert entry["smoke"]["blue2"]["result"] == "passed"  # the full smoke test ran
    finally:
        ssh(fleet, "blue1", "systemctl start app.service")
    wait_status(fleet, "be_blue", "blue1", up=True)
    for lb in lbs(fleet):
        ssh(fleet, lb, "echo 'set map /etc/haproxy/release.map be_blue 0.0.1-stale' | "
                       "socat stdio /run/haproxy/admin.sock")
    proc, result = rollback_under_load(fleet)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert result.failures == [], result.summary()
    assert lb_versions(fleet) == {V1}
    entry = manifest(fleet)["history"][-1]
    assert (entry["action"], entry["result"], entry["check"]) == ("rollback", "success", "full")
    assert entry["traffic_moved_at"]
    assert all(s["result"] == "passed" for s in entry["smoke"].values())
    assert {c["name"] for c in entry["smoke"]["blue1"]["checks"]} >= {"health", "latency"}


def test_broken_release_never_gets_traffic_and_is_recorded(fleet):
    with TrafficProbe(lb_address(fleet), LB_PORT, workers=4, max_seconds=600) as probe:
        probe.wait_for(50)
        proc = deploy(fleet, BROKEN)
        probe.wait_for(probe.result.total + 50)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert probe.result.failures == [], probe.result.summary()
    assert set(probe.result.versions) == {V1}, probe.result.summary()
    assert lb_versions(fleet) == {V1}
    data = manifest(fleet)
    assert data["live_pool"] == "blue"
    entry = data["history"][-1]
    assert (entry["action"], entry["result"], entry["phase"]) == ("deploy", "failed", "smoke")
    assert entry["to"]["version"] == BROKEN
    assert all(s["result"] == "failed" for s in entry["smoke"].values())
    assert set(entry["smoke"]) == {"green1", "green2"}
    # the report shows the idle hosts' state: they run the broken release, smoke failed
    report = invoke("report", "--env", fleet.env_name, "--format", "json", env=fleet.environ)
    hosts = {h["host"]: h for h in json.loads(report.stdout)["hosts"]}
    assert hosts["green1"]["version"] == BROKEN and hosts["green1"]["role"] == "idle"
    assert "failed" in str(hosts["green1"]["smoke"])


def test_reload_and_restart_of_haproxy_keep_traffic_on_the_live_pool(fleet):
    assert lb_versions(fleet) == {V1}
    ssh(fleet, "lb1", "systemctl reload haproxy")
    assert lb_versions(fleet) == {V1}
    ssh(fleet, "lb1", "systemctl restart haproxy")
    # after a restart HAProxy re-checks servers; poll until it serves again (deadline)
    import time
    deadline = time.monotonic() + 30
    while True:
        try:
            assert lb_versions(fleet, 5) == {V1}
            break
        except (OSError, AssertionError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    assert lb_versions(fleet) == {V1}


def test_status_and_html_report(fleet, tmp_path):
    proc = invoke("status", "--env", fleet.env_name, env=fleet.environ)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for host in ("blue1", "blue2", "green1", "green2"):
        assert host in proc.stdout
    out = tmp_path / "report.html"
    proc = invoke("report", "--env", fleet.env_name, "--format", "html", "--output", str(out),
                  env=fleet.environ)
    assert proc.returncode == 0, proc.stderr
    page = out.read_text()
    assert page.count("<tr") >= 5 and V1 in page and "http://" not in page.split("<body")[0]


@pytest.mark.parametrize("args, message", [
    (["deploy", "--env", "nosuchenv", "--version", V1], "unknown environment 'nosuchenv'"),
    (["deploy", "--env", "labt", "--version", "9.9.9-none"], "no artifact for version 9.9.9-none"),
    (["deploy", "--env", "labt", "--version", "1.0;touch /tmp/pwned"], "invalid version"),
    (["deploy", "--env", "labt", "--version", "$(id)"], "invalid version"),
    (["deploy", "--env", "labt", "--version", "tampered-e2e"], "does not match its sha256"),
    (["smoke", "--env", "labt", "--pool", "purple"], "--pool must be one of"),
    (["report", "--env", "labt", "--format", "pdf"], "--format must be one of"),
])
def test_bad_input_is_one_line_exit_2_and_changes_nothing(fleet, args, message):
    tampered = REPO / "dist" / "app-tampered-e2e.tar.gz"
    if "tampered-e2e" in args:
        invoke("build", "--version", "tampered-e2e", check=True)
        with tampered.open("ab") as handle:
            handle.write(b"x")
    before = snapshot(fleet)
    proc = invoke(*args, env=fleet.environ)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], proc.stderr
    assert snapshot(fleet) == before
    assert not Path("/tmp/pwned").exists()

"""Release management on the lab: the AWX-style run, the approval gate and promote, hooks,
webhook notifications, and promotion from staging to prod by sha256.

Tests in this module run in order and build on each other (one fleet, one history). They use
the session's lab under an environment of their own ("labr", its own manifest) whose
group_vars/all/ holds the lab's settings plus a test.yml each test rewrites.
"""

from __future__ import annotations

import http.server
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import ansible_runner
import pytest
import yaml

from tests.conftest import REPO, invoke
from tests.e2e.test_bluegreen import lb_versions, ssh
from turnout.lab import fleet as lab_fleet
from turnout.lab.config import LabConfig
from turnout.probe import TrafficProbe

pytestmark = pytest.mark.e2e

V1, V2, V3 = "1.0.0-rel", "2.0.0-rel", "3.0.0-rel"
ENV = "labr"
HOOK_ORDER_DEPLOY = ["before_stage", "after_stage", "before_smoke", "after_smoke",
                     "before_record", "after_record"]
HOOK_ORDER_PROMOTE = ["before_flip", "after_flip", "after_record"]
VOLATILE = {"id", "by", "started_at", "finished_at", "duration_s", "deployed_at", "deployed_by",
            "run_id", "latency_ms", "lb_errors", "updated_at",
            "detail"}  # smoke check details carry measured timings and health-check attempts


class Receiver:
    """A webhook receiver on 127.0.0.1 that keeps every JSON body it is sent."""

    def __init__(self) -> None:
        self.bodies: list[dict] = []
        bodies = self.bodies

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                bodies.append(json.loads(self.rfile.read(length)))
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def texts(self) -> list[str]:
        return [b["text"] for b in self.bodies]


@pytest.fixture(scope="module")
def rel(lab):
    """The session lab as environment 'labr', provisioned, with three artifacts built."""
    for version in (V1, V2, V3):
        invoke("build", "--version", version, "--notes", f"changes in {version}", check=True)
    env_dir = lab.inventories / ENV
    (env_dir / "group_vars" / "all").mkdir(parents=True)
    shutil.copy(lab.hosts_file, env_dir / "hosts.yml")
    (env_dir / "group_vars" / "all" / "main.yml").symlink_to(
        REPO / "inventories" / "lab" / "group_vars" / "all.yml")
    set_vars(lab, {})
    invoke("provision", "--env", ENV, env=lab.environ, check=True)
    return lab


def set_vars(lab, values: dict) -> None:
    """Replace the test's own inventory variables (group_vars/all/test.yml) of labr."""
    path = lab.inventories / ENV / "group_vars" / "all" / "test.yml"
    path.write_text("---\n" + (yaml.safe_dump(values) if values else "{}\n"))


def manifest(lab) -> dict:
    return yaml.safe_load((lab.inventories / ENV / "manifest.yml").read_text())


def normalized(value):
    """The manifest minus what differs between any two runs (ids, times, who, latencies)."""
    if isinstance(value, dict):
        return {k: normalized(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [normalized(v) for v in value]
    return value


def deploy(lab, *args: str, timeout: float = 900):
    return invoke("deploy", "--env", ENV, *args, env=lab.environ, timeout=timeout)


@dataclass
class AwxJob:
    rc: int
    status: str
    events: list[dict]


def awx_run(lab, playbook: str, extravars: dict) -> AwxJob:
    """Run a playbook exactly the way AWX does: ansible-runner on the project directory with
    the inventory and extra vars only (no invoke, no turnout.commands)."""
    with tempfile.TemporaryDirectory(prefix="awx-job-") as private:
        runner = ansible_runner.run(
            private_data_dir=private, project_dir=str(REPO), playbook=playbook,
            inventory=str(lab.inventories / ENV / "hosts.yml"), extravars=extravars,
            envvars={"ANSIBLE_HOST_KEY_CHECKING": "True",
                     "PATH": os.pathsep.join([str(Path(sys.executable).parent),
                                              os.environ["PATH"]])},
            quiet=True, timeout=900)
        # the events live in the private data dir: read them before it goes
        return AwxJob(rc=runner.rc, status=runner.status, events=list(runner.events))


def lb(lab) -> str:
    return lab.config.host("lb1").address


def fleet_state(lab) -> dict[str, str]:
    """Manifest bytes, each host's release and the LB map: what a refused run must not touch."""
    state = {"manifest": (lab.inventories / ENV / "manifest.yml").read_text()}
    for host in ("blue1", "blue2", "green1", "green2"):
        state[host] = ssh(lab, host, "cat /srv/app/release.json; readlink /srv/app/current")
    state["lb1"] = ssh(lab, "lb1", "cat /etc/haproxy/pool.map; echo 'show map "
                       "/etc/haproxy/pool.map' | socat stdio /run/haproxy/admin.sock")
    return state


def test_awx_style_run_gets_the_same_result_and_manifest_as_invoke_deploy(rel):
    assert deploy(rel, "--version", V1).returncode == 0
    proc = deploy(rel, "--version", V2)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    by_invoke = manifest(rel)
    assert lb_versions(rel) == {V2}
    proc = invoke("rollback", "--env", ENV, env=rel.environ)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert lb_versions(rel) == {V1}

    job = awx_run(rel, "playbooks/deploy.yml", {
        "turnout_env": ENV, "turnout_version": V2, "awx_user_name": "alice", "awx_job_id": 7})
    assert (job.rc, job.status) == (0, "successful")
    assert lb_versions(rel) == {V2}
    by_awx = manifest(rel)
    entry = by_awx["history"][-1]
    assert entry["by"] == "awx:alice"
    assert normalized(entry) == normalized(by_invoke["history"][-1])
    assert normalized(by_awx["pools"]) == normalized(by_invoke["pools"])
    assert by_awx["live_pool"] == by_invoke["live_pool"]


def test_awx_run_with_another_environment_is_refused_and_changes_nothing(rel):
    before = fleet_state(rel)
    job = awx_run(rel, "playbooks/deploy.yml", {"turnout_env": "prod", "turnout_version": V1})
    assert job.rc != 0 and job.status == "failed"
    messages = [e["event_data"]["res"].get("msg", "") for e in job.events
                if e.get("event") == "runner_on_failed"]
    assert any("turnout_env=prod but this inventory is environment labr" in m
               for m in messages), messages
    assert fleet_state(rel) == before


def test_approval_gate_stages_smokes_and_waits_with_hooks_and_notifications(rel, tmp_path):
    live_version = manifest(rel)["pools"][manifest(rel)["live_pool"]]["version"]
    receiver = Receiver()
    hook_log = tmp_path / "hooks.log"
    set_vars(rel, {
        "turnout_webhook_url": receiver.url,
        "turnout_approval_required": True,
        "turnout_hooks": {name: str(REPO / "tests" / "e2e" / "hooks" / "log.yml")
                          for name in (*HOOK_ORDER_DEPLOY, "before_flip", "after_flip")},
        "test_hook_log": str(hook_log),
    })
    try:
        with TrafficProbe(lb(rel), 80, workers=2, max_seconds=600) as probe:
            probe.wait_for(20)
            proc = deploy(rel, "--version", V3)
            probe.wait_for(probe.result.total + 20)
    finally:
        receiver.close()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert probe.result.failures == [], probe.result.summary()
    assert set(probe.result.versions) == {live_version}, probe.result.summary()  # no flip
    assert "awaits approval: invoke promote --env labr" in proc.stderr
    overview = proc.stdout[proc.stdout.index("release awaiting approval"):]
    for text in (f"current  {live_version}", f"new      {V3} sha256", "smoke    ",
                 f"changes in {V3}"):
        assert text in overview, overview
    entry = manifest(rel)["history"][-1]
    assert (entry["action"], entry["result"]) == ("deploy", "awaiting_approval")
    assert f"changes in {V3}" in entry["release_notes"]
    assert all(s["result"] == "passed" for s in entry["smoke"].values())
    target = entry["to"]["pool"]
    assert manifest(rel)["live_pool"] != target

    lines = [json.loads(line) for line in hook_log.read_text().splitlines()]
    assert [line["hook"] for line in lines] == HOOK_ORDER_DEPLOY
    for line in lines:
        assert (line["env"], line["version"], line["run_id"]) == (ENV, V3, entry["id"])
        assert line["target_pool"] == target and line["live_pool"] == entry["from"]["pool"]
        assert line["sha256"] == entry["to"]["sha256"]
    assert lines[-1]["result"] == "awaiting_approval"

    texts = receiver.texts()
    assert len(texts) == 2, texts
    assert "started" in texts[0] and "awaits approval" in texts[1]
    fields = {f["title"]: f["value"] for f in receiver.bodies[1]["attachments"][0]["fields"]}
    assert fields["Environment"] == ENV and fields["Version"] == V3
    assert fields["Result"] == "awaiting_approval"


def test_promote_flips_exactly_the_staged_release_under_load(rel, tmp_path):
    receiver = Receiver()
    hook_log = tmp_path / "hooks.log"
    staged = manifest(rel)["history"][-1]
    live_version = manifest(rel)["pools"][manifest(rel)["live_pool"]]["version"]
    set_vars(rel, {
        "turnout_webhook_url": receiver.url,
        "turnout_hooks": {name: str(REPO / "tests" / "e2e" / "hooks" / "log.yml")
                          for name in (*HOOK_ORDER_DEPLOY, "before_flip", "after_flip")},
        "test_hook_log": str(hook_log),
    })
    try:
        with TrafficProbe(lb(rel), 80, workers=4, max_seconds=600) as probe:
            probe.wait_for(50)
            proc = invoke("promote", "--env", ENV, env=rel.environ, timeout=900)
            probe.wait_for(probe.result.total + 50)
    finally:
        receiver.close()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert probe.result.failures == [], probe.result.summary()
    assert set(probe.result.versions) == {live_version, V3}, probe.result.summary()
    assert lb_versions(rel) == {V3}
    data = manifest(rel)
    entry = data["history"][-1]
    assert (entry["action"], entry["result"]) == ("promote", "success")
    assert entry["to"] == staged["to"]
    assert data["live_pool"] == staged["to"]["pool"]
    assert data["pools"][staged["to"]["pool"]]["version"] == V3
    assert not any(h.get("staged") for h in data["pools"][staged["to"]["pool"]]["hosts"].values())
    assert set(entry["smoke"]) == set(staged["smoke"])  # smoke-tested again before the flip
    with urllib.request.urlopen(f"http://{lb(rel)}:80/version", timeout=5) as response:
        assert response.headers["X-Turnout-Backend"] == f"be_{staged['to']['pool']}"
        assert response.headers["X-Turnout-Release"] == V3
    hooks = [json.loads(line)["hook"] for line in hook_log.read_text().splitlines()]
    assert hooks == HOOK_ORDER_PROMOTE
    assert [b["attachments"][0]["fields"][4]["value"] for b in receiver.bodies] == [
        "start", "success"]


def test_promote_with_nothing_awaiting_is_refused(rel):
    set_vars(rel, {})
    before = fleet_state(rel)
    proc = invoke("promote", "--env", ENV, env=rel.environ)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "nothing awaits approval in labr" in lines[0]
    assert fleet_state(rel) == before


def test_promote_refuses_a_changed_or_stale_staged_release(rel):
    proc = deploy(rel, "--version", V2, "--approval")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    staged = manifest(rel)["history"][-1]
    assert staged["result"] == "awaiting_approval"
    host = sorted(staged["smoke"])[0]
    original = ssh(rel, host, "cat /srv/app/release.json")
    changed = json.loads(original) | {"sha256": "0" * 64}
    ssh(rel, host, f"echo '{json.dumps(changed)}' > /srv/app/release.json")
    try:
        before = fleet_state(rel)
        proc = invoke("promote", "--env", ENV, env=rel.environ)
        assert proc.returncode == 2, proc.stdout + proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and f"the staged release changed on {host}" in lines[0], lines
        assert fleet_state(rel) == before
    finally:
        ssh(rel, host, f"echo '{original.strip()}' > /srv/app/release.json")

    set_vars(rel, {"turnout_promote_max_age_s": 0})
    before = fleet_state(rel)
    proc = invoke("promote", "--env", ENV, env=rel.environ)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "smoke results of run" in lines[0] and "old" in lines[0], lines
    assert fleet_state(rel) == before
    # the playbook refuses on its own too (AWX runs it without invoke)
    job = awx_run(rel, "playbooks/promote.yml", {"turnout_env": ENV})
    assert job.status == "failed"
    assert fleet_state(rel) == before
    assert lb_versions(rel) == {V3}
    set_vars(rel, {})


@pytest.fixture(scope="module")
def staging(rel, tmp_path_factory):
    """A second lab (one host per pool) as environment 'staging' beside 'labr'."""
    config = LabConfig(name=os.environ.get("TURNOUT_TEST_LAB2", "td"),
                       subnet=os.environ.get("TURNOUT_TEST_SUBNET2", "10.231.8.0/24"),
                       app_hosts=1)
    env_dir = rel.inventories / "staging"
    env_dir.mkdir()
    (env_dir / "group_vars").symlink_to(REPO / "inventories" / "lab" / "group_vars")
    lab_fleet.down(config)
    lab_fleet.up(config, env_dir)
    try:
        invoke("provision", "--env", "staging", env=rel.environ, check=True)
        yield config
    finally:
        if os.environ.get("TURNOUT_KEEP_LAB") != "1":
            lab_fleet.down(config)


def test_deploy_from_staging_deploys_the_same_artifact_by_sha256(rel, staging):
    proc = invoke("deploy", "--env", "staging", "--version", V1, env=rel.environ)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    staging_sha = yaml.safe_load((rel.inventories / "staging" / "manifest.yml").read_text())[
        "history"][-1]["to"]["sha256"]
    with TrafficProbe(lb(rel), 80, workers=2, max_seconds=600) as probe:
        probe.wait_for(20)
        proc = deploy(rel, "--from", "staging")
        probe.wait_for(probe.result.total + 20)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert probe.result.failures == [], probe.result.summary()
    assert lb_versions(rel) == {V1}
    entry = manifest(rel)["history"][-1]
    assert (entry["result"], entry["to"]["version"], entry["to"]["sha256"]) == (
        "success", V1, staging_sha)


def test_deploy_from_refuses_when_no_artifact_has_that_sha(rel, staging):
    sha_file = REPO / "dist" / f"app-{V1}.tar.gz.sha256"
    saved = sha_file.read_text()
    artifact = REPO / "dist" / f"app-{V1}.tar.gz"
    moved = artifact.with_name(artifact.name + ".away")
    artifact.rename(moved)
    try:
        before = fleet_state(rel)
        proc = deploy(rel, "--from", "staging")
        assert proc.returncode == 2, proc.stdout + proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and "no artifact with sha256" in lines[0], lines
        assert fleet_state(rel) == before
    finally:
        moved.rename(artifact)
        sha_file.write_text(saved)


def test_bad_hook_path_is_bad_input_and_changes_nothing(rel):
    set_vars(rel, {"turnout_hooks": {"before_flip": "hooks/no-such-hook.yml"}})
    try:
        before = fleet_state(rel)
        proc = deploy(rel, "--version", V2)
        assert proc.returncode == 2, proc.stdout + proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and "hook file hooks/no-such-hook.yml not found" in lines[0]
        assert fleet_state(rel) == before
    finally:
        set_vars(rel, {})


def runtime_map(lab) -> dict[str, str]:
    """pool.map as HAProxy holds it in memory: {key: value}."""
    out = ssh(lab, "lb1", "echo 'show map /etc/haproxy/pool.map' | "
                          "socat stdio /run/haproxy/admin.sock")
    return {parts[1]: parts[2] for parts in (line.split() for line in out.splitlines())
            if len(parts) == 3}


def test_canary_shifts_traffic_in_steps_then_flips_with_zero_failures(rel):
    set_vars(rel, {"turnout_canary_watch_s": 3})
    live_before = manifest(rel)["live_pool"]
    with TrafficProbe(lb(rel), 80, workers=4, max_seconds=900) as probe:
        probe.wait_for(50)
        proc = deploy(rel, "--version", V2, "--canary", "10,50")
        probe.wait_for(probe.result.total + 50)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert probe.result.failures == [], probe.result.summary()
    assert set(probe.result.versions) == {V1, V2}, probe.result.summary()
    assert lb_versions(rel) == {V2}
    data = manifest(rel)
    assert data["live_pool"] != live_before and data["history"][-1]["result"] == "success"
    assert runtime_map(rel).get("canary_pct", "0") == "0"
    assert "canary" not in ssh(rel, "lb1", "cat /etc/haproxy/pool.map")


def test_canary_step_with_errors_sends_traffic_back_and_fails_with_zero_failed_requests(rel):
    set_vars(rel, {"turnout_canary_watch_s": 60})
    live = manifest(rel)["live_pool"]
    target = "green" if live == "blue" else "blue"
    broken_host = f"{target}2"
    result: dict = {}

    def run_deploy() -> None:
        result["proc"] = deploy(rel, "--version", V3, "--canary", "50")

    with TrafficProbe(lb(rel), 80, workers=4, max_seconds=900) as probe:
        probe.wait_for(50)
        worker = threading.Thread(target=run_deploy)
        worker.start()
        deadline = time.monotonic() + 900
        while runtime_map(rel).get("canary_pct", "0") != "50":  # the canary step started
            assert worker.is_alive() and time.monotonic() < deadline, result
            time.sleep(0.5)
        ssh(rel, broken_host, "systemctl stop app.service")  # one canary host starts failing
        worker.join(timeout=900)
        probe.wait_for(probe.result.total + 50)
    proc = result["proc"]
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert probe.result.failures == [], probe.result.summary()
    assert V3 in probe.result.versions, probe.result.summary()  # the canary did take traffic
    assert lb_versions(rel) == {V2}
    assert runtime_map(rel).get("canary_pct") == "0"
    entry = manifest(rel)["history"][-1]
    assert (entry["result"], entry["phase"]) == ("failed", "flip")
    assert "canary aborted at 50%" in entry["message"]
    assert manifest(rel)["live_pool"] == live
    set_vars(rel, {})


def test_html_report_renders_in_headless_chromium(rel, tmp_path):
    chromium = shutil.which("chromium")
    assert chromium, "chromium is missing: run 'make deps' (APT_PACKAGES has it)"
    page = tmp_path / "report.html"
    proc = invoke("report", "--env", ENV, "--format", "html", "--output", str(page),
                  env=rel.environ)
    assert proc.returncode == 0, proc.stderr
    profile = tmp_path / "chromium-profile"
    shown = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--no-first-run", f"--user-data-dir={profile}", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=180, check=False)
    assert shown.returncode == 0, shown.stderr[-2000:]
    dom = shown.stdout
    table = dom[dom.index('<table id="hosts">'):]
    table = table[:table.index("</table>")]
    rows = table.split("<tr")[2:]  # after the header row
    hosts = {row.split("<td")[1].split(">", 1)[1].split("<", 1)[0] for row in rows}
    assert hosts == {"blue1", "blue2", "green1", "green2"}, table[:2000]
    live = manifest(rel)["live_pool"]
    assert manifest(rel)["pools"][live]["version"] in table


def test_prometheus_report_writes_a_textfile_collector_file(rel, tmp_path):
    target = tmp_path / "turnout.prom"
    proc = invoke("report", "--env", ENV, "--format", "prometheus", "--output", str(target),
                  env=rel.environ)
    assert proc.returncode == 0, proc.stderr
    text = target.read_text()
    assert text.endswith("\n") and not list(tmp_path.glob(".*.tmp"))
    info = [line for line in text.splitlines() if line.startswith("turnout_deployed_info{")]
    assert len(info) == 4 and all(line.endswith(" 1") for line in info)
    version = manifest(rel)["pools"][manifest(rel)["live_pool"]]["version"]
    live = [line for line in info if 'role="live"' in line]
    assert len(live) == 2 and all(f'version="{version}"' in line for line in live), info
    assert 'turnout_live_pool_info{env="labr",pool="' in text
    assert "# TYPE turnout_deployed_info gauge" in text

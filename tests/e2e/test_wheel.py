"""turnout outside the checkout: the `turnout` command from a wheel, and the collection.

Builds the wheel, installs it into a new venv under tmp, boots its own lab ('pw', 1 LB, one
host per pool) and runs provision, deploy A, deploy B and rollback from a work directory
holding inventories/<env>/ and dist/ (nothing of the checkout). Checks exit codes, the
manifest beside the inventory, the version the LB serves, the help (same as invoke's) and a
bad input (exit 2, one line naming the command in use).

Then, on the same lab, a team's own Ansible repository (its ansible.cfg, inventory, dist/ and
two playbooks that import turnout.bluegreen.deploy and .rollback by their fully qualified
names) deploys and rolls back with the collection built by `ansible-galaxy collection build`
and installed with `ansible-galaxy collection install` into the repository's collections/,
with the wheel's venv as the controller's Python: zero failed requests through the LB.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO, invoke, require_lab_support
from turnout import collection
from turnout.lab import fleet
from turnout.lab.config import LabConfig
from turnout.probe import TrafficProbe

pytestmark = pytest.mark.e2e

ENV = "labpw"
A, B = "1.0.0-wheel", "2.0.0-wheel"
UV = Path(sys.executable).parent / "uv"


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """`turnout` from a wheel built from this checkout, in a fresh venv outside it."""
    where = tmp_path_factory.mktemp("wheel")
    wheels = where / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels),
                    str(REPO)], check=True, cwd=where)
    (wheel,) = wheels.glob("turnout-*.whl")
    venv = where / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    # the project's locked versions as constraints; uv takes them from its cache when it can
    subprocess.run([str(UV), "pip", "install", "-q", "--python", str(venv / "bin" / "python"),
                    "-c", str(REPO / "requirements.lock"), str(wheel)], check=True, cwd=where)
    return venv / "bin" / "turnout"


@pytest.fixture(scope="module")
def workspace(installed, tmp_path_factory):
    """A team's directory: inventories/labpw (the 'pw' lab) and dist/ with releases A and B."""
    require_lab_support()
    config = LabConfig(name=os.environ.get("TURNOUT_TEST_WHEEL_LAB", "pw"),
                       subnet=os.environ.get("TURNOUT_TEST_WHEEL_SUBNET", "10.231.91.0/24"),
                       app_hosts=1, lbs=1)
    work = tmp_path_factory.mktemp("team")
    env_dir = work / "inventories" / ENV
    shutil.copytree(REPO / "inventories" / "lab" / "group_vars", env_dir / "group_vars")
    (work / "dist").mkdir()
    for version in (A, B):
        invoke("build", "--version", version, check=True)  # examples/ is in the checkout
        for built in (REPO / "dist").glob(f"app-{version}.tar.gz*"):
            shutil.copy2(built, work / "dist" / built.name)
    fleet.down(config)  # a lab left by an interrupted earlier run
    try:
        fleet.up(config, env_dir)
        yield config, work
    finally:
        if os.environ.get("TURNOUT_KEEP_LAB") != "1":
            fleet.down(config)


def turnout(exe: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("TURNOUT_INVENTORIES", "VIRTUAL_ENV", "PYTHONPATH")}
    return subprocess.run([str(exe), *args], cwd=cwd, capture_output=True, text=True, env=env,
                          stdin=subprocess.DEVNULL, timeout=900, check=False)


def ok(proc: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert proc.returncode == 0, f"{proc.args} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


def lb_version(config: LabConfig) -> str:
    url = f"http://{config.host('lb1').address}:80/version"
    with urllib.request.urlopen(url, timeout=5) as response:
        assert response.status == 200
        return json.loads(response.read())["version"]


def test_help_and_bad_input_without_the_checkout(installed, tmp_path):
    for task in ("deploy", "rollback"):
        ours = turnout(installed, tmp_path, task, "--help")
        theirs = invoke(task, "--help")
        assert ours.returncode == theirs.returncode == 0
        # the same text; only the program name differs (invoke's usage line says 'inv[oke]')
        assert ours.stdout == theirs.stdout.replace("inv[oke] ", "turnout ")
    bad = turnout(installed, tmp_path, "deploy", "--env", "nope", "--version", A)
    assert bad.returncode == 2, bad
    lines = bad.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("turnout: error: unknown environment 'nope'")
    assert "invoke" not in lines[0] and str(tmp_path / "inventories") in lines[0]
    refused = turnout(installed, tmp_path, "build", "--version", A)
    assert refused.returncode == 2 and "needs the turnout checkout" in refused.stderr
    assert turnout(installed, tmp_path, "collection").returncode == 2
    assert "run 'invoke build' there" in refused.stderr  # the checkout's command, not rewritten


def test_deploy_and_rollback_from_a_team_directory(installed, workspace):
    config, work = workspace
    assert not (work / "playbooks").exists() and REPO not in work.parents
    ok(turnout(installed, work, "provision", "--env", ENV))
    ok(turnout(installed, work, "deploy", "--env", ENV, "--version", A))
    assert lb_version(config) == A
    ok(turnout(installed, work, "deploy", "--env", ENV, "--version", B))
    assert lb_version(config) == B
    ok(turnout(installed, work, "rollback", "--env", ENV))
    assert lb_version(config) == A
    manifest = yaml.safe_load((work / "inventories" / ENV / "manifest.yml").read_text())
    actions = [(e.get("action"), (e.get("to") or {}).get("version")) for e in manifest["history"]]
    assert ("deploy", A) in actions and ("deploy", B) in actions, actions
    assert actions[-1] == ("rollback", A), actions


TEAM_CFG = """[defaults]
inventory = inventories/labpw/hosts.yml
collections_path = ./collections
host_key_checking = True
forks = 25
gathering = explicit
interpreter_python = auto_silent
retry_files_enabled = False

[ssh_connection]
pipelining = True
control_path_dir = ~/.ansible/cp
ssh_args = -o ControlMaster=auto -o ControlPersist=60s
"""


@pytest.fixture(scope="module")
def team_repo(installed, workspace, tmp_path_factory) -> Path:
    """A team's Ansible repository outside the checkout with turnout.bluegreen installed."""
    _config, work = workspace
    repo = tmp_path_factory.mktemp("team-ansible")
    shutil.copytree(work / "inventories", repo / "inventories")
    shutil.copytree(work / "dist", repo / "dist")
    (repo / "ansible.cfg").write_text(TEAM_CFG)
    for action in ("deploy", "rollback"):
        (repo / f"{action}.yml").write_text(
            f"---\n- name: {action.capitalize()} with turnout\n"
            f"  ansible.builtin.import_playbook: turnout.bluegreen.{action}\n")
    built = invoke("collection", "--output", str(tmp_path_factory.mktemp("collection")),
                   check=True)
    tarball = Path(built.stdout.strip().splitlines()[-1])
    assert tarball.name == f"turnout-bluegreen-{collection.project_version(REPO)}.tar.gz"
    subprocess.run([str(installed.parent / "ansible-galaxy"), "collection", "install", "-p",
                    str(repo / "collections"), str(tarball)], check=True, cwd=repo,
                   capture_output=True)
    return repo


def playbook(installed: Path, repo: Path, name: str, *extra: str
             ) -> subprocess.CompletedProcess[str]:
    """ansible-playbook from the wheel's venv in the team's repository, as its CI runs it."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("ANSIBLE_", "TURNOUT_")) and k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env["PATH"] = f"{installed.parent}:{env.get('PATH', '/usr/bin:/bin')}"
    return subprocess.run([str(installed.parent / "ansible-playbook"), name, *extra], cwd=repo,
                          capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL,
                          timeout=900, check=False)


def test_collection_deploy_and_rollback_from_a_team_repository(installed, workspace, team_repo):
    config, _work = workspace
    installed_at = team_repo / "collections" / "ansible_collections" / "turnout" / "bluegreen"
    assert (installed_at / "MANIFEST.json").is_file()
    assert json.loads((installed_at / "MANIFEST.json").read_text())["collection_info"][
        "version"] == collection.project_version(REPO)
    manifest_path = team_repo / "inventories" / ENV / "manifest.yml"
    before = len(yaml.safe_load(manifest_path.read_text())["history"])
    live = lb_version(config)
    other = B if live == A else A
    with TrafficProbe(config.host("lb1").address, 80, workers=4, max_seconds=600) as probe:
        probe.wait_for(30)
        ok(playbook(installed, team_repo, "deploy.yml", "-e", f"turnout_version={other}"))
        assert lb_version(config) == other
        ok(playbook(installed, team_repo, "rollback.yml"))
        assert lb_version(config) == live
        probe.wait_for(probe.result.total + 30)
    assert probe.result.failures == [], probe.result.summary()
    assert set(probe.result.versions) == {live, other}, probe.result.summary()
    history = yaml.safe_load(manifest_path.read_text())["history"][before:]
    assert [(e["action"], e["result"], e["to"]["version"]) for e in history] == [
        ("deploy", "success", other), ("rollback", "success", live)], history
    assert history[0]["smoke"] and all(s["result"] == "passed"
                                       for s in history[0]["smoke"].values())

"""The `turnout` command from a wheel, in a fresh virtualenv, outside the checkout.

Builds the wheel, installs it into a new venv under tmp, boots its own lab ('pw', 1 LB, one
host per pool) and runs provision, deploy A, deploy B and rollback from a work directory
holding inventories/<env>/ and dist/ (nothing of the checkout). Checks exit codes, the
manifest beside the inventory, the version the LB serves, the help (same as invoke's) and a
bad input (exit 2, one line naming the command in use).
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
from turnout.lab import fleet
from turnout.lab.config import LabConfig

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

"""Shared test helpers and the session's lab.

The test lab: real systemd hosts over real OpenSSH, booted once per session. It uses its own
lab name and subnet (TURNOUT_TEST_LAB / TURNOUT_TEST_SUBNET, default 't' on 10.231.9.0/24) so
it never collides with the demo lab, and an inventory in a temporary directory that reuses the
repository's lab group_vars.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from turnout.lab import fleet
from turnout.lab.config import LabConfig

REPO = Path(__file__).resolve().parents[1]
INVOKE = [sys.executable, "-m", "invoke"]


def invoke(*args: str, env: dict[str, str] | None = None, timeout: float = 900,
           check: bool = False) -> subprocess.CompletedProcess[str]:
    """Run an invoke task the way a user does (a subprocess in the repo), capturing output."""
    proc = subprocess.run([*INVOKE, *args], cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=timeout,
                          stdin=subprocess.DEVNULL, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"invoke {' '.join(args)} -> {proc.returncode}\n"
                             f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc


@dataclass
class Lab:
    config: LabConfig
    inventories: Path  # TURNOUT_INVENTORIES for tasks run against the lab
    env_name: str

    @property
    def env_dir(self) -> Path:
        return self.inventories / self.env_name

    @property
    def hosts_file(self) -> Path:
        return self.env_dir / "hosts.yml"

    @property
    def environ(self) -> dict[str, str]:
        return {"TURNOUT_INVENTORIES": str(self.inventories)}


def require_lab_support() -> None:
    if os.geteuid() != 0:
        pytest.fail("lab tests need root (they boot systemd-nspawn hosts): run 'make test' as root")
    if shutil.which("systemd-nspawn") is None:
        pytest.fail("systemd-nspawn is missing: run 'make deps'")


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Lab:
    require_lab_support()
    config = LabConfig(name=os.environ.get("TURNOUT_TEST_LAB", "t"),
                       subnet=os.environ.get("TURNOUT_TEST_SUBNET", "10.231.9.0/24"),
                       app_hosts=2, lbs=2)
    inventories = tmp_path_factory.mktemp("inventories")
    env_dir = inventories / "labt"
    env_dir.mkdir()
    (env_dir / "group_vars").symlink_to(REPO / "inventories" / "lab" / "group_vars")
    fleet.down(config)  # a lab left by an interrupted earlier run
    fleet.up(config, env_dir)
    yield Lab(config=config, inventories=inventories, env_name="labt")
    if os.environ.get("TURNOUT_KEEP_LAB") != "1":
        fleet.down(config)

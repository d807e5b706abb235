"""The bad-input table: every bad input, through invoke or a bare ansible-playbook run, gets a
one-line error naming the problem and exit 2 (non-zero for ansible-playbook), and changes
NOTHING on the hosts, the load balancer or the manifest (snapshot before/after).

Inventory and manifest cases run against copies of the lab's environment (same real hosts),
so a bad file never replaces the lab's own.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO, invoke
from tests.e2e.test_bluegreen import snapshot

pytestmark = pytest.mark.e2e

GOOD = "1.0.0-bad"
PLAYBOOK = str(Path(sys.executable).parent / "ansible-playbook")


@dataclass
class Case:
    name: str
    argv: list[str]  # invoke args, or ["PLAYBOOK", playbook, extra args...] for ansible-playbook
    needle: str  # must appear in the one error line
    setup: Callable[[Path], None] | None = None  # writes a bad env copy into inventories/bad
    env_copy: bool = False
    extra: dict = field(default_factory=dict)


def _copy_env(lab, target: Path) -> None:
    if target.exists():
        shutil.rmtree(target)
    target.mkdir()
    shutil.copy(lab.hosts_file, target / "hosts.yml")
    (target / "group_vars").symlink_to(REPO / "inventories" / "lab" / "group_vars")
    manifest = lab.env_dir / "manifest.yml"
    if manifest.exists():
        shutil.copy(manifest, target / "manifest.yml")


def _edit_hosts(change: Callable[[dict], None]) -> Callable[[Path], None]:
    def setup(env: Path) -> None:
        data = yaml.safe_load((env / "hosts.yml").read_text())
        change(data)
        (env / "hosts.yml").write_text(yaml.safe_dump(data))
    return setup


def _write(name: str, text: str) -> Callable[[Path], None]:
    return lambda env: (env / name).write_text(text)


def _edit_manifest(change: Callable[[dict], None]) -> Callable[[Path], None]:
    def setup(env: Path) -> None:
        data = yaml.safe_load((env / "manifest.yml").read_text())
        change(data)
        (env / "manifest.yml").write_text(yaml.safe_dump(data))
    return setup


def _both_pools(data: dict) -> None:
    children = data["all"]["children"]
    app = children.get("app", {}).get("children", children)
    host = next(iter(app["blue"]["hosts"]))
    app["green"]["hosts"][host] = app["blue"]["hosts"][host]


def _drop_group(group: str) -> Callable[[dict], None]:
    def change(data: dict) -> None:
        children = data["all"]["children"]
        if group in children:
            del children[group]
        else:
            del children["app"]["children"][group]
    return change


def _bad_port(data: dict) -> None:
    children = data["all"]["children"]
    lb = children["lb"]["hosts"]
    lb[next(iter(lb))]["ansible_port"] = "ssh"


CASES = [
    # --env
    Case("env with a path", ["deploy", "--env", "../lab", "--version", GOOD], "environment"),
    Case("env with capitals and !", ["deploy", "--env", "Prod!", "--version", GOOD], "environment"),
    Case("env that does not exist", ["deploy", "--env", "nosuchenv", "--version", GOOD],
         "nosuchenv"),
    Case("rollback env with a space", ["rollback", "--env", "a b"], "environment"),
    Case("status env with a shell char", ["status", "--env", "lab;id"], "environment"),
    Case("unlock env with a path", ["unlock", "--env", "../../etc", "--yes"], "environment"),
    Case("reconcile env empty", ["reconcile", "--env", ""], "environment"),
    # --version
    Case("version with ;", ["deploy", "--env", "ENV", "--version", "1.0;rm -rf /"], "version"),
    Case("version with $()", ["deploy", "--env", "ENV", "--version", "$(id)"], "version"),
    Case("version with ..", ["deploy", "--env", "ENV", "--version", "../../etc/passwd"], "version"),
    Case("version empty", ["deploy", "--env", "ENV", "--version", ""], "version"),
    Case("version too long", ["deploy", "--env", "ENV", "--version", "1" * 65], "version"),
    Case("version with a newline", ["deploy", "--env", "ENV", "--version", "1.0\nx"], "version"),
    Case("version not built", ["deploy", "--env", "ENV", "--version", "8.8.8-never"],
         "8.8.8-never"),
    Case("build version with space", ["build", "--version", "1 2"], "version"),
    Case("build broken kind", ["build", "--version", "7.7.7-bad", "--broken", "nonsense"],
         "broken"),
    # pools, formats, paths, numbers
    Case("smoke pool red", ["smoke", "--env", "ENV", "--pool", "red"], "--pool"),
    Case("smoke pool with ;", ["smoke", "--env", "ENV", "--pool", "blue;id"], "--pool"),
    Case("report format xml", ["report", "--env", "ENV", "--format", "xml"], "--format"),
    Case("report output dir missing", ["report", "--env", "ENV", "--output",
                                       "/nonexistent/dir/r.html"], "/nonexistent/dir"),
    Case("lab app-hosts zero", ["lab.up", "--app-hosts", "0", "--name", "zz"], "--app-hosts"),
    Case("lab app-hosts word", ["lab.up", "--app-hosts", "two", "--name", "zz"], "--app-hosts"),
    Case("lab app-hosts huge", ["lab.up", "--app-hosts", "99", "--name", "zz"], "--app-hosts"),
    # inventory contents (a copy of the lab env, same hosts)
    Case("inventory without lb", ["deploy", "--env", "bad", "--version", GOOD], "'lb'",
         _edit_hosts(_drop_group("lb")), True),
    Case("inventory without green", ["deploy", "--env", "bad", "--version", GOOD], "'green'",
         _edit_hosts(_drop_group("green")), True),
    Case("host in both pools", ["deploy", "--env", "bad", "--version", GOOD], "both blue and green",
         _edit_hosts(_both_pools), True),
    Case("inventory not YAML", ["deploy", "--env", "bad", "--version", GOOD], "hosts.yml",
         _write("hosts.yml", "all: [unclosed\n"), True),
    Case("ansible_port not a number", ["deploy", "--env", "bad", "--version", GOOD],
         "ansible_port", _edit_hosts(_bad_port), True),
    # manifest contents
    Case("manifest live_pool red", ["deploy", "--env", "bad", "--version", GOOD], "live_pool",
         _edit_manifest(lambda m: m.update(live_pool="red")), True),
    Case("manifest from the future", ["deploy", "--env", "bad", "--version", GOOD],
         "schema_version", _edit_manifest(lambda m: m.update(schema_version=99)), True),
    Case("manifest history not a list", ["rollback", "--env", "bad"], "history",
         _edit_manifest(lambda m: m.update(history="lots")), True),
    Case("manifest not YAML", ["deploy", "--env", "bad", "--version", GOOD], "not valid YAML",
         _write("manifest.yml", "pools: {blue: [\n"), True),
    Case("manifest empty", ["status", "--env", "bad"], "empty", _write("manifest.yml", ""), True),
    # bare ansible-playbook with bad extra vars
    Case("playbook version with ;", ["PLAYBOOK", "deploy", "-e", "turnout_version=1;id"],
         "invalid turnout_version"),
    Case("playbook version with ..", ["PLAYBOOK", "deploy", "-e", "turnout_version=../../x"],
         "invalid turnout_version"),
    Case("playbook version missing", ["PLAYBOOK", "deploy"], "invalid turnout_version"),
    Case("playbook artifact wrong file", ["PLAYBOOK", "deploy", "-e", f"turnout_version={GOOD}",
                                          "-e", "turnout_artifact=/etc/hostname"], "sha256"),
    Case("playbook sha256 not hex", ["PLAYBOOK", "deploy", "-e", f"turnout_version={GOOD}",
                                     "-e", "turnout_artifact_sha256=deadbeef"], "sha256"),
    Case("playbook lock ttl not a number", ["PLAYBOOK", "deploy", "-e", f"turnout_version={GOOD}",
                                            "-e", "turnout_lock_ttl_s=soon"], "ttl_s"),
    Case("playbook smoke pool red", ["PLAYBOOK", "smoke", "-e", "turnout_pool=red"], "red"),
    Case("playbook hook file missing", ["PLAYBOOK", "deploy", "-e", f"turnout_version={GOOD}",
                                        "-e", '{"turnout_hooks": {"before_activate": '
                                              '"/nonexistent/hook.yml"}}'],
         "hook file /nonexistent/hook.yml not found"),
    Case("playbook hook path traversal", ["PLAYBOOK", "deploy", "-e", f"turnout_version={GOOD}",
                                          "-e", '{"turnout_hooks": {"after_activate": '
                                                '"../../etc/shadow.yml"}}'],
         "hook file ../../etc/shadow.yml not found"),
    Case("playbook hook with an unknown name", ["PLAYBOOK", "deploy", "-e",
                                                f"turnout_version={GOOD}", "-e",
                                                '{"turnout_hooks": {"before_deploy": "x.yml"}}'],
         "unknown hook 'before_deploy'"),
]


@pytest.fixture(scope="module")
def bad_fleet(lab):
    invoke("build", "--version", GOOD, check=True)
    invoke("provision", "--env", lab.env_name, env=lab.environ, check=True)
    invoke("deploy", "--env", lab.env_name, "--version", GOOD, env=lab.environ, check=True)
    return lab


def test_table_has_at_least_25_bad_inputs():
    assert len(CASES) >= 25


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_changes_nothing(bad_fleet, case: Case):
    lab = bad_fleet
    bad_env = lab.inventories / "bad"
    if case.env_copy:
        _copy_env(lab, bad_env)
        assert case.setup is not None
        case.setup(bad_env)
    files_before = {p: p.read_bytes() for p in (bad_env.glob("*") if case.env_copy else [])
                    if p.is_file()}
    dist_before = sorted(p.name for p in (REPO / "dist").glob("*"))
    before = snapshot(lab)
    if case.argv[0] == "PLAYBOOK":
        playbook, *extra = case.argv[1:]
        proc = subprocess.run([PLAYBOOK, "-i", str(lab.hosts_file), f"playbooks/{playbook}.yml",
                               *extra], cwd=REPO, capture_output=True, text=True, timeout=600,
                              stdin=subprocess.DEVNULL, check=False)
        output = proc.stdout + proc.stderr
        assert proc.returncode != 0, output[-3000:]
        assert case.needle in output, output[-3000:]
        assert "Traceback" not in output
    else:
        argv = [a.replace("ENV", lab.env_name) for a in case.argv]
        proc = invoke(*argv, env=lab.environ, timeout=300)
        errors = [line for line in proc.stderr.splitlines() if line.startswith("turnout: error:")]
        assert proc.returncode == 2, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        assert len(errors) == 1, proc.stderr
        assert case.needle in errors[0], errors[0]
        assert "Traceback" not in proc.stderr + proc.stdout
    assert snapshot(lab) == before
    assert {p: p.read_bytes() for p in files_before} == files_before
    assert sorted(p.name for p in (REPO / "dist").glob("*")) == dist_before
    assert not (REPO / "inventories" / "zz").exists()

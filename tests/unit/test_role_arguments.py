"""A wrong-typed role variable fails in argument validation, before any task of the role runs.

Each role is played against a host whose SSH port is closed: validation runs on the controller,
so a bad variable ends in ``failed=1`` with nothing else attempted, while the same play with
good variables gets past validation and only then stops, unreachable, at the role's first task.
Nothing is ever run on the controller itself.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
ANSIBLE_PLAYBOOK = Path(sys.executable).with_name("ansible-playbook")
RECAP = re.compile(r"^nowhere\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)",
                   re.MULTILINE)

# role -> (good variables, the variable to break, a wrong-typed value for it)
CASES = {
    "haproxy": ({}, "haproxy_frontend_port", "eighty"),
    "app_release": ({}, "app_release_keep", "three"),
    "smoke_test": ({"smoke_test_expected_version": "1.0.0"}, "smoke_test_port", "http"),
    "pool_switch": ({"pool_switch_target_pool": "green", "pool_switch_expected_version": "1.0.0"},
                    "pool_switch_verify_requests", "ten"),
}


def _play(tmp_path: Path, role: str, variables: dict) -> tuple[subprocess.CompletedProcess, tuple]:
    inventory = tmp_path / "hosts.yml"
    # In group lb too, so smoke_test delegates its requests to it (never to the controller).
    inventory.write_text(yaml.safe_dump({"all": {"children": {"lb": {"hosts": {"nowhere": {
        "ansible_host": "127.0.0.1", "ansible_port": 9, "ansible_user": "nobody",
        "ansible_ssh_common_args": "-o ConnectTimeout=3 -o BatchMode=yes",
    }}}}}}))
    playbook = tmp_path / "play.yml"
    playbook.write_text(yaml.safe_dump([{
        "name": f"Argument validation of {role}", "hosts": "nowhere", "gather_facts": False,
        "roles": [{"role": role, "vars": variables}],
    }], sort_keys=False))
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1",
           "ANSIBLE_STDOUT_CALLBACK": "default", "ANSIBLE_RETRY_FILES_ENABLED": "0"}
    proc = subprocess.run([str(ANSIBLE_PLAYBOOK), "-i", str(inventory), str(playbook)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=180,
                          stdin=subprocess.DEVNULL, check=False)
    match = RECAP.search(proc.stdout)
    assert match, f"no recap for host nowhere:\n{proc.stdout}\n{proc.stderr}"
    return proc, tuple(int(n) for n in match.groups())


@pytest.mark.parametrize("role", sorted(CASES))
def test_wrong_typed_variable_fails_before_any_task(tmp_path: Path, role: str) -> None:
    good, name, bad_value = CASES[role]
    proc, (ok, changed, unreachable, failed) = _play(tmp_path, role, {**good, name: bad_value})
    assert proc.returncode != 0
    assert (ok, changed, unreachable, failed) == (0, 0, 0, 1), proc.stdout
    assert f"TASK [{role} : Validating arguments against arg spec 'main'" in proc.stdout
    assert f"argument '{name}' is of type str and we were unable to convert" in proc.stdout
    assert f"TASK [{role} : {role} |" not in proc.stdout, "a role task ran after validation"


@pytest.mark.parametrize("role", sorted(CASES))
def test_good_variables_pass_validation(tmp_path: Path, role: str) -> None:
    """The control: with good values validation passes and the role goes on until it needs the
    (unreachable) host."""
    good, _, _ = CASES[role]
    proc, (ok, changed, unreachable, failed) = _play(tmp_path, role, good)
    assert (changed, unreachable, failed) == (0, 1, 0), proc.stdout
    assert ok >= 1
    validation = proc.stdout.split(f"TASK [{role} : Validating arguments against arg spec 'main'")
    assert len(validation) == 2, proc.stdout
    assert validation[1].split("TASK [")[0].strip().splitlines()[-1] == "ok: [nowhere]"
    assert f"TASK [{role} : {role} |" in validation[1]

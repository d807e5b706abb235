"""invoke init: a new environment that loads, whose app definition validates, and that is
never written over an existing one."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from turnout import appdef, scaffold
from turnout.errors import InputError
from turnout.inventory import load_environment

REPO = Path(__file__).resolve().parents[2]


def test_init_writes_an_environment_turnout_can_load(tmp_path: Path) -> None:
    files = scaffold.init_env("prod", tmp_path, "shop")
    assert files == [tmp_path / "prod/hosts.yml", tmp_path / "prod/group_vars/all.yml"]
    env = load_environment("prod", tmp_path)
    assert [h.name for h in env.lb] == ["lb1"]
    assert env.pool_names() == {"blue": ["blue1"], "green": ["green1"]}
    assert env.lb[0].vars["ansible_become"] is True
    app = appdef.validate(yaml.safe_load(files[1].read_text())["turnout_app"])
    assert (app.name, app.port, app.unit) == ("shop", 8080, "shop.service")


def test_every_key_of_the_app_definition_is_in_the_commented_file(tmp_path: Path) -> None:
    text = scaffold.init_env("prod", tmp_path)[1].read_text()
    for key in appdef.KEYS:
        assert f"  {key}:" in text or f"  # {key}:" in text, key


def test_init_refuses_an_existing_environment_and_changes_nothing(tmp_path: Path) -> None:
    files = scaffold.init_env("prod", tmp_path)
    files[0].write_text("---\nall: {}\n# mine\n")
    with pytest.raises(InputError, match="already exists .* never overwrites"):
        scaffold.init_env("prod", tmp_path)
    assert files[0].read_text().endswith("# mine\n")


def test_init_refuses_a_bad_name_or_app_and_writes_nothing(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="invalid environment name"):
        scaffold.init_env("Prod!", tmp_path)
    with pytest.raises(InputError, match=r"turnout_app\.name: "):
        scaffold.init_env("prod", tmp_path, "No Such")
    assert list(tmp_path.iterdir()) == []


def test_invoke_init_prints_the_next_steps_and_a_second_run_exits_2(tmp_path: Path) -> None:
    env = {"TURNOUT_INVENTORIES": str(tmp_path), "PATH": "/usr/bin:/bin"}
    argv = [sys.executable, "-m", "invoke", "init", "--env", "staging"]
    first = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=60,
                           check=False)
    assert first.returncode == 0, first.stderr
    assert "ssh-keyscan" in first.stdout and "invoke provision --env staging" in first.stdout
    second = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True,
                            timeout=60, check=False)
    assert second.returncode == 2
    lines = [line for line in second.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "already exists" in lines[0], second.stderr
    helped = subprocess.run([*argv[:4], "--help"], cwd=REPO, env=env, capture_output=True,
                            text=True, timeout=60, check=False)
    assert helped.returncode == 0 and "never overwrites" in helped.stdout


def _tasks() -> list[str]:
    listed = subprocess.run([sys.executable, "-m", "invoke", "--list"], cwd=REPO,
                            capture_output=True, text=True, timeout=60, check=True)
    return [m.group(1) for line in listed.stdout.splitlines()
            if (m := re.match(r"^  (\S+)", line))]


def test_every_command_answers_help_after_its_name() -> None:
    """`invoke TASK --help` (not only `invoke --help TASK`) prints the task's help."""
    tasks = _tasks()
    assert {"init", "deploy", "rollback", "promote", "provision", "lab.up"} <= set(tasks)
    for name in tasks:
        # lab.ssh takes its host positionally: its help is `invoke --help lab.ssh`
        argv = ["--help", name] if name == "lab.ssh" else [name, "--help"]
        proc = subprocess.run([sys.executable, "-m", "invoke", *argv], cwd=REPO,
                              capture_output=True, text=True, timeout=60, check=False)
        assert proc.returncode == 0, (name, proc.stderr)
        assert f"Usage: inv[oke] [--core-opts] {name} " in proc.stdout, (name, proc.stdout)


def test_a_missing_env_is_one_line_naming_the_flag() -> None:
    proc = subprocess.run([sys.executable, "-m", "invoke", "status"], cwd=REPO,
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip() == ("turnout: error: --env is required: name the environment, "
                                   "a directory of inventories/ (e.g. --env prod)")

"""ansible-runner wrapper: deterministic arguments and result summaries, without Ansible."""

from pathlib import Path

import pytest

from turnout import runner
from turnout.errors import InputError


def test_run_args_are_deterministic_and_force_host_key_checking(tmp_path):
    playbooks = tmp_path / "playbooks"
    playbooks.mkdir()
    (playbooks / "deploy.yml").write_text("[]\n")
    runner.PLAYBOOKS, saved = playbooks, runner.PLAYBOOKS
    try:
        env = {"ANSIBLE_HOST_KEY_CHECKING": "False", "SECRET_TOKEN": "x", "USER": "alice"}
        args = runner.build_run_args("deploy", Path("/inv/hosts.yml"),
                                     {"b": 1, "a": 2, "skip": None}, environ=env)
    finally:
        runner.PLAYBOOKS = saved
    assert list(args.extravars) == ["a", "b"]
    assert args.envvars["ANSIBLE_HOST_KEY_CHECKING"] == "True"
    assert "SECRET_TOKEN" not in args.envvars and args.envvars["USER"] == "alice"
    assert args.playbook == playbooks / "deploy.yml"


def test_relative_inventory_and_unknown_playbook_are_refused():
    with pytest.raises(InputError, match="absolute"):
        runner.build_run_args("deploy", Path("inv/hosts.yml"), {})
    with pytest.raises(InputError, match="no playbook nope.yml"):
        runner.build_run_args("nope", Path("/inv/hosts.yml"), {})


def test_summarize_collects_failed_and_unreachable_hosts():
    stats = {"ok": {"a": 3, "b": 1}, "failures": {"b": 1}, "dark": {"c": 1},
             "changed": {"a": 2}}
    result = runner.summarize(2, "failed", stats, ["b: boom"])
    assert result.failed_hosts == ["b"] and result.unreachable_hosts == ["c"]
    assert result.stats["a"].changed == 2 and not result.ok
    assert runner.summarize(0, "successful", stats, []).ok


def test_progress_lines():
    play = {"event": "playbook_on_play_start", "event_data": {"play": "deploy | stage "}}
    assert runner.progress_line(play) == "== deploy | stage"
    failed = {"event": "runner_on_failed",
              "event_data": {"host": "blue1", "task": "t", "res": {"msg": "bad\nmore"}}}
    assert runner.progress_line(failed) == "   FAILED blue1: t: bad"
    ignored = {"event": "runner_on_failed", "event_data": {"ignore_errors": True}}
    assert runner.progress_line(ignored) is None
    assert runner.progress_line({"event": "runner_on_ok", "event_data": {}}) is None

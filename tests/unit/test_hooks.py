"""turnout.hooks: hook names and task files are checked before anything runs."""

from __future__ import annotations

import pytest

from turnout import hooks
from turnout.errors import InputError


def test_paths_resolve_beside_the_inventory_then_in_the_project(tmp_path):
    inventory, project = tmp_path / "inv", tmp_path / "proj"
    (inventory / "hooks").mkdir(parents=True)
    (project / "hooks").mkdir(parents=True)
    (inventory / "hooks" / "a.yml").write_text("---\n")
    (project / "hooks" / "b.yml").write_text("---\n")
    resolved = hooks.validate({"before_flip": "hooks/a.yml", "after_record": "hooks/b.yml"},
                              inventory, project)
    assert resolved == {"before_flip": str(inventory / "hooks" / "a.yml"),
                        "after_record": str(project / "hooks" / "b.yml")}


def test_no_hooks_is_fine(tmp_path):
    assert hooks.validate(None, tmp_path, tmp_path) == {}


@pytest.mark.parametrize("value, message", [
    ({"before_deploy": "x.yml"}, "unknown hook 'before_deploy'"),
    ({"before_flip": "missing.yml"}, "hook file missing.yml not found"),
    ({"before_flip": ""}, "non-empty string"),
    (["before_flip"], "must be a mapping"),
])
def test_bad_hooks_are_one_line_input_errors(tmp_path, value, message):
    with pytest.raises(InputError, match=message) as info:
        hooks.validate(value, tmp_path, tmp_path)
    assert "\n" not in str(info.value)


def test_every_hook_has_a_place_and_the_commands_run_known_hooks():
    assert hooks.HOOK_NAMES == ("before_stage", "before_activate", "after_activate",
                                "after_stage", "before_smoke", "after_smoke", "before_flip",
                                "after_flip", "before_record", "after_record")
    assert hooks.HOST_HOOKS == ("before_activate", "after_activate")
    assert set(hooks.WHERE.values()) == {hooks.CONTROLLER, hooks.EACH_TARGET_HOST}
    for action, names in hooks.COMMAND_HOOKS.items():
        assert set(names) <= set(hooks.HOOK_NAMES), action


def test_which_hooks_run_when():
    assert hooks.runs_now("before_stage", "deploy", failed=False)
    assert not hooks.runs_now("before_stage", "deploy", failed=True, phase="smoke")
    assert hooks.runs_now("after_record", "deploy", failed=True, phase="smoke")  # recorded
    assert not hooks.runs_now("after_record", "deploy", failed=True, phase="preflight")
    assert not hooks.runs_now("before_record", "deploy", failed=True, phase="lock")
    assert not hooks.runs_now("before_stage", "deploy", failed=False, noop=True)
    assert hooks.runs_now("before_record", "deploy", failed=False, noop=True)
    assert not hooks.runs_now("before_flip", "deploy", failed=False, awaiting=True)
    assert hooks.runs_now("after_smoke", "deploy", failed=False, awaiting=True)
    assert hooks.runs_now("before_flip", "promote", failed=False)
    assert not hooks.runs_now("before_stage", "promote", failed=False)
    assert hooks.runs_now("after_record", "rollback", failed=False)
    assert not hooks.runs_now("before_stage", "rollback", failed=False)
    assert hooks.phase_of("after_flip") == "verify" and hooks.phase_of("before_flip") == "flip"
    assert set(hooks.PHASE) == set(hooks.HOOK_NAMES)


def test_host_hooks_are_split_out_for_app_release(tmp_path):
    resolved = {"before_flip": "/a.yml", "after_activate": "/b.yml"}
    assert hooks.host_hooks(resolved) == {"after_activate": "/b.yml"}

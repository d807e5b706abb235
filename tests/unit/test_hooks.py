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


def test_every_phase_has_before_and_after():
    assert hooks.HOOK_NAMES == ("before_stage", "after_stage", "before_smoke", "after_smoke",
                                "before_flip", "after_flip", "before_record", "after_record")

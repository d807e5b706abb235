"""turnout.approval: the gate is the inventory's requirement OR the run's; nothing given at
launch opens a gate the inventory closed."""

from __future__ import annotations

import pytest

from turnout import approval
from turnout.errors import InputError


@pytest.mark.parametrize(("requested", "inventory", "as_given", "waits"), [
    (None, None, None, False),
    (True, None, None, True),  # --approval, the AWX workflow
    (None, True, True, True),  # the inventory requires it
    (False, True, True, True),  # -e turnout_approval=false: a request, not an override
    (None, True, False, True),  # -e turnout_approval_required=false masks hostvars, not this
    (False, True, False, True),  # both at once
    ("false", "yes", "no", True),  # AWX surveys and prompts pass strings
    (None, None, True, True),  # -e turnout_approval_required=true closes the gate
    (False, False, False, False),
    ("", None, "", False),  # an empty survey answer is no answer
])
def test_the_gate_is_required_or_requested(requested, inventory, as_given, waits) -> None:
    decided = approval.gate(requested, inventory, as_given)
    assert decided["waits"] is waits
    assert decided["required"] is bool(approval.flag(inventory, "x"))
    assert bool(decided["why"]) is waits


def test_why_names_the_inventory_and_the_ignored_extra_var() -> None:
    why = approval.gate(False, True, False)["why"]
    assert "inventory requires approval" in why and "does not lift it" in why
    assert approval.gate(True, None, None)["why"].startswith("this run asked")


@pytest.mark.parametrize("value", ["maybe", "2", 2, "truee", ["true"]])
def test_a_flag_that_is_not_yes_or_no_is_refused_in_one_line(value) -> None:
    with pytest.raises(InputError, match="invalid turnout_approval ") as error:
        approval.gate(value, None, None)
    assert "\n" not in str(error.value)
    with pytest.raises(InputError, match="invalid turnout_approval_required"):
        approval.gate(None, value, None)


def test_a_failed_run_or_a_noop_never_waits() -> None:
    closed = approval.gate(None, True, True)
    assert approval.awaits(closed, {"failed": False}, {"noop": False}) is True
    assert approval.awaits(closed, {"failed": True}, {"noop": False}) is False
    assert approval.awaits(closed, {"failed": False}, {"noop": True}) is False
    assert approval.awaits(approval.gate(None, None, None), {}, {}) is False
    assert approval.awaits({}, {}, {}) is False  # preflight never decided: a failed run

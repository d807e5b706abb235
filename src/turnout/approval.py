"""The approval gate, decided once: does a deploy stop before the flip and wait for a promote?

Two things can close the gate, and nothing given at launch can open it again:

- the inventory requires it: ``turnout_approval_required`` on the load balancer host, as the
  inventory itself says it (the ``turnout_approval`` action plugin reads it beneath the extra
  vars, so ``-e turnout_approval_required=false`` or an AWX "prompt on launch" cannot lower it);
- the run asks for it: ``turnout_approval`` (``invoke deploy --approval``, the AWX workflow), or
  ``turnout_approval_required`` given as an extra var.

A ``turnout_approval: false`` given at launch is a request not to wait, which an inventory
requirement overrides. Pure: the plugin passes the values in, the playbook asks
:func:`awaits` through the ``turnout_awaits_approval`` filter.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from turnout.errors import InputError

TRUE = ("true", "yes", "on", "1")
FALSE = ("false", "no", "off", "0")


def flag(value: Any, name: str) -> bool | None:
    """A yes/no setting: a bool, or true/false/yes/no/on/off/1/0; None when not given."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    text = str(value).strip().lower()
    if text in TRUE:
        return True
    if text in FALSE:
        return False
    raise InputError(f"invalid {name} {str(value)[:40]!r}: use true or false")


def gate(requested: Any, required_by_inventory: Any, required_as_given: Any) -> dict[str, Any]:
    """Whether a deploy waits for approval, and why.

    ``requested`` is ``turnout_approval``; ``required_by_inventory`` is the inventory's own
    ``turnout_approval_required``; ``required_as_given`` is what the run sees under that name
    (an extra var wins there, so it can only add a requirement, never remove one)."""
    asked = flag(requested, "turnout_approval")
    by_inventory = flag(required_by_inventory, "turnout_approval_required") or False
    as_given = flag(required_as_given, "turnout_approval_required") or False
    if by_inventory:
        why = "the inventory requires approval (turnout_approval_required)"
        if asked is False or not as_given:
            why += "; an extra var given at launch does not lift it"
    elif as_given:
        why = "turnout_approval_required was given for this run"
    elif asked:
        why = "this run asked for approval (turnout_approval)"
    else:
        why = ""
    return {"waits": bool(by_inventory or as_given or asked), "required": by_inventory,
            "requested": asked, "why": why}


def awaits(decided: Mapping[str, Any] | None, run: Mapping[str, Any] | None,
           planned: Mapping[str, Any] | None) -> bool:
    """True when this deploy stops before the flip: the gate is closed, and the run has not
    failed and is not a no-op (nothing to approve)."""
    run, planned = run or {}, planned or {}
    return bool((decided or {}).get("waits")) and not run.get("failed") and \
        not planned.get("noop", False)

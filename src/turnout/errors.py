"""Errors a person can act on: InputError exits 2, DeployFailed exits 1."""


class TurnoutError(Exception):
    """Base class for every expected turnout failure (never shown as a traceback)."""

    exit_code = 1


class InputError(TurnoutError):
    """Bad input: one line naming the problem and the fix; nothing was changed."""

    exit_code = 2


class DeployFailed(TurnoutError):
    """A deploy, rollback or smoke test ran and failed."""

    exit_code = 1

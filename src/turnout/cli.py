"""Glue between invoke tasks and the package: expected errors become one line and an exit code."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from invoke.exceptions import Exit

from turnout import layout
from turnout.errors import InputError, TurnoutError

LAYOUT = layout.current()
# The workspace: the checkout root, or the current directory when installed from a wheel.
REPO_ROOT = LAYOUT.workspace


def command_name() -> str:
    """What the user types: 'invoke' in the checkout, 'turnout' when installed."""
    return LAYOUT.command


def _as_typed(message: str) -> str:
    """Messages name 'invoke TASK'; installed, the command is 'turnout TASK'."""
    return message.replace("invoke ", "turnout ") if LAYOUT.installed else message


def guarded(func: Callable[..., Any]) -> Callable[..., Any]:
    """Run a task body; a TurnoutError prints 'turnout: <message>' and exits with its code."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except TurnoutError as exc:
            text = str(exc) if isinstance(exc, CheckoutOnly) else _as_typed(str(exc))
            raise Exit(f"turnout: error: {text}", code=exc.exit_code) from None
        except KeyboardInterrupt:
            raise Exit("turnout: interrupted", code=130) from None

    return wrapper


def int_option(value: Any, name: str, low: int, high: int) -> int:
    """Parse a numeric option given on the command line, with a one-line error."""
    try:
        number = int(str(value), 10)
    except ValueError:
        raise InputError(f"{name} must be a whole number from {low} to {high} "
                         f"(got {value!r})") from None
    if not low <= number <= high:
        raise InputError(f"{name} must be a whole number from {low} to {high} (got {number})")
    return number


def say(message: str) -> None:
    """Progress line on stderr (stdout stays for reports)."""
    print(_as_typed(message), file=sys.stderr, flush=True)


def inventories_root() -> Path:
    """Where environments live: $TURNOUT_INVENTORIES or <workspace>/inventories."""
    return Path(os.environ.get("TURNOUT_INVENTORIES", REPO_ROOT / "inventories")).resolve()


class CheckoutOnly(InputError):
    """A task refused when installed; its message names 'invoke', the checkout's command, and
    is not rewritten to 'turnout'."""


def needs_checkout(task_name: str, why: str) -> None:
    """Refuse a task that only works in the checkout (exit 2, one line) when installed."""
    if LAYOUT.installed:
        raise CheckoutOnly(f"'{task_name}' needs the turnout checkout ({why}); run "
                         f"'invoke {task_name}' there")

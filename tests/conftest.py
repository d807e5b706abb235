"""Shared test helpers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
INVOKE = [sys.executable, "-m", "invoke"]


def invoke(*args: str, env: dict[str, str] | None = None, timeout: float = 900,
           check: bool = False) -> subprocess.CompletedProcess[str]:
    """Run an invoke task the way a user does (a subprocess in the repo), capturing output."""
    proc = subprocess.run([*INVOKE, *args], cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=timeout,
                          stdin=subprocess.DEVNULL, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"invoke {' '.join(args)} -> {proc.returncode}\n"
                             f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc

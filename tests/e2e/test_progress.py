"""Progress on a real deploy: live per-host rows on a terminal, plain lines through a pipe.

Its own lab ('pg', 1 LB, one host per pool): a deploy under a real pseudo-terminal redraws a
table in place (rich's cursor control) with the hosts staged, smoke-tested and the LB flipped;
a second deploy with its output piped (as Jenkins or AWX run it) prints plain lines, one per
host change, and not one escape code. Both releases go live through the LB.
"""

from __future__ import annotations

import fcntl
import json
import os
import select
import struct
import subprocess
import termios
import time
import urllib.request

import pytest

from tests.conftest import INVOKE, REPO, invoke, require_lab_support
from turnout.lab import fleet
from turnout.lab.config import LabConfig

pytestmark = pytest.mark.e2e

ENV = "labpg"
V1, V2 = "1.0.0-progress", "2.0.0-progress"


@pytest.fixture(scope="module")
def pg(tmp_path_factory):
    """The 'pg' lab, provisioned, with two releases built; brought down afterwards."""
    require_lab_support()
    config = LabConfig(name=os.environ.get("TURNOUT_TEST_PROGRESS_LAB", "pg"),
                       subnet=os.environ.get("TURNOUT_TEST_PROGRESS_SUBNET", "10.231.90.0/24"),
                       app_hosts=1, lbs=1)
    inventories = tmp_path_factory.mktemp("inventories")
    env_dir = inventories / ENV
    env_dir.mkdir()
    (env_dir / "group_vars").symlink_to(REPO / "inventories" / "lab" / "group_vars")
    fleet.down(config)  # a lab left by an interrupted earlier run
    try:
        fleet.up(config, env_dir)
        environ = {"TURNOUT_INVENTORIES": str(inventories)}
        for version in (V1, V2):
            invoke("build", "--version", version, check=True)
        invoke("provision", "--env", ENV, env=environ, check=True)
        yield config, environ
    finally:
        if os.environ.get("TURNOUT_KEEP_LAB") != "1":
            fleet.down(config)


def under_a_terminal(args: list[str], environ: dict[str, str],
                     timeout: float = 300) -> tuple[int, str]:
    """Run `invoke *args` with stdin, stdout and stderr on a pseudo-terminal (120x40); all it
    wrote, read until it exits (or the deadline)."""
    leader, follower = os.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    env = {**os.environ, **environ, "TERM": "xterm-256color"}
    env.pop("TURNOUT_PROGRESS", None)
    proc = subprocess.Popen([*INVOKE, *args], cwd=REPO, env=env, stdin=follower,
                            stdout=follower, stderr=follower, close_fds=True)
    os.close(follower)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 1)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            try:
                data = os.read(leader, 65536)
            except OSError:  # EIO: the terminal closed, everyone is gone
                break
            if not data:
                break
            chunks.append(data)
        else:
            proc.kill()
            raise AssertionError("deploy under a terminal did not finish in time:\n"
                                 + b"".join(chunks).decode(errors="replace")[-3000:])
        code = proc.wait(timeout=30)
    finally:
        os.close(leader)
    return code, b"".join(chunks).decode(errors="replace")


def lb_version(config: LabConfig) -> str:
    url = f"http://{config.host('lb1').address}:80/version"
    with urllib.request.urlopen(url, timeout=5) as response:
        assert response.status == 200
        return json.loads(response.read())["version"]


def test_live_on_a_terminal_plain_lines_through_a_pipe(pg):
    config, environ = pg
    code, shown = under_a_terminal(["deploy", "--env", ENV, "--version", V1], environ)
    assert code == 0, shown[-3000:]
    assert lb_version(config) == V1
    # redrawn in place: lines erased and the cursor moved up, many times
    assert shown.count("\x1b[2K") > 20 and "\x1b[1A" in shown, shown[-2000:]
    frames = shown.split("\x1b[2K")
    assert any("blue1" in f and "stage" in f and "running" in f for f in frames), shown[-3000:]
    last = shown[shown.rindex("phase"):]  # the final table, kept on screen
    for row in ("blue1", "stage", "smoke", "flip", "1/1", "LBs flipped: lb1"):
        assert row in last, (row, last)
    assert f"{V1} is live on {ENV}" in shown

    piped = invoke("deploy", "--env", ENV, "--version", V2,
                   env={**environ, "TERM": "xterm-256color"})
    assert piped.returncode == 0, piped.stdout[-3000:] + piped.stderr[-3000:]
    assert lb_version(config) == V2
    assert "\x1b[" not in piped.stdout + piped.stderr
    lines = piped.stderr.splitlines()
    hosts = [line for line in lines if line.startswith(("stage:", "smoke:", "flip:"))]
    assert hosts == ["stage: green1 ok (1/1)", "smoke: green1 ok (1/1)",
                     "flip: lb1 flipped (1/1)"], piped.stderr
    assert "== Stage | stage and activate the release on the target pool" in lines

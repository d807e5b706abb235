"""The example app (examples/app/app.py) as a real process on 127.0.0.1."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
APP_SOURCE = REPO_ROOT / "examples" / "app" / "app.py"
START_DEADLINE_SECONDS = 10.0
STOP_DEADLINE_SECONDS = 10.0


@dataclass
class RunningApp:
    """A started app process and where it listens."""

    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def request(
        self, path: str, method: str = "GET", timeout: float = 5.0
    ) -> tuple[int, dict[str, str], bytes]:
        """One request on a fresh connection: (status, headers, body)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path)
            response = conn.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            conn.close()

    def stop(self) -> int:
        """SIGTERM the process and return its exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=STOP_DEADLINE_SECONDS)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_release(root: Path, version: str, broken: str | None = None) -> Path:
    """A release directory like the one an artifact unpacks to."""
    release = root / f"app-{version}"
    release.mkdir()
    shutil.copy2(APP_SOURCE, release / "app.py")
    (release / "VERSION").write_text(f"{version}\n")
    if broken is not None:
        (release / "BROKEN").write_text(f"{broken}\n")
    return release


def start(release: Path, log_path: Path, **env: str) -> RunningApp:
    port = free_port()
    app_env = {
        **os.environ,
        "APP_BIND": "127.0.0.1",
        "APP_PORT": str(port),
        "APP_POOL": "blue",
        "APP_HOST": "blue1",
        "APP_ACCESS_LOG": "0",
        **env,
    }
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, str(release / "app.py")],
            env=app_env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    return RunningApp(process=process, port=port, log_path=log_path)


def wait_until_serving(app: RunningApp) -> int:
    """Poll /healthz until any HTTP answer arrives; return its status."""
    deadline = time.monotonic() + START_DEADLINE_SECONDS
    while True:
        if app.process.poll() is not None:
            pytest.fail(f"app exited with {app.process.returncode} at start-up:\n{app.log()}")
        try:
            return app.request("/healthz", timeout=START_DEADLINE_SECONDS)[0]
        except OSError:
            if time.monotonic() > deadline:
                pytest.fail(f"app not serving after {START_DEADLINE_SECONDS}s:\n{app.log()}")
            time.sleep(0.05)


StartApp = Callable[..., RunningApp]


@pytest.fixture
def run_app(tmp_path: Path) -> Iterator[StartApp]:
    """Start app releases; every process is stopped at teardown, whatever happened."""
    started: list[RunningApp] = []

    def _run(version: str = "1.2.3", broken: str | None = None, **env: str) -> RunningApp:
        root = tmp_path / f"run{len(started)}"
        root.mkdir()
        release = make_release(root, version, broken)
        app = start(release, root / "app.log", **env)
        started.append(app)
        return app

    yield _run
    for app in started:
        if app.process.poll() is None:
            app.process.kill()
            app.process.wait(timeout=STOP_DEADLINE_SECONDS)


def test_serves_healthz_version_root_and_404(run_app: StartApp) -> None:
    app = run_app("1.2.3")
    assert wait_until_serving(app) == 200

    status, headers, body = app.request("/healthz")
    assert (status, body) == (200, b"ok")
    assert headers["Content-Type"].startswith("text/plain")

    status, headers, body = app.request("/version")
    assert status == 200
    assert headers["Content-Type"] == "application/json"
    assert json.loads(body) == {"version": "1.2.3", "host": "blue1", "pool": "blue"}

    status, _, body = app.request("/")
    assert (status, body) == (200, b"hello from blue1 (blue) version 1.2.3\n")

    status, _, _ = app.request("/nope")
    assert status == 404

    status, headers, body = app.request("/healthz", method="HEAD")
    assert (status, body, headers["Content-Length"]) == (200, b"", "2")

    assert app.stop() == 0


def test_keep_alive_serves_several_requests_on_one_connection(run_app: StartApp) -> None:
    app = run_app("1.2.3")
    wait_until_serving(app)
    conn = http.client.HTTPConnection("127.0.0.1", app.port, timeout=5)
    try:
        conn.connect()
        first_socket = conn.sock
        for path, status in [("/healthz", 200), ("/missing", 404), ("/version", 200), ("/", 200)]:
            conn.request("GET", path)
            response = conn.getresponse()
            body = response.read()
            assert response.status == status, path
            assert response.version == 11, path
            assert int(response.getheader("Content-Length", "-1")) == len(body), path
            assert not response.will_close, path
        assert conn.sock is first_socket, "the connection was not kept alive"
    finally:
        conn.close()
    assert app.stop() == 0


def test_sigterm_exits_zero_with_idle_keepalive_connection(run_app: StartApp) -> None:
    app = run_app("1.2.3")
    wait_until_serving(app)
    conn = http.client.HTTPConnection("127.0.0.1", app.port, timeout=5)
    try:
        conn.request("GET", "/healthz")
        conn.getresponse().read()
        assert app.stop() == 0
    finally:
        conn.close()


def test_access_log_is_on_by_default_and_silenced_by_env(run_app: StartApp) -> None:
    loud = run_app("1.2.3", APP_ACCESS_LOG="1")
    quiet = run_app("1.2.3")
    for app in (loud, quiet):
        wait_until_serving(app)
        app.request("/version")
        assert app.stop() == 0
    assert '"GET /version HTTP/1.1" 200' in loud.log()
    assert "GET /version" not in quiet.log()


def test_defaults_pool_unknown(run_app: StartApp) -> None:
    app = run_app("1.2.3", APP_POOL="")
    wait_until_serving(app)
    assert json.loads(app.request("/version")[2])["pool"] == "unknown"
    assert app.stop() == 0


def test_broken_unhealthy_fails_healthz_only(run_app: StartApp) -> None:
    app = run_app("1.2.3", broken="unhealthy")
    assert wait_until_serving(app) == 503
    assert app.request("/healthz")[0] == 503
    status, _, body = app.request("/version")
    assert status == 200
    assert json.loads(body)["version"] == "1.2.3"
    assert app.stop() == 0


def test_broken_wrong_version_reports_another_version(run_app: StartApp) -> None:
    app = run_app("1.2.3", broken="wrong-version")
    assert wait_until_serving(app) == 200
    assert json.loads(app.request("/version")[2])["version"] == "1.2.3-wrong"
    assert app.stop() == 0


def test_broken_crash_exits_one_at_startup(run_app: StartApp) -> None:
    app = run_app("1.2.3", broken="crash")
    assert app.process.wait(timeout=STOP_DEADLINE_SECONDS) == 1
    assert "crash" in app.log()


def test_broken_slow_delays_responses(run_app: StartApp) -> None:
    app = run_app("1.2.3", broken="slow")
    assert wait_until_serving(app) == 200
    started = time.monotonic()
    status, _, body = app.request("/healthz", timeout=10)
    assert (status, body) == (200, b"ok")
    assert time.monotonic() - started >= 1.9
    assert app.stop() == 0


def test_missing_version_file_fails_with_a_clear_message(tmp_path: Path) -> None:
    release = make_release(tmp_path, "1.2.3")
    (release / "VERSION").unlink()
    app = start(release, tmp_path / "app.log")
    try:
        assert app.process.wait(timeout=STOP_DEADLINE_SECONDS) == 1
    finally:
        if app.process.poll() is None:
            app.process.kill()
            app.process.wait(timeout=STOP_DEADLINE_SECONDS)
    assert "VERSION" in app.log()

"""What the app_release role promises on each app host (docs/contracts.md)."""

from __future__ import annotations

import hashlib
import json
import re

from molecule_helpers import address, ephemeral_dir, get_json, http_get, poll

testinfra_hosts = ["app"]
ROOT = "/srv/app"


def _sha256(version: str) -> str:
    artifact = ephemeral_dir() / "dist" / f"app-{version}.tar.gz"
    return hashlib.sha256(artifact.read_bytes()).hexdigest()


def _pool(host) -> str:
    return "blue" if host.backend.get_hostname().startswith("blue") else "green"


def test_app_user_is_unprivileged_without_login(host) -> None:
    user = host.user("app")
    assert user.exists
    assert user.uid != 0
    assert user.shell == "/usr/sbin/nologin"


def test_layout_is_root_owned(host) -> None:
    for path in (ROOT, f"{ROOT}/artifacts", f"{ROOT}/releases", f"{ROOT}/releases/1.1.0"):
        directory = host.file(path)
        assert directory.is_directory, path
        assert (directory.user, directory.group, directory.mode) == ("root", "root", 0o755), path
    assert host.file(f"{ROOT}/releases/1.1.0/app.py").user == "root"


def test_current_links_to_the_new_release_and_keeps_the_old_one(host) -> None:
    current = host.file(f"{ROOT}/current")
    assert current.is_symlink
    assert current.linked_to == f"{ROOT}/releases/1.1.0"
    assert host.file(f"{ROOT}/releases/1.1.0/VERSION").content_string.strip() == "1.1.0"
    assert host.file(f"{ROOT}/releases/1.0.0").is_directory  # app_release_keep 3


def test_artifacts_were_verified_on_the_host(host) -> None:
    for version in ("1.0.0", "1.1.0"):
        artifact = host.file(f"{ROOT}/artifacts/app-{version}.tar.gz")
        assert artifact.sha256sum == _sha256(version)
        marker = host.file(f"{ROOT}/releases/{version}/.artifact-sha256")
        assert marker.content_string.strip() == _sha256(version)


def test_release_json_records_the_activation(host) -> None:
    record_file = host.file(f"{ROOT}/release.json")
    assert (record_file.user, record_file.mode) == ("root", 0o644)
    record = json.loads(record_file.content_string)
    assert record["app"] == "app"
    assert record["version"] == "1.1.0"
    assert record["sha256"] == _sha256("1.1.0")
    assert record["pool"] == _pool(host)
    assert record["run_id"] == "molecule-converge"
    assert record["activated_by"] == "molecule@controller"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", record["activated_at"])


def test_unit_is_installed_enabled_and_running(host) -> None:
    unit = host.file("/etc/systemd/system/app.service")
    assert (unit.user, unit.group, unit.mode) == ("root", "root", 0o644)
    assert "User=app" in unit.content_string
    service = host.service("app")
    assert service.is_enabled
    assert service.is_running


def test_app_runs_as_app_user_from_current(host) -> None:
    pid = host.run("systemctl show -p MainPID --value app.service").stdout.strip()
    assert pid not in ("", "0")
    owner = host.run(f"ps -o user= -p {pid}").stdout.strip()
    assert owner == "app"
    command = host.file(f"/proc/{pid}/cmdline").content_string.replace("\0", " ")
    assert command.split()[-1:] == ["app.py"], command  # the app definition's start, relative
    cwd = host.run(f"readlink /proc/{pid}/cwd").stdout.strip()
    assert cwd == f"{ROOT}/releases/1.1.0", cwd  # run from the release current points to


def test_http_endpoints_report_the_release(host) -> None:
    base = f"http://{address(host)}:8080"
    assert host.socket("tcp://0.0.0.0:8080").is_listening
    version = poll(lambda: get_json(f"{base}/version"))
    assert version == {"version": "1.1.0", "host": host.backend.get_hostname(), "pool": _pool(host)}
    status, _, body = http_get(f"{base}/healthz")
    assert (status, body.strip()) == (200, "ok")
    status, _, body = http_get(f"{base}/")
    assert status == 200 and "hello from" in body
